"""Validate a cohort's patients file by file; one row per patient, problems recorded, never raised.

A patient passes when every required sequence is present and readable, all volumes share one
shape and (within tolerance) one affine, every voxel is finite, and the mask (when present) holds
only values its label scheme defines. A patient that fails is `excluded` with its reasons; the
other patients are unaffected. An empty mask is recorded (`labels_empty`), not a failure.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from gbm_assets.lib.contract import SEQUENCES, LabelError, label_counts, to_canonical
from gbm_assets.lib.layouts import CohortScan, PatientFiles, reader_for

ROTATION_ATOL = 1e-3
"""Tolerance on the affine's 3x3 part (direction x spacing), in mm per voxel."""
TRANSLATION_ATOL_MM = 1e-2
"""Tolerance on the affine's origin, in mm."""

RAW_COHORT_COLUMNS = [
    "cohort", "patient_id", "layout", "status", "problems",
    *(f"{s}_path" for s in SEQUENCES), "labels_path", "label_scheme",
    "shape_x", "shape_y", "shape_z", "spacing_x_mm", "spacing_y_mm", "spacing_z_mm",
    "orientation", "dtype", "has_labels", "labels_empty",
    "voxels_necrotic_core", "voxels_edema", "voxels_enhancing",
]  # fmt: skip


def _load(path: Path) -> tuple[nib.Nifti1Image, np.ndarray]:
    """Read a NIfTI volume fully (so truncation is noticed); 4D with one volume is squeezed."""
    img = nib.load(str(path))
    data = np.asanyarray(img.dataobj)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise ValueError(f"expected a 3D volume, got shape {data.shape}")
    return img, data


def _same_grid(affine: np.ndarray, reference: np.ndarray) -> bool:
    return np.allclose(affine[:3, :3], reference[:3, :3], atol=ROTATION_ATOL) and np.allclose(
        affine[:3, 3], reference[:3, 3], atol=TRANSLATION_ATOL_MM
    )


def validate_patient(cohort: str, files: PatientFiles, layout: str) -> dict:
    """Check one patient's files and describe them as a `raw_cohort` row (see RAW_COHORT_COLUMNS)."""
    problems = list(files.problems)
    row: dict = {"cohort": cohort, "patient_id": files.patient_id, "layout": layout}
    row.update({f"{s}_path": str(files.images[s]) if s in files.images else None for s in SEQUENCES})
    row.update(labels_path=str(files.labels) if files.labels else None, label_scheme=files.label_scheme)
    reference: nib.Nifti1Image | None = None
    dtypes = []
    for seq in SEQUENCES:
        path = files.images.get(seq)
        if path is None:
            continue
        try:
            img, data = _load(path)
        except Exception as exc:  # nibabel raises many types for truncated/corrupt files
            problems.append(f"{seq}: unreadable file {path.name} ({type(exc).__name__}: {exc})")
            continue
        dtypes.append(f"{seq}:{img.get_data_dtype()}")
        if not np.issubdtype(data.dtype, np.integer):
            bad = int(np.count_nonzero(~np.isfinite(data)))
            if bad:
                problems.append(f"{seq}: {bad} NaN or infinite voxels in {path.name}")
        if reference is None:
            reference = img
            row.update(zip(("shape_x", "shape_y", "shape_z"), map(int, data.shape)))
            row.update(zip(("spacing_x_mm", "spacing_y_mm", "spacing_z_mm"), map(float, img.header.get_zooms()[:3])))
            row["orientation"] = "".join(nib.aff2axcodes(img.affine))
        elif data.shape != reference.shape[:3]:
            problems.append(f"{seq}: shape {data.shape} of {path.name} differs from {reference.shape[:3]}")
        elif not _same_grid(img.affine, reference.affine):
            problems.append(f"{seq}: affine of {path.name} differs from the other sequences")
    row["dtype"] = ",".join(dtypes)
    row["has_labels"] = files.labels is not None
    row["labels_empty"] = False
    if files.labels is not None:
        problems += _check_labels(files, reference, row)
    row["problems"] = "; ".join(problems)
    row["status"] = "excluded" if problems else "ok"
    return row


def _check_labels(files: PatientFiles, reference: nib.Nifti1Image | None, row: dict) -> list[str]:
    path = files.labels
    try:
        img, data = _load(path)
    except Exception as exc:
        return [f"labels: unreadable file {path.name} ({type(exc).__name__}: {exc})"]
    if reference is not None and data.shape != reference.shape[:3]:
        return [f"labels: shape {data.shape} of {path.name} differs from the images' {reference.shape[:3]}"]
    if reference is not None and not _same_grid(img.affine, reference.affine):
        return [f"labels: affine of {path.name} differs from the images'"]
    try:
        canonical = to_canonical(data, files.label_scheme, source=str(path))
    except LabelError as exc:
        return [f"labels: {exc}"]
    counts = label_counts(canonical)
    row.update(voxels_necrotic_core=counts[1], voxels_edema=counts[2], voxels_enhancing=counts[3])
    row["labels_empty"] = counts[1] + counts[2] + counts[3] == 0
    return []


def validate_scan(cohort: str, scan: CohortScan) -> pd.DataFrame:
    """Validate every patient of a scan; duplicate patient ids exclude every copy."""
    duplicates = {pid for pid, n in Counter(p.patient_id for p in scan.patients).items() if n > 1}
    rows = []
    for files in scan.patients:
        row = validate_patient(cohort, files, scan.layout)
        if files.patient_id in duplicates:
            row["problems"] = "; ".join(filter(None, [f"duplicate patient id {files.patient_id!r}", row["problems"]]))
            row["status"] = "excluded"
        rows.append(row)
    return pd.DataFrame(rows, columns=RAW_COHORT_COLUMNS).astype(
        {c: "Int64" for c in RAW_COHORT_COLUMNS if c.startswith(("shape_", "voxels_"))}
    )


def validate_cohort(cohort: str, cohort_dir: Path) -> pd.DataFrame:
    """Scan `cohort_dir` with the layout that recognises it and validate every patient.

    Raises:
        LayoutError: the folder is missing, empty, or matches no layout (the whole cohort
            cannot be read; the message names the folder).
    """
    return validate_scan(cohort, reader_for(cohort_dir).scan(cohort_dir))


def problems_markdown(table: pd.DataFrame, limit: int = 50) -> str:
    """A markdown table of excluded patients and their problems (for asset metadata)."""
    bad = table[table["status"] != "ok"]
    if bad.empty:
        return "No problems: every patient passed validation."
    lines = ["| patient | problems |", "|---|---|"]
    lines += [f"| {r.patient_id} | {str(r.problems).replace('|', '/')} |" for r in bad.head(limit).itertuples()]
    if len(bad) > limit:
        lines.append(f"| ... | {len(bad) - limit} more excluded patients |")
    return "\n".join(lines)
