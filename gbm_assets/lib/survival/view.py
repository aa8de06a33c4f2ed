"""The per-cohort survival view: per-patient survival inputs (clinical times, true and predicted
subtype, tumour volumes), Kaplan-Meier medians per group with the log-rank p, and their charts.
Pure pandas and matplotlib; returns DataFrames and PNG bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from gbm_assets.lib.store.files import write_bytes_atomic
from gbm_assets.lib.survival.analysis import (
    kaplan_meier_by_group,
    kaplan_meier_png,
    survival_scatter_png,
)

SURVIVAL_COLUMNS: tuple[str, ...] = (
    "cohort", "grouping", "group", "n", "n_events", "n_events_unknown", "median_months", "median_reached", "logrank_p",
    "note",
)  # fmt: skip
ASSUMED_DEATHS = "events unknown: every patient counted as a death for the curve and log-rank (n_events counts none)"
IN_SAMPLE_SHARE = 0.5
"""Above this share of in-training-set predictions, predicted-subtype curves are labelled in-sample."""
SURVIVAL_GROUPINGS: tuple[str, ...] = ("all", "true_subtype", "predicted_subtype")


def _volume(burden: pd.DataFrame, region: str, sources: Sequence[str]) -> tuple[pd.Series, str | None]:
    """patient_id -> volume_ml of `region` from the first of `sources` that has any, and that source."""
    for source in sources:
        sub = burden.loc[(burden["roi_source"] == source) & (burden["region"] == region)]
        if len(sub):
            twice = sub["patient_id"].duplicated()
            if twice.any():
                raise ValueError(f"tumor_burden lists {region}/{source} twice for {sorted(set(sub.patient_id[twice]))}")
            return sub.set_index(sub["patient_id"].astype(str))["volume_ml"].astype(float), source
    return pd.Series(dtype=float), None


def survival_frame(clinical: pd.DataFrame, burden: pd.DataFrame, predictions: pd.DataFrame,
                   roi_source: str = "predicted") -> tuple[pd.DataFrame, dict]:
    """One row per patient with a survival time: the inputs of the survival analyses.

    Args:
        clinical: `clinical_records` (cohort, patient_id, subtype, survival_months, event).
        burden: `tumor_burden` (patient_id, roi_source, region, volume_ml).
        predictions: `subtype_predictions` (patient_id, predicted_subtype); may be empty.
        roi_source: whose whole-tumour volume to use first; the other source where it has none.

    Returns:
        (frame, notes). frame: cohort, patient_id, survival_months, event (float 1/0, NaN =
        unknown), true_subtype, predicted_subtype, total_volume_ml, enhancing_volume_ml
        (NaN where absent), prediction_in_training_set (True/False, None = unknown or no
        prediction; from the predictions' `in_training_set` column when present). notes: `total_volume_roi_source` and `enhancing_roi_source` (None
        when no patient has that volume; enhancing exists for ground-truth masks only).
    """
    clin = clinical.loc[pd.to_numeric(clinical["survival_months"], errors="coerce").notna()]
    event = clin["event"] if "event" in clin.columns else pd.Series(np.nan, index=clin.index)
    frame = pd.DataFrame({
        "cohort": clin["cohort"].astype(str).to_numpy(),
        "patient_id": clin["patient_id"].astype(str).to_numpy(),
        "survival_months": pd.to_numeric(clin["survival_months"]).astype(float).to_numpy(),
        "event": pd.to_numeric(event.astype(object), errors="coerce").astype(float).to_numpy(),
        "true_subtype": clin["subtype"].to_numpy(dtype=object),
    })  # fmt: skip
    pred = predictions.set_index(predictions["patient_id"].astype(str))["predicted_subtype"] if len(predictions) else None
    frame["predicted_subtype"] = frame["patient_id"].map(pred).astype(object) if pred is not None else None
    if len(predictions) and "in_training_set" in predictions.columns:
        seen = predictions.set_index(predictions["patient_id"].astype(str))["in_training_set"].astype(object)
        frame["prediction_in_training_set"] = frame["patient_id"].map(seen).astype(object)
    else:
        frame["prediction_in_training_set"] = None
    others = [s for s in ("predicted", "ground_truth") if s != roi_source]
    burden = burden if len(burden) else pd.DataFrame(columns=["patient_id", "roi_source", "region", "volume_ml"])
    total, total_source = _volume(burden, "whole_tumor", [roi_source, *others])
    enh, enh_source = _volume(burden, "enhancing", ["ground_truth", "predicted"])
    frame["total_volume_ml"] = frame["patient_id"].map(total).astype(float)
    frame["enhancing_volume_ml"] = frame["patient_id"].map(enh).astype(float)
    return frame, {"total_volume_roi_source": total_source, "enhancing_roi_source": enh_source}


def in_sample_note(frame: pd.DataFrame) -> str:
    """"in-sample: k of n ..." when more than `IN_SAMPLE_SHARE` of the patients with a prediction
    were in the classifier's training set; "" otherwise (or when unknown)."""
    col = frame.get("prediction_in_training_set")
    if col is None or "predicted_subtype" not in frame:
        return ""
    with_pred = frame.loc[frame["predicted_subtype"].notna(), "prediction_in_training_set"]
    known = with_pred.dropna()
    k = int(known.astype(bool).sum())
    if len(with_pred) == 0 or k <= IN_SAMPLE_SHARE * len(with_pred):
        return ""
    return f"in-sample: {k} of {len(with_pred)} predictions are for patients the classifier was fitted on"


def survival_medians(frame: pd.DataFrame, cohort: str) -> tuple[pd.DataFrame, dict[str, tuple]]:
    """Kaplan-Meier medians per group for each of `SURVIVAL_GROUPINGS`, with the log-rank p.

    Events: the `event` column where any patient has one; patients with an unknown event are
    left out of the curve, the log-rank test, n and n_events (counted in n_events_unknown).
    When no patient has a known event, every patient is counted as a death for the curve and
    the log-rank test, n_events is 0, n_events_unknown is n, and `note` says so
    (`ASSUMED_DEATHS`). Predicted-subtype rows say "in-sample: ..." in `note` when most
    predictions were in the classifier's training set (`in_sample_note`).

    Returns:
        (table, km): table in the `SURVIVAL_COLUMNS` layout (median_months NaN and
        median_reached False where the curve never reaches 0.5; logrank_p NaN for one group
        and for the "all" grouping); km: grouping -> (curves, medians, p) of
        `kaplan_meier_by_group`, for plots. A grouping with no labelled patient is skipped.
    """
    rows, km = [], {}
    use_events = frame["event"].notna().any()
    in_sample = in_sample_note(frame)
    for grouping in SURVIVAL_GROUPINGS:
        sub = frame if grouping == "all" else frame.loc[frame[grouping].notna()]
        if use_events:
            unknown = sub.loc[sub["event"].isna()]
            sub = sub.loc[sub["event"].notna()]
        if sub.empty:
            continue
        groups = None if grouping == "all" else sub[grouping]
        curves, medians, p = kaplan_meier_by_group(sub["survival_months"], sub["event"] if use_events else None, groups)
        km[grouping] = (curves, medians, p)
        notes = [] if use_events else [ASSUMED_DEATHS]
        if grouping == "predicted_subtype" and in_sample:
            notes.append(in_sample)
        for r in medians.to_dict("records"):
            reached = bool(np.isfinite(r["median_months"]))
            g = r["group"]
            n_unknown = (int((unknown[grouping] == g).sum()) if grouping != "all" else len(unknown)) if use_events else int(r["n"])
            rows.append({"cohort": cohort, "grouping": grouping, "group": str(g), "n": int(r["n"]),
                         "n_events": int(r["n_events"]) if use_events else 0, "n_events_unknown": n_unknown,
                         "median_months": r["median_months"] if reached else np.nan,
                         "median_reached": reached, "logrank_p": p, "note": "; ".join(notes)})
    table = pd.DataFrame(rows, columns=list(SURVIVAL_COLUMNS))
    return table.astype({"n": "int64", "n_events": "int64", "n_events_unknown": "int64", "median_months": float,
                         "median_reached": bool, "logrank_p": float, "note": str}), km


def survival_plots(frame: pd.DataFrame, km: dict[str, tuple], notes: dict, cohort: str,
                   folder: Path | None = None) -> dict[str, bytes]:
    """Kaplan-Meier curves by true and predicted subtype, survival against whole-tumour and
    enhancing volume (each only where there is data); PNGs by title, also written to `folder`."""
    label = {"predicted_subtype": " (in-sample)" if in_sample_note(frame) else ""}
    pngs = {f"Kaplan-Meier by {g.replace('_', ' ')}{label.get(g, '')}":
            kaplan_meier_png(*km[g], title=f"{cohort}: {g.replace('_', ' ')}{label.get(g, '')}")
            for g in ("true_subtype", "predicted_subtype") if g in km}
    if notes.get("total_volume_roi_source"):
        pngs["survival vs whole-tumour volume"] = survival_scatter_png(frame, "total_volume_ml")
    if notes.get("enhancing_roi_source"):
        pngs["survival vs enhancing volume"] = survival_scatter_png(frame, "enhancing_volume_ml")
    if folder is not None:
        for name, data in pngs.items():
            stem = name.replace(" (in-sample)", "").replace(" ", "_").replace("-", "_").lower()
            write_bytes_atomic(Path(folder) / f"{stem}.png", data)
    return pngs
