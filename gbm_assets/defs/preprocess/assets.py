"""Preprocess assets: each valid patient's volumes on a common grid, the 2D training slices, and
the subject-level splits over every cohort."""

import dagster as dg
import pandas as pd

from gbm_assets.defs.compute import ComputeResource
from gbm_assets.defs.partitions import cohorts_partitions
from gbm_assets.defs.patients import keyed, map_each_patient
from gbm_assets.defs.preprocess.config import (
    PreprocessSettings,
    SliceSettings,
    source_version,
)
from gbm_assets.defs.resources import DataRootResource
from gbm_assets.lib.contract import SEQUENCES, label_scheme
from gbm_assets.lib.preprocess import grid, intensity, slices, splits, tasks, volumes
from gbm_assets.lib.preprocess.slices import SliceConfig, write_slice_arrays
from gbm_assets.lib.preprocess.splits import split_table, subject_ids, subject_split
from gbm_assets.lib.preprocess.tasks import (
    PREPROCESSED_COLUMNS,
    PreprocessTask,
    preprocess_key,
    preprocess_outputs,
    preprocess_task,
)
from gbm_assets.lib.preprocess.volumes import PreprocessConfig

CODE_VERSION = source_version(volumes, grid, intensity, tasks)
"""Code version of preprocessed_volumes, also part of each patient's content key."""


def _image_paths(row) -> dict[str, str]:
    return {s: getattr(row, f"{s}_path") for s in SEQUENCES if isinstance(getattr(row, f"{s}_path"), str) and getattr(row, f"{s}_path")}


def _first_image(task: PreprocessTask) -> str:
    """The first sequence file a patient has, named in its error messages."""
    return next(iter(task.images.values()), "")


@dg.asset(
    partitions_def=cohorts_partitions,
    group_name="preprocess",
    io_manager_key="table_io_manager",
    kinds={"nifti", "parquet"},
    code_version=CODE_VERSION,
    description="Each valid patient in RAS, resampled, cropped/padded and scaled per sequence (z-scored, or by brain "
    "percentiles for percentile_scaled); files per patient.",
)
def preprocessed_volumes(
    context: dg.AssetExecutionContext, config: PreprocessSettings, raw_cohort: pd.DataFrame,
    data_root: DataRootResource, compute: ComputeResource,
) -> dg.Output[pd.DataFrame]:  # fmt: skip
    """Each valid patient on the compute resource; unchanged patients (same file contents and
    settings) are reused from their content-keyed records."""
    cohort, root = context.partition_key, data_root.root()
    try:
        settings = PreprocessConfig(target_spacing_mm=config.target_spacing_mm, slice_thickness_mm=config.slice_thickness_mm,
                                    size=config.size, percentile_scaled=tuple(config.percentile_scaled),
                                    anti_alias=config.anti_alias)  # fmt: skip
    except (ValueError, KeyError) as exc:
        raise dg.Failure(description=f"cohort {cohort!r}: preprocessed_volumes settings: {exc}") from exc
    valid = raw_cohort[raw_cohort["status"] == "ok"]
    items = [PreprocessTask(row.patient_id, _image_paths(row), row.labels_path if isinstance(row.labels_path, str) else None,
                            row.label_scheme, str(root.volume_dir("preprocessed", cohort, row.patient_id)), settings, CODE_VERSION)
             for row in valid.itertuples()]  # fmt: skip
    with compute.open(root.root) as pool:
        runner = keyed(pool, root, "preprocessed_volumes", cohort, preprocess_key, preprocess_outputs)
        context.log.info(f"cohort {cohort}: {len(items)} patients on {pool.describe()}")
        outcome = map_each_patient(context, cohort, runner, preprocess_task, items, what="preprocessing", file_of=_first_image)
    failed = [{"patient_id": f["patient_id"], "status": "excluded", "problems": f["problem"], "has_labels": False} for f in outcome.failures]
    table = pd.DataFrame([*outcome.results, *failed], columns=PREPROCESSED_COLUMNS).assign(cohort=cohort)
    if table.empty:
        raise dg.Failure(description=f"cohort {cohort!r}: no valid patients in raw_cohort to preprocess")
    order = {pid: i for i, pid in enumerate(valid["patient_id"])}  # the raw_cohort order, failures in place
    table = table.sort_values("patient_id", key=lambda s: s.map(order), ignore_index=True)
    return dg.Output(
        table,
        metadata={
            "patients": len(table),
            "preprocessed": int((table["status"] == "ok").sum()),
            "patients_reused": runner.reused,
            "patients_computed": runner.computed,
            "failed": int((table["status"] != "ok").sum()),
            "target_spacing_mm": config.target_spacing_mm,
            "size": config.size,
            "intensity_scaling": intensity.describe(intensity.scalings(SEQUENCES, settings.percentile_scaled)),
            "volumes_dir": dg.MetadataValue.path(str(root.volume_dir("preprocessed", cohort))),
        },
    )


@dg.asset(
    partitions_def=cohorts_partitions,
    group_name="preprocess",
    io_manager_key="table_io_manager",
    kinds={"numpy", "parquet"},
    code_version=source_version(slices, splits),
    description="Axial 2D slices per model input (memory-mapped .npy) and their index, with each patient's "
    "subject id and its subject-level split (the same subject gets the same split in every cohort).",
)
def training_slices(
    context: dg.AssetExecutionContext,
    config: SliceSettings,
    preprocessed_volumes: pd.DataFrame,
    raw_cohort: pd.DataFrame,
    data_root: DataRootResource,
) -> dg.Output[pd.DataFrame]:
    cohort, root = context.partition_key, data_root.root()
    labelled = preprocessed_volumes[(preprocessed_volumes["status"] == "ok") & preprocessed_volumes["has_labels"].astype(bool)]
    declared = raw_cohort.set_index("patient_id")["subject_id"].to_dict() if "subject_id" in raw_cohort else {}
    subjects = subject_ids(cohort, labelled["patient_id"], declared)
    fractions = (config.train_fraction, config.validation_fraction, config.test_fraction)
    try:
        split_of = {pid: subject_split(subject, fractions, config.seed) for pid, subject in subjects.items()}
    except ValueError as exc:
        raise dg.Failure(description=f"cohort {cohort!r}: cannot split patients with masks for training: {exc}") from exc
    patients = [(cohort, pid, root.volume_dir("preprocessed", cohort, pid), split_of[pid]) for pid in labelled["patient_id"]]
    out_dir = root.volume_dir("training_slices", cohort)
    index, skipped = write_slice_arrays(out_dir, patients, SliceConfig(config.lesion_free_fraction, config.seed))
    index["subject_id"] = index["patient_id"].map(subjects)
    # What each patient's truth can answer for (a binary mask: whole tumour only), so region models train and are
    # scored only on the regions a patient's labels actually carry.
    schemes = raw_cohort.set_index("patient_id")["label_scheme"].dropna() if "label_scheme" in raw_cohort else pd.Series(dtype=str)
    regions_of = {pid: ",".join(label_scheme(scheme).regions) for pid, scheme in schemes.items()}
    index["label_regions"] = index["patient_id"].map(regions_of).fillna(",".join(label_scheme("canonical").regions))
    for pid, reason in skipped:
        context.log.warning(f"cohort {cohort}, patient {pid}: skipped for training slices: {reason}")
    lesion_slices = int((index["lesion_area_mm2"] > 0).sum())
    if lesion_slices == 0:
        raise dg.Failure(description=f"cohort {cohort!r}: no lesion-bearing slices among {len(index)} slices; nothing to train on")
    by_split = index.groupby("split").agg(slices=("row", "size"), patients=("patient_id", "nunique"))
    return dg.Output(
        index,
        metadata={
            "slices": len(index),
            "lesion_slices": lesion_slices,
            "skipped_patients": dg.MetadataValue.json([{"patient_id": p, "reason": r} for p, r in skipped]),
            "splits": dg.MetadataValue.md(by_split.to_markdown()),
            "arrays_dir": dg.MetadataValue.path(str(out_dir)),
        },
    )


@dg.asset(
    group_name="preprocess",
    io_manager_key="table_io_manager",
    ins={"training_slices": dg.AssetIn(partition_mapping=dg.AllPartitionMapping())},
    kinds={"parquet"},
    description="Every training patient of every cohort with training_slices: one row per (cohort, patient_id, "
    "subject_id, split). The U-Nets train on the patients it lists.",
)
def training_splits(training_slices: pd.DataFrame) -> dg.Output[pd.DataFrame]:
    """The splits of every cohort's training_slices, loaded as one input (the IO manager reads the
    partitions that were materialized)."""
    if training_slices.empty:
        raise dg.Failure(description="no cohort has training_slices yet; materialize training_slices for a labelled cohort first")
    cohorts = sorted(training_slices["cohort"].unique())
    table = split_table([training_slices[training_slices["cohort"] == c] for c in cohorts])
    counts = table.groupby(["cohort", "split"]).size().unstack(fill_value=0)
    return dg.Output(
        table,
        metadata={
            "cohorts": dg.MetadataValue.json(cohorts),
            "patients": len(table),
            "subjects": int(table["subject_id"].nunique()),
            "patients_per_split": dg.MetadataValue.md(counts.to_markdown()),
        },
    )
