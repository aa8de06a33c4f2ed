"""Subtype classifiers, permutation importance and the one-vs-rest multi-label mode.

Patient-level cross-validation lives in `cv` (which imports this module, never the reverse).

Pipeline (`build_pipeline`), every step fitted on the training rows only:
    [ComBat across cohorts] -> SimpleImputer(median) -> VarianceThreshold(0)
    -> CorrelationFilter(|r| > 0.95) -> StandardScaler -> [SelectTopK(f_classif, k)] -> classifier

Classifiers: `mlp` (the study's "lightweight MLP"; the study gives no sizes, so two hidden
layers 64-32, ReLU, L2 alpha 1e-2, L-BFGS, which converges in well under a second on ~100
patients), `logreg` (multinomial, balanced class weights), `rf` (200 trees, balanced class
weights), `majority` (DummyClassifier most_frequent, the baseline; never calibrated).

Calibration: the classifier step (not the whole pipeline) is wrapped in
`CalibratedClassifierCV(method="sigmoid")` with cv = min(3, smallest class count in the
training rows); below 2 it stays uncalibrated (`calibration_cv_ == 0`). Wrapping only the
classifier keeps one fitted preprocessing chain whose `get_feature_names_out` names the
features; the cost is that the calibration's inner folds see preprocessing (and the
supervised SelectTopK) fitted on the whole training fold, never on validation rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import NotFittedError
from sklearn.feature_selection import SelectorMixin, VarianceThreshold, f_classif
from sklearn.impute import SimpleImputer
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import precision_recall_curve
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted, validate_data
from threadpoolctl import threadpool_limits

from gbm_assets.lib.classify.harmonize import HARMONIZE, ComBat

KINDS: tuple[str, ...] = ("mlp", "logreg", "rf", "majority")


class CorrelationFilter(SelectorMixin, BaseEstimator):
    """Drop the later feature of every pair with |Pearson r| > `threshold` (first one kept).

    Input (n_rows, n_features) without NaN; a column with no variance correlates with nothing.
    """

    def __init__(self, threshold: float = 0.95):
        self.threshold = threshold

    def fit(self, X, y=None):
        X = validate_data(self, X, dtype=float)
        keep = np.ones(X.shape[1], dtype=bool)
        if X.shape[1] > 1 and X.shape[0] > 1:
            with np.errstate(invalid="ignore", divide="ignore"):
                r = np.nan_to_num(np.abs(np.corrcoef(X, rowvar=False)), nan=0.0)
            later = np.triu(np.ones_like(r, dtype=bool), k=1)
            high = (r > self.threshold) & later
            for j in range(X.shape[1]):
                if keep[j]:
                    keep &= ~high[j]
        self.support_ = keep
        return self

    def _get_support_mask(self):
        check_is_fitted(self, "support_")
        return self.support_


class SelectTopK(SelectorMixin, BaseEstimator):
    """SelectKBest(f_classif) that keeps all features when fewer than `k` remain."""

    def __init__(self, k: int = 20):
        self.k = k

    def fit(self, X, y):
        X = validate_data(self, X, dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):
            scores, _ = f_classif(X, y)
        self.scores_ = np.nan_to_num(scores, nan=0.0)
        order = np.argsort(-self.scores_, kind="stable")[: max(int(self.k), 1)]
        self.support_ = np.zeros(X.shape[1], dtype=bool)
        self.support_[order] = True
        return self

    def _get_support_mask(self):
        check_is_fitted(self, "support_")
        return self.support_


class SigmoidCalibrated(ClassifierMixin, BaseEstimator):
    """Sigmoid-calibrate `estimator` with cv = min(`max_cv`, smallest class count); < 2: none."""

    def __init__(self, estimator=None, max_cv: int = 3):
        self.estimator = estimator
        self.max_cv = max_cv

    def fit(self, X, y):
        smallest = int(pd.Series(np.asarray(y)).value_counts().min())
        self.calibration_cv_ = min(self.max_cv, smallest) if smallest >= 2 else 0
        if self.calibration_cv_:
            self.model_ = CalibratedClassifierCV(clone(self.estimator), method="sigmoid", cv=self.calibration_cv_)
        else:
            self.model_ = clone(self.estimator)
        self.model_.fit(X, y)
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, X):
        return self.model_.predict_proba(X)

    def predict(self, X):
        return self.model_.predict(X)


def _classifier(kind: str, seed: int):
    if kind == "mlp":
        return MLPClassifier(hidden_layer_sizes=(64, 32), solver="lbfgs", alpha=1e-2, max_iter=2000, random_state=seed)
    if kind == "logreg":
        return LogisticRegression(C=1.0, class_weight="balanced", max_iter=5000, random_state=seed)
    if kind == "rf":
        return RandomForestClassifier(n_estimators=200, class_weight="balanced", min_samples_leaf=2,
                                      random_state=seed, n_jobs=1)
    if kind == "majority":
        return DummyClassifier(strategy="most_frequent")
    raise ValueError(f"unknown model kind {kind!r}; known: {', '.join(KINDS)}")


def build_pipeline(kind: str, seed: int = 0, select_k: int | None = None, calibrate: bool = True,
                   harmonize: str = "none") -> Pipeline:
    """An unfitted pipeline (see module docstring) for one model kind.

    Args:
        kind: one of `KINDS`.
        seed: random state of the classifier.
        select_k: keep the k best features by ANOVA F (all when fewer remain); None keeps all.
        calibrate: wrap the classifier in `SigmoidCalibrated` (ignored for `majority`).
        harmonize: "combat" puts `harmonize.ComBat` first (batch = cohort, from X's index
            `<cohort>/<patient_id>`), fitted with the rest on the training rows only; "none" does not.

    Raises:
        ValueError: unknown kind or harmonize, or select_k < 1.
    """
    clf = _classifier(kind, seed)
    if select_k is not None and int(select_k) < 1:
        raise ValueError(f"select_k must be >= 1 or None, got {select_k}")
    if harmonize not in HARMONIZE:
        raise ValueError(f"harmonize must be one of {', '.join(HARMONIZE)}, got {harmonize!r}")
    steps = [("harmonize", ComBat())] if harmonize == "combat" else []
    steps += [
        ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
        ("drop_constant", VarianceThreshold(0.0)),
        ("drop_correlated", CorrelationFilter(0.95)),
        ("scale", StandardScaler()),
    ]
    if select_k is not None:
        steps.append(("select", SelectTopK(int(select_k))))
    steps.append(("classifier", SigmoidCalibrated(clf) if calibrate and kind != "majority" else clf))
    return Pipeline(steps)


def selected_features(pipeline: Pipeline) -> list[str]:
    """Names of the features that reach the classifier of a fitted pipeline (fitted on a DataFrame)."""
    return list(pipeline[:-1].get_feature_names_out())


def permutation_importance_top(pipeline: Pipeline, X: pd.DataFrame, y, k: int = 20, seed: int = 0,
                               *, n_repeats: int = 10, test_size: float = 0.25) -> pd.DataFrame:
    """Top-k input features by permutation importance (drop in balanced accuracy) on held-out rows.

    If `pipeline` is already fitted, `X, y` must be rows it was not fitted on. If it is not
    fitted, a clone is fitted on a stratified (1 - test_size) split and scored on the rest.

    For a `build_pipeline` pipeline the columns are permuted after preprocessing, in front of
    the classifier: every step there acts column by column or keeps/drops whole columns, so
    permuting a kept column there equals permuting the input column, and is thousands of
    times cheaper than re-running the preprocessing. Features the pipeline dropped (constant,
    correlated with a kept one, not selected) have importance exactly 0 and are not listed.
    Any other estimator has its input columns permuted.

    Returns:
        DataFrame (<= k rows): feature, importance_mean, importance_std, sorted by mean,
        descending. Empty X gives an empty frame.
    """
    cols = ["feature", "importance_mean", "importance_std"]
    if len(X) == 0 or X.shape[1] == 0:
        return pd.DataFrame(columns=cols)
    y = np.asarray(y)
    with threadpool_limits(limits=1, user_api="blas"):  # tiny matrices: BLAS threads only cost time
        try:
            check_is_fitted(pipeline)
            model, X_eval, y_eval = pipeline, X, y
        except NotFittedError:
            X_fit, X_eval, y_fit, y_eval = train_test_split(X, y, test_size=test_size, stratify=y, random_state=seed)
            model = clone(pipeline).fit(X_fit, y_fit)
        if isinstance(model, Pipeline) and len(model) > 1:
            names, Z, final = list(model[:-1].get_feature_names_out()), model[:-1].transform(X_eval), model[-1]
        else:
            names = list(X.columns) if hasattr(X, "columns") else [f"x{i}" for i in range(X.shape[1])]
            Z, final = X_eval, model
        res = permutation_importance(final, Z, y_eval, scoring="balanced_accuracy", n_repeats=n_repeats,
                                     random_state=seed, n_jobs=1)
    out = pd.DataFrame({"feature": names, "importance_mean": res.importances_mean,
                        "importance_std": res.importances_std})
    return out.sort_values("importance_mean", ascending=False, kind="stable").head(k).reset_index(drop=True)


def _proba_frame(probas, classes) -> pd.DataFrame:
    if isinstance(probas, pd.DataFrame):
        return probas.loc[:, list(classes)] if classes is not None else probas
    probas = np.asarray(probas, dtype=float)
    if classes is None or probas.ndim != 2 or probas.shape[1] != len(classes):
        raise ValueError(f"probas shape {probas.shape} does not match classes {classes}")
    return pd.DataFrame(probas, columns=list(classes))


def multilabel_predict(probas, classes, thresholds, at_least_one: bool = True) -> pd.DataFrame:
    """One-vs-rest multi-label subtypes: class c is called when P(c) >= its threshold.

    Args:
        probas: (n_rows, n_classes) array or DataFrame with class columns.
        classes: column order (required for arrays; for a DataFrame None keeps its columns).
        thresholds: one float for all classes, or a mapping/Series class -> threshold.
        at_least_one: a row that passes no threshold gets its most probable class.

    Returns:
        Boolean DataFrame (n_rows, n_classes), index of a DataFrame input kept. 0 rows -> 0 rows.
    """
    P = _proba_frame(probas, classes)
    if np.isscalar(thresholds):
        t = pd.Series(float(thresholds), index=P.columns)
    else:
        t = pd.Series(thresholds, dtype=float)
        if set(P.columns) - set(t.index):
            raise ValueError(f"no threshold for classes {sorted(set(P.columns) - set(t.index), key=str)}")
        t = t.reindex(P.columns)
    calls = P.ge(t, axis=1)
    if at_least_one and len(P):
        none = ~calls.any(axis=1)
        if none.any():
            best = P.loc[none].to_numpy().argmax(axis=1)
            arr = calls.to_numpy()
            arr[np.flatnonzero(none.to_numpy()), best] = True
            calls = pd.DataFrame(arr, index=P.index, columns=P.columns)
    return calls.astype(bool)


def fit_thresholds(oof_probas, y, classes=None) -> pd.Series:
    """Per-class threshold maximising that class's one-vs-rest F1 on out-of-fold probabilities.

    Args:
        oof_probas: (n_rows, n_classes) array (then `classes` required) or DataFrame.
        y: (n_rows,) true labels.

    Returns:
        Series class -> threshold (a probability attained in the data; predict with >=).
        A class absent from y gets 0.5.
    """
    P = _proba_frame(oof_probas, classes)
    y = np.asarray(y)
    if len(y) != len(P):
        raise ValueError(f"{len(P)} probability rows but {len(y)} labels")
    out = {}
    for c in P.columns:
        truth = y == c
        if not truth.any():
            out[c] = 0.5
            continue
        prec, rec, thr = precision_recall_curve(truth, P[c].to_numpy())
        with np.errstate(invalid="ignore", divide="ignore"):
            f1 = np.nan_to_num(2 * prec[:-1] * rec[:-1] / (prec[:-1] + rec[:-1]))
        out[c] = float(thr[int(np.argmax(f1))])
    return pd.Series(out, name="threshold")

