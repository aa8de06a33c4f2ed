"""ComBat harmonisation of radiomic features across cohorts, as a scikit-learn step fitted inside each fold.

Batch = cohort, read from the row labels `"<cohort>/<patient_id>"` (the index `tables.training_matrix`
gives and the predictions asset sets), so the step needs nothing beside X and sits first in the
pipeline: `cv.fit_fold` fits it on the training rows only, and held-out rows are transformed with
that fit (a test perturbs held-out rows and finds the fold's fit unchanged).

Fit: `neuroCombat.neuroCombat` (Fortin et al. 2017/2018; parametric empirical Bayes; MIT licence,
pinned 0.2.12) on the training rows. Apply: our own few lines (`apply_combat`), the formula of
`neuroCombat.neuroCombatFromTraining`, cross-checked against both in the tests. Not that function
itself: it is marked "under development", prints to stdout, and refuses batches absent from the fit.

What ComBat cannot take is handled here: missing values are filled with the training medians for
the fit and put back as NaN afterwards (the pipeline's imputer then fills them); features constant in
the training rows are passed through; batches with fewer than two training rows are not fitted.
A batch not fitted (a new cohort at prediction time, or one held out whole) is mapped onto the
training grand mean and pooled variance by its own location and scale when it has two rows or
more (the usual "new site" step, no shrinkage), else passed through; both cases warn.
"""

from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

HARMONIZE = ("none", "combat")


UNLABELLED = "(rows without a cohort label)"
"""The batch `transform` gives rows whose labels name no cohort (e.g. a request to an MLflow-served model)."""


def batches_of(X, strict: bool = True) -> np.ndarray:
    """Each row's batch (cohort): the part before the first "/" of its index label.

    With `strict=False` (transform), rows without such a label form one batch, `UNLABELLED`, that is
    treated like a cohort absent from the fit.

    Raises:
        ValueError: strict, and X has no such labels (an array, or an index without "/").
    """
    index = getattr(X, "index", None)
    labels = [str(i) for i in index] if index is not None else []
    if strict and (index is None or (labels and not all("/" in s for s in labels))):
        raise ValueError(f"ComBat needs a DataFrame indexed '<cohort>/<patient_id>' (the batch is the cohort); "
                         f"got e.g. {labels[:3]}")
    if index is None:
        return np.array([UNLABELLED] * len(X), dtype=object)
    return np.array([s.split("/", 1)[0] if "/" in s else UNLABELLED for s in labels], dtype=object)


def fit_combat(data: np.ndarray, batches: np.ndarray) -> dict:
    """neuroCombat's estimates on `data` (n_rows, n_features; no NaN, no constant column), batch per row.

    Returns:
        {"batches": [...], "stand_mean": (n_features,), "var_pooled": (n_features,),
         "gamma_star": (n_batches, n_features), "delta_star": (n_batches, n_features), "data": harmonised data}.
    """
    from neuroCombat import neuroCombat

    covars = pd.DataFrame({"batch": np.asarray(batches, dtype=str)})
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = neuroCombat(dat=np.asarray(data, float).T, covars=covars, batch_col="batch")
    est = out["estimates"]
    return {"batches": [str(b) for b in est["batches"]], "stand_mean": np.asarray(est["stand.mean"])[:, 0].copy(),
            "var_pooled": np.asarray(est["var.pooled"]).ravel().copy(), "gamma_star": np.asarray(est["gamma.star"]),
            "delta_star": np.asarray(est["delta.star"]), "data": np.asarray(out["data"]).T}


def apply_combat(data: np.ndarray, batch_index: np.ndarray, stand_mean, var_pooled, gamma_star, delta_star) -> np.ndarray:
    """Harmonise rows of `data` (n_rows, n_features) whose batch is row `batch_index[i]` of gamma/delta."""
    sd = np.sqrt(var_pooled)
    z = (np.asarray(data, float) - stand_mean) / sd
    z = (z - gamma_star[batch_index]) / np.sqrt(delta_star[batch_index])
    return z * sd + stand_mean


class ComBat(TransformerMixin, BaseEstimator):
    """ComBat across cohorts (see module docstring). Input: a DataFrame indexed `<cohort>/<patient_id>`."""

    def fit(self, X, y=None):
        batches = batches_of(X)
        A = np.asarray(X, dtype=float)
        self.n_features_in_ = A.shape[1]
        if hasattr(X, "columns"):
            self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            self.medians_ = np.nan_to_num(np.nanmedian(A, axis=0), nan=0.0) if len(A) else np.zeros(A.shape[1])
        filled = np.where(np.isnan(A), self.medians_, A)
        counts = pd.Series(batches).value_counts()
        fitted = sorted(b for b, n in counts.items() if n >= 2)
        rows = np.isin(batches, fitted)
        self.columns_ = np.flatnonzero(filled[rows].std(axis=0) > 1e-12) if rows.any() else np.array([], int)
        self.batches_ = fitted if len(fitted) >= 2 and len(self.columns_) else []
        if not self.batches_:
            warnings.warn(f"ComBat: {len(fitted)} cohort(s) with two or more training rows; nothing to harmonise",
                          stacklevel=2)
            return self
        est = fit_combat(filled[rows][:, self.columns_], batches[rows])
        order = [est["batches"].index(b) for b in self.batches_]
        self.stand_mean_, self.var_pooled_ = est["stand_mean"], est["var_pooled"]
        self.gamma_star_, self.delta_star_ = est["gamma_star"][order], est["delta_star"][order]
        return self

    def transform(self, X):
        check_is_fitted(self, "medians_")
        batches = batches_of(X, strict=False)
        A = np.asarray(X, dtype=float)
        missing = np.isnan(A)
        out = np.where(missing, self.medians_, A)
        if self.batches_:
            cols = self.columns_
            block = out[:, cols]
            known = np.isin(batches, self.batches_)
            if known.any():
                index = np.array([self.batches_.index(b) for b in batches[known]])
                block[known] = apply_combat(block[known], index, self.stand_mean_, self.var_pooled_,
                                            self.gamma_star_, self.delta_star_)
            for b in sorted(set(batches[~known])):
                sel = batches == b
                if sel.sum() < 2:
                    warnings.warn(f"ComBat: cohort {b!r} was not in the fit and has one row; left unharmonised", stacklevel=2)
                    continue
                warnings.warn(f"ComBat: cohort {b!r} was not in the fit; mapped by its own location and scale", stacklevel=2)
                mu, sd = block[sel].mean(axis=0), block[sel].std(axis=0, ddof=1)
                sd = np.where(sd > 1e-12, sd, 1.0)
                block[sel] = (block[sel] - mu) / sd * np.sqrt(self.var_pooled_) + self.stand_mean_
            out[:, cols] = block
        out[missing] = np.nan
        return pd.DataFrame(out, index=X.index, columns=X.columns) if hasattr(X, "columns") else out

    def get_feature_names_out(self, input_features=None):
        check_is_fitted(self, "medians_")
        if input_features is not None:
            return np.asarray(input_features, dtype=object)
        return getattr(self, "feature_names_in_", np.array([f"x{i}" for i in range(self.n_features_in_)], dtype=object))
