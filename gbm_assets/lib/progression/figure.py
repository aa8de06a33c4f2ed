"""Volume over time, one picture per subject: one line per region, response category at each follow-up."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from gbm_assets.lib.store.figures import figure_png

_MARK = {"baseline": "o", "complete_response": "*", "partial_response": "v", "stable_disease": "s", "progressive_disease": "^"}
_SHORT = {"complete_response": "CR", "partial_response": "PR", "stable_disease": "SD", "progressive_disease": "PD"}


def subject_plot(series, subject: str, roi_source: str, path: Path | None = None) -> bytes:
    """PNG bytes of one subject's volumes (mL) against weeks since baseline.

    Args:
        series: `progression_table` rows of one subject and ROI source (week, region, volume_ml, response).
        path: also written there (atomically) when given.
    """
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    try:
        for region, g in series.sort_values("week").groupby("region", sort=True):
            line, = ax.plot(g["week"], g["volume_ml"], "-", label=region)
            for week, volume, response in zip(g["week"], g["volume_ml"], g["response"]):
                ax.plot(week, volume, _MARK.get(response, "o"), color=line.get_color())
                if region == "whole_tumor" and response in _SHORT:
                    ax.annotate(_SHORT[response], (week, volume), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
        ax.set(xlabel="weeks since baseline", ylabel="volume (mL)", title=f"{subject} ({roi_source})")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=7, loc="best")
        return figure_png(fig, path)
    finally:
        plt.close(fig)
