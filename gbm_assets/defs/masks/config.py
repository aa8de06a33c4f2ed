"""Run configuration of lesion_masks and the threshold of its check (editable in the Dagster launchpad)."""

import dagster as dg

from gbm_assets.lib.masks.postprocess import POSTPROCESS


class MaskSettings(dg.Config):
    model_input: str = "auto"
    """Which champion U-Net segments the cohort (t1, t1c, t2, flair or stack); "auto" (or empty): the champion
    with the best validation Dice whose input sequences every valid patient of the cohort has."""
    threshold: float = POSTPROCESS.threshold
    min_component_mm3: float = POSTPROCESS.min_component_mm3
    """Connected components smaller than this are removed (the same defaults as segmentation_metrics)."""
    batch_size: int = 16


class EmptyMaskRateSettings(dg.Config):
    max_rate: float = 0.2
    """lesion_masks: the share of segmented patients with an empty predicted mask must stay below this."""
