"""Patient-level repeated stratified cross-validation of subtype classifiers.

Rows are patients (or, with `groups`, rows of one patient share a group and never straddle
train and validation). All models see the same splits, so their scores are paired.
`fit_fold` is the only place a model is fitted, and it receives only the training rows.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    roc_auc_score,
)
from sklearn.model_selection import RepeatedStratifiedKFold, StratifiedGroupKFold
from threadpoolctl import threadpool_limits

from gbm_assets.lib.classify.model import build_pipeline
from gbm_assets.lib.contract import SUBTYPES

MIN_PER_CLASS = 2
MIN_ROWS = 8
METRICS = ("accuracy", "balanced_accuracy", "f1_macro")


@dataclass
class ModelCV:
    """Cross-validation of one model kind.

    Attributes:
        folds: one row per (repeat, fold): n_train, n_val and the `METRICS`.
        summary: `<metric>_mean` / `<metric>_std` over all folds of all repeats.
        auc: class -> one-vs-rest ROC AUC of the out-of-fold probabilities, computed per
            repeat and averaged over repeats (NaN when a repeat lacks positives or negatives).
        confusion: true class (rows) x predicted class (columns), out-of-fold predictions
            SUMMED over repeats (each patient counts `n_repeats` times; divide to get patients).
        oof: one row per (repeat, row): repeat, row (position in X), index (X's label),
            group, y_true, y_pred, then one probability column per class.
    """

    kind: str
    classes: list
    folds: pd.DataFrame
    summary: dict[str, float]
    auc: pd.Series
    confusion: pd.DataFrame
    oof: pd.DataFrame


@dataclass
class CVResults:
    """All models' CV results plus the splits they shared (positional index arrays)."""

    models: dict[str, ModelCV]
    splits: list[tuple[int, int, np.ndarray, np.ndarray]] = field(repr=False)
    n_splits: int
    n_repeats: int
    classes: list

    def summary_table(self) -> pd.DataFrame:
        """One row per model kind: the `summary` metrics and `auc_<class>` columns."""
        rows = [{"model": k, **m.summary, **{f"auc_{c}": v for c, v in m.auc.items()}} for k, m in self.models.items()]
        return pd.DataFrame(rows)


def class_order(y) -> list:
    """SUBTYPES order when every label is a subtype, else sorted unique labels."""
    present = set(pd.unique(np.asarray(y)))
    if present <= set(SUBTYPES):
        return [s for s in SUBTYPES if s in present]
    return sorted(present, key=lambda v: (str(type(v)), v))


def make_splits(y, n_splits: int = 5, n_repeats: int = 3, seed: int = 0, groups=None) -> tuple[list, int]:
    """Patient-level splits: [(repeat, fold, train_idx, val_idx)], and the folds actually used.

    The fold count drops (with a UserWarning) to the smallest class size (counted in groups
    when `groups` is given).

    Raises:
        ValueError: fewer than `MIN_ROWS` rows (groups), a class with fewer than
            `MIN_PER_CLASS` members, a missing label, or a group holding two labels.
    """
    y = np.asarray(y)
    if pd.isna(y).any():
        raise ValueError(f"{int(pd.isna(y).sum())} rows have no label; drop unlabelled patients first")
    if groups is None:
        units = pd.Series(y)
    else:
        g = pd.DataFrame({"g": np.asarray(groups), "y": y}).drop_duplicates()
        mixed = g["g"][g["g"].duplicated()]
        if len(mixed):
            raise ValueError(f"groups with more than one label: {sorted(set(mixed), key=str)[:10]}")
        units = g["y"]
    counts = units.value_counts()
    if len(units) < MIN_ROWS:
        raise ValueError(f"cross-validation needs at least {MIN_ROWS} patients, got {len(units)}")
    if len(counts) < 2:
        raise ValueError(f"cross-validation needs at least two classes, got {list(counts.index)}")
    if counts.min() < MIN_PER_CLASS:
        small = {k: int(v) for k, v in counts.items() if v < MIN_PER_CLASS}
        raise ValueError(f"each class needs at least {MIN_PER_CLASS} patients for cross-validation; too few: {small}")
    k = min(n_splits, int(counts.min()))
    if k < n_splits:
        warnings.warn(f"smallest class has {int(counts.min())} patients ({counts.idxmin()}): "
                      f"using {k} folds instead of {n_splits}", UserWarning, stacklevel=3)
    splits = []
    dummy = np.zeros((len(y), 1))
    if groups is None:
        rskf = RepeatedStratifiedKFold(n_splits=k, n_repeats=n_repeats, random_state=seed)
        for i, (tr, va) in enumerate(rskf.split(dummy, y)):
            splits.append((i // k, i % k, tr, va))
    else:
        for r in range(n_repeats):
            sgkf = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed + r)
            for f, (tr, va) in enumerate(sgkf.split(dummy, y, np.asarray(groups))):
                splits.append((r, f, tr, va))
    return splits, k


def folds_fingerprint(splits, index, y) -> str:
    """sha256 of which rows (by `index` label, with their label `y`) each (repeat, fold) validates on.

    Two cross-validations with equal fingerprints scored every model on the same patients,
    labels and folds, so their per-fold scores are paired.
    """
    index, y = np.asarray(index), np.asarray(y)
    folds = [[int(r), int(f), sorted([str(index[i]), str(y[i])] for i in va)] for r, f, _, va in splits]
    return hashlib.sha256(json.dumps(folds).encode()).hexdigest()


def fit_fold(estimator, X_train, y_train):
    """Fit `estimator` on the training rows of one fold (and nothing else); returns it."""
    return estimator.fit(X_train, y_train)


def _proba_full(model, X_val, classes: list) -> np.ndarray:
    """(n_val, len(classes)) probabilities; classes absent from the training fold get 0."""
    out = np.zeros((len(X_val), len(classes)))
    p = model.predict_proba(X_val)
    for j, c in enumerate(model.classes_):
        out[:, classes.index(c)] = p[:, j]
    return out


def _rows(X, idx):
    return X.iloc[idx] if hasattr(X, "iloc") else np.asarray(X)[idx]


def cross_validate_models(X, y, kinds=("mlp", "logreg", "rf", "majority"), n_splits: int = 5, n_repeats: int = 3,
                          seed: int = 0, groups=None, select_k: int | None = None,
                          pipeline_factory: Callable | None = None, harmonize: str = "none") -> CVResults:
    """Repeated stratified K-fold CV of each model kind on the same patient-level splits.

    Args:
        X: (n_rows, n_features) DataFrame (feature names kept) or array.
        y: (n_rows,) subtype labels, no missing values.
        kinds: model kinds for `build_pipeline`, or any names `pipeline_factory` understands.
        groups: (n_rows,) patient ids when a patient has several rows; StratifiedGroupKFold
            (reshuffled with seed + repeat) then keeps each patient on one side.
        pipeline_factory: `(kind, seed) -> unfitted estimator`; default `build_pipeline`
            with `select_k` and `harmonize`. A fresh estimator is built for every fold.

    Returns:
        CVResults. Predictions come from models fitted by `fit_fold` on that fold's training
        rows only.

    Raises:
        ValueError: see `make_splits`; X and y lengths differ.
    """
    if pipeline_factory is None:

        def pipeline_factory(kind, s):
            return build_pipeline(kind, seed=s, select_k=select_k, harmonize=harmonize)
    y = np.asarray(y)
    if len(y) != len(X):
        raise ValueError(f"X has {len(X)} rows but y has {len(y)}")
    splits, k = make_splits(y, n_splits, n_repeats, seed, groups)
    classes = class_order(y)
    index = np.asarray(X.index) if hasattr(X, "index") else np.arange(len(y))
    grp = np.asarray(groups) if groups is not None else index
    # BLAS threads only cost time on ~100 x ~1000 matrices, and badly so on shared cores.
    with threadpool_limits(limits=1, user_api="blas"):
        models = {kind: _cross_validate_one(kind, X, y, splits, classes, index, grp, pipeline_factory, seed)
                  for kind in kinds}
    return CVResults(models, splits, k, n_repeats, classes)


def _cross_validate_one(kind, X, y, splits, classes, index, grp, pipeline_factory, seed) -> ModelCV:
    """All folds of one model kind (see `cross_validate_models`)."""
    fold_rows, oof_parts = [], []
    for r, f, tr, va in splits:
        model = fit_fold(pipeline_factory(kind, seed + r), _rows(X, tr), y[tr])
        proba = _proba_full(model, _rows(X, va), classes)
        pred = np.asarray(classes, dtype=y.dtype)[proba.argmax(axis=1)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fold_rows.append({"repeat": r, "fold": f, "n_train": len(tr), "n_val": len(va),
                              "accuracy": accuracy_score(y[va], pred),
                              "balanced_accuracy": balanced_accuracy_score(y[va], pred),
                              "f1_macro": f1_score(y[va], pred, average="macro", zero_division=0)})
        part = pd.DataFrame({"repeat": r, "row": va, "index": index[va], "group": grp[va],
                             "y_true": y[va], "y_pred": pred})
        oof_parts.append(pd.concat([part, pd.DataFrame(proba, columns=classes)], axis=1))
    folds = pd.DataFrame(fold_rows)
    oof = pd.concat(oof_parts, ignore_index=True).sort_values(["repeat", "row"], ignore_index=True)
    summary = {f"{m}_{s}": float(getattr(folds[m], s)()) for m in METRICS for s in ("mean", "std")}
    auc = {}
    for c in classes:
        vals = []
        for _, rep in oof.groupby("repeat"):
            truth = rep["y_true"].to_numpy() == c
            vals.append(roc_auc_score(truth, rep[c]) if 0 < truth.sum() < len(truth) else np.nan)
        auc[c] = float(np.nanmean(vals)) if not np.all(np.isnan(vals)) else np.nan
    cm = confusion_matrix(oof["y_true"].to_numpy(), oof["y_pred"].to_numpy(), labels=classes)
    return ModelCV(kind, classes, folds, summary, pd.Series(auc, name="roc_auc"),
                   pd.DataFrame(cm, index=pd.Index(classes, name="true"),
                                columns=pd.Index(classes, name="predicted")), oof)
