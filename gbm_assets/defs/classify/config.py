"""Run configuration of the classify assets (editable in the Dagster launchpad)."""

import dagster as dg

from gbm_assets.lib.classify.model import KINDS
from gbm_assets.lib.contract import ROI_SOURCES


def check_roi_source(value: str) -> str:
    """`value` if it is a known ROI source, else a `dg.Failure` listing the known ones."""
    if value not in ROI_SOURCES:
        raise dg.Failure(description=f"roi_source {value!r} is unknown; use one of {', '.join(ROI_SOURCES)}")
    return value


class TrainingTableSettings(dg.Config):
    roi_source: str = "predicted"
    """Whose masks the features come from: 'predicted' (the U-Net's) or 'ground_truth'."""
    cohorts: list[str] = []
    """Cohorts to train on; empty = every cohort with both radiomic features and clinical records."""


class ClassifierSettings(dg.Config):
    n_splits: int = 5
    """Folds per repeat; reduced (with a warning) to the smallest class's patient count."""
    n_repeats: int = 3
    """Repeats of the patient-level stratified k-fold split."""
    seed: int = 0
    """Seeds the splits, the models and the permutation importance."""
    select_k: int | None = None
    """Keep the k best features by ANOVA F, fitted inside each fold; None keeps all."""
    models: list[str] = list(KINDS)
    """Model kinds to cross-validate (mlp, logreg, rf, majority); mlp is required, it is the one registered."""
    top_k_features: int = 20
    """Features shown in the permutation-importance chart."""
    harmonize: str = "none"
    """"combat": ComBat across cohorts (batch = cohort, neuroCombat), fitted inside every training fold and
    applied to held-out rows with that fit; "none": features as extracted."""


class PredictionsSettings(dg.Config):
    roi_source: str = ""
    """Whose masks' features to score; empty = the ROI source the champion was trained on."""
