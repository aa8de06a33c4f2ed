"""Survival analysis: Kaplan-Meier by group, log-rank test, survival versus tumour volume.

Durations are in months. Events: 1/True = death observed, 0/False = censored (alive at last
follow-up). When no event column exists, every patient is treated as an event (a death at
`survival_months`); with censored patients in the data that underestimates survival, so pass
events whenever the clinical table has a vital status.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from lifelines import KaplanMeierFitter
from lifelines.statistics import multivariate_logrank_test
from matplotlib.figure import Figure
from scipy import stats

from gbm_assets.lib.store.figures import figure_png

SHORT_SURVIVAL_MONTHS = 5.0
"""The notebook's split: short survival is <= 5 months."""

CURVE_COLUMNS = ["group", "time_months", "survival", "ci_lower", "ci_upper", "at_risk"]
MEDIAN_COLUMNS = ["group", "n", "n_events", "median_months"]


def _clean(durations, events, groups) -> pd.DataFrame:
    n = len(durations)
    if events is not None and len(events) != n or groups is not None and len(groups) != n:
        raise ValueError("durations, events and groups must have the same length")
    d = pd.DataFrame({"duration": pd.to_numeric(pd.Series(np.asarray(durations, dtype=object)), errors="coerce")})
    d["event"] = 1.0 if events is None else pd.Series(np.asarray(events, dtype=object)).astype(float)
    d["group"] = "all" if groups is None else pd.Series(np.asarray(groups, dtype=object))
    bad = d.isna().any(axis=1)
    if bad.any():
        warnings.warn(f"{int(bad.sum())} patient(s) without duration, event or group left out", stacklevel=3)
        d = d.loc[~bad]
    if (d["duration"] < 0).any():
        raise ValueError(f"negative survival durations: {sorted(d.loc[d.duration < 0, 'duration'])[:10]}")
    if not d["event"].isin([0.0, 1.0]).all():
        raise ValueError(f"events must be 0/1 or booleans, got {sorted(set(d['event']))[:10]}")
    return d.reset_index(drop=True)


def kaplan_meier_by_group(durations, events=None, groups=None) -> tuple[pd.DataFrame, pd.DataFrame, float]:
    """Kaplan-Meier survival per group and the log-rank test across groups.

    Args:
        durations: (n,) months from diagnosis to death or last follow-up.
        events: (n,) 1 = death observed, 0 = censored; None = all events (module docstring).
        groups: (n,) group labels (e.g. subtype); None = one group "all".
        Rows with a missing value are left out with a warning.

    Returns:
        curves: `CURVE_COLUMNS`, one row per group and distinct time (time 0 included):
            S(t) as a step function, its 95% CI (lifelines' exponential Greenwood) and the
            number at risk just before t.
        medians: `MEDIAN_COLUMNS`; median_months is the first t with S(t) <= 0.5 (exactly 0.5
            counts, up to float rounding, unlike lifelines' `median_survival_time_`), inf when
            the curve never gets there.
        p_value: multivariate log-rank test; NaN with fewer than two groups.
        Empty input gives empty frames and NaN.

    Raises:
        ValueError: negative durations, events other than 0/1, mismatched lengths.
    """
    d = _clean(durations, events, groups)
    curves, medians = [], []
    for g, sub in d.groupby("group", sort=True):
        km = KaplanMeierFitter().fit(sub["duration"], sub["event"], label="km")
        sf, ci = km.survival_function_["km"], km.confidence_interval_
        at_risk = km.event_table["at_risk"].reindex(sf.index)
        curves.append(pd.DataFrame({"group": g, "time_months": sf.index.to_numpy(float), "survival": sf.to_numpy(),
                                    "ci_lower": ci.iloc[:, 0].to_numpy(), "ci_upper": ci.iloc[:, 1].to_numpy(),
                                    "at_risk": at_risk.to_numpy()}))
        reached = np.flatnonzero(sf.to_numpy() <= 0.5 + 1e-9)  # tolerance: 5/6 * 3/5 is 0.5000000000000001
        medians.append({"group": g, "n": len(sub), "n_events": int(sub["event"].sum()),
                        "median_months": float(sf.index[reached[0]]) if reached.size else np.inf})
    curves_df = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(columns=CURVE_COLUMNS)
    medians_df = pd.DataFrame(medians, columns=MEDIAN_COLUMNS)
    p = np.nan
    if d["group"].nunique() >= 2:
        p = float(multivariate_logrank_test(d["duration"], d["group"], d["event"]).p_value)
    return curves_df, medians_df, p


def survival_vs_volume(df: pd.DataFrame, *, survival_col: str = "survival_months",
                       total_volume_col: str = "shape__whole_tumor__shape_meshvolume",
                       enhancing_volume_col: str = "shape__enhancing__shape_meshvolume",
                       short_months: float = SHORT_SURVIVAL_MONTHS) -> pd.DataFrame:
    """Associations of survival with tumour volume, as in the notebook.

    Default volume columns are the wide radiomics names of PyRadiomics' MeshVolume (mm^3).

    Returns:
        DataFrame, one row per test: test, x, y, n, statistic, p_value, effect.
        - spearman / pearson: survival vs total volume; statistic and effect are rho / r.
        - mann_whitney: enhancing volume, short (<= short_months) vs longer survival;
          statistic U, effect U / (n_short * n_long) = P(a short survivor's enhancing
          volume exceeds a longer survivor's), 0.5 = no difference.
        A test with too few rows (< 3 pairs, or an empty group) has NaN numbers.

    Raises:
        KeyError: a named column is absent.
    """
    for col in (survival_col, total_volume_col, enhancing_volume_col):
        if col not in df.columns:
            raise KeyError(f"column {col!r} absent; has {list(df.columns)[:20]}")
    rows = []
    pair = df[[survival_col, total_volume_col]].apply(pd.to_numeric, errors="coerce").dropna()
    s, v = pair[survival_col].to_numpy(), pair[total_volume_col].to_numpy()
    for name, fn in (("spearman", stats.spearmanr), ("pearson", stats.pearsonr)):
        stat = p = np.nan
        if len(pair) >= 3 and np.ptp(s) > 0 and np.ptp(v) > 0:
            res = fn(v, s)
            stat, p = float(res[0]), float(res[1])
        rows.append({"test": name, "x": total_volume_col, "y": survival_col, "n": len(pair),
                     "statistic": stat, "p_value": p, "effect": stat})
    pair = df[[survival_col, enhancing_volume_col]].apply(pd.to_numeric, errors="coerce").dropna()
    short = pair[survival_col] <= short_months
    a, b = pair.loc[short, enhancing_volume_col], pair.loc[~short, enhancing_volume_col]
    stat = p = eff = np.nan
    if len(a) and len(b):
        res = stats.mannwhitneyu(a, b, alternative="two-sided")
        stat, p, eff = float(res.statistic), float(res.pvalue), float(res.statistic) / (len(a) * len(b))
    rows.append({"test": "mann_whitney", "x": enhancing_volume_col, "y": f"{survival_col} <= {short_months:g}",
                 "n": len(pair), "statistic": stat, "p_value": p, "effect": eff})
    return pd.DataFrame(rows)


def kaplan_meier_png(curves: pd.DataFrame, medians: pd.DataFrame | None = None, p_value: float = np.nan,
                     title: str = "Kaplan-Meier survival", path=None) -> bytes:
    """Step curves (with 95% CI bands) of `kaplan_meier_by_group` output; legend has n and median."""
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    if curves.empty:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return figure_png(fig, path)
    med = medians.set_index("group") if medians is not None and len(medians) else None
    for g, c in curves.groupby("group", sort=True):
        label = str(g)
        if med is not None and g in med.index:
            label += f" (n={int(med.loc[g, 'n'])}, median {med.loc[g, 'median_months']:.1f} mo)"
        line = ax.step(c["time_months"], c["survival"], where="post", label=label)[0]
        ax.fill_between(c["time_months"], c["ci_lower"], c["ci_upper"], step="post", alpha=0.15, color=line.get_color())
    if not np.isnan(p_value):
        title += f"  (log-rank p = {p_value:.2g})"
    ax.set(xlabel="months", ylabel="survival probability", ylim=(0, 1.02), title=title)
    ax.legend(fontsize=8)
    return figure_png(fig, path)


def survival_scatter_png(df: pd.DataFrame, x_col: str, survival_col: str = "survival_months",
                         short_months: float = SHORT_SURVIVAL_MONTHS, path=None) -> bytes:
    """Scatter of survival (months) against one column, short survivors in a second colour."""
    fig = Figure(figsize=(6.5, 4.5))
    ax = fig.subplots()
    d = df[[x_col, survival_col]].apply(pd.to_numeric, errors="coerce").dropna()
    short = d[survival_col] <= short_months
    ax.scatter(d.loc[~short, x_col], d.loc[~short, survival_col], s=25, label=f"> {short_months:g} months")
    ax.scatter(d.loc[short, x_col], d.loc[short, survival_col], s=25, c="tab:red", label=f"<= {short_months:g} months")
    ax.axhline(short_months, ls="--", c="grey", lw=0.8)
    ax.set(xlabel=x_col, ylabel=f"{survival_col}", title=f"survival vs {x_col} (n={len(d)})")
    ax.legend(fontsize=8)
    return figure_png(fig, path)
