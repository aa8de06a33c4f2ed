"""Lesion segmentation core: the study's U-Net, its loss, metrics and a pure trainer (torch/numpy only)."""

from gbm_assets.lib.segment.losses import bce_dice_loss, soft_dice_loss
from gbm_assets.lib.segment.metrics import (
    METRIC_NAMES,
    confusion_counts,
    dice_3d,
    hd95_mm,
    pixel_metrics,
    volume_metrics,
)
from gbm_assets.lib.segment.train import (
    TrainConfig,
    TrainResult,
    predict_slices,
    train_unet,
)
from gbm_assets.lib.segment.unet import UNet, count_parameters

__all__ = [
    "METRIC_NAMES",
    "TrainConfig",
    "TrainResult",
    "UNet",
    "bce_dice_loss",
    "confusion_counts",
    "count_parameters",
    "dice_3d",
    "hd95_mm",
    "pixel_metrics",
    "predict_slices",
    "soft_dice_loss",
    "train_unet",
    "volume_metrics",
]
