"""ComBat across cohorts: our apply step equals neuroCombat on the training data, and it is fitted inside
the folds (perturbing held-out rows leaves the fold's fit unchanged; a fit on all rows would not)."""

import contextlib
import io
import warnings

import numpy as np
import pandas as pd
import pytest

from gbm_assets.lib.classify.cv import cross_validate_models, make_splits
from gbm_assets.lib.classify.harmonize import (
    ComBat,
    apply_combat,
    batches_of,
    fit_combat,
)
from gbm_assets.lib.classify.model import build_pipeline


def cohorts_frame(seed: int = 0, n_per: int = 12, p: int = 5) -> tuple[pd.DataFrame, np.ndarray]:
    """Three cohorts with their own shift and scale per feature; labels shift feature 0."""
    rng = np.random.default_rng(seed)
    parts, ys = [], []
    for b, (shift, scale) in enumerate([(0.0, 1.0), (3.0, 2.0), (-2.0, 0.5)]):
        y = np.array(["a", "b"] * (n_per // 2), dtype=object)
        x = rng.normal(size=(n_per, p)) * scale + shift
        x[:, 0] += (y == "b") * 1.5
        parts.append(pd.DataFrame(x, columns=[f"f{i}" for i in range(p)], index=[f"c{b}/P{i}" for i in range(n_per)]))
        ys.append(y)
    return pd.concat(parts), np.concatenate(ys)


def test_fit_matches_neurocombat_and_its_apply_from_training():
    from neuroCombat import neuroCombat, neuroCombatFromTraining

    X, _ = cohorts_frame()
    batches = batches_of(X)
    est = fit_combat(X.to_numpy(), batches)
    index = np.array([est["batches"].index(b) for b in batches])
    ours = apply_combat(X.to_numpy(), index, est["stand_mean"], est["var_pooled"], est["gamma_star"], est["delta_star"])
    assert np.allclose(ours, est["data"], atol=1e-10)  # neuroCombat's own harmonised training data
    # and neuroCombat's own "from training" step, given its estimates
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = neuroCombat(dat=X.to_numpy().T, covars=pd.DataFrame({"batch": batches.astype(str)}), batch_col="batch")
        theirs = neuroCombatFromTraining(X.to_numpy().T, batches.astype(str), full["estimates"])["data"].T
    assert np.allclose(ours, theirs, atol=1e-10)


def test_transformer_removes_cohort_shifts_and_keeps_missing_values_missing():
    X, _ = cohorts_frame()
    X.iloc[3, 2] = np.nan
    Z = ComBat().fit(X).transform(X)
    means = Z.groupby(batches_of(Z)).mean()
    assert means.std().max() < 0.3 < X.groupby(batches_of(X)).mean().std().max()
    assert np.isnan(Z.iloc[3, 2]) and Z.index.equals(X.index)


def test_an_unseen_cohort_is_mapped_by_its_own_location_and_a_single_cohort_is_left_alone():
    X, _ = cohorts_frame()
    fit = ComBat().fit(X.loc[~X.index.str.startswith("c2/")])
    with pytest.warns(UserWarning, match="'c2' was not in the fit"):
        Z = fit.transform(X.loc[X.index.str.startswith("c2/")])
    assert np.allclose(Z.mean().to_numpy(), fit.stand_mean_, atol=1e-8)
    one = X.loc[X.index.str.startswith("c0/")]
    with pytest.warns(UserWarning, match="nothing to harmonise"):
        assert np.allclose(ComBat().fit(one).transform(one), one)
    with pytest.raises(ValueError, match="<cohort>/<patient_id>"):
        ComBat().fit(X.reset_index(drop=True))
    # rows that name no cohort (a request to an MLflow-served model) are one batch, absent from the fit
    with pytest.warns(UserWarning, match="rows without a cohort label"):
        served = fit.transform(X.loc[X.index.str.startswith("c2/")].reset_index(drop=True))
    assert np.allclose(served, Z)


def _fold_fits(X, y, leaky: bool) -> list[np.ndarray]:
    """CV of a ComBat pipeline; each fold's ComBat estimates (gamma, then the grand mean), in (repeat, fold)
    order. `leaky` fits ComBat on ALL rows once, before the CV (the mistake the test must catch)."""
    fitted = []

    def factory(kind, seed):
        fitted.append(build_pipeline(kind, seed=seed, harmonize="none" if leaky else "combat"))
        return fitted[-1]

    whole = ComBat().fit(X) if leaky else None
    cross_validate_models(whole.transform(X) if leaky else X, y, kinds=("logreg",), n_splits=3, n_repeats=1,
                          seed=0, pipeline_factory=factory)
    steps = [whole] * len(fitted) if leaky else [p["harmonize"] for p in fitted]
    return [np.concatenate([c.gamma_star_.ravel(), c.stand_mean_]) for c in steps]


def test_combat_is_fitted_inside_the_folds():
    """Perturb the held-out rows of fold 0: its fitted ComBat (and so its training transform) is unchanged."""
    X, y = cohorts_frame()
    splits, _ = make_splits(y, 3, 1, 0)
    _, _, _, val = splits[0]
    perturbed = X.copy()
    perturbed.iloc[val] = perturbed.iloc[val] * 10 + 100
    assert np.array_equal(_fold_fits(X, y, leaky=False)[0], _fold_fits(perturbed, y, leaky=False)[0])
    # the same comparison catches a fit on all rows (held-out rows included)
    assert not np.allclose(_fold_fits(X, y, leaky=True)[0], _fold_fits(perturbed, y, leaky=True)[0])


def test_pipeline_with_combat_cross_validates_and_rejects_unknown_options():
    X, y = cohorts_frame()
    cv = cross_validate_models(X, y, kinds=("logreg", "majority"), n_splits=3, n_repeats=1, harmonize="combat")
    assert cv.models["logreg"].summary["balanced_accuracy_mean"] > 0.6
    with pytest.raises(ValueError, match="harmonize must be one of"):
        build_pipeline("logreg", harmonize="zscore")
