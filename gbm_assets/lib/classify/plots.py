"""Classifier charts as PNG bytes.

Figures are plain `matplotlib.figure.Figure` objects rendered by `lib.store.figures.figure_png`: no pyplot,
no global backend switch, nothing left open, safe in worker threads. Every function returns
the PNG bytes and, when `path` is given, also writes them there.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import roc_auc_score, roc_curve

from gbm_assets.lib.store.figures import figure_png


def _message(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()


AUC_DEFINITION = ("one-vs-rest ROC AUC of the out-of-fold probabilities pooled over the folds of a repeat, "
                  "averaged over repeats (pooled out-of-fold, not a mean of per-fold AUCs)")
"""The one AUC definition used by the CV summary table, its metadata and the ROC legend."""


def roc_curves_png(oof: pd.DataFrame, classes: list, title: str = "One-vs-rest ROC (out-of-fold)",
                   path: str | Path | None = None, auc: pd.Series | None = None) -> bytes:
    """One ROC curve per class from out-of-fold probabilities.

    Args:
        oof: `ModelCV.oof` (columns y_true and one per class); with several repeats only
            repeat 0 is drawn, so each patient appears once.
        classes: the classes to draw. A class without positives or negatives is skipped;
            an empty `oof` draws a "no data" panel.
        auc: class -> AUC for the legend (`ModelCV.auc`, `AUC_DEFINITION`), so the legend agrees
            with the CV summary; None: repeat 0's pooled out-of-fold AUC.
    """
    fig = Figure(figsize=(5.5, 5))
    ax = fig.subplots()
    df = oof[oof["repeat"] == oof["repeat"].min()] if len(oof) and "repeat" in oof else oof
    drawn = 0
    for c in classes:
        truth = df["y_true"].to_numpy() == c if len(df) else np.array([], bool)
        if truth.size == 0 or truth.all() or not truth.any():
            continue
        fpr, tpr, _ = roc_curve(truth, df[c])
        value = float(auc[c]) if auc is not None and c in auc.index else roc_auc_score(truth, df[c])
        ax.plot(fpr, tpr, label=f"{c} (AUC {value:.3f}, n={int(truth.sum())})")
        drawn += 1
    if not drawn:
        _message(ax, "no data")
        return figure_png(fig, path)
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title, xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right", fontsize=8, title="pooled out-of-fold AUC" if auc is not None else None,
              title_fontsize=8)
    return figure_png(fig, path)


def confusion_matrix_png(confusion: pd.DataFrame, title: str = "Confusion matrix (out-of-fold)",
                         normalise: bool = False, path: str | Path | None = None) -> bytes:
    """Heat map of a (true x predicted) count table, e.g. `ModelCV.confusion`.

    `normalise=True` shows each true class's row as fractions (an empty row stays 0).
    """
    fig = Figure(figsize=(5.5, 5))
    ax = fig.subplots()
    if confusion.size == 0:
        _message(ax, "no data")
        return figure_png(fig, path)
    m = confusion.to_numpy(dtype=float)
    if normalise:
        sums = m.sum(axis=1, keepdims=True)
        m = np.divide(m, sums, out=np.zeros_like(m), where=sums > 0)
    im = ax.imshow(m, cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046)
    for (i, j), v in np.ndenumerate(m):
        ax.text(j, i, f"{v:.2f}" if normalise else f"{int(v)}", ha="center", va="center",
                color="white" if v > m.max() / 2 else "black", fontsize=9)
    ax.set_xticks(range(m.shape[1]), [str(c) for c in confusion.columns], rotation=30, ha="right")
    ax.set_yticks(range(m.shape[0]), [str(c) for c in confusion.index])
    ax.set(xlabel="predicted", ylabel="true", title=title)
    return figure_png(fig, path)


def top_features_png(importance: pd.DataFrame, title: str = "Permutation importance (held-out)",
                     path: str | Path | None = None) -> bytes:
    """Horizontal bars of `permutation_importance_top` output (largest on top, std as error bars)."""
    n = len(importance)
    fig = Figure(figsize=(7, max(2.5, 0.3 * n + 1)))
    ax = fig.subplots()
    if n == 0:
        _message(ax, "no features")
        return figure_png(fig, path)
    df = importance.iloc[::-1]
    ax.barh(range(n), df["importance_mean"], xerr=df.get("importance_std"), color="tab:blue", alpha=0.8)
    ax.set_yticks(range(n), df["feature"], fontsize=7)
    ax.axvline(0, c="grey", lw=0.8)
    ax.set(xlabel="drop in balanced accuracy when permuted", title=title)
    return figure_png(fig, path)
