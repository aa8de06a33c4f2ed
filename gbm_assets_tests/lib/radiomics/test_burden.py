"""Tumour burden on grids where voxel counting alone would be wrong: anisotropic and oblique."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import pdist

from gbm_assets.lib.contract import REGIONS
from gbm_assets.lib.radiomics import agreement, region_burden
from gbm_assets.lib.radiomics.burden import (
    BURDEN_COLUMNS,
    brain_midline_x,
    hemisphere,
    max_distance,
)

SPACING = np.array([0.9, 1.3, 2.0])  # mm


def _rotation(ax: float, ay: float, az: float) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = math.cos(ax), math.sin(ax), math.cos(ay), math.sin(ay), math.cos(az), math.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def _oblique_ellipsoid(centre, semi_axes=(22.0, 14.0, 9.0), inner=None):
    """Labels (X, Y, Z) on an anisotropic, rotated grid centred on `centre` (world mm): an
    axis-aligned (in world) ellipsoid of edema, optionally an inner ellipsoid of enhancing."""
    radius = max(semi_axes) + 6.0
    shape = tuple(int(math.ceil(2 * radius / s)) + 1 for s in SPACING)
    affine = np.eye(4)
    affine[:3, :3] = _rotation(0.3, -0.4, 0.5) @ np.diag(SPACING)
    affine[:3, 3] = np.asarray(centre, float) - affine[:3, :3] @ ((np.array(shape) - 1) / 2.0)
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).reshape(-1, 3)
    world = idx @ affine[:3, :3].T + affine[:3, 3] - np.asarray(centre, float)
    labels = np.zeros(shape, np.uint8)
    labels.reshape(-1)[((world / np.asarray(semi_axes)) ** 2).sum(1) <= 1] = 2
    if inner is not None:
        labels.reshape(-1)[((world / np.asarray(inner)) ** 2).sum(1) <= 1] = 3
    return labels, affine


def _by_region(rows):
    return {r["region"]: r for r in rows}


@pytest.mark.parametrize("centre, side", [((30.0, -12.0, 18.0), "right"), ((-35.0, 8.0, -5.0), "left")])
def test_ellipsoid_on_oblique_anisotropic_grid(centre, side):
    a, b, c = 22.0, 14.0, 9.0
    labels, affine = _oblique_ellipsoid(centre, (a, b, c))
    assert not np.allclose(affine[:3, :3], np.diag(np.diag(affine[:3, :3])))  # really oblique
    whole = _by_region(region_burden(labels, affine))["whole_tumor"]
    assert list(whole) == list(BURDEN_COLUMNS)
    assert whole["volume_ml"] == pytest.approx(4 / 3 * math.pi * a * b * c / 1000, rel=0.03)
    assert whole["volume_ml"] == pytest.approx(whole["voxels"] * np.prod(SPACING) / 1000)
    assert abs(whole["max_diameter_mm"] - 2 * a) <= SPACING.max()
    assert whole["max_diameter_mm"] <= 2 * a + 1e-9  # voxel centres lie inside the ellipsoid
    centroid = [whole["centroid_x_mm"], whole["centroid_y_mm"], whole["centroid_z_mm"]]
    assert centroid == pytest.approx(list(centre), abs=0.5)
    assert whole["hemisphere"] == side


def test_every_region_reported_and_empty_ones_are_zero_and_nan():
    labels, affine = _oblique_ellipsoid((0.5, 0.0, 0.0), inner=(8.0, 6.0, 5.0))
    rows = _by_region(region_burden(labels, affine))
    assert list(rows) == list(REGIONS)
    assert rows["whole_tumor"]["hemisphere"] == "midline"
    assert rows["whole_tumor"]["voxels"] == rows["edema"]["voxels"] + rows["enhancing"]["voxels"]
    assert rows["enhancing"]["volume_ml"] == pytest.approx(4 / 3 * math.pi * 8 * 6 * 5 / 1000, rel=0.05)
    necrosis = rows["necrosis"]
    assert necrosis["voxels"] == 0 and necrosis["volume_ml"] == 0.0 and necrosis["hemisphere"] is None
    assert all(math.isnan(necrosis[k]) for k in ("max_diameter_mm", "centroid_x_mm", "centroid_y_mm", "centroid_z_mm"))


def test_flipped_voxel_order_with_matching_affine_gives_the_same_burden():
    labels, affine = _oblique_ellipsoid((20.0, 0.0, 0.0), inner=(8.0, 6.0, 5.0))
    flip = np.eye(4)
    flip[0, 0], flip[0, 3] = -1, labels.shape[0] - 1  # index i -> n-1-i
    las = region_burden(labels[::-1], affine @ flip)
    for ours, theirs in zip(region_burden(labels, affine), las):
        assert ours["hemisphere"] == theirs["hemisphere"]
        for key in ("voxels", "volume_ml", "max_diameter_mm", "centroid_x_mm", "centroid_y_mm", "centroid_z_mm"):
            assert ours[key] == pytest.approx(theirs[key], nan_ok=True), key


def test_single_voxel_and_flat_regions():
    affine = np.diag([0.5, 0.5, 5.0, 1.0])
    labels = np.zeros((30, 30, 5), np.uint8)
    labels[3, 4, 2] = 3
    labels[10:25, 5:20, 1] = 2  # one slice: a flat ROI, degenerate for a 3D convex hull
    rows = _by_region(region_burden(labels, affine))
    assert rows["enhancing"]["max_diameter_mm"] == 0.0
    assert rows["enhancing"]["volume_ml"] == pytest.approx(1.25 / 1000)
    flat = np.argwhere(labels == 2) * [0.5, 0.5, 5.0]
    assert rows["edema"]["max_diameter_mm"] == pytest.approx(pdist(flat).max())


def test_max_distance_matches_brute_force_on_random_clouds():
    rng = np.random.default_rng(0)
    for n in (2, 5, 40, 500):
        points = rng.normal(size=(n, 3)) * [10, 4, 2]
        assert max_distance(points) == pytest.approx(pdist(points).max())
    assert math.isnan(max_distance(np.zeros((0, 3))))


def test_hemisphere_from_ras_x():
    assert hemisphere(10.0) == "right" and hemisphere(-10.0) == "left" and hemisphere(0.5) == "midline"
    assert hemisphere(float("nan")) is None
    assert hemisphere(130.0, midline_x_mm=120.0) == "right" and hemisphere(110.0, midline_x_mm=120.0) == "left"


def test_hemisphere_against_the_brain_midline_when_the_origin_is_a_corner():
    """MSD/BraTS files have an identity affine: x = 0 is the volume's edge, not the midline."""
    labels = np.zeros((40, 20, 10), np.uint8)
    labels[8:14, 8:12, 3:6] = 3  # left half of the brain (RAS: low i is the patient's left)
    brain = np.zeros_like(labels)
    brain[2:38, 2:18, 1:9] = 1
    affine = np.eye(4)
    assert _by_region(region_burden(labels, affine))["enhancing"]["hemisphere"] == "right"  # naive: x > 0
    midline = brain_midline_x(brain, affine)
    assert midline == pytest.approx(19.5)
    assert _by_region(region_burden(labels, affine, midline_x_mm=midline))["enhancing"]["hemisphere"] == "left"


def test_agreement_volume_difference_and_dice():
    truth = np.zeros((10, 10, 10), np.uint8)
    truth[2:6, 2:6, 2:6] = 2
    truth[3:5, 3:5, 3:5] = 3
    pred = np.zeros_like(truth)
    pred[2:6, 2:6, 3:7] = 2  # shifted by one slice: overlap 48 of 64
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    result = agreement(pred, truth, affine)
    assert set(result) == set(REGIONS)
    whole = result["whole_tumor"]
    assert whole["dice"] == pytest.approx(2 * 48 / 128)
    assert whole["volume_diff_ml"] == pytest.approx(0.0)
    assert result["enhancing"]["dice"] == 0.0
    assert result["enhancing"]["volume_diff_ml"] == pytest.approx(-8 * 8 / 1000)
    assert result["necrosis"]["dice"] == 1.0  # empty in both
    same = agreement(truth, truth)
    assert all(r["dice"] == 1.0 and r["volume_diff_ml"] == 0.0 for r in same.values())
    with pytest.raises(ValueError, match="shape"):
        agreement(pred[:5], truth)
