"""Pipelines, leakage-free patient-level cross-validation, importance, multi-label mode, plots."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.datasets import make_classification
from sklearn.dummy import DummyClassifier
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from gbm_assets.lib.classify.cv import cross_validate_models, fit_fold, make_splits
from gbm_assets.lib.classify.model import (
    KINDS,
    CorrelationFilter,
    build_pipeline,
    fit_thresholds,
    multilabel_predict,
    permutation_importance_top,
    selected_features,
)
from gbm_assets.lib.classify.plots import (
    confusion_matrix_png,
    roc_curves_png,
    top_features_png,
)
from gbm_assets.lib.contract import SUBTYPES

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def single_blas_thread():
    """Direct fits below on ~100 rows: BLAS threads only slow them down on shared cores."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def synthetic(n: int = 120, n_features: int = 20, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """4 separable-with-noise classes named after the subtypes; informative features first."""
    X, y = make_classification(n_samples=n, n_features=n_features, n_informative=6, n_redundant=2, n_classes=4,
                               n_clusters_per_class=1, class_sep=2.0, flip_y=0.05, shuffle=False, random_state=seed)
    X = pd.DataFrame(X, columns=[f"f{i:02d}" for i in range(n_features)], index=[f"P{i:03d}" for i in range(n)])
    return X, np.asarray(SUBTYPES, dtype=object)[y]


class FitSpy(TransformerMixin, BaseEstimator):
    """Pass-through transformer recording the row labels it was fitted on."""

    def __init__(self, log: list):
        self.log = log

    def fit(self, X, y=None):
        self.log.append(list(X.index))
        return self

    def transform(self, X):
        return X


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_fits_and_gives_probabilities(kind):
    X, y = synthetic(60)
    model = build_pipeline(kind, seed=0).fit(X, y)
    p = model.predict_proba(X.iloc[:5])
    assert p.shape == (5, 4) and np.allclose(p.sum(axis=1), 1.0)
    assert set(model.classes_) == set(SUBTYPES)


def test_preprocessing_drops_constant_and_correlated_features_by_name():
    X, y = synthetic(60)
    X["f00_twice"] = 2 * X["f00"] + 1  # |r| = 1 with f00: the later one goes
    X["flat"] = 3.0
    X["all_nan"] = np.nan
    model = build_pipeline("logreg", select_k=None).fit(X, y)
    kept = selected_features(model)
    assert "f00" in kept and "f00_twice" not in kept and "flat" not in kept and "all_nan" not in kept
    few = build_pipeline("logreg", select_k=3).fit(X, y)
    assert len(selected_features(few)) == 3
    assert len(selected_features(build_pipeline("logreg", select_k=500).fit(X, y))) == len(kept)  # k > n: all


def test_correlation_filter_keeps_first_of_each_correlated_pair():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=50), rng.normal(size=50)
    X = np.column_stack([a, b, a + 1e-3 * rng.normal(size=50), -b])
    assert CorrelationFilter(0.95).fit(X).get_support().tolist() == [True, True, False, False]


def test_splits_are_patient_level_and_cover_every_row():
    _, y = synthetic(60)
    splits, k = make_splits(y, n_splits=5, n_repeats=2, seed=1)
    assert k == 5 and len(splits) == 10
    for r in range(2):
        vals = [va for rr, _, tr, va in splits if rr == r]
        assert sorted(np.concatenate(vals)) == list(range(60))  # every patient validated once per repeat
    for _, _, tr, va in splits:
        assert not set(tr) & set(va)


def test_grouped_splits_never_put_a_patient_on_both_sides():
    X, y = synthetic(60)
    patients = np.repeat(np.arange(30), 2)  # two rows (e.g. two ROI sources) per patient
    y = y[::2].repeat(2)
    results = cross_validate_models(X, y, kinds=["majority"], n_splits=3, n_repeats=2, seed=0, groups=patients)
    for _, _, tr, va in results.splits:
        assert not set(patients[tr]) & set(patients[va])
    with pytest.raises(ValueError, match="more than one label"):
        make_splits(y, groups=np.zeros(len(y)))


def test_pipeline_is_fitted_on_training_rows_only():
    X, y = synthetic(40)
    log: list = []

    def factory(kind, seed):
        return Pipeline([("spy", FitSpy(log)), ("clf", DummyClassifier(strategy="prior"))])

    results = cross_validate_models(X, y, kinds=["spy"], n_splits=4, n_repeats=2, seed=0, pipeline_factory=factory)
    assert len(log) == len(results.splits) == 8
    for fitted_on, (_, _, tr, va) in zip(log, results.splits):
        assert fitted_on == list(X.index[tr])  # exactly the training rows ...
        assert not set(fitted_on) & set(X.index[va])  # ... and never a validation row


def test_fit_fold_scaler_learns_the_training_fold_mean():
    X, y = synthetic(60)
    (_, _, tr, _), *_ = make_splits(y, n_splits=3, n_repeats=1)[0]
    model = fit_fold(build_pipeline("logreg", seed=0), X.iloc[tr], y[tr])
    kept = selected_features(model)
    assert np.allclose(model.named_steps["scale"].mean_, X.iloc[tr][kept].mean().to_numpy())
    assert not np.allclose(model.named_steps["scale"].mean_, X[kept].mean().to_numpy())


def test_folds_reduced_with_warning_and_refused_below_minimum():
    y = np.array(["Classical"] * 6 + ["Neural"] * 3)
    with pytest.warns(UserWarning, match="using 3 folds instead of 5"):
        splits, k = make_splits(y, n_splits=5, n_repeats=1)
    assert k == 3 and len(splits) == 3
    with pytest.raises(ValueError, match=r"at least 2 .*Neural"):
        make_splits(np.array(["Classical"] * 9 + ["Neural"]), n_splits=5)
    with pytest.raises(ValueError, match="at least 8 patients"):
        make_splits(np.array(["Classical"] * 4 + ["Neural"] * 3))
    with pytest.raises(ValueError, match="no label"):
        make_splits(np.array(["Classical"] * 5 + [None] * 5, dtype=object))


def test_mlp_beats_the_majority_baseline_on_a_separable_synthetic_set():
    X, y = synthetic(120)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no convergence or calibration warnings either
        results = cross_validate_models(X, y, kinds=["mlp", "logreg", "majority"], n_splits=5, n_repeats=1, seed=0)
    table = results.summary_table().set_index("model")
    mlp, base = table.loc["mlp", "balanced_accuracy_mean"], table.loc["majority", "balanced_accuracy_mean"]
    assert base == pytest.approx(0.25)
    assert mlp > 0.6 and mlp - base > 0.3
    assert table.loc["logreg", "balanced_accuracy_mean"] - base > 0.2
    m = results.models["mlp"]
    assert list(m.auc.index) == list(SUBTYPES) and (m.auc > 0.75).all()
    assert m.confusion.to_numpy().sum() == 120 and list(m.confusion.index) == list(SUBTYPES)
    assert len(m.oof) == 120 and np.allclose(m.oof[list(SUBTYPES)].sum(axis=1), 1.0)
    assert len(m.folds) == 5 and {"accuracy", "balanced_accuracy", "f1_macro"} <= set(m.folds.columns)


def test_integer_labels_and_array_input_work():
    X, y = make_classification(n_samples=40, n_features=6, n_informative=3, n_classes=3, n_clusters_per_class=1,
                               random_state=0)
    results = cross_validate_models(X, y, kinds=["logreg"], n_splits=3, n_repeats=1)
    m = results.models["logreg"]
    assert results.classes == [0, 1, 2] and list(m.confusion.columns) == [0, 1, 2]
    assert m.oof["y_pred"].isin([0, 1, 2]).all() and m.summary["balanced_accuracy_mean"] > 0.5


def test_permutation_importance_finds_the_informative_features():
    X, y = synthetic(120, n_features=12)
    top = permutation_importance_top(build_pipeline("logreg", seed=0), X, y, k=5, seed=0, n_repeats=5)
    assert list(top.columns) == ["feature", "importance_mean", "importance_std"] and len(top) == 5
    assert set(top.feature[:3]) <= {f"f{i:02d}" for i in range(8)}  # informative + redundant come first
    assert top.importance_mean.is_monotonic_decreasing
    X["f00_copy"] = X["f00"]  # dropped by the correlation filter: importance 0, not listed
    fit_rows, eval_rows = np.arange(120) % 4 != 0, np.arange(120) % 4 == 0  # synthetic() rows are class-sorted
    fitted = build_pipeline("logreg", seed=0).fit(X[fit_rows], y[fit_rows])
    held_out = permutation_importance_top(fitted, X[eval_rows], y[eval_rows], k=50, seed=0, n_repeats=3)
    assert "f00_copy" not in set(held_out.feature) and len(held_out) == X.shape[1] - 1


def test_multilabel_predict_thresholds_per_class():
    P = np.array([[0.6, 0.3, 0.05, 0.05], [0.45, 0.45, 0.05, 0.05], [0.1, 0.1, 0.1, 0.7], [0.3, 0.3, 0.2, 0.2]])
    calls = multilabel_predict(P, SUBTYPES, {"Classical": 0.4, "Mesenchymal": 0.4, "Proneural": 0.5, "Neural": 0.5})
    assert calls.shape == (4, 4) and list(calls.columns) == list(SUBTYPES) and calls.dtypes.eq(bool).all()
    assert calls.iloc[0].tolist() == [True, False, False, False]
    assert calls.iloc[1].tolist() == [True, True, False, False]  # mixed signature: two subtypes
    assert calls.iloc[3].tolist() == [True, False, False, False]  # nothing passes -> argmax
    assert calls.iloc[3].sum() == 1
    strict = multilabel_predict(P, SUBTYPES, 0.9, at_least_one=False)
    assert not strict.any().any()
    with pytest.raises(ValueError, match="no threshold"):
        multilabel_predict(P, SUBTYPES, {"Classical": 0.5})
    assert multilabel_predict(np.zeros((0, 4)), SUBTYPES, 0.5).shape == (0, 4)


def test_fit_thresholds_maximises_per_class_f1():
    y = np.array(["Classical"] * 4 + ["Neural"] * 4)
    P = pd.DataFrame({"Classical": [0.9, 0.8, 0.35, 0.3, 0.2, 0.1, 0.1, 0.05]})
    P["Neural"] = 1 - P["Classical"]
    t = fit_thresholds(P, y)
    assert t["Classical"] == pytest.approx(0.3)  # lowest score still only catching Classical rows
    assert t["Neural"] == pytest.approx(0.8)
    calls = multilabel_predict(P, None, t)
    assert (calls["Classical"].to_numpy() == (y == "Classical")).all()
    assert fit_thresholds(P.to_numpy(), np.array(["Classical"] * 8), classes=["Classical", "Neural"])["Neural"] == 0.5


def test_plots_return_png_bytes_and_write_files(tmp_path):
    X, y = synthetic(60)
    m = cross_validate_models(X, y, kinds=["logreg"], n_splits=3, n_repeats=1).models["logreg"]
    assert roc_curves_png(m.oof, m.classes, path=tmp_path / "roc.png").startswith(PNG)
    assert (tmp_path / "roc.png").read_bytes().startswith(PNG)
    assert confusion_matrix_png(m.confusion, normalise=True).startswith(PNG)
    imp = pd.DataFrame({"feature": ["a", "b"], "importance_mean": [0.2, 0.1], "importance_std": [0.01, 0.02]})
    assert top_features_png(imp).startswith(PNG)
    assert top_features_png(imp.iloc[:0]).startswith(PNG)
    assert roc_curves_png(m.oof.iloc[:0], m.classes).startswith(PNG)
