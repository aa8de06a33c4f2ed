"""Train the subtype classifier: cross-validate the model kinds on shared patient-level folds, fit the
final pipeline on every row, fit multi-label thresholds on its out-of-fold probabilities, rank
features by permutation, and write the report files (plots, input contract). No Dagster, no MLflow.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from gbm_assets.lib.classify.cv import (
    CVResults,
    cross_validate_models,
    folds_fingerprint,
)
from gbm_assets.lib.classify.model import (
    build_pipeline,
    fit_thresholds,
    permutation_importance_top,
)
from gbm_assets.lib.classify.plots import (
    confusion_matrix_png,
    roc_curves_png,
    top_features_png,
)
from gbm_assets.lib.contract import SUBTYPES
from gbm_assets.lib.store.files import write_bytes_atomic

_METRICS = {"accuracy": "accuracy", "balanced_accuracy": "balanced_accuracy", "macro_f1": "f1_macro"}


@dataclass
class TrainedClassifier:
    """What `train_classifier` returns.

    Attributes:
        cv: every kind's cross-validation (shared patient-level splits).
        model: `final_kind`'s pipeline fitted on all rows (input columns = X's, in order).
        thresholds: class -> one-vs-rest threshold, fitted on `final_kind`'s out-of-fold probabilities.
        importance: `permutation_importance_top` of `final_kind` (empty if no held-out split was possible).
        summary: `cv_summary_table(cv)`.
        folds_sha256: `cv.folds_fingerprint` of the shared folds (which patients, with which labels,
            each fold validates on): equal fingerprints mean paired per-fold scores.
    """

    cv: CVResults
    model: object
    thresholds: pd.Series
    importance: pd.DataFrame
    summary: pd.DataFrame
    folds_sha256: str = ""

    def fold_scores(self, kind: str, metric: str = "balanced_accuracy") -> list[float]:
        """`kind`'s `metric` per fold, ordered by (repeat, fold)."""
        return fold_scores(self.cv, kind, metric)


def fold_scores(cv: CVResults, kind: str, metric: str = "balanced_accuracy") -> list[float]:
    """`kind`'s `metric` per (repeat, fold) of a cross-validation, in that order."""
    folds = cv.models[kind].folds.sort_values(["repeat", "fold"])
    return [float(v) for v in folds[metric]]


def compare_fold_scores(candidate: Sequence[float], champion: Sequence[float]) -> dict:
    """Paired comparison of two models' per-fold scores on the same folds.

    Returns:
        {"candidate_mean", "champion_mean", "margin" (candidate - champion mean), "folds",
        "candidate_wins" (folds where the candidate is strictly better)}.

    Raises:
        ValueError: the lists differ in length or are empty (not the same folds).
    """
    a, b = np.asarray(candidate, dtype=float), np.asarray(champion, dtype=float)
    if len(a) != len(b) or len(a) == 0:
        raise ValueError(f"per-fold scores are not paired: {len(a)} candidate folds vs {len(b)} champion folds")
    return {"candidate_mean": float(a.mean()), "champion_mean": float(b.mean()), "margin": float(a.mean() - b.mean()),
            "folds": len(a), "candidate_wins": int((a > b).sum())}


def train_classifier(X: pd.DataFrame, y, kinds: Sequence[str], *, final_kind: str = "mlp", n_splits: int = 5,
                     n_repeats: int = 3, seed: int = 0, select_k: int | None = None,
                     top_k: int = 20, harmonize: str = "none", classes: Sequence[str] = SUBTYPES) -> TrainedClassifier:
    """Cross-validate `kinds`, then fit `final_kind` on every row (BLAS single-threaded).

    Args:
        X: (n_patients, n_features) features, named columns; y: (n_patients,) subtypes.
        kinds: model kinds of `build_pipeline`; must include `final_kind`.
        harmonize: `build_pipeline`'s option ("combat": ComBat across cohorts, inside every fit).
        classes: the target's classes, naming the summary's `auc_<class>` columns (default: subtypes).

    Raises:
        ValueError: `final_kind` not in `kinds`; too few patients per class (see `cv.make_splits`).
    """
    if final_kind not in kinds:
        raise ValueError(f"models {list(kinds)} must include {final_kind!r}, the model that is registered")
    y = np.asarray(y, dtype=object)
    with threadpool_limits(limits=1, user_api="blas"):
        cv = cross_validate_models(X, y, kinds=tuple(kinds), n_splits=n_splits, n_repeats=n_repeats, seed=seed,
                                   select_k=select_k, harmonize=harmonize)
        model = build_pipeline(final_kind, seed=seed, select_k=select_k, harmonize=harmonize).fit(X, y)
        oof = cv.models[final_kind].oof
        thresholds = fit_thresholds(oof[cv.classes], oof["y_true"])
        try:
            importance = permutation_importance_top(build_pipeline(final_kind, seed=seed, select_k=select_k,
                                                                   harmonize=harmonize), X, y, k=top_k, seed=seed)
        except ValueError as exc:  # the held-out split needs every class at least twice
            warnings.warn(f"permutation importance skipped: {exc}", stacklevel=2)
            importance = pd.DataFrame(columns=["feature", "importance_mean", "importance_std"])
    fingerprint = folds_fingerprint(cv.splits, X.index if hasattr(X, "index") else np.arange(len(y)), y)
    return TrainedClassifier(cv, model, thresholds, importance, cv_summary_table(cv, classes), fingerprint)


def cv_summary_table(cv: CVResults, classes: Sequence[str] = SUBTYPES) -> pd.DataFrame:
    """One row per model: accuracy, balanced_accuracy, macro_f1 (means over folds and repeats),
    their `_std`, `auc_<class>` (`plots.AUC_DEFINITION`, NaN for an absent class), n_splits, n_repeats."""
    rows = []
    for kind, m in cv.models.items():
        row = {"model": kind}
        for name, key in _METRICS.items():
            row[name] = m.summary[f"{key}_mean"]
        for name, key in _METRICS.items():
            row[f"{name}_std"] = m.summary[f"{key}_std"]
        for c in classes:
            row[f"auc_{str(c).lower()}"] = float(m.auc.get(c, np.nan))
        rows.append(row)
    out = pd.DataFrame(rows)
    out["n_splits"], out["n_repeats"] = cv.n_splits, cv.n_repeats
    return out


def cv_metrics(summary: pd.DataFrame) -> dict[str, float]:
    """Flat `cv_<metric>_<model>` numbers of a `cv_summary_table` (NaN left out), for MLflow."""
    out = {}
    for row in summary.to_dict("records"):
        for col, value in row.items():
            if col in ("model", "n_splits", "n_repeats") or value is None or not np.isfinite(value):
                continue
            out[f"cv_{col}_{row['model']}"] = float(value)
    return out


def write_classifier_report(folder: Path, trained: TrainedClassifier, kind: str, features: list[str]) -> dict[str, bytes]:
    """Write `kind`'s plots and the model's input contract into `folder`; return the PNGs by name.

    Files: roc.png, confusion.png, top_features.png, feature_columns.json (the expected input
    columns, in order), thresholds.json (multi-label thresholds), cv_summary.csv, importance.csv.
    """
    m = trained.cv.models[kind]
    pngs = {
        "roc": roc_curves_png(m.oof, m.classes, title=f"{kind}: one-vs-rest ROC (out-of-fold, repeat 0 drawn)",
                              path=folder / "roc.png", auc=m.auc),
        "confusion": confusion_matrix_png(m.confusion, title=f"{kind}: confusion (out-of-fold, all repeats)",
                                          path=folder / "confusion.png"),
        "top_features": top_features_png(trained.importance, path=folder / "top_features.png"),
    }
    thresholds = {str(k): float(v) for k, v in trained.thresholds.items()}
    write_bytes_atomic(folder / "feature_columns.json", json.dumps(list(features), indent=1).encode())
    write_bytes_atomic(folder / "thresholds.json", json.dumps(thresholds, indent=1).encode())
    write_bytes_atomic(folder / "cv_summary.csv", trained.summary.to_csv(index=False).encode())
    write_bytes_atomic(folder / "importance.csv", trained.importance.to_csv(index=False).encode())
    return pngs
