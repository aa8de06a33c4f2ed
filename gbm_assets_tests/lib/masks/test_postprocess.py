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


def test_region_probabilities_become_canonical_labels_inside_the_cleaned_whole_tumour():
    from gbm_assets.lib.masks.postprocess import postprocess_labels

    probs = np.zeros((3, 20, 20, 10), np.float32)
    probs[0, 4:16, 4:16, 2:8] = 0.9  # whole tumour
    probs[0, 9, 9, 5] = 0.1  # a hole: filled, becomes edema
    probs[1, 6:14, 6:14, 3:7] = 0.9  # core
    probs[2, 8:12, 8:12, 4:6] = 0.9  # enhancing
    probs[2, 0, 0, 0] = 0.9  # an enhancing speck outside the whole tumour: dropped with it
    probs[0, 18:20, 18:20, 0:1] = 0.9  # a small whole-tumour component: removed
    labels = postprocess_labels(probs, (1.0, 1.0, 1.0), 0.5, min_component_mm3=50)
    assert labels.dtype == np.uint8 and set(np.unique(labels)) == {0, 1, 2, 3}
    assert (labels > 0).sum() == 12 * 12 * 6 and labels[0, 0, 0] == 0 and labels[19, 19, 0] == 0
    assert labels[9, 9, 5] == 3 and labels[5, 5, 3] == 2 and labels[6, 6, 3] == 1
    np.testing.assert_array_equal(labels > 0, postprocess_mask(probs[0], (1.0, 1.0, 1.0), 0.5, 50))  # WT is the binary clean-up
