"""Classify: subtype training table, cross-validated classifier (MLflow), per-cohort predictions, survival view."""

from gbm_assets.defs.classify.assets import subtype_classifier, subtype_predictions, subtype_training_table, survival_view
from gbm_assets.defs.classify.checks import (
    subtype_classifier_beats_majority_baseline,
    subtype_predictions_probabilities_sum_to_one,
    subtype_training_table_covers_every_subtype,
)

assets = [subtype_training_table, subtype_classifier, subtype_predictions, survival_view]
checks = [
    subtype_training_table_covers_every_subtype,
    subtype_classifier_beats_majority_baseline,
    subtype_predictions_probabilities_sum_to_one,
]
