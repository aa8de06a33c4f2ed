"""Tests for gbm_assets.lib.preprocess (no Dagster), and the synthetic cases they share."""

from __future__ import annotations

import nibabel as nib
import numpy as np

RAS_1MM = np.eye(4)
LAS_ANISO = np.diag([-0.5, 0.5, 3.0, 1.0])
LPS_1MM = np.diag([-1.0, -1.0, 1.0, 1.0])
# voxel axes i, j, k point to world S, R, A (a sagittal-like acquisition)
PERMUTED = np.array([[0, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 0], [0, 0, 0, 1]], float)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def ellipsoid(shape, zooms, centre_mm, radii_mm) -> np.ndarray:
    """Bool ellipsoid in voxel space, sizes in mm along the voxel axes."""
    grids = np.meshgrid(*[np.arange(n) * z for n, z in zip(shape, zooms)], indexing="ij")
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grids, centre_mm, radii_mm)) <= 1


def synthetic_case(shape, affine, seed=0, sequences=("t1", "t1c", "t2", "flair")):
    """Brain ellipsoid with noisy intensities per sequence, and a 3-label tumour inside."""
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    ext = np.asarray(shape) * zooms
    brain = ellipsoid(shape, zooms, ext / 2, ext * 0.4)
    rng = np.random.default_rng(seed)
    images = {
        s: nib.Nifti1Image((brain * (100 + 20 * i + rng.normal(0, 10, shape))).astype(np.float32), affine)
        for i, s in enumerate(sequences)
    }
    centre, r = ext * np.array([0.45, 0.55, 0.5]), min(ext[0], ext[1]) * 0.15
    labels = np.zeros(shape, np.uint8)
    labels[ellipsoid(shape, zooms, centre, [r, r, max(r, 2 * zooms[2])])] = 2
    labels[ellipsoid(shape, zooms, centre, [0.7 * r, 0.7 * r, max(0.7 * r, 1.5 * zooms[2])])] = 3
    labels[ellipsoid(shape, zooms, centre, [0.4 * r, 0.4 * r, max(0.4 * r, zooms[2])])] = 1
    return images, nib.Nifti1Image(labels, affine)
