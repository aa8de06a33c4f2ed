"""Post-processing of probability volumes into lesion masks."""

import numpy as np

from gbm_assets.lib.masks.postprocess import postprocess_mask


def blobs() -> np.ndarray:
    prob = np.zeros((40, 40, 20), np.float32)
    prob[5:15, 5:15, 5:15] = 0.9  # 1000 voxels: the lesion, with a hole
    prob[9:11, 9:11, 9:11] = 0.1
    prob[25:30, 25:30, 5:10] = 0.8  # 125 voxels
    prob[35, 35, 15] = 0.95  # a speck
    return prob


def test_threshold_drops_small_components_and_fills_holes():
    mask = postprocess_mask(blobs(), (1.0, 1.0, 1.0), min_component_mm3=50)
    assert mask[10, 10, 10] and mask[27, 27, 7] and not mask[35, 35, 15]
    assert mask.sum() == 1000 + 125


def test_minimum_size_respects_voxel_spacing():
    # 125 voxels of 2 x 2 x 2 mm = 1000 mm3: kept at a 1 mL floor; at 1 mm spacing it is dropped
    assert postprocess_mask(blobs(), (2.0, 2.0, 2.0), min_component_mm3=1000)[27, 27, 7]
    assert not postprocess_mask(blobs(), (1.0, 1.0, 1.0), min_component_mm3=1000)[27, 27, 7]


def test_keep_largest_component():
    mask = postprocess_mask(blobs(), (1.0, 1.0, 1.0), min_component_mm3=50, keep_largest=True)
    assert mask.sum() == 1000 and not mask[27, 27, 7]


def test_nothing_above_threshold_gives_an_empty_mask():
    assert not postprocess_mask(np.full((8, 8, 4), 0.2, np.float32), (1.0, 1.0, 1.0)).any()
