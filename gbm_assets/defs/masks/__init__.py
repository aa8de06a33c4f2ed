"""Masks: predicted lesion masks in native space."""

from gbm_assets.defs.masks.assets import lesion_masks

assets = [lesion_masks]
checks: list = []
