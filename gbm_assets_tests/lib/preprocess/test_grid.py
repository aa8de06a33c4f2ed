"""Resampling to a coarser grid: the anti-aliasing low-pass (`grid.anti_aliased`) and what it does to a patient."""

from __future__ import annotations

import nibabel as nib
import numpy as np
from scipy import ndimage

from gbm_assets.lib.preprocess.grid import anti_aliased, resample, resampled_grid
from gbm_assets.lib.preprocess.volumes import PreprocessConfig, preprocess_patient
from gbm_assets_tests.lib.preprocess import ellipsoid


def coarsened(array: np.ndarray, spacing, new_spacing, anti_alias: bool) -> np.ndarray:
    new, origin, shape = resampled_grid(array.shape, spacing, new_spacing)
    return resample(array, spacing, (0, 0, 0), new, origin, shape, anti_alias=anti_alias)


def test_a_pattern_finer_than_the_new_grid_is_averaged_not_aliased():
    """Stripes two voxels wide at 0.5 mm sampled onto 1.75 mm: linear interpolation alone keeps them at full
    strength (sampled every 3.5 voxels, they beat into a coarse false pattern); the low-pass averages them out."""
    x = np.arange(140)
    image = np.broadcast_to((100 + 50 * np.where(x // 2 % 2, 1, -1))[:, None, None], (140, 140, 4)).astype(np.float32)
    plain = coarsened(image, (0.5, 0.5, 5.0), (1.75, 1.75, 5.0), anti_alias=False)[2:-2, 2:-2]
    filtered = coarsened(image, (0.5, 0.5, 5.0), (1.75, 1.75, 5.0), anti_alias=True)[2:-2, 2:-2]
    assert plain.std() > 20
    assert filtered.std() < plain.std() / 4
    assert abs(filtered.mean() - 100) < 2


def test_the_brain_s_edge_is_neither_darkened_nor_widened():
    """Averaged over the brain only: a flat brain stays flat up to its edge and nothing outside it lights up, so the
    brain mask and its intensity statistics are the brain's. A plain Gaussian fails both (shown, so the check can)."""
    brain = ellipsoid((96, 96, 6), (0.5, 0.5, 5.0), (24, 24, 15), (18, 18, 40))
    image = np.where(brain, 100.0, 0.0).astype(np.float32)
    out = anti_aliased(image, (0.5, 0.5, 5.0), (1.5, 1.5, 5.0))
    np.testing.assert_allclose(out[brain], 100.0, rtol=1e-4)
    assert not out[~brain].any()
    plain = ndimage.gaussian_filter(image, (1.0, 1.0, 0.0), mode="nearest")
    assert plain[brain].min() < 90 and (plain[~brain] > 1).any()


def test_axes_kept_or_refined_are_not_filtered():
    rng = np.random.default_rng(0)
    image = rng.normal(100, 10, (32, 32, 8)).astype(np.float32)
    assert anti_aliased(image, (1.0, 1.0, 1.0), (1.0, 1.0, 1.0)) is image
    assert anti_aliased(image, (1.0, 1.0, 1.0), (0.5, 0.5, 1.0)) is image
    out = anti_aliased(image, (0.5, 0.5, 5.0), (1.5, 1.5, 5.0))  # in-plane only: each slice on its own
    np.testing.assert_allclose(out[..., 3], ndimage.gaussian_filter(image[..., 3], 1.0, mode="nearest"), rtol=1e-5)
    labels = (image > 100).astype(np.uint8)
    np.testing.assert_array_equal(coarsened(labels, (0.5, 0.5, 5.0), (1.5, 1.5, 5.0), anti_alias=True),
                                  coarsened(labels, (0.5, 0.5, 5.0), (1.5, 1.5, 5.0), anti_alias=False))  # fmt: skip


def lesion_case(zoom: float, seed: int = 0):
    """A noisy brain (100 +- 10 on every sequence) with a faint lesion (+8) on a `zoom` mm in-plane grid."""
    shape, zooms = (int(96 / zoom), int(96 / zoom), 6), (zoom, zoom, 5.0)
    brain = ellipsoid(shape, zooms, (48, 48, 15), (40, 40, 40))
    lesion = ellipsoid(shape, zooms, (40, 50, 15), (14, 14, 40))
    rng = np.random.default_rng(seed)
    affine = np.diag([*zooms, 1.0])
    images = {s: nib.Nifti1Image((brain * (100 + 8 * lesion + rng.normal(0, 10, shape))).astype(np.float32), affine)
              for s in ("t1", "t1c", "t2", "flair")}  # fmt: skip
    labels = nib.Nifti1Image((lesion * 2).astype(np.uint8), affine)
    return images, labels


def lesion_contrast(zoom: float, anti_alias: bool) -> float:
    """The faint lesion's contrast-to-noise on FLAIR after preprocessing at 1.5 mm: (lesion - brain) / brain SD."""
    images, labels = lesion_case(zoom)
    p = preprocess_patient(images, labels, PreprocessConfig(target_spacing_mm=1.5, size=64, anti_alias=anti_alias))
    flair, lesion = p.images[p.sequences.index("flair")], p.labels > 0
    healthy = ndimage.binary_erosion(p.brain, iterations=2) & ~ndimage.binary_dilation(lesion, iterations=2)
    return float((flair[lesion].mean() - flair[healthy].mean()) / flair[healthy].std())


def test_a_fine_clinical_grid_keeps_its_faint_lesion_visible():
    """Preprocessed from 0.5 mm to 1.5 mm, the low-pass averages the noise as a 1.5 mm scan would: a faint lesion
    (0.8 noise SD) stands out about twice as clearly as with linear interpolation alone. A volume already on the
    target grid is preprocessed identically either way."""
    assert lesion_contrast(0.5, anti_alias=True) > 1.8 * lesion_contrast(0.5, anti_alias=False)
    images, labels = lesion_case(1.5)
    same = [preprocess_patient(images, labels, PreprocessConfig(target_spacing_mm=1.5, size=64, anti_alias=a)).images
            for a in (True, False)]  # fmt: skip
    np.testing.assert_array_equal(*same)
