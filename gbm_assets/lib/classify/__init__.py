"""Subtype classification from radiomics: features -> training table -> CV'd models -> plots.

Pure library code (no Dagster, no MLflow). Modules:
    features  long radiomics table -> wide table -> training table; column alignment
    model     pipelines, permutation importance, multi-label thresholds
    cv        patient-level repeated stratified cross-validation (re-exported by model)
    plots     ROC, confusion matrix and top-feature charts as PNG bytes
"""

from gbm_assets.lib.classify.cv import CVResults, ModelCV, cross_validate_models
from gbm_assets.lib.classify.features import align_features, feature_columns, training_table, wide_features
from gbm_assets.lib.classify.model import (
    KINDS,
    build_pipeline,
    fit_thresholds,
    multilabel_predict,
    permutation_importance_top,
    selected_features,
)

__all__ = [
    "KINDS",
    "CVResults",
    "ModelCV",
    "align_features",
    "build_pipeline",
    "cross_validate_models",
    "feature_columns",
    "fit_thresholds",
    "multilabel_predict",
    "permutation_importance_top",
    "selected_features",
    "training_table",
    "wide_features",
]
