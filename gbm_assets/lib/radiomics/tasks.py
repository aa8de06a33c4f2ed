"""From a cohort's tables to extraction work: ground truth in canonical labels, one `PatientTask` per
patient with an ROI, exclusion rows for ROIs that cannot be had, and the provenance row of a run.

Pure (no Dagster): rows in, rows out; the only files written are the canonical ground-truth masks.
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pandas as pd

from gbm_assets.lib.contract import SEQUENCES, to_canonical
from gbm_assets.lib.radiomics.extract import ANY, EXCLUSION_COLUMNS, PatientTask
from gbm_assets.lib.store.files import write_bytes_atomic
from gbm_assets.lib.store.keyed import content_key

PROVENANCE_COLUMNS = [
    "cohort", "dagster_run_id", "extracted_at", "pyradiomics_version", "numpy_version", "simpleitk_version",
    "python_version", "params_path", "params_sha256", "settings_json", "image_types_json", "feature_classes_json",
    "roi_sources", "workers", "patients", "feature_rows", "exclusions",
    "seconds_per_patient_mean", "seconds_per_patient_max", "wall_seconds",
]  # fmt: skip


def text(value) -> str | None:
    """`value` if it is a non-empty string, else None (NaN, None and "" in a table cell)."""
    return value if isinstance(value, str) and value else None


def images_of(row) -> dict[str, str]:
    """sequence -> path of a `raw_cohort` row's images that are present."""
    return {s: getattr(row, f"{s}_path") for s in SEQUENCES if text(getattr(row, f"{s}_path", None))}


def excluded(cohort: str, patient: str, roi_source: str, reason: str) -> dict:
    """An exclusion row (`EXCLUSION_COLUMNS`) for every region and sequence of one ROI."""
    return {"cohort": cohort, "patient_id": patient, "roi_source": roi_source, "region": ANY, "sequence": ANY, "reason": reason}


def canonical_labels(path: str, scheme: str) -> tuple[np.ndarray, nib.Nifti1Image]:
    """(canonical labels (X, Y, Z) uint8, the loaded image) of a mask file in label scheme `scheme`.

    A trailing singleton 4th axis is dropped. Raises: OSError / nibabel errors for an unreadable
    file; `contract.LabelError` for a value the scheme does not define (the path is named).
    """
    img = nib.load(path)
    data = np.asanyarray(img.dataobj)
    data = data[..., 0] if data.ndim == 4 and data.shape[3] == 1 else data
    return to_canonical(data, scheme, path), img


def write_canonical_truth(labels_path: str, scheme: str, out: Path) -> Path:
    """Write a ground-truth mask in canonical labels (uint8), atomically, with the source file's own
    header (qform and sform unchanged), so it overlays the images exactly as the source does.

    Raises:
        OSError / ValueError: the file is unreadable; LabelError: a value the scheme does not define.
    """
    labels, img = canonical_labels(labels_path, scheme)
    header = img.header.copy()
    header.set_data_dtype(np.uint8)
    header.set_slope_inter(1.0, 0.0)
    canonical = nib.Nifti1Image(labels.astype(np.uint8), None, header)
    # gzip mtime 0: the same labels give the same bytes, so the file's content key is stable across runs
    return write_bytes_atomic(out, gzip.compress(canonical.to_bytes(), compresslevel=6, mtime=0))


def radiomics_tasks(cohort: str, raw_cohort: pd.DataFrame, lesion_masks: pd.DataFrame, sources: Sequence[str],
                    params_path: str, rois_dir: Path) -> tuple[list[PatientTask], list[dict]]:  # fmt: skip
    """One task per patient with at least one ROI, and exclusion rows for ROIs that cannot be had.

    Args:
        raw_cohort: one row per patient (status, problems, <sequence>_path, labels_path, label_scheme).
        lesion_masks: one row per segmented patient (status, problems, mask_path, roi_scheme).
        sources: roi sources to extract ("ground_truth", "predicted").
        rois_dir: where canonical ground-truth masks are written (`<rois_dir>/<patient>/ground_truth.nii.gz`).

    Returns:
        (tasks in raw_cohort order, exclusion rows). Empty tables give ([], []).
    """
    masks = {r.patient_id: r for r in lesion_masks.itertuples()}
    tasks, exclusions = [], []
    for row in raw_cohort.itertuples():
        pid = row.patient_id
        if row.status != "ok":
            exclusions.append(excluded(cohort, pid, ANY, f"excluded in raw_cohort: {row.problems}"))
            continue
        rois, schemes = {}, {}
        if "ground_truth" in sources and text(row.labels_path):
            try:
                path = write_canonical_truth(row.labels_path, row.label_scheme, rois_dir / pid / "ground_truth.nii.gz")
                rois["ground_truth"], schemes["ground_truth"] = str(path), row.label_scheme
            except Exception as exc:  # noqa: BLE001 -- unreadable or unexpected labels: this ROI is excluded, not the cohort
                exclusions.append(excluded(cohort, pid, "ground_truth", f"ground truth unusable: {row.labels_path}: {exc}"))
        if "predicted" in sources:
            mask = masks.get(pid)
            if mask is None:
                exclusions.append(excluded(cohort, pid, "predicted", "not segmented: no lesion_masks row (see preprocessed_volumes)"))
            elif mask.status != "ok" or not text(mask.mask_path):
                exclusions.append(excluded(cohort, pid, "predicted", f"no predicted mask: {mask.problems}"))
            else:
                rois["predicted"], schemes["predicted"] = mask.mask_path, mask.roi_scheme
        if rois:
            tasks.append(PatientTask(cohort, pid, images_of(row), rois, params_path, roi_schemes=schemes))
    return tasks, exclusions


def provenance_row(cohort: str, run_id: str, provenance: Mapping, sources: Sequence[str], workers: int, patients: int,
                   feature_rows: int, exclusions: int, seconds: pd.Series, wall: float) -> pd.DataFrame:
    """One `PROVENANCE_COLUMNS` row of an extraction run.

    Args:
        provenance: `RadiomicsParams.provenance()` (versions, parameter file, settings).
        seconds: per-patient extraction seconds; empty gives NaN mean and max.
    """
    def as_json(value) -> str:
        return json.dumps(value, sort_keys=True, default=str)

    row = {
        "cohort": cohort, "dagster_run_id": run_id, "extracted_at": pd.Timestamp.now(tz="UTC"),
        **{k: provenance[k] for k in ("pyradiomics_version", "numpy_version", "simpleitk_version", "python_version",
                                      "params_path", "params_sha256")},
        "settings_json": as_json(provenance["settings"]), "image_types_json": as_json(provenance["image_types"]),
        "feature_classes_json": as_json(provenance["feature_classes"]),
        "roi_sources": ",".join(sources), "workers": workers, "patients": patients, "feature_rows": feature_rows,
        "exclusions": exclusions, "seconds_per_patient_mean": float(seconds.mean()) if len(seconds) else math.nan,
        "seconds_per_patient_max": float(seconds.max()) if len(seconds) else math.nan, "wall_seconds": wall,
    }  # fmt: skip
    return pd.DataFrame([row], columns=PROVENANCE_COLUMNS)


def merge_exclusions(skipped: list[dict], extracted: pd.DataFrame) -> pd.DataFrame:
    """`radiomics_tasks`' exclusion rows and `extract_cohort`'s, one `EXCLUSION_COLUMNS` table sorted
    by patient (stable: each patient's rows keep their order). Both empty: an empty table."""
    merged = pd.concat([pd.DataFrame(skipped, columns=list(EXCLUSION_COLUMNS)), extracted], ignore_index=True)
    return merged.sort_values("patient_id", kind="stable", ignore_index=True)


def radiomics_key(task: PatientTask, code_version: str) -> tuple[str, str]:
    """(patient id, content key) of an extraction: image, ROI and parameter files' bytes, ROI label
    schemes, regions and the code version (PyRadiomics' version included by the caller)."""
    files = {**task.images, **{f"roi:{source}": path for source, path in task.rois.items()}, "params": task.params}
    params = {"roi_schemes": dict(task.roi_schemes), "regions": task.regions, "code": code_version}
    return task.patient_id, content_key(files, params)


def burden_key(task, code_version: str) -> tuple[str, str]:
    """(patient id, content key) of a `BurdenTask`: image, label and mask files' bytes, schemes, code version."""
    row, mask = task.row, task.mask or {}
    files = {**images_of(SimpleNamespace(**row)), "labels": text(row.get("labels_path")), "mask": text(mask.get("mask_path"))}
    params = {"label_scheme": row.get("label_scheme"), "roi_scheme": mask.get("roi_scheme"), "code": code_version}
    return row["patient_id"], content_key(files, params)
