"""Tumour burden per region from a canonical label array and its affine: numpy and scipy only.

Coordinates: `affine` maps voxel indices (i, j, k) to world millimetres, as a NIfTI affine does
(nibabel's `img.affine`), and world space is assumed RAS+: x increases to the patient's Right,
y Anterior, z Superior. Volumes and distances are exact on anisotropic and oblique (rotated or
sheared) grids because everything is computed in world millimetres.

Hemisphere comes from the centroid's world x relative to the mid-sagittal plane x = midline_x_mm
(default 0): x = 0 is the mid-sagittal plane in atlas spaces (MNI) and roughly so in native scanner
space (the isocentre is near, not on, the midline). Files whose affine puts the origin at a corner
(the MSD/BraTS NIfTIs have an identity affine) need the plane given: pass the world x of the brain
mask's centroid (`brain_midline_x`).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError
from scipy.spatial.distance import pdist

from gbm_assets.lib.contract import REGIONS, region_mask
from gbm_assets.lib.preprocess.grid import voxel_volume_ml
from gbm_assets.lib.segment.metrics import dice_3d

MIDLINE_MM = 2.0
"""A centroid with |x| below this (mm) is reported as "midline"."""
_PDIST_MAX_POINTS = 4000
"""Above this many points the diameter is taken over convex-hull vertices only."""

BURDEN_COLUMNS = (
    "region", "voxels", "volume_ml", "max_diameter_mm",
    "centroid_x_mm", "centroid_y_mm", "centroid_z_mm", "hemisphere",
)  # fmt: skip


def _check_affine(affine: np.ndarray) -> np.ndarray:
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4):
        raise ValueError(f"affine must be 4x4, got shape {affine.shape}")
    return affine


def _to_world(indices: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """(N, 3) voxel indices -> (N, 3) world mm."""
    return indices @ affine[:3, :3].T + affine[:3, 3]


def max_distance(points: np.ndarray) -> float:
    """Largest Euclidean distance between any two of (N, 3) points (0.0 for one point, NaN for none).

    The farthest pair always lies on the convex hull, so for many points only hull vertices are
    compared; degenerate (flat or collinear) sets are joggled for qhull (`QJ`), which still
    returns indices of the original points, or compared exhaustively when small.
    """
    n = len(points)
    if n == 0:
        return math.nan
    if n == 1:
        return 0.0
    if n > 16:
        for options in (None, "QJ"):
            try:
                points = points[ConvexHull(points, qhull_options=options).vertices]
                break
            except (QhullError, ValueError):
                continue
    if len(points) <= _PDIST_MAX_POINTS:
        return float(pdist(points).max())
    best = 0.0  # exhaustive in blocks, memory O(block x N)
    for start in range(0, len(points), 512):
        block = points[start : start + 512]
        best = max(best, float(np.sqrt(((block[:, None, :] - points[None, :, :]) ** 2).sum(-1)).max()))
    return best


def hemisphere(x_mm: float, midline_mm: float = MIDLINE_MM, midline_x_mm: float = 0.0) -> str | None:
    """'right' (x > plane + midline_mm), 'left' (x < plane - midline_mm), 'midline', or None for NaN.

    RAS+ world: x grows towards the patient's right. The plane is x = midline_x_mm.
    """
    offset = x_mm - midline_x_mm
    if not np.isfinite(offset):
        return None
    if offset > midline_mm:
        return "right"
    if offset < -midline_mm:
        return "left"
    return "midline"


def brain_midline_x(brain: np.ndarray, affine: np.ndarray) -> float:
    """World x (mm) of the centroid of a (X, Y, Z) brain mask: the mid-sagittal plane's x for
    `region_burden(..., midline_x_mm=...)` when the affine's origin is not on the midline. NaN if empty."""
    idx = np.argwhere(np.asarray(brain) > 0)
    if idx.size == 0:
        return math.nan
    return float(_to_world(idx.mean(axis=0)[None, :], _check_affine(affine))[0, 0])


def _one_region(mask: np.ndarray, affine: np.ndarray, voxel_ml: float, midline: tuple[float, float]) -> dict:
    count = int(mask.sum())
    if count == 0:
        return {"voxels": 0, "volume_ml": 0.0, "max_diameter_mm": math.nan, "centroid_x_mm": math.nan,
                "centroid_y_mm": math.nan, "centroid_z_mm": math.nan, "hemisphere": None}  # fmt: skip
    box = ndimage.find_objects(mask.astype(np.uint8))[0]
    lo = np.array([s.start for s in box], dtype=np.float64)
    crop = np.pad(mask[box], 1)  # one voxel of background around, so the ROI's border is surface
    surface = crop & ~ndimage.binary_erosion(crop)
    surface_idx = np.argwhere(surface).astype(np.float64) - 1.0 + lo
    centroid_idx = np.argwhere(mask[box]).mean(axis=0) + lo
    centroid = _to_world(centroid_idx[None, :], affine)[0]
    return {
        "voxels": count,
        "volume_ml": count * voxel_ml,
        "max_diameter_mm": max_distance(_to_world(surface_idx, affine)),
        "centroid_x_mm": float(centroid[0]),
        "centroid_y_mm": float(centroid[1]),
        "centroid_z_mm": float(centroid[2]),
        "hemisphere": hemisphere(float(centroid[0]), *midline),
    }


def region_burden(
    labels: np.ndarray, affine: np.ndarray, *, midline_mm: float = MIDLINE_MM, midline_x_mm: float = 0.0
) -> list[dict]:
    """Volume, diameter, centroid and side of every region in `contract.REGIONS`.

    Args:
        labels: (X, Y, Z) canonical labels (0 background, 1 necrotic core, 2 edema, 3 enhancing),
            integer dtype, in the voxel order `affine` indexes.
        affine: (4, 4) voxel index -> RAS+ world mm.
        midline_mm: half-width of the band around the mid-sagittal plane reported as "midline".
        midline_x_mm: world x of the mid-sagittal plane (0 in atlas space; see `brain_midline_x`).

    Returns:
        One dict per region, in `REGIONS` order, with `BURDEN_COLUMNS`: region; voxels;
        volume_ml (voxels x |det(affine[:3, :3])| / 1000); max_diameter_mm (largest distance
        between centres of surface voxels, world mm; 0.0 for a single voxel); centroid_x/y/z_mm
        (world mm of the mean voxel centre); hemisphere ("left" / "right" / "midline").
        An empty region has voxels 0, volume_ml 0.0, NaN diameter and centroid, hemisphere None.

    Raises:
        ValueError: labels is not 3D, or affine is not 4x4.
    """
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise ValueError(f"labels must be a 3D (X, Y, Z) array, got shape {labels.shape}")
    affine = _check_affine(affine)
    voxel_ml = voxel_volume_ml(affine)
    return [
        {"region": name, **_one_region(region_mask(labels, name), affine, voxel_ml, (midline_mm, midline_x_mm))}
        for name in REGIONS
    ]


def agreement(pred_labels: np.ndarray, truth_labels: np.ndarray, affine: np.ndarray | None = None) -> dict[str, dict]:
    """Predicted vs ground-truth volume and overlap per region.

    Args:
        pred_labels, truth_labels: (X, Y, Z) canonical label arrays on the same grid.
        affine: (4, 4) voxel -> world mm of that grid; None means 1 mm isotropic voxels
            (the BraTS / MSD grid).

    Returns:
        region -> {"pred_ml", "truth_ml", "volume_diff_ml" (pred - truth), "dice"}, for every
        region in `REGIONS`. Dice is 1.0 when the region is empty in both.

    Raises:
        ValueError: the arrays differ in shape.
    """
    pred_labels, truth_labels = np.asarray(pred_labels), np.asarray(truth_labels)
    if pred_labels.shape != truth_labels.shape:
        raise ValueError(f"prediction shape {pred_labels.shape} != ground truth shape {truth_labels.shape}")
    voxel_ml = voxel_volume_ml(_check_affine(affine)) if affine is not None else 1e-3
    out: dict[str, dict] = {}
    for name in REGIONS:
        pred, truth = region_mask(pred_labels, name), region_mask(truth_labels, name)
        pred_ml, truth_ml = int(pred.sum()) * voxel_ml, int(truth.sum()) * voxel_ml
        out[name] = {
            "pred_ml": pred_ml, "truth_ml": truth_ml, "volume_diff_ml": pred_ml - truth_ml, "dice": dice_3d(pred, truth)
        }  # fmt: skip
    return out
