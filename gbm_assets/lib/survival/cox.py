"""Penalised Cox proportional-hazards models on radiomic features plus age, cross-validated by subject.

`survival_table` joins wide radiomic features with the clinical table (one row per subject: a
longitudinal subject's earliest time point, whose survival is counted from that scan);
`cross_validated_cox` fits a penalised Cox model (lifelines `CoxPHFitter`, elastic net) in
subject-grouped K folds and scores the out-of-fold risks:

    harrell_c         Harrell's concordance of the pooled out-of-fold risks (`harrell_c`);
    uno_c, mean_auc, integrated_brier
                      Uno's IPCW concordance, the mean cumulative/dynamic AUC and the integrated
                      Brier score over `eval_times` (scikit-survival, per fold, averaged), NaN
                      when scikit-survival is not installed or a fold's times fall outside its
                      follow-up.

Everything fitted (median imputation, standardisation, the top-k univariate feature choice) is fitted
on the training folds only. Events: the `event` column; when no patient has one (no vital status in
the clinical table) every survival time counts as a death, as in `survival_view`. A model is
skipped, with a reason, when there are fewer than `min_patients` patients or `min_events` events.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold

from gbm_assets.lib.ingest.layouts.longitudinal import split_timepoint_id

ID_COLUMNS = ("cohort", "patient_id", "roi_source", "subject", "survival_months", "event")
CLINICAL_FEATURES = ("age", "idh_mutant", "idh_known")


def harrell_c(time, risk, event) -> float:
    """Harrell's C: among comparable pairs (i had the event and a shorter time than j, or the same time
    with j censored), the share with
    risk_i > risk_j, risk ties counting one half. Equals lifelines' `concordance_index(time, -risk,
    event)`. NaN when no pair is comparable. Arrays of equal length n."""
    t, r, e = (np.asarray(a, float) for a in (time, risk, event))
    event_i = e[:, None] > 0
    shorter = event_i & ((t[:, None] < t[None, :]) | ((t[:, None] == t[None, :]) & (e[None, :] == 0)))
    n = shorter.sum()
    if n == 0:
        return float("nan")
    diff = r[:, None] - r[None, :]
    return float(((diff > 0) & shorter).sum() + 0.5 * ((diff == 0) & shorter).sum()) / float(n)


def survival_table(wide: pd.DataFrame, clinical: pd.DataFrame, roi_source: str) -> pd.DataFrame:
    """Per subject: ID_COLUMNS, age, idh_mutant (1/0, 0 when unknown), idh_known, then the feature columns.

    Args:
        wide: `radiomic_features_wide` rows (cohort, patient_id, roi_source, feature columns).
        clinical: `clinical_records` rows (cohort, patient_id, survival_months, event, idh_status, age).
    Patients without a survival time are left out. Empty inputs give an empty table.
    """
    clin = clinical.loc[pd.to_numeric(clinical.get("survival_months"), errors="coerce").notna()].copy() if len(clinical) else clinical
    if wide.empty or clin.empty:
        return pd.DataFrame(columns=[*ID_COLUMNS, *CLINICAL_FEATURES])
    feats = wide.loc[wide["roi_source"] == roi_source].drop_duplicates(["cohort", "patient_id"])
    feature_cols = [c for c in feats.columns if c not in ("cohort", "patient_id", "roi_source") and pd.api.types.is_numeric_dtype(feats[c])]
    clin = clin.assign(patient_id=clin["patient_id"].astype(str), survival_months=pd.to_numeric(clin["survival_months"], errors="coerce"))
    event = pd.to_numeric(clin["event"].astype(object), errors="coerce") if "event" in clin else pd.Series(np.nan, index=clin.index)
    clin["event"] = event.fillna(1.0) if event.isna().all() else event
    clin = clin[clin["event"].notna()]
    idh = clin["idh_status"] if "idh_status" in clin else pd.Series(np.nan, index=clin.index)
    clin = clin.assign(age=pd.to_numeric(clin.get("age"), errors="coerce"), idh_mutant=(idh == "mutant").astype(float),
                       idh_known=idh.notna().astype(float))
    table = clin[["cohort", "patient_id", "survival_months", "event", *CLINICAL_FEATURES]].merge(
        feats[["cohort", "patient_id", "roi_source", *feature_cols]].assign(patient_id=lambda d: d["patient_id"].astype(str)),
        on=["cohort", "patient_id"], how="inner")
    parsed = table["patient_id"].map(split_timepoint_id)
    table["subject"] = [f"{c}/{p[0] if p else pid}" for c, pid, p in zip(table["cohort"], table["patient_id"], parsed)]
    table["_order"] = [(p[2], p[3]) if p else (0, 0) for p in parsed]
    table = table.sort_values(["subject", "_order"]).drop_duplicates("subject").drop(columns="_order")
    return table[[*ID_COLUMNS, *CLINICAL_FEATURES, *feature_cols]].reset_index(drop=True)


@dataclass
class CoxResult:
    """Outcome of one cross-validated model: `status` ok or skipped (with `reason`), metrics, out-of-fold risks."""

    name: str
    status: str
    reason: str = ""
    metrics: dict = field(default_factory=dict)
    risk: np.ndarray | None = None
    coefficients: pd.Series | None = None

    def row(self) -> dict:
        return {"model": self.name, "status": self.status, "reason": self.reason, **self.metrics}


def _prepare(train: pd.DataFrame, test: pd.DataFrame, top_k: int | None, time, event):
    med = train.median(numeric_only=True)
    tr, te = train.fillna(med).fillna(0.0), test.fillna(med).fillna(0.0)
    sd = tr.std(ddof=0)
    keep = sd.index[sd > 1e-12]
    mean = tr[keep].mean()
    tr, te = (tr[keep] - mean) / sd[keep], (te[keep] - mean) / sd[keep]
    if top_k is not None and tr.shape[1] > top_k:
        strength = {c: abs(harrell_c(time, tr[c].to_numpy(), event) - 0.5) for c in tr.columns}
        best = sorted(strength, key=lambda c: (-np.nan_to_num(strength[c]), c))[:top_k]
        tr, te = tr[best], te[best]
    return tr, te


def _sksurv_metrics(t_tr, e_tr, t_te, e_te, risk, surv_fn, times) -> dict:
    try:
        from sksurv.metrics import (
            concordance_index_ipcw,
            cumulative_dynamic_auc,
            integrated_brier_score,
        )
        from sksurv.util import Surv
    except ImportError:
        return {}
    y_tr, y_te = Surv.from_arrays(e_tr.astype(bool), t_tr), Surv.from_arrays(e_te.astype(bool), t_te)
    times = times[(times > t_te.min()) & (times < min(t_te.max(), t_tr.max()))]
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for key, fn in (("uno_c", lambda: concordance_index_ipcw(y_tr, y_te, risk, tau=times.max() if len(times) else None)[0]),
                        ("mean_auc", lambda: cumulative_dynamic_auc(y_tr, y_te, risk, times)[1]),
                        ("integrated_brier", lambda: integrated_brier_score(y_tr, y_te, surv_fn(times), times))):
            try:
                out[key] = float(fn())
            except (ValueError, IndexError, ZeroDivisionError):
                out[key] = float("nan")
    return out


def cross_validated_cox(table: pd.DataFrame, features: list[str], name: str, *, n_splits: int = 5, penalizer: float = 0.5,
                        l1_ratio: float = 0.0, top_k: int | None = 20, seed: int = 0, min_patients: int = 10,
                        min_events: int = 3) -> CoxResult:
    """Subject-grouped K-fold penalised Cox on `table[features]` (see the module docstring).

    Args:
        table: `survival_table` rows. features: the columns to use (an empty list: skipped).
    Returns a skipped `CoxResult` (never raises) for too few patients, events, folds or features.
    """
    from lifelines import CoxPHFitter
    from lifelines.exceptions import ConvergenceError

    n, events = len(table), int(table["event"].sum()) if len(table) else 0
    base = {"n_patients": n, "n_events": events, "n_features": len(features), "penalizer": penalizer, "l1_ratio": l1_ratio}
    reason = ("no events (every survival time censored)" if n and events == 0 else
              f"{n} patients with survival and features; need at least {min_patients}" if n < min_patients else
              f"{events} events; need at least {min_events}" if events < min_events else
              "no feature columns" if not features else "")
    splits = min(n_splits, table["subject"].nunique()) if n else 0
    if not reason and splits < 2:
        reason = "fewer than 2 subjects; no cross-validation possible"
    if reason:
        return CoxResult(name, "skipped", reason, base)
    t, e = table["survival_months"].to_numpy(float), table["event"].to_numpy(float)
    X = table[features].astype(float)
    risk = np.full(n, np.nan)
    positive = np.sort(t[e > 0])
    times = np.unique(np.quantile(positive, np.linspace(0.1, 0.8, 8)))
    fold_metrics, failed = [], []
    folds = GroupKFold(n_splits=splits, shuffle=True, random_state=seed).split(X, groups=table["subject"])
    for k, (tr, te) in enumerate(folds):
        Xtr, Xte = _prepare(X.iloc[tr], X.iloc[te], top_k, t[tr], e[tr])
        if Xtr.shape[1] == 0 or e[tr].sum() == 0:
            failed.append(f"fold {k}: no usable feature or no event in the training fold")
            continue
        cph = CoxPHFitter(penalizer=penalizer, l1_ratio=l1_ratio)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cph.fit(Xtr.assign(_t=t[tr], _e=e[tr]), "_t", "_e")
        except (ConvergenceError, ValueError, np.linalg.LinAlgError) as exc:
            failed.append(f"fold {k}: {type(exc).__name__}: {str(exc)[:120]}")
            continue
        risk[te] = cph.predict_partial_hazard(Xte).to_numpy()
        surv = lambda ts, m=cph, x=Xte: m.predict_survival_function(x, times=ts).to_numpy().T
        fold_metrics.append({"harrell_c": harrell_c(t[te], risk[te], e[te]),
                             **_sksurv_metrics(t[tr], e[tr], t[te], e[te], risk[te], surv, times)})
    scored = ~np.isnan(risk)
    if scored.sum() < 2:
        return CoxResult(name, "skipped", "every fold failed: " + "; ".join(failed), base)
    folds_df = pd.DataFrame(fold_metrics)
    metrics = {**base, "n_splits": splits, "folds_failed": len(failed), "harrell_c": harrell_c(t[scored], risk[scored], e[scored]),
               **{f"{c}_fold_mean" if c == "harrell_c" else c: float(folds_df[c].mean()) for c in folds_df.columns}}
    return CoxResult(name, "ok", "; ".join(failed), metrics, risk)
