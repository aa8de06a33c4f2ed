"""Segmentation: preprocessed volumes, training slices, U-Nets per input, metrics."""

from gbm_assets.defs.segment.assets import assets, checks

__all__ = ["assets", "checks"]
