"""Tumour-burden rows of one patient: ground truth (if labelled) and the predicted mask (if any), with
predicted-vs-truth agreement where both lie on the same grid. Pure (no Dagster)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import SimpleNamespace

import nibabel as nib
import numpy as np

from gbm_assets.lib.contract import label_scheme
from gbm_assets.lib.radiomics.burden import (
    BURDEN_COLUMNS,
    agreement,
    brain_midline_x,
    region_burden,
)
from gbm_assets.lib.radiomics.tasks import canonical_labels, images_of, text

TUMOR_BURDEN_COLUMNS = [
    "cohort", "patient_id", "roi_source", *BURDEN_COLUMNS, "midline_x_mm", "mask_path",
    "truth_volume_ml", "volume_diff_ml", "dice",
]  # fmt: skip
GRID_TOLERANCE_MM = 1e-3
"""Largest affine difference for a predicted mask to count as on the ground truth's grid."""


def patient_burden(cohort: str, row, mask=None) -> tuple[list[dict], list[str]]:
    """Burden rows (`TUMOR_BURDEN_COLUMNS` keys) of one patient, and notes for the log.

    Args:
        row: a `raw_cohort` row (patient_id, <sequence>_path, labels_path, label_scheme).
        mask: a `lesion_masks` row (mask_path, roi_scheme) or None (not segmented).

    Ground truth rows only when the patient is labelled; predicted rows carry truth_volume_ml,
    volume_diff_ml and dice when the ground truth is on the same grid (NaN otherwise, with a note).
    Regions the mask's label scheme cannot represent are left out. The mid-sagittal plane is the
    centroid of the brain (non-zero voxels of the first sequence), so hemisphere is right for files
    whose affine puts the origin at a corner.

    Raises:
        StopIteration: the row has no image; OSError / LabelError: an unreadable or mislabelled file.
    """
    reference = nib.load(next(iter(images_of(row).values())))
    midline = brain_midline_x(np.asanyarray(reference.dataobj) != 0, reference.affine)
    base = {"cohort": cohort, "patient_id": row.patient_id, "midline_x_mm": midline}
    rows, notes, truth, truth_affine = [], [], None, None
    if text(row.labels_path):
        truth, img = canonical_labels(row.labels_path, row.label_scheme)
        truth_affine = img.affine
        kept = label_scheme(row.label_scheme).regions
        for r in region_burden(truth, truth_affine, midline_x_mm=midline):
            if r["region"] in kept:
                rows.append(base | {"roi_source": "ground_truth", "mask_path": row.labels_path} | r)
    if mask is not None:
        pred, img = canonical_labels(mask.mask_path, mask.roi_scheme)
        affine = img.affine
        same_grid = truth is not None and truth.shape == pred.shape and np.allclose(truth_affine, affine, atol=GRID_TOLERANCE_MM)
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



@dataclass(frozen=True)
class BurdenTask:
    """One patient's burden work, picklable for a worker: a `raw_cohort` row and its `lesion_masks`
    row (None: not segmented), as dicts."""

    cohort: str
    row: dict
    mask: dict | None = None


def burden_of(task: BurdenTask) -> tuple[str, list[dict], list[str]]:
    """(patient_id, rows, notes) of `patient_burden` for one `BurdenTask` (the per-patient map step)."""
    mask = None if task.mask is None else SimpleNamespace(**task.mask)
    row = SimpleNamespace(**task.row)
    return (row.patient_id, *patient_burden(task.cohort, row, mask))
