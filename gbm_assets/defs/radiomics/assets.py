"""Radiomics assets: PyRadiomics features and tumour burden of ground-truth and predicted ROIs, per cohort.

Everything is measured on each patient's native images, where the cohort's labels and the
predicted masks of `lesion_masks` overlay voxel for voxel. A problem with one patient, ROI, region
or sequence is an exclusion row (features) or a skipped patient (burden); the others proceed.
"""

import json
import math
import os
import time
from pathlib import Path

import dagster as dg
import nibabel as nib
import numpy as np
import pandas as pd
import SimpleITK as sitk

from gbm_assets.defs.partitions import cohorts_partitions
from gbm_assets.defs.radiomics.config import RadiomicsSettings, check_roi_sources, worker_count
from gbm_assets.defs.resources import DataRootResource
from gbm_assets.lib.classify.features import wide_features
from gbm_assets.lib.contract import SEQUENCES, label_scheme, to_canonical
from gbm_assets.lib.radiomics import (
    EXCLUSION_COLUMNS,
    ParameterFileError,
    PatientTask,
    agreement,
    brain_midline_x,
    extract_cohort,
    load_params,
    region_burden,
)
from gbm_assets.lib.radiomics.burden import BURDEN_COLUMNS
from gbm_assets.lib.radiomics.checks import read_volume
from gbm_assets.defs.automation.sensors import EAGER

ANY = "any"
PROVENANCE_COLUMNS = [
    "cohort", "dagster_run_id", "extracted_at", "pyradiomics_version", "numpy_version", "simpleitk_version",
    "python_version", "params_path", "params_sha256", "settings_json", "image_types_json", "feature_classes_json",
    "roi_sources", "workers", "patients", "feature_rows", "exclusions",
    "seconds_per_patient_mean", "seconds_per_patient_max", "wall_seconds",
]  # fmt: skip
TUMOR_BURDEN_COLUMNS = [
    "cohort", "patient_id", "roi_source", *BURDEN_COLUMNS, "midline_x_mm", "mask_path",
    "truth_volume_ml", "volume_diff_ml", "dice",
]  # fmt: skip


def _text(value) -> str | None:
    return value if isinstance(value, str) and value else None


def _images(row) -> dict[str, str]:
    return {s: getattr(row, f"{s}_path") for s in SEQUENCES if _text(getattr(row, f"{s}_path"))}


def _markdown(df: pd.DataFrame, index: bool = True) -> dg.MetadataValue:
    return dg.MetadataValue.md(df.to_markdown(index=index) if len(df) else "none")


def _excluded(cohort: str, patient: str, roi_source: str, reason: str) -> dict:
    return {"cohort": cohort, "patient_id": patient, "roi_source": roi_source, "region": ANY, "sequence": ANY, "reason": reason}


def write_canonical_truth(labels_path: str, scheme: str, out: Path) -> Path:
    """Write a ground-truth mask in canonical labels (uint8) with its own geometry, atomically.

    Raises:
        ValueError: the file is unreadable; LabelError: a value the scheme does not define.
    """
    image, error = read_volume(labels_path)
    if error:
        raise ValueError(error)
    canonical = sitk.GetImageFromArray(to_canonical(sitk.GetArrayViewFromImage(image), scheme, labels_path))
    canonical.CopyInformation(image)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".tmp-{os.getpid()}-{out.name}")
    try:
        sitk.WriteImage(canonical, str(tmp), True)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def radiomics_tasks(cohort: str, raw_cohort: pd.DataFrame, lesion_masks: pd.DataFrame, sources: list[str],
                    params_path: str, rois_dir: Path) -> tuple[list[PatientTask], list[dict]]:  # fmt: skip
    """One task per patient with at least one ROI, and exclusion rows for ROIs that cannot be had."""
    masks = {r.patient_id: r for r in lesion_masks.itertuples()}
    tasks, exclusions = [], []
    for row in raw_cohort.itertuples():
        pid = row.patient_id
        if row.status != "ok":
            exclusions.append(_excluded(cohort, pid, ANY, f"excluded in raw_cohort: {row.problems}"))
            continue
        rois, schemes = {}, {}
        if "ground_truth" in sources and _text(row.labels_path):
            try:
                path = write_canonical_truth(row.labels_path, row.label_scheme, rois_dir / pid / "ground_truth.nii.gz")
                rois["ground_truth"], schemes["ground_truth"] = str(path), row.label_scheme
            except Exception as exc:  # unreadable or unexpected labels: this ROI is excluded, not the cohort
                exclusions.append(_excluded(cohort, pid, "ground_truth", f"ground truth unusable: {exc}"))
        if "predicted" in sources:
            mask = masks.get(pid)
            if mask is None:
                exclusions.append(_excluded(cohort, pid, "predicted", "not segmented: no lesion_masks row (see preprocessed_volumes)"))
            elif mask.status != "ok" or not _text(mask.mask_path):
                exclusions.append(_excluded(cohort, pid, "predicted", f"no predicted mask: {mask.problems}"))
            else:
                rois["predicted"], schemes["predicted"] = mask.mask_path, mask.roi_scheme
        if rois:
            tasks.append(PatientTask(cohort, pid, _images(row), rois, params_path, roi_schemes=schemes))
    return tasks, exclusions


def _provenance(context, params, cohort: str, sources, workers: int, tasks, features, exclusions, timings, wall: float) -> pd.DataFrame:
    prov = params.provenance()
    seconds = timings["seconds"]
    row = {
        "cohort": cohort, "dagster_run_id": context.run.run_id, "extracted_at": pd.Timestamp.now(tz="UTC"),
        **{k: prov[k] for k in ("pyradiomics_version", "numpy_version", "simpleitk_version", "python_version",
                                "params_path", "params_sha256")},
        "settings_json": json.dumps(prov["settings"], sort_keys=True, default=str),
        "image_types_json": json.dumps(prov["image_types"], sort_keys=True, default=str),
        "feature_classes_json": json.dumps(prov["feature_classes"], sort_keys=True, default=str),
        "roi_sources": ",".join(sources), "workers": workers, "patients": len(tasks), "feature_rows": len(features),
        "exclusions": len(exclusions), "seconds_per_patient_mean": float(seconds.mean()) if len(seconds) else math.nan,
        "seconds_per_patient_max": float(seconds.max()) if len(seconds) else math.nan, "wall_seconds": wall,
    }  # fmt: skip
    return pd.DataFrame([row], columns=PROVENANCE_COLUMNS)


@dg.multi_asset(
    partitions_def=cohorts_partitions,
    group_name="radiomics",
    outs={
        "radiomic_features": dg.AssetOut(
            io_manager_key="table_io_manager", kinds={"pyradiomics", "parquet"},
            description="Long PyRadiomics features: cohort, patient_id, sequence ('any' for shape), roi_source, region, "
            "feature_class, feature, value.",
        ),
        "radiomic_features_wide": dg.AssetOut(
            io_manager_key="table_io_manager", kinds={"parquet"},
            description="One row per cohort, patient and roi_source; one column per "
            "<sequence>__<region>__<class>_<feature>, for modelling.",
        ),
        "radiomics_exclusions": dg.AssetOut(
            io_manager_key="table_io_manager", kinds={"parquet"},
            description="Why an ROI, region or sequence has no features ('any' = all of them): cohort, patient_id, "
            "roi_source, region, sequence, reason.",
        ),
        "radiomics_provenance": dg.AssetOut(
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
):
    """PyRadiomics on the native images, per patient x ROI source x region x sequence, on our process pool."""
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
    workers = worker_count(config.workers, len(tasks))
    context.log.info(f"cohort {cohort}: {len(tasks)} patients on {workers} worker(s), parameters {params.path} "
                     f"(sha256 {params.sha256[:12]})")
    start = time.perf_counter()
    try:
        features, exclusions, timings = extract_cohort(tasks, workers=workers)
    except ValueError as exc:  # duplicate patient ids
        raise dg.Failure(description=f"cohort {cohort!r}: {exc}") from exc
    wall = time.perf_counter() - start
    exclusions = pd.concat([pd.DataFrame(skipped, columns=list(EXCLUSION_COLUMNS)), exclusions], ignore_index=True)
    exclusions = exclusions.sort_values("patient_id", kind="stable", ignore_index=True)
    for row in exclusions.itertuples():
        where = f"{row.roi_source}/{row.region}/{row.sequence}"
        context.log.info(f"cohort {cohort}, patient {row.patient_id}, {where}: excluded: {row.reason}")
    wide = wide_features(features)
    provenance = _provenance(context, params, cohort, sources, workers, tasks, features, exclusions, timings, wall)
    seconds = timings["seconds"]
    yield dg.Output(
        features,
        output_name="radiomic_features",
        metadata={
            "rows": len(features),
            "patients": int(features["patient_id"].nunique()),
            "exclusions": len(exclusions),
            "exclusions_head": _markdown(exclusions.head(20), index=False),
            "rows_by_source_region": _markdown(features.groupby(["roi_source", "region"]).size().rename("rows").to_frame()),
            "seconds_per_patient_mean": round(float(seconds.mean()), 3),
            "seconds_per_patient_max": round(float(seconds.max()), 3),
            "workers": workers,
            "params_sha256": params.sha256,
        },
    )
    yield dg.Output(wide, output_name="radiomic_features_wide", metadata={"rows": len(wide), "feature_columns": wide.shape[1] - 3})
    yield dg.Output(exclusions, output_name="radiomics_exclusions", metadata={"rows": len(exclusions)})
    yield dg.Output(provenance, output_name="radiomics_provenance",
                    metadata={"params_sha256": params.sha256, "pyradiomics_version": provenance["pyradiomics_version"].iloc[0]})


def _labels(path: str, scheme: str) -> tuple[np.ndarray, np.ndarray]:
    """(canonical labels (X, Y, Z), affine) of a mask file."""
    img = nib.load(path)
    data = np.asanyarray(img.dataobj)
    data = data[..., 0] if data.ndim == 4 and data.shape[3] == 1 else data
    return to_canonical(data, scheme, path), img.affine


def patient_burden(cohort: str, row, mask) -> tuple[list[dict], list[str]]:
    """Burden rows of one patient (ground truth if labelled, predicted if `mask` is a lesion_masks row) and notes.

    The mid-sagittal plane is the centroid of the brain (non-zero voxels of the first sequence), so
    hemisphere is right for files whose affine puts the origin at a corner.
    """
    images = _images(row)
    reference = nib.load(next(iter(images.values())))
    midline = brain_midline_x(np.asanyarray(reference.dataobj) != 0, reference.affine)
    base = {"cohort": cohort, "patient_id": row.patient_id, "midline_x_mm": midline}
    rows, notes, truth, truth_affine = [], [], None, None
    if _text(row.labels_path):
        truth, truth_affine = _labels(row.labels_path, row.label_scheme)
        kept = label_scheme(row.label_scheme).regions
        for r in region_burden(truth, truth_affine, midline_x_mm=midline):
            if r["region"] in kept:
                rows.append(base | {"roi_source": "ground_truth", "mask_path": row.labels_path} | r)
    if mask is not None:
        pred, affine = _labels(mask.mask_path, mask.roi_scheme)
        same_grid = truth is not None and truth.shape == pred.shape and np.allclose(truth_affine, affine, atol=1e-3)
        if truth is not None and not same_grid:
            notes.append(f"predicted mask {mask.mask_path} is not on the ground truth's grid; no agreement computed")
        agree = agreement(pred, truth, affine) if same_grid else {}
        kept = label_scheme(mask.roi_scheme).regions
        for r in region_burden(pred, affine, midline_x_mm=midline):
            if r["region"] in kept:
                a = agree.get(r["region"], {})
                paired = {"truth_volume_ml": a.get("truth_ml", math.nan), "volume_diff_ml": a.get("volume_diff_ml", math.nan),
                          "dice": a.get("dice", math.nan)}  # fmt: skip
                rows.append(base | {"roi_source": "predicted", "mask_path": mask.mask_path} | r | paired)
    return rows, notes


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
    context: dg.AssetExecutionContext, raw_cohort: pd.DataFrame, lesion_masks: pd.DataFrame
) -> dg.Output[pd.DataFrame]:
    cohort = context.partition_key
    masks = {r.patient_id: r for r in lesion_masks.itertuples() if r.status == "ok" and _text(r.mask_path)}
    rows, skipped, notes = [], [], []
    for row in raw_cohort[raw_cohort["status"] == "ok"].itertuples():
        try:
            patient_rows, patient_notes = patient_burden(cohort, row, masks.get(row.patient_id))
        except Exception as exc:  # one patient's failure is recorded; the others proceed
            reason = f"{type(exc).__name__}: {exc}"
            context.log.error(f"cohort {cohort}, patient {row.patient_id}: tumour burden failed: {reason}")
            skipped.append({"patient_id": row.patient_id, "reason": reason})
            continue
        rows.extend(patient_rows)
        notes.extend(f"{row.patient_id}: {n}" for n in patient_notes)
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
            "skipped_patients": dg.MetadataValue.json(skipped),
            "notes": dg.MetadataValue.json(notes[:50]),
            "whole_tumor_volume_ml": _markdown(whole.groupby("roi_source")["volume_ml"].describe().round(2)),
            "median_dice": float(paired["dice"].median()) if len(paired) else math.nan,
        },
    )
