"""Turn a probability volume into a clean lesion mask: threshold, drop small components, fill holes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

DEFAULT_MIN_COMPONENT_MM3 = 1000.0
"""Components under 1 mL are dropped: on the demo cohort the undertrained models' false positives
are specks of 0.1-1 mL, while the smallest tumours are ~10 mL. Real satellite lesions under
1 mL would be lost too; lower it (MaskSettings.min_component_mm3) where those matter."""


@dataclass(frozen=True)
class PostprocessSettings:
    """The one set of post-processing defaults: `segmentation_metrics` (which evaluates a model as
    `lesion_masks` will use it) and `lesion_masks` both take their config defaults from `POSTPROCESS`.

    Attributes:
        threshold: probability above which a voxel is lesion.
        min_component_mm3: 26-connected components smaller than this volume are removed.
    """

    threshold: float = 0.5
    min_component_mm3: float = DEFAULT_MIN_COMPONENT_MM3


POSTPROCESS = PostprocessSettings()
KEEP_LARGEST_TAG = "postprocess.keep_largest_component"
"""Tag on a registered U-Net version: "true"/"false", whether `lesion_masks` keeps only the largest
component (decided by `segmentation_metrics` on the model's validation patients)."""


def postprocess_mask(
    prob: np.ndarray,
    spacing: Sequence[float],
    threshold: float = POSTPROCESS.threshold,
    min_component_mm3: float = POSTPROCESS.min_component_mm3,
    keep_largest: bool = False,
) -> np.ndarray:
    """Binary lesion mask from probabilities.

    Args:
        prob: (X, Y, Z) probabilities in [0, 1].
        spacing: (x, y, z) voxel size in mm.
        threshold: probability above which a voxel is lesion.
        min_component_mm3: 26-connected components smaller than this volume are removed.
        keep_largest: keep only the largest component (a unifocal-lesion assumption; whether it
            helps is decided per model on its validation patients, as nnU-Net does).

    Returns:
        (X, Y, Z) bool; all False when nothing survives (an empty mask, which callers record).
    """
    mask = prob > threshold
    if not mask.any():
        return mask
    labels, n = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    voxel_mm3 = float(np.prod(spacing))
    sizes = ndimage.sum_labels(mask, labels, index=np.arange(1, n + 1)) * voxel_mm3
    keep = np.zeros(n + 1, bool)
    keep[1:] = sizes >= min_component_mm3
    if keep_largest and keep.any():
        keep[1:] = np.arange(n) == int(np.argmax(sizes))
    mask = keep[labels]
    # fill holes slice by slice (axial) and in 3D: necrotic cores are part of the lesion
    mask = ndimage.binary_fill_holes(mask)
    for z in range(mask.shape[2]):
        mask[..., z] = ndimage.binary_fill_holes(mask[..., z])
    return mask


def postprocess_labels(
    probs: np.ndarray,
    spacing: Sequence[float],
    threshold: float = POSTPROCESS.threshold,
    min_component_mm3: float = POSTPROCESS.min_component_mm3,
    keep_largest: bool = False,
) -> np.ndarray:
    """Canonical labels (uint8, 0-3) from a region model's (3, X, Y, Z) probabilities (WT, TC, ET).

    The whole tumour is post-processed exactly as a binary model's mask (`postprocess_mask` on the WT
    channel); inside it, labels follow nnU-Net's region order (`regions.regions_to_labels`), and
    voxels the clean-up added (filled holes) or whose region channels are all off become edema (2).
    So the label map's whole tumour is the post-processed WT mask, voxel for voxel.
    """
    from gbm_assets.lib.segment.regions import regions_to_labels

    whole = postprocess_mask(probs[0], spacing, threshold, min_component_mm3, keep_largest)
    labels = regions_to_labels(probs, axis=0, threshold=threshold)
    labels[~whole] = 0
    labels[whole & (labels == 0)] = 2
    return labels
