"""Nested regions: labels <-> channels round trip, nnU-Net's conversion, per-region metrics, and
our Dice / HD95 cross-checked per region against MONAI on fixtures (and on MSD BRATS_001's labels)."""

from __future__ import annotations

import warnings

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from gbm_assets.lib.contract import LABEL_SCHEMES, to_canonical
from gbm_assets.lib.segment.metrics import PIXEL_METRIC_NAMES
from gbm_assets.lib.segment.regions import (
    REGION_CHANNELS,
    labels_to_regions,
    region_confusion,
    region_metrics,
    region_volume_metrics,
    regions_to_labels,
    scored_regions,
)
from gbm_assets_tests.conftest import shared_case


def _tumour(rng: np.random.Generator, shape=(32, 30, 20)) -> np.ndarray:
    """Canonical labels shaped like a glioma: edema around a core with an enhancing rim."""
    grid = np.indices(shape) - (np.array(shape) // 2)[:, None, None, None]
    noise = ndimage.gaussian_filter(rng.standard_normal(shape), 2)
    rough = np.sqrt((grid**2).sum(0)) * (1 + 0.15 * noise / noise.std())
    labels = np.zeros(shape, np.uint8)
    labels[rough < 10] = 2
    labels[rough < 6] = 3
    labels[rough < 4] = 1
    return labels


def test_labels_to_regions_are_nested_and_round_trip():
    labels = _tumour(np.random.default_rng(0))
    assert set(np.unique(labels)) == {0, 1, 2, 3}
    ch = labels_to_regions(labels)
    assert ch.shape == (3, *labels.shape) and ch.dtype == bool
    wt, tc, et = ch
    assert np.array_equal(wt, labels > 0) and np.array_equal(tc, np.isin(labels, (1, 3))) and np.array_equal(et, labels == 3)
    assert not (et & ~tc).any() and not (tc & ~wt).any()  # nested
    assert np.array_equal(regions_to_labels(ch.astype(np.float32)), labels)
    batch = labels.transpose(2, 0, 1)  # (N, H, W) -> (N, 3, H, W)
    assert labels_to_regions(batch, axis=1).shape == (batch.shape[0], 3, *batch.shape[1:])
    assert np.array_equal(regions_to_labels(labels_to_regions(batch, axis=1), axis=1), batch)


def test_regions_to_labels_follows_nnunet_order_and_threshold():
    # pixels:       bg    WT only  WT+TC  all  ET alone  at threshold
    wt = np.array([0.1, 0.9, 0.9, 0.9, 0.2, 0.5])
    tc = np.array([0.1, 0.2, 0.8, 0.8, 0.2, 0.5])
    et = np.array([0.1, 0.1, 0.1, 0.7, 0.9, 0.5])
    assert regions_to_labels(np.stack([wt, tc, et])).tolist() == [0, 2, 1, 3, 3, 0]
    assert regions_to_labels(np.stack([wt, tc, et]), threshold=0.4).tolist() == [0, 2, 1, 3, 3, 3]
    with pytest.raises(ValueError, match="3 region channels"):
        regions_to_labels(np.zeros((2, 4)))
    with pytest.raises(KeyError, match="unknown regions"):
        labels_to_regions(np.zeros(4, np.uint8), regions=("whole_tumour",))


def test_region_metrics_per_region_reuse_the_pooled_counts():
    rng = np.random.default_rng(1)
    truth = _tumour(rng)
    pred = truth.copy()
    pred[truth == 3] = 1  # enhancing missed entirely, but still core and whole tumour
    rows = {r["region"]: r for r in region_metrics(pred, truth, spacing=(1.0, 1.0, 2.0))}
    assert list(rows) == list(REGION_CHANNELS)
    assert rows["whole_tumor"]["dice_3d"] == rows["tumor_core"]["dice_3d"] == 1.0
    assert rows["whole_tumor"]["hd95_mm"] == 0.0
    et = rows["enhancing"]
    assert et["dice_3d"] == 0.0 and et["pred_empty"] and not et["truth_empty"]
    assert et["hd95_mm"] == pytest.approx(np.sqrt(32**2 + 30**2 + 40**2))  # one side empty: the volume's diagonal
    assert et["sensitivity"] == 0.0 and et["tp"] == 0 and et["fn"] == int((truth == 3).sum())
    assert set(PIXEL_METRIC_NAMES) <= set(et)
    # pixel-only on a slice batch, pooled counts add up over slices
    per_slice = [region_confusion(pred[..., z], truth[..., z]) for z in range(truth.shape[-1])]
    pooled = {r: tuple(np.sum([s[r] for s in per_slice], axis=0)) for r in REGION_CHANNELS}
    assert pooled == region_confusion(pred, truth)
    assert "dice_3d" not in region_metrics(pred, truth)[0]


def test_both_empty_region_scores_perfect_and_unrepresentable_regions_are_not_scored():
    truth = np.zeros((8, 8, 4), np.uint8)
    truth[2:5, 2:5, 1:3] = 2  # edema only: no core, no enhancing
    m = region_volume_metrics(truth, truth, (1, 1, 1))
    assert m["enhancing"] == {"dice_3d": 1.0, "hd95_mm": 0.0, "pred_empty": True, "truth_empty": True, "lesions_reference": 0,
                              "lesions_predicted": 0, "lesions_matched": 0, "lesion_f1": 1.0, "lesionwise_dice": 1.0,
                              "lesionwise_hd95_mm": 0.0}  # fmt: skip
    binary_truth = LABEL_SCHEMES["binary"].regions
    assert scored_regions(binary_truth) == ("whole_tumor",)  # a binary mask says nothing of enhancing
    assert scored_regions(LABEL_SCHEMES["hd_glio"].regions) == ("whole_tumor", "enhancing")
    assert scored_regions(LABEL_SCHEMES["brats"].regions, ("whole_tumor",)) == ("whole_tumor",)  # a binary model
    assert [r["region"] for r in region_metrics(truth, truth, scored_regions(binary_truth))] == ["whole_tumor"]


def _monai(pred: np.ndarray, truth: np.ndarray, spacing) -> tuple[float, float]:
    torch = pytest.importorskip("torch")
    metrics = pytest.importorskip("monai.metrics")
    t = lambda m: torch.from_numpy(m[None, None].astype(np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hd = metrics.compute_hausdorff_distance(t(pred), t(truth), include_background=True, percentile=95, spacing=list(spacing))
        dice = metrics.compute_dice(t(pred), t(truth), include_background=True)
    return float(dice.item()), float(hd.item())


def _perturbed(rng: np.random.Generator, truth: np.ndarray) -> np.ndarray:
    """A plausible prediction: truth grown or shrunk in places, plus a false-positive blob."""
    pred = truth.copy()
    pred[ndimage.binary_dilation(truth == 3) & (truth > 0) & (rng.random(truth.shape) < 0.5)] = 3
    outer = (truth > 0) & ~ndimage.binary_erosion(truth > 0, iterations=2)
    pred[outer & (rng.random(truth.shape) < 0.6)] = 0
    blob = np.zeros(truth.shape, bool)
    blob[1:4, 1:4, 1:3] = True
    pred[blob] = 1
    return pred


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dice_and_hd95_per_region_agree_with_monai(seed):
    rng = np.random.default_rng(seed)
    truth = _tumour(rng)
    pred = _perturbed(rng, truth)
    spacing = (1.0, 1.2, 2.5)
    ours = region_volume_metrics(pred, truth, spacing)
    for region, ch_pred, ch_truth in zip(REGION_CHANNELS, labels_to_regions(pred), labels_to_regions(truth)):
        dice, hd = _monai(ch_pred, ch_truth, spacing)
        assert 0 < ours[region]["dice_3d"] < 1
        assert ours[region]["dice_3d"] == pytest.approx(dice, abs=1e-6), region
        assert ours[region]["hd95_mm"] == pytest.approx(hd, rel=1e-5), region


def test_real_msd_brats_labels_per_region_agree_with_monai():
    case = shared_case("msd-task01-brats001")
    img = nib.load(case / "BRATS_001_labels.nii.gz")
    truth = to_canonical(np.asanyarray(img.dataobj), "msd", str(case / "BRATS_001_labels.nii.gz"))
    box = ndimage.find_objects((truth > 0).astype(np.uint8))[0]
    truth = truth[tuple(slice(max(s.start - 4, 0), s.stop + 4) for s in box)]  # every distance is inside the crop
    assert set(np.unique(truth)) == {0, 1, 2, 3}
    pred = _perturbed(np.random.default_rng(3), truth)
    spacing = tuple(float(s) for s in img.header.get_zooms()[:3])
    ours = region_volume_metrics(pred, truth, spacing)
    for region, ch_pred, ch_truth in zip(REGION_CHANNELS, labels_to_regions(pred), labels_to_regions(truth)):
        dice, hd = _monai(ch_pred, ch_truth, spacing)
        assert ours[region]["dice_3d"] == pytest.approx(dice, abs=1e-6), region
        assert ours[region]["hd95_mm"] == pytest.approx(hd, rel=1e-5), region
