"""Segmentation assets: preprocessed volumes, training slices, per-input U-Nets and their metrics."""

import dagster as dg
import numpy as np
import pandas as pd

from gbm_assets.defs.partitions import cohorts_partitions
from gbm_assets.defs.resources import DataRootResource, MlflowResource
from gbm_assets.defs.segment.config import PreprocessSettings, SliceSettings, UNetSettings
from gbm_assets.defs.segment.partitions import model_inputs_partitions
from gbm_assets.lib.contract import SEQUENCES
from gbm_assets.lib.preprocess.slices import SliceConfig, assert_disjoint_splits, patient_splits, write_slice_arrays
from gbm_assets.lib.preprocess.volumes import PreprocessConfig, preprocess_patient, read_case, save_preprocessed
from gbm_assets.defs.segment import training as unet_store
from gbm_assets.lib.segment.dataset import load_slice_data
from gbm_assets.lib.segment.evaluate import comparison_markdown
from gbm_assets.lib.tables import read_parquet
from gbm_assets.defs.automation.sensors import EAGER

PREPROCESSED_COLUMNS = [
    "cohort", "patient_id", "status", "problems", "dir", "has_labels",
    "shape_x", "shape_y", "shape_z", "spacing_x_mm", "spacing_y_mm", "spacing_z_mm",
]  # fmt: skip


def _preprocess_one(row, config: PreprocessConfig, out_dir) -> dict:
    paths = {s: getattr(row, f"{s}_path") for s in SEQUENCES if isinstance(getattr(row, f"{s}_path"), str)}
    labels = row.labels_path if isinstance(row.labels_path, str) else None
    images, label_img = read_case(paths, labels, row.label_scheme)
    patient = preprocess_patient(images, label_img, config)
    save_preprocessed(patient, out_dir)
    shape, spacing = patient.images.shape[1:], patient.spacing
    return {"status": "ok", "problems": "", "dir": str(out_dir), "has_labels": patient.labels is not None,
            "shape_x": shape[0], "shape_y": shape[1], "shape_z": shape[2],
            "spacing_x_mm": spacing[0], "spacing_y_mm": spacing[1], "spacing_z_mm": spacing[2]}  # fmt: skip


@dg.asset(
    partitions_def=cohorts_partitions,
    group_name="segment",
    io_manager_key="table_io_manager",
    kinds={"nifti", "parquet"},
    description="Each valid patient in RAS, resampled, cropped/padded and z-scored per sequence; files per patient.",
)
def preprocessed_volumes(
    context: dg.AssetExecutionContext, config: PreprocessSettings, raw_cohort: pd.DataFrame, data_root: DataRootResource
) -> dg.Output[pd.DataFrame]:
    cohort, root = context.partition_key, data_root.root()
    settings = PreprocessConfig(target_spacing_mm=config.target_spacing_mm, slice_thickness_mm=config.slice_thickness_mm, size=config.size)
    rows = []
    for row in raw_cohort[raw_cohort["status"] == "ok"].itertuples():
        base = {"cohort": cohort, "patient_id": row.patient_id}
        try:
            rows.append(base | _preprocess_one(row, settings, root.volume_dir("preprocessed", cohort, row.patient_id)))
        except Exception as exc:  # one patient's failure is recorded; the others proceed
            message = f"preprocessing failed: {type(exc).__name__}: {exc}"
            context.log.error(f"cohort {cohort}, patient {row.patient_id} ({row.t1_path}): {message}")
            rows.append(base | {"status": "excluded", "problems": message, "has_labels": False})
    table = pd.DataFrame(rows, columns=PREPROCESSED_COLUMNS)
    if table.empty:
        raise dg.Failure(description=f"cohort {cohort!r}: no valid patients in raw_cohort to preprocess")
    return dg.Output(
        table,
        metadata={
            "patients": len(table),
            "preprocessed": int((table["status"] == "ok").sum()),
            "failed": int((table["status"] != "ok").sum()),
            "target_spacing_mm": config.target_spacing_mm,
            "size": config.size,
            "volumes_dir": dg.MetadataValue.path(str(root.volume_dir("preprocessed", cohort))),
        },
    )


@dg.asset(
    partitions_def=cohorts_partitions,
    group_name="segment",
    io_manager_key="table_io_manager",
    kinds={"numpy", "parquet"},
    description="Axial 2D slices per model input (memory-mapped .npy) and their index with patient-level splits.",
)
def training_slices(
    context: dg.AssetExecutionContext,
    config: SliceSettings,
    preprocessed_volumes: pd.DataFrame,
    clinical_records: pd.DataFrame,
    data_root: DataRootResource,
) -> dg.Output[pd.DataFrame]:
    cohort, root = context.partition_key, data_root.root()
    labelled = preprocessed_volumes[(preprocessed_volumes["status"] == "ok") & preprocessed_volumes["has_labels"].astype(bool)]
    subtypes = clinical_records.set_index("patient_id")["subtype"].to_dict()
    try:
        fractions = (config.train_fraction, config.validation_fraction, config.test_fraction)
        splits = patient_splits(list(labelled["patient_id"]), {p: subtypes.get(p) for p in labelled["patient_id"]}, fractions, config.seed)
    except ValueError as exc:
        raise dg.Failure(description=f"cohort {cohort!r}: cannot split patients with masks for training: {exc}") from exc
    patients = [(cohort, r.patient_id, root.volume_dir("preprocessed", cohort, r.patient_id), splits[r.patient_id]) for r in labelled.itertuples()]
    out_dir = root.volume_dir("training_slices", cohort)
    index, skipped = write_slice_arrays(out_dir, patients, SliceConfig(config.lesion_free_fraction, config.seed))
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


@dg.asset_check(asset=training_slices, partitions_def=cohorts_partitions, blocking=True, description="No patient is in two splits.")
def training_slices_patients_in_one_split(training_slices: pd.DataFrame) -> dg.AssetCheckResult:
    leaked = assert_disjoint_splits(training_slices)
    return dg.AssetCheckResult(passed=not leaked, metadata={"patients_in_several_splits": dg.MetadataValue.json(sorted(map(str, leaked)))})


def _training_cohorts(context: dg.AssetExecutionContext, config: UNetSettings, root) -> list[str]:
    available = sorted(p.stem for p in root.table_dir("training_slices").glob("*.parquet"))
    chosen = [c for c in available if c in config.training_cohorts] if config.training_cohorts else available
    missing = sorted(set(config.training_cohorts) - set(available))
    if missing:
        raise dg.Failure(description=f"training cohorts without training_slices: {missing}; materialize training_slices for them first")
    if not chosen:
        raise dg.Failure(description="no cohort has training_slices yet; materialize training_slices for a labelled cohort first")
    context.log.info(f"training on cohorts {chosen}")
    return chosen


@dg.asset(
    partitions_def=model_inputs_partitions,
    group_name="segment",
    deps=[dg.AssetDep("training_slices", partition_mapping=dg.AllPartitionMapping())],
    kinds={"pytorch", "mlflow"},
    description="The study's 2D U-Net for one input (t1, t1c, t2, flair, stack), tracked and registered in MLflow.",
)
def unet_model(
    context: dg.AssetExecutionContext, config: UNetSettings, data_root: DataRootResource, mlflow: MlflowResource
) -> dg.MaterializeResult:
    input_name, root = context.partition_key, data_root.root()
    cohorts = _training_cohorts(context, config, root)
    data = load_slice_data(root, cohorts, input_name)
    try:
        record = unet_store.train_and_register(context, data, input_name, config, root, mlflow)
    except ValueError as exc:  # too few slices, no lesions, bad shapes: a clear failure, never a silent model
        raise dg.Failure(description=f"unet_model[{input_name}]: {exc}") from exc
    return dg.MaterializeResult(metadata=unet_store.model_metadata(record))


@dg.asset(
    automation_condition=EAGER,
    partitions_def=model_inputs_partitions,
    group_name="segment",
    deps=[unet_model],
    io_manager_key="table_io_manager",
    kinds={"parquet"},
    description="The study's metric table per split (pixel metrics, 3D Dice, HD95) with pictures.",
)
def segmentation_metrics(context: dg.AssetExecutionContext, data_root: DataRootResource) -> dg.Output[pd.DataFrame]:
    input_name, root = context.partition_key, data_root.root()
    record = unet_store.latest_record(root, input_name)
    data = load_slice_data(root, record["cohorts"], input_name, splits=("train", "validation", "test"))
    metrics, per_patient, pictures = unet_store.evaluate_model(record, data, root)
    unet_store.log_evaluation(record, metrics, pictures)
    others = [read_parquet(p) for p in root.table_dir("segmentation_metrics").glob("*.parquet") if p.stem != input_name]
    everything = pd.concat([*others, metrics], ignore_index=True)
    one_empty = per_patient[per_patient["pred_empty"] != per_patient["truth_empty"]]
    test = metrics[metrics["split"] == "test"].set_index("metric")["value"]
    return dg.Output(
        metrics,
        metadata={
            "test_dice_3d": float(test.get("dice_3d", np.nan)),
            "test_hd95_mm": float(test.get("hd95_mm", np.nan)),
            "one_sided_empty_volumes": len(one_empty),
            "postprocess_keep_largest_component": bool(pictures["postprocess"]["keep_largest"]),
            "validation_dice_3d_all_vs_largest": dg.MetadataValue.json(
                {k: round(v, 4) for k, v in pictures["postprocess"].items() if k != "keep_largest"}
            ),
            "model_version": str(record.get("model_version")),
            "metrics": dg.MetadataValue.md(metrics.pivot_table(index="metric", columns="split", values="value").round(4).to_markdown()),
            "comparison_test": dg.MetadataValue.md(comparison_markdown(everything, "test")),
            "per_patient": dg.MetadataValue.md(per_patient.round(3).to_markdown(index=False)),
            **{name: dg.MetadataValue.md(md) for name, md in pictures["markdown"].items()},
        },
    )


TEST_DICE_FLOOR = 0.5
"""A model whose mean test 3D Dice is below this gets a warning (the demo's models reach ~0.8+)."""


@dg.asset_check(asset=unet_model, partitions_def=model_inputs_partitions, blocking=True, description="Every weight of the new checkpoint is finite.")
def unet_model_weights_finite(context: dg.AssetCheckExecutionContext, data_root: DataRootResource) -> dg.AssetCheckResult:
    record = unet_store.latest_record(data_root.root(), context.partition_key)
    finite, bad = unet_store.weights_finite(record)
    return dg.AssetCheckResult(
        passed=finite,
        metadata={"model_version": record["model_version"], "tensors_not_finite": dg.MetadataValue.json(bad[:50])},
    )


@dg.asset_check(
    asset=unet_model,
    partitions_def=model_inputs_partitions,
    blocking=True,
    description="The new version's validation Dice beats the current champion's; otherwise unet_champion does not run.",
)
def unet_model_beats_champion(context: dg.AssetCheckExecutionContext, data_root: DataRootResource) -> dg.AssetCheckResult:
    record = unet_store.latest_record(data_root.root(), context.partition_key)
    comparison = unet_store.champion_comparison(record)
    return dg.AssetCheckResult(
        passed=bool(comparison["beats_champion"]),
        metadata={
            "candidate_version": record["model_version"],
            "candidate_val_dice": float(comparison["candidate_val_dice"]),
            "champion_version": str(comparison["champion_version"]),
            "champion_val_dice": float("nan") if comparison["champion_val_dice"] is None else float(comparison["champion_val_dice"]),
        },
    )


@dg.asset(
    partitions_def=model_inputs_partitions,
    group_name="segment",
    deps=[unet_model],
    kinds={"mlflow"},
    description="Moves the registry alias 'champion' to the new U-Net version; runs only when its blocking checks pass.",
)
def unet_champion(context: dg.AssetExecutionContext, data_root: DataRootResource) -> dg.MaterializeResult:
    record = unet_store.latest_record(data_root.root(), context.partition_key)
    decision = unet_store.promote(record)  # re-checks: a worse version never takes the alias
    if not decision["promoted"]:
        context.log.warning(f"{record['model_name']} v{record['model_version']} does not beat v{decision['champion_version']}; champion kept")
    return dg.MaterializeResult(
        metadata={
            "registered_model": record["model_name"],
            "candidate_version": record["model_version"],
            "promoted": bool(decision["promoted"]),
            "champion_version": str(decision["champion_version"]),
            "previous_champion_version": str(decision["previous_version"]),
            "previous_champion_val_dice": float("nan") if decision["previous_value"] is None else float(decision["previous_value"]),
        }
    )


@dg.asset_check(asset=segmentation_metrics, partitions_def=model_inputs_partitions, description=f"Mean test 3D Dice is at least {TEST_DICE_FLOOR}.")
def segmentation_metrics_test_dice_above_floor(segmentation_metrics: pd.DataFrame) -> dg.AssetCheckResult:
    test = segmentation_metrics[(segmentation_metrics["split"] == "test") & (segmentation_metrics["metric"] == "dice_3d")]
    value = float(test["value"].iloc[0]) if len(test) else float("nan")
    return dg.AssetCheckResult(
        passed=bool(value >= TEST_DICE_FLOOR),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"test_dice_3d": value, "floor": TEST_DICE_FLOOR},
    )


assets = [preprocessed_volumes, training_slices, unet_model, unet_champion, segmentation_metrics]
checks = [training_slices_patients_in_one_split, unet_model_weights_finite, unet_model_beats_champion, segmentation_metrics_test_dice_above_floor]
