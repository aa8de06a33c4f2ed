"""Radiomics: PyRadiomics features (long, wide, exclusions, provenance) and tumour burden, per cohort."""

from gbm_assets.defs.radiomics.assets import radiomic_features, tumor_burden
from gbm_assets.defs.radiomics.checks import (
    lesion_masks_empty_rate_below_threshold,
    radiomic_features_nan_rate_below_threshold,
    tumor_burden_predicted_volume_agrees_with_truth,
)

assets = [radiomic_features, tumor_burden]
checks = [
    lesion_masks_empty_rate_below_threshold,
    radiomic_features_nan_rate_below_threshold,
    tumor_burden_predicted_volume_agrees_with_truth,
]
