"""Segmentation metrics in pure numpy/scipy: pixel counts, the study's table, volume Dice and HD95.

Pixel metrics (the study's tables) come from confusion counts pooled over whatever the caller
sums: one slice, one volume, or a whole split. Volume metrics (`dice_3d`, `hd95_mm`) follow an
explicit empty-mask policy, so no NaN or inf ever reaches a table:

    =====================  =======  ==========================================
    case                   Dice     HD95 (mm)
    =====================  =======  ==========================================
    both masks empty       1.0      0.0
    exactly one empty      0.0      the volume's diagonal, sqrt(sum((shape * spacing)**2))
    both non-empty         usual    usual
    =====================  =======  ==========================================

`volume_metrics` also returns `pred_empty` / `truth_empty` flags so callers can count those cases.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

__all__ = [
    "METRIC_NAMES",
    "PIXEL_METRIC_NAMES",
    "confusion_counts",
    "dice_3d",
    "hd95_mm",
    "pixel_metrics",
    "volume_metrics",
]

PIXEL_METRIC_NAMES: tuple[str, ...] = (
    "accuracy", "balanced_accuracy", "precision", "sensitivity", "specificity", "f1", "iou"
)
METRIC_NAMES: tuple[str, ...] = PIXEL_METRIC_NAMES + ("dice_3d", "hd95_mm")


def _check_pair(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, truth = np.asarray(pred, dtype=bool), np.asarray(truth, dtype=bool)
    if pred.shape != truth.shape:
        raise ValueError(f"pred and truth shapes differ: {pred.shape} vs {truth.shape}")
    return pred, truth


def confusion_counts(pred: np.ndarray, truth: np.ndarray) -> tuple[int, int, int, int]:
    """Pixel (voxel) confusion counts of two binary masks of any equal shape.

    Args:
        pred: predicted mask, bool (or anything `astype(bool)` reads as a mask).
        truth: reference mask, same shape.

    Returns:
        (tp, fp, fn, tn) as Python ints (no overflow when summed over a cohort).
    """
    pred, truth = _check_pair(pred, truth)
    tp = int(np.count_nonzero(pred & truth))
    fp = int(np.count_nonzero(pred)) - tp
    fn = int(np.count_nonzero(truth)) - tp
    return tp, fp, fn, int(pred.size) - tp - fp - fn


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den else 0.0


def pixel_metrics(tp: int, fp: int, fn: int, tn: int) -> dict[str, float]:
    """The study's seven pixel metrics from confusion counts.

    Zero division follows scikit-learn with `zero_division=0`: a ratio whose denominator is 0
    is 0.0 (precision with no predicted positives, sensitivity with no true positives,
    specificity with no true negatives, F1 and IoU when tp + fp + fn == 0, accuracy of nothing).
    Exception, also as scikit-learn's `balanced_accuracy_score`: balanced accuracy is the mean
    recall over the classes *present in the truth*, so with no true positives it equals the
    specificity (and the sensitivity when there are no true negatives), not half of it.

    Returns:
        dict with keys `PIXEL_METRIC_NAMES`:
        accuracy = (tp + tn) / total; precision = tp / (tp + fp);
        sensitivity = tp / (tp + fn); specificity = tn / (tn + fp);
        balanced_accuracy = (sensitivity + specificity) / 2 (see above);
        f1 = 2 tp / (2 tp + fp + fn) (= pooled Dice); iou = tp / (tp + fp + fn).
    """
    sensitivity, specificity = _ratio(tp, tp + fn), _ratio(tn, tn + fp)
    present = [r for r, n in ((sensitivity, tp + fn), (specificity, tn + fp)) if n]
    return {
        "accuracy": _ratio(tp + tn, tp + fp + fn + tn),
        "balanced_accuracy": float(np.mean(present)) if present else 0.0,
        "precision": _ratio(tp, tp + fp),
        "sensitivity": sensitivity,
        "specificity": specificity,
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "iou": _ratio(tp, tp + fp + fn),
    }


def dice_3d(pred: np.ndarray, truth: np.ndarray) -> float:
    """Dice 2|P & T| / (|P| + |T|) of two masks of any equal shape (usually one volume).

    Empty policy: both empty -> 1.0; exactly one empty -> 0.0 (what the formula gives).
    """
    pred, truth = _check_pair(pred, truth)
    tp, fp, fn, _ = confusion_counts(pred, truth)
    return 1.0 if tp + fp + fn == 0 else 2.0 * tp / (2 * tp + fp + fn)


def _diagonal_mm(shape: Sequence[int], spacing: Sequence[float]) -> float:
    return float(np.sqrt(np.sum((np.asarray(shape, float) * np.asarray(spacing, float)) ** 2)))


def _surface(mask: np.ndarray) -> np.ndarray:
    """Voxels of `mask` with at least one face neighbour outside it (the volume edge counts as outside)."""
    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask & ~ndimage.binary_erosion(mask, structure=structure, border_value=0)


def hd95_mm(pred: np.ndarray, truth: np.ndarray, spacing: Sequence[float], *, pooled: bool = False) -> float:
    """95th-percentile symmetric Hausdorff distance between the masks' surfaces, in mm.

    Surfaces are the mask voxels with a face neighbour outside the mask. For every surface
    voxel of one mask, the distance to the nearest surface voxel of the other is read from a
    Euclidean distance transform with `sampling=spacing` (anisotropic voxels handled exactly);
    HD95 = max(P95(pred -> truth), P95(truth -> pred)), as MONAI's `compute_hausdorff_distance`;
    `pooled`: P95 of both directions' distances together, as MedPy's `hd95` and the BraTS
    evaluation (panoptica) compute it (`lesions.lesion_wise`). Distances run between
    voxel centres, so two identical masks give 0.0. The volume is cropped to the union's
    bounding box first, which leaves every distance unchanged.

    Args:
        pred: predicted mask, bool, shape (X, Y, Z) (any ndim works).
        truth: reference mask, same shape.
        spacing: voxel size in mm per axis, length ndim.
        pooled: one percentile over both directions instead of the larger of two.

    Returns:
        HD95 in mm; empty policy as the module docstring (0.0 both empty, diagonal one empty).
    """
    pred, truth = _check_pair(pred, truth)
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != pred.ndim:
        raise ValueError(f"spacing {spacing} has {len(spacing)} entries for a {pred.ndim}-D mask")
    has_pred, has_truth = bool(pred.any()), bool(truth.any())
    if not has_pred and not has_truth:
        return 0.0
    if has_pred != has_truth:
        return _diagonal_mm(pred.shape, spacing)
    union_box = ndimage.find_objects((pred | truth).astype(np.uint8))[0]
    crop = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in union_box)
    surf_p, surf_t = _surface(pred[crop]), _surface(truth[crop])
    to_truth = ndimage.distance_transform_edt(~surf_t, sampling=spacing)[surf_p]
    to_pred = ndimage.distance_transform_edt(~surf_p, sampling=spacing)[surf_t]
    if pooled:
        return float(np.percentile(np.concatenate([to_truth, to_pred]), 95))
    return float(max(np.percentile(to_truth, 95), np.percentile(to_pred, 95)))


def volume_metrics(pred: np.ndarray, truth: np.ndarray, spacing: Sequence[float]) -> dict[str, float | bool]:
    """Dice, HD95 and emptiness flags for one volume.

    Args:
        pred: predicted mask, bool, (X, Y, Z).
        truth: reference mask, same shape.
        spacing: voxel size in mm per axis.

    Returns:
        {"dice_3d": float, "hd95_mm": float, "pred_empty": bool, "truth_empty": bool}, with the
        module's empty policy: both empty -> 1.0 / 0.0; one empty -> 0.0 / volume diagonal (mm).
    """
    pred, truth = _check_pair(pred, truth)
    return {
        "dice_3d": dice_3d(pred, truth),
        "hd95_mm": hd95_mm(pred, truth, spacing),
        "pred_empty": not bool(pred.any()),
        "truth_empty": not bool(truth.any()),
    }
