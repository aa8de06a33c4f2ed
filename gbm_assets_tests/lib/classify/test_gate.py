"""The champion gate: paired per-fold scores on the same folds, re-cross-validation on other folds."""

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification

from gbm_assets.lib.classify.gate import (
    PAIRED,
    RECROSSVALIDATED,
    beats_champion,
    champion_on_folds,
)
from gbm_assets.lib.classify.training import compare_fold_scores, train_classifier
from gbm_assets.lib.contract import SUBTYPES


def _data(n=24, seed=0):
    X, y = make_classification(n_samples=n, n_features=6, n_informative=4, n_classes=4, n_clusters_per_class=1,
                               random_state=seed)
    return pd.DataFrame(X, columns=[f"f{i}" for i in range(6)], index=[f"c/p{i}" for i in range(n)]), \
        np.asarray(SUBTYPES, dtype=object)[y]


@pytest.fixture(scope="module")
def trained():
    X, y = _data()
    return X, y, train_classifier(X, y, ["mlp"], n_splits=3, n_repeats=1, seed=0, top_k=2)


def test_same_folds_use_the_logged_scores(trained):
    X, y, t = trained
    logged = [0.1, 0.2, 0.3]
    scores, method = champion_on_folds(logged, t.folds_sha256, {}, t.folds_sha256, X, y, n_splits=3, n_repeats=1, seed=0)
    assert (scores, method) == (logged, PAIRED)


def test_other_folds_recross_validate_the_champion_settings(trained):
    X, y, t = trained
    scores, method = champion_on_folds([0.1], "other", {"select_k": "None"}, t.folds_sha256, X, y,
                                       n_splits=3, n_repeats=1, seed=0)
    assert method == RECROSSVALIDATED and scores == pytest.approx(t.fold_scores("mlp"))  # same settings, same folds


def test_a_changed_table_is_refused(trained):
    X, y, t = trained
    with pytest.raises(ValueError, match="retrain first"):
        champion_on_folds([], "", {}, t.folds_sha256, X.iloc[::-1], y[::-1], n_splits=3, n_repeats=1, seed=0)


def test_fingerprint_changes_with_folds_and_labels():
    X, y = _data()
    a = train_classifier(X, y, ["mlp"], n_splits=3, n_repeats=1, seed=0, top_k=2).folds_sha256
    assert a == train_classifier(X, y, ["mlp"], n_splits=3, n_repeats=1, seed=0, top_k=2).folds_sha256
    assert a != train_classifier(X, y, ["mlp"], n_splits=3, n_repeats=1, seed=1, top_k=2).folds_sha256


def test_only_a_strictly_better_mean_beats_the_champion():
    assert beats_champion([0.6, 0.7], [0.5, 0.6])[0]
    assert not beats_champion([0.6, 0.6], [0.6, 0.6])[0]
    assert compare_fold_scores([0.6, 0.4], [0.5, 0.5])["candidate_wins"] == 1
    with pytest.raises(ValueError, match="not paired"):
        compare_fold_scores([0.5], [0.5, 0.5])
