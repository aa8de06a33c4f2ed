"""Subtype classification from radiomics: features -> training table -> CV'd models -> plots.

No Dagster. Modules (imports run downwards only: model <- cv <- training <- gate, registry):
    features  long radiomics table -> wide table -> training table; column alignment
    model     pipelines, permutation importance, multi-label thresholds
    cv        patient-level repeated stratified cross-validation, fold fingerprints
    training  train the classifier (CV, final fit, thresholds, importance), CV summary, report files
    tables    per-cohort Parquet files, labelled rows, the predictions table
    gate      does a new classifier beat the champion on the same folds (pure)
    registry  the classifier in MLflow: log and register, read, load and move the champion alias
    plots     ROC, confusion matrix and top-feature charts as PNG bytes
"""

from gbm_assets.lib.classify.cv import CVResults, ModelCV, cross_validate_models
from gbm_assets.lib.classify.features import (
    align_features,
    feature_columns,
    training_table,
    wide_features,
)
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
