"""Radiomics assets: PyRadiomics features and tumour burden of ground-truth and predicted ROIs, per cohort.

Everything is measured on each patient's native images, where the cohort's labels and the
predicted masks of `lesion_masks` overlay voxel for voxel. A problem with one patient, ROI, region
or sequence is an exclusion row (features) or a skipped patient (burden); the others proceed.
The work lives in `gbm_assets.lib.radiomics`; these assets load, call and record.

`radiomic_features` (all four outputs) has code version = the first 12 hex digits of the shipped
parameter file's sha256, so editing that file marks them stale in the UI. A run with a custom
`params_path` is not covered by the code version; its parameter file and sha256 are in the
`params_sha256` metadata and in `radiomics_provenance`.
"""

import math
import time
from importlib.metadata import version

import dagster as dg
import pandas as pd

from gbm_assets.defs.compute import ComputeResource
from gbm_assets.defs.conditions import EAGER
from gbm_assets.defs.metadata import table_metadata
from gbm_assets.defs.partitions import cohorts_partitions
from gbm_assets.defs.patients import keyed, map_each_patient
from gbm_assets.defs.preprocess.config import source_version
from gbm_assets.defs.radiomics.config import (
    RadiomicsSettings,
    check_roi_sources,
    worker_count,
)
from gbm_assets.defs.resources import DataRootResource
from gbm_assets.lib.classify.features import wide_features
from gbm_assets.lib.radiomics import (
    ParameterFileError,
    burden,
    burden_rows,
    default_params_path,
    extract,
    extract_cohort,
    load_params,
)
from gbm_assets.lib.radiomics.burden_rows import (
    TUMOR_BURDEN_COLUMNS,
    BurdenTask,
    burden_of,
)
from gbm_assets.lib.radiomics.params import file_sha256
from gbm_assets.lib.radiomics.tasks import (
    burden_key,
    merge_exclusions,
    provenance_row,
    radiomics_key,
    radiomics_tasks,
    text,
)

PARAMS_CODE_VERSION = file_sha256(default_params_path())[:12]
"""Code version of the radiomics outputs: the shipped parameter file's sha256 prefix."""
RADIOMICS_CODE = f"{source_version(extract)}:pyradiomics {version('pyradiomics')}"
"""Part of each patient's radiomics content key (the parameter file's bytes are another part)."""
BURDEN_CODE = source_version(burden, burden_rows)
"""Part of each patient's tumour-burden content key."""


@dg.multi_asset(
    partitions_def=cohorts_partitions,
    group_name="radiomics",
    outs={
        "radiomic_features": dg.AssetOut(
            code_version=PARAMS_CODE_VERSION,
            io_manager_key="table_io_manager", kinds={"pyradiomics", "parquet"},
            description="Long PyRadiomics features: cohort, patient_id, sequence ('any' for shape), roi_source, region, "
            "feature_class, feature, value.",
        ),
        "radiomic_features_wide": dg.AssetOut(
            code_version=PARAMS_CODE_VERSION,
            io_manager_key="table_io_manager", kinds={"parquet"},
            description="One row per cohort, patient and roi_source; one column per "
            "<sequence>__<region>__<class>_<feature>, for modelling.",
        ),
        "radiomics_exclusions": dg.AssetOut(
            code_version=PARAMS_CODE_VERSION,
            io_manager_key="table_io_manager", kinds={"parquet"},
            description="Why an ROI, region or sequence has no features ('any' = all of them): cohort, patient_id, "
            "roi_source, region, sequence, reason.",
        ),
        "radiomics_provenance": dg.AssetOut(
            code_version=PARAMS_CODE_VERSION,
            io_manager_key="table_io_manager", kinds={"parquet"},
            description="One row per extraction run: versions, parameter file and sha256, settings, seconds per patient, workers.",
        ),
    },  # fmt: skip
)
def radiomic_features(
    context: dg.AssetExecutionContext,
    config: RadiomicsSettings,
    raw_cohort: pd.DataFrame,
    lesion_masks: pd.DataFrame,
    data_root: DataRootResource,
    compute: ComputeResource,
):
    """PyRadiomics on the native images, per patient x ROI source x region x sequence, on the compute resource."""
    cohort, root = context.partition_key, data_root.root()
    try:
        params = load_params(config.params_path)  # before any work: an unknown setting fails here
    except ParameterFileError as exc:
        raise dg.Failure(description=f"cohort {cohort!r}: {exc}") from exc
    sources = check_roi_sources(config.roi_sources)
    rois_dir = root.volume_dir("radiomics_rois", cohort)
    tasks, skipped = radiomics_tasks(cohort, raw_cohort, lesion_masks, sources, str(params.path), rois_dir)
    if not tasks:
        reasons = "; ".join(f"{e['patient_id']}: {e['reason']}" for e in skipped[:5])
        raise dg.Failure(description=f"cohort {cohort!r}: no patient has an ROI ({', '.join(sources)}) to extract; {reasons}")
    requested = worker_count(config.workers or compute.workers or None, len(tasks))
    start = time.perf_counter()
    with compute.open(root.root, workers=requested) as backend:
        pool = keyed(backend, root, "radiomic_features", cohort, lambda task: radiomics_key(task, RADIOMICS_CODE))
        workers = pool.workers
        context.log.info(f"cohort {cohort}: {len(tasks)} patients on {pool.describe()}, parameters {params.path} "
                         f"(sha256 {params.sha256[:12]})")
        try:
            features, exclusions, timings = extract_cohort(tasks, progress=False, compute=pool)
        except ValueError as exc:  # duplicate patient ids
            raise dg.Failure(description=f"cohort {cohort!r}: {exc}") from exc
    wall = time.perf_counter() - start
    exclusions = merge_exclusions(skipped, exclusions)
    for row in exclusions.itertuples():
        where = f"{row.roi_source}/{row.region}/{row.sequence}"
        context.log.info(f"cohort {cohort}, patient {row.patient_id}, {where}: excluded: {row.reason}")
    wide = wide_features(features)
    seconds = timings["seconds"]
    provenance = provenance_row(cohort, context.run.run_id, params.provenance(), sources, workers, len(tasks),
                                len(features), len(exclusions), seconds, wall)
    yield dg.Output(
        features,
        output_name="radiomic_features",
        metadata={
            "rows": len(features),
            "patients": int(features["patient_id"].nunique()),
            "exclusions": len(exclusions),
            "exclusions_head": table_metadata(exclusions.head(20), index=False),
            "rows_by_source_region": table_metadata(features.groupby(["roi_source", "region"]).size().rename("rows").to_frame()),
            "seconds_per_patient_mean": round(float(seconds.mean()), 3),
            "seconds_per_patient_max": round(float(seconds.max()), 3),
            "workers": workers,
            "patients_reused": pool.reused,
            "patients_computed": pool.computed,
            "params_sha256": params.sha256,
        },
    )
    yield dg.Output(wide, output_name="radiomic_features_wide", metadata={"rows": len(wide), "feature_columns": wide.shape[1] - 3})
    yield dg.Output(exclusions, output_name="radiomics_exclusions", metadata={"rows": len(exclusions)})
    yield dg.Output(provenance, output_name="radiomics_provenance",
                    metadata={"params_sha256": params.sha256, "pyradiomics_version": provenance["pyradiomics_version"].iloc[0]})


@dg.asset(
    automation_condition=EAGER,
    partitions_def=cohorts_partitions,
    group_name="radiomics",
    io_manager_key="table_io_manager",
    kinds={"nifti", "parquet"},
    description="Per patient, ROI source and region: volume (ml), maximum 3D diameter (mm), centroid (scanner mm), "
    "hemisphere; predicted rows carry the true volume, the volume difference and Dice where ground truth exists.",
)
def tumor_burden(
    context: dg.AssetExecutionContext, raw_cohort: pd.DataFrame, lesion_masks: pd.DataFrame,
    data_root: DataRootResource, compute: ComputeResource,
) -> dg.Output[pd.DataFrame]:  # fmt: skip
    cohort = context.partition_key
    masks = {r.patient_id: r for r in lesion_masks.itertuples() if r.status == "ok" and text(r.mask_path)}
    items = [BurdenTask(cohort, row._asdict(), masks[row.patient_id]._asdict() if row.patient_id in masks else None)
             for row in raw_cohort[raw_cohort["status"] == "ok"].itertuples(index=False)]  # fmt: skip
    root = data_root.root()
    with compute.open(root.root) as backend:
        pool = keyed(backend, root, "tumor_burden", cohort, lambda task: burden_key(task, BURDEN_CODE))
        outcome = map_each_patient(
            context, cohort, pool, burden_of, items, what="tumour burden",
        patient_of=lambda task: task.row["patient_id"],
            file_of=lambda task: (task.mask or {}).get("mask_path") or text(task.row.get("labels_path")) or "",
        )  # fmt: skip
    rows = [r for _, patient_rows, _ in outcome.results for r in patient_rows]
    notes = [f"{patient}: {n}" for patient, _, patient_notes in outcome.results for n in patient_notes]
    for note in notes:
        context.log.warning(f"cohort {cohort}, {note}")
    table = pd.DataFrame(rows, columns=TUMOR_BURDEN_COLUMNS)
    whole = table[table["region"] == "whole_tumor"]
    paired = table[table["dice"].notna()]
    return dg.Output(
        table,
        metadata={
            "rows": len(table),
            "patients": int(table["patient_id"].nunique()),
            "skipped_patients": dg.MetadataValue.json(outcome.failures),
            "patients_reused": pool.reused,
            "patients_computed": pool.computed,
            "notes": dg.MetadataValue.json(notes[:50]),
            "whole_tumor_volume_ml": table_metadata(whole.groupby("roi_source")["volume_ml"].describe(), digits=2),
            "median_dice": float(paired["dice"].median()) if len(paired) else math.nan,
        },
    )
