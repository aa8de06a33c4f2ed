"""The champion gate, pure: does a newly trained classifier beat the current champion on the same folds?

Scores are only comparable on the same patients, labels and folds. When the champion's run was
cross-validated on exactly the candidate's folds (equal `folds_fingerprint`), its logged per-fold
scores are paired with the candidate's. Otherwise (other patients, labels, fold count or seed) the
champion's pipeline settings (kind `mlp`, its `select_k`) are re-cross-validated on the candidate's
folds: that compares the two recipes on today's data, which is what promotion is about. No Dagster,
no MLflow (the caller reads the champion's record from the registry).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gbm_assets.lib.classify.cv import cross_validate_models, folds_fingerprint
from gbm_assets.lib.classify.training import compare_fold_scores, fold_scores

PAIRED = "paired"
"""`champion_on_folds` method: the champion's logged per-fold scores, same folds."""
RECROSSVALIDATED = "re-cross-validated"
"""`champion_on_folds` method: the champion's pipeline settings cross-validated on the candidate's folds."""


def _select_k(value) -> int | None:
    """A `select_k` run parameter as logged (a number, "None" or absent) -> int or None."""
    if value is None or str(value).strip() in ("", "None", "none"):
        return None
    return int(float(value))


def champion_on_folds(champion_scores: list[float], champion_folds_sha256: str, champion_params: dict,
                      candidate_folds_sha256: str, X: pd.DataFrame, y, *, n_splits: int, n_repeats: int,
                      seed: int, kind: str = "mlp", table: str = "subtype_training_table") -> tuple[list[float], str]:
    """The champion's per-fold balanced accuracy on the candidate's folds, and how it was obtained.

    Args:
        champion_scores, champion_folds_sha256, champion_params: what the champion's run logged
            (per-fold scores in (repeat, fold) order, the fold fingerprint, its params).
        candidate_folds_sha256: the candidate's fold fingerprint.
        X, y: the candidate's training rows (n_patients, n_features) and labels, in its order.
        n_splits, n_repeats, seed: the candidate's cross-validation (folds actually used).

    Returns:
        (scores, method): `PAIRED` or `RECROSSVALIDATED`.

    Raises:
        ValueError: re-cross-validating does not reproduce the candidate's folds (the training
            table changed since the candidate was trained), or too few patients (see `make_splits`).
    """
    if champion_scores and champion_folds_sha256 == candidate_folds_sha256:
        return list(champion_scores), PAIRED
    select_k = _select_k(champion_params.get("select_k"))
    harmonize = champion_params.get("harmonize") or "none"  # a champion logged before the option: none
    cv = cross_validate_models(X, np.asarray(y, dtype=object), kinds=(kind,), n_splits=n_splits,
                               n_repeats=n_repeats, seed=seed, select_k=select_k, harmonize=harmonize)
    if folds_fingerprint(cv.splits, X.index, np.asarray(y, dtype=object)) != candidate_folds_sha256:
        raise ValueError("the training table's folds differ from those the candidate was cross-validated on "
                         f"({table} changed since the classifier ran); retrain first")
    return fold_scores(cv, kind), RECROSSVALIDATED


def beats_champion(candidate_scores: list[float], champion_scores: list[float]) -> tuple[bool, dict]:
    """(candidate's mean per-fold balanced accuracy strictly above the champion's, `compare_fold_scores`)."""
    comparison = compare_fold_scores(candidate_scores, champion_scores)
    return comparison["margin"] > 0, comparison
