"""Lesion-wise Dice and HD95, as the BraTS evaluation scores glioma segmentations.

The official package (PyPI `brats-evaluation`, which runs `panoptica` with its bundled `gli` configuration) cannot be
installed beside the platform: panoptica pins numpy < 2.3 and rich < 14. So this module computes the same figures
with numpy and scipy, and `gbm_assets_tests/lib/segment/test_lesions.py` checks them against the official package,
installed in an environment of its own (`scripts/install_brats_eval.sh`). For one region of one volume:

1. lesions are the 26-connected components of the predicted mask and of the reference mask (cc3d's default);
2. reference and predicted lesions are matched one to one, maximising the summed Dice of the matched pairs over
   every pair that overlaps at all (panoptica's `MaxBipartiteMatching` on Dice, threshold 1e-6:
   `scipy.optimize.linear_sum_assignment`);
3. `lesionwise_dice` and `lesionwise_hd95_mm` are the means over the matched pairs (panoptica's segmentation quality,
   the `lesionwise_dsc_mean` / `lesionwise_hd95_mean` columns of the BraTS report), HD95 pooled over both directions
   as panoptica and MedPy compute it (`metrics.hd95_mm(pooled=True)`); `lesion_f1` is the detection F1,
   matched / (matched + (unmatched predicted + unmatched reference) / 2) (panoptica's recognition quality).

Empty cases follow `metrics`' policy, so no NaN or inf reaches a table: no lesion on either side gives Dice 1, HD95 0
and F1 1 (panoptica: NaN); lesions but no match gives Dice 0, F1 0 and HD95 the volume's diagonal (panoptica: inf,
which the BraTS report replaces with 373, the diagonal of its 240 x 240 x 155 1-mm grid).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

from gbm_assets.lib.segment.metrics import _check_pair, _diagonal_mm, hd95_mm, volume_metrics

__all__ = ["LESION_COLUMNS", "lesion_components", "lesion_wise", "volume_and_lesion_metrics"]

LESION_COLUMNS: tuple[str, ...] = (
    "lesions_reference", "lesions_predicted", "lesions_matched", "lesion_f1", "lesionwise_dice", "lesionwise_hd95_mm",
)
MATCH_THRESHOLD = 1e-6
"""The least Dice a pair needs to be matched (the BraTS configuration's): any overlap."""


def lesion_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """(labels 1..n of the 26-connected components of `mask`, n); 8-connected in 2D."""
    return ndimage.label(np.asarray(mask, bool), structure=np.ones((3,) * np.ndim(mask), bool))


def _pair_dice(pred_labels: np.ndarray, n_pred: int, ref_labels: np.ndarray, n_ref: int) -> np.ndarray:
    """(n_ref, n_pred) Dice of every reference lesion against every predicted lesion."""
    both = (pred_labels > 0) & (ref_labels > 0)
    overlap = np.bincount(ref_labels[both].astype(np.int64) * (n_pred + 1) + pred_labels[both],
                          minlength=(n_ref + 1) * (n_pred + 1)).reshape(n_ref + 1, n_pred + 1)[1:, 1:]  # fmt: skip
    ref_size = np.bincount(ref_labels.ravel(), minlength=n_ref + 1)[1:]
    pred_size = np.bincount(pred_labels.ravel(), minlength=n_pred + 1)[1:]
    return 2.0 * overlap / (ref_size[:, None] + pred_size[None, :])


def _matched_pairs(dice: np.ndarray) -> list[tuple[int, int]]:
    """(reference index, predicted index) pairs of the maximum-Dice one-to-one matching among overlapping pairs."""
    if dice.size == 0:
        return []
    cost = np.where(dice >= MATCH_THRESHOLD, 1.0 - dice, 1.0 + 1e-6)
    rows, cols = linear_sum_assignment(cost)
    return [(int(r), int(c)) for r, c in zip(rows, cols) if cost[r, c] < 1.0]


def lesion_wise(pred: np.ndarray, truth: np.ndarray, spacing: Sequence[float]) -> dict[str, float | int]:
    """The lesion-wise figures (`LESION_COLUMNS`) of one region's predicted mask against its reference.

    Args:
        pred: predicted mask, bool, (X, Y, Z).
        truth: reference mask, same shape.
        spacing: voxel size in mm per axis.

    Returns:
        lesions_reference, lesions_predicted, lesions_matched (ints), lesion_f1, lesionwise_dice and
        lesionwise_hd95_mm (floats; empty cases as the module docstring).
    """
    pred, truth = _check_pair(pred, truth)
    pred_labels, n_pred = lesion_components(pred)
    ref_labels, n_ref = lesion_components(truth)
    counts = {"lesions_reference": int(n_ref), "lesions_predicted": int(n_pred)}
    if n_pred == 0 and n_ref == 0:
        return {**counts, "lesions_matched": 0, "lesion_f1": 1.0, "lesionwise_dice": 1.0, "lesionwise_hd95_mm": 0.0}
    dice = _pair_dice(pred_labels, n_pred, ref_labels, n_ref)
    pairs = _matched_pairs(dice)
    matched = len(pairs)
    f1 = matched / (matched + 0.5 * (n_pred - matched + n_ref - matched))
    if not pairs:
        return {**counts, "lesions_matched": 0, "lesion_f1": 0.0, "lesionwise_dice": 0.0,
                "lesionwise_hd95_mm": _diagonal_mm(pred.shape, spacing)}  # fmt: skip
    hd95 = [hd95_mm(pred_labels == c + 1, ref_labels == r + 1, spacing, pooled=True) for r, c in pairs]
    return {**counts, "lesions_matched": matched, "lesion_f1": float(f1),
            "lesionwise_dice": float(np.mean([dice[r, c] for r, c in pairs])), "lesionwise_hd95_mm": float(np.mean(hd95))}  # fmt: skip


def volume_and_lesion_metrics(pred: np.ndarray, truth: np.ndarray, spacing: Sequence[float]) -> dict:
    """`metrics.volume_metrics` and `lesion_wise` of one region of one volume, in one dict (a per-patient row's)."""
    return {**volume_metrics(pred, truth, spacing), **lesion_wise(pred, truth, spacing)}
