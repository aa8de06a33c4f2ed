"""Metrics against scikit-learn, the empty-mask policy, and HD95 on shapes computable by hand."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from sklearn import metrics as skm

from gbm_assets.lib.segment.metrics import (
    METRIC_NAMES,
    PIXEL_METRIC_NAMES,
    confusion_counts,
    dice_3d,
    hd95_mm,
    pixel_metrics,
    volume_metrics,
)


def _sklearn_metrics(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    p, t = pred.ravel(), truth.ravel()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns on single-class inputs
        return {
            "accuracy": skm.accuracy_score(t, p),
            "balanced_accuracy": skm.balanced_accuracy_score(t, p),
            "precision": skm.precision_score(t, p, zero_division=0),
            "sensitivity": skm.recall_score(t, p, zero_division=0),
            "specificity": skm.recall_score(t, p, pos_label=0, zero_division=0),
            "f1": skm.f1_score(t, p, zero_division=0),
            "iou": skm.jaccard_score(t, p, zero_division=0),
        }


def test_metric_names():
    assert METRIC_NAMES == (
        "accuracy", "balanced_accuracy", "precision", "sensitivity", "specificity", "f1", "iou", "dice_3d", "hd95_mm",
    )
    assert set(pixel_metrics(1, 1, 1, 1)) == set(PIXEL_METRIC_NAMES)


@pytest.mark.parametrize("seed, p_truth, p_pred", [(0, 0.3, 0.3), (1, 0.05, 0.2), (2, 0.5, 0.01), (3, 0.9, 0.8)])
def test_pixel_metrics_match_sklearn_on_random_masks(seed: int, p_truth: float, p_pred: float):
    rng = np.random.default_rng(seed)
    truth = rng.random((7, 24, 24)) < p_truth
    pred = np.where(rng.random(truth.shape) < 0.7, truth, rng.random(truth.shape) < p_pred)
    tp, fp, fn, tn = confusion_counts(pred, truth)
    assert (tp, fp, fn, tn) == tuple(int(v) for v in skm.confusion_matrix(truth.ravel(), pred.ravel()).ravel()[[3, 1, 2, 0]])
    ours, ref = pixel_metrics(tp, fp, fn, tn), _sklearn_metrics(pred, truth)
    assert ours == pytest.approx(ref, abs=1e-12)
    assert ours["f1"] == pytest.approx(dice_3d(pred, truth))


@pytest.mark.parametrize(
    "pred, truth",
    [
        ([0, 0, 0, 0], [0, 0, 0, 0]),  # nothing anywhere
        ([1, 0, 0, 0], [0, 0, 0, 0]),  # no true positives: balanced accuracy = specificity
        ([0, 0, 0, 0], [1, 1, 0, 0]),  # nothing predicted
        ([1, 1, 1, 1], [1, 1, 1, 1]),  # no true negatives: balanced accuracy = sensitivity
        ([1, 0, 1, 1], [1, 1, 1, 1]),
    ],
)
def test_zero_division_follows_sklearn(pred, truth):
    pred, truth = np.array(pred, bool), np.array(truth, bool)
    assert pixel_metrics(*confusion_counts(pred, truth)) == pytest.approx(_sklearn_metrics(pred, truth))


def test_no_counts_at_all_gives_zeros():
    assert pixel_metrics(0, 0, 0, 0) == dict.fromkeys(PIXEL_METRIC_NAMES, 0.0)


def test_confusion_counts_refuses_shape_mismatch():
    with pytest.raises(ValueError, match="shapes differ"):
        confusion_counts(np.zeros((2, 3), bool), np.zeros((3, 2), bool))


SHAPE, SPACING = (10, 12, 8), (0.5, 0.8, 3.0)
DIAGONAL = math.sqrt((10 * 0.5) ** 2 + (12 * 0.8) ** 2 + (8 * 3.0) ** 2)


def _cube(offset: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
    mask = np.zeros(SHAPE, bool)
    x, y, z = (2 + o for o in offset)
    mask[x:x + 4, y:y + 4, z:z + 4] = True
    return mask


@pytest.mark.parametrize(
    "pred_empty, truth_empty, dice, hd95",
    [(True, True, 1.0, 0.0), (True, False, 0.0, DIAGONAL), (False, True, 0.0, DIAGONAL), (False, False, 1.0, 0.0)],
)
def test_empty_mask_policy(pred_empty: bool, truth_empty: bool, dice: float, hd95: float):
    pred = np.zeros(SHAPE, bool) if pred_empty else _cube()
    truth = np.zeros(SHAPE, bool) if truth_empty else _cube()
    result = volume_metrics(pred, truth, SPACING)
    assert result == {"dice_3d": dice, "hd95_mm": pytest.approx(hd95), "pred_empty": pred_empty, "truth_empty": truth_empty}
    assert math.isfinite(result["hd95_mm"])


def test_hd95_between_parallel_planes_uses_the_spacing_of_the_gap_axis():
    pred, truth = np.zeros(SHAPE, bool), np.zeros(SHAPE, bool)
    pred[:, :, 2], truth[:, :, 5] = True, True  # 3 voxels apart along z (3.0 mm)
    assert hd95_mm(pred, truth, SPACING) == pytest.approx(9.0)
    pred, truth = np.zeros(SHAPE, bool), np.zeros(SHAPE, bool)
    pred[1, :, :], truth[7, :, :] = True, True  # 6 voxels apart along x (0.5 mm)
    assert hd95_mm(pred, truth, SPACING) == pytest.approx(3.0)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_hd95_of_a_cube_shifted_one_voxel_is_that_axis_spacing(axis: int):
    # The leading face (16 of 56 surface voxels, > 5 %) is one voxel from the other cube's face;
    # every other surface voxel is closer, so the 95th percentile is exactly one step on `axis`.
    offset = tuple(int(a == axis) for a in range(3))
    assert hd95_mm(_cube(offset), _cube(), SPACING) == pytest.approx(SPACING[axis])
    assert hd95_mm(_cube(), _cube(offset), SPACING) == pytest.approx(SPACING[axis])
    assert dice_3d(_cube(offset), _cube()) == pytest.approx(2 * 48 / 128)


def _surface_points(mask: np.ndarray, spacing) -> np.ndarray:
    padded = np.pad(mask, 1)
    inner = padded[1:-1, 1:-1, 1:-1]
    interior = inner.copy()
    for axis in range(3):
        for step in (-1, 1):
            interior &= np.roll(padded, step, axis)[1:-1, 1:-1, 1:-1]
    return np.argwhere(mask & ~interior) * np.asarray(spacing)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hd95_matches_brute_force_on_random_blobs(seed: int):
    rng = np.random.default_rng(seed)
    truth = np.zeros(SHAPE, bool)
    truth[2:8, 3:10, 2:6] = True
    pred = truth ^ (rng.random(SHAPE) < 0.08)
    d = cdist(_surface_points(pred, SPACING), _surface_points(truth, SPACING))
    expected = max(np.percentile(d.min(axis=1), 95), np.percentile(d.min(axis=0), 95))
    assert hd95_mm(pred, truth, SPACING) == pytest.approx(expected)


def test_hd95_refuses_wrong_spacing_length():
    with pytest.raises(ValueError, match="spacing"):
        hd95_mm(_cube(), _cube(), (1.0, 1.0))
