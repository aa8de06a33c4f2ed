"""Tables, files and markdown behind the classify and survival assets.

Pure pandas, numpy and matplotlib (no Dagster, no MLflow), so the asset bodies stay
load-call-record:

- `table_files` / `read_tables`: one table's per-cohort Parquet files, read directly.
- `labelled_rows`: a training table cut to labelled patients and usable features.
- `train_classifier`: cross-validate the model kinds, fit the final pipeline on every row, fit
  multi-label thresholds on its out-of-fold probabilities and rank features by permutation.
- `cv_summary_table` / `cv_metrics`: cross-validation numbers as a table and as flat metrics.
- `write_classifier_report`: ROC, confusion and top-feature PNGs plus the model's feature list.
- `predictions_table`: per-patient subtype probabilities in the `subtype_predictions` layout.
- `skops_trusted_types`: the types skops may trust when loading the pipeline.
- `survival_frame` / `survival_medians` / `survival_plots`: the per-patient survival inputs,
  per-group Kaplan-Meier medians, and their charts.
"""

from __future__ import annotations

import base64
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
from threadpoolctl import threadpool_limits

from gbm_assets.lib.classify.cv import CVResults
from gbm_assets.lib.classify.features import feature_columns
from gbm_assets.lib.classify.model import (
    build_pipeline,
    cross_validate_models,
    fit_thresholds,
    multilabel_predict,
    permutation_importance_top,
)
from gbm_assets.lib.classify.plots import confusion_matrix_png, roc_curves_png, top_features_png
from gbm_assets.lib.contract import SUBTYPES
from gbm_assets.lib.survival import kaplan_meier_by_group, kaplan_meier_png, survival_scatter_png

PREDICTION_COLUMNS: tuple[str, ...] = (
    "cohort", "patient_id", "predicted_subtype", "p_classical", "p_mesenchymal", "p_proneural", "p_neural", "model_version",
)  # fmt: skip
MULTILABEL_COLUMN = "subtypes_multilabel"
"""Comma-separated subtypes whose one-vs-rest threshold the patient passes (at least the top one)."""
SURVIVAL_COLUMNS: tuple[str, ...] = (
    "cohort", "grouping", "group", "n", "n_events", "median_months", "median_reached", "logrank_p",
)  # fmt: skip
SURVIVAL_GROUPINGS: tuple[str, ...] = ("all", "true_subtype", "predicted_subtype")
_METRICS = {"accuracy": "accuracy", "balanced_accuracy": "balanced_accuracy", "macro_f1": "f1_macro"}


def proba_column(subtype: str) -> str:
    """`p_<subtype lower-case>`, e.g. `p_mesenchymal`."""
    return f"p_{str(subtype).lower()}"


def table_files(table_dir: Path, cohorts: Sequence[str] | None = None) -> dict[str, Path]:
    """`{cohort: <table_dir>/<cohort>.parquet}` for the files that exist, sorted by cohort.

    `cohorts` restricts the result (a cohort without a file is simply absent); None = all.
    """
    files = {p.stem: p for p in sorted(Path(table_dir).glob("*.parquet"))}
    return {c: files[c] for c in sorted(files) if cohorts is None or c in set(cohorts)}


def read_tables(paths: Iterable[Path], where: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Concatenate Parquet files, keeping rows whose columns equal `where`'s values.

    The filter is pushed into the Parquet reader; a file where it cannot be (an empty table
    whose columns have no string type) is read whole and filtered in pandas. Files without
    matching rows are left out; no rows at all gives an empty frame without columns.
    """
    filters = [(col, "==", value) for col, value in (where or {}).items()] or None
    parts = []
    for path in paths:
        try:
            df = pd.read_parquet(path, filters=filters)
        except pa.ArrowException:
            df = pd.read_parquet(path)
            for col, value in (where or {}).items():
                df = df.loc[df[col] == value] if col in df.columns else df.iloc[:0]
        if len(df):
            parts.append(df)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def labelled_rows(table: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Patients with a subtype, and without the feature columns that are NaN for all of them.

    Returns:
        (table, dropped): the labelled rows (index reset) and the names of the dropped columns.
    """
    labelled = table.loc[table["subtype"].notna()].reset_index(drop=True)
    feats = feature_columns(labelled)
    dropped = [c for c in feats if labelled[c].isna().all()]
    return labelled.drop(columns=dropped), dropped


@dataclass
class TrainedClassifier:
    """What `train_classifier` returns.

    Attributes:
        cv: every kind's cross-validation (shared patient-level splits).
        model: `final_kind`'s pipeline fitted on all rows (input columns = X's, in order).
        thresholds: class -> one-vs-rest threshold, fitted on `final_kind`'s out-of-fold probabilities.
        importance: `permutation_importance_top` of `final_kind` (empty if no held-out split was possible).
        summary: `cv_summary_table(cv)`.
    """

    cv: CVResults
    model: object
    thresholds: pd.Series
    importance: pd.DataFrame
    summary: pd.DataFrame


def train_classifier(X: pd.DataFrame, y, kinds: Sequence[str], *, final_kind: str = "mlp", n_splits: int = 5,
                     n_repeats: int = 3, seed: int = 0, select_k: int | None = None,
                     top_k: int = 20) -> TrainedClassifier:
    """Cross-validate `kinds`, then fit `final_kind` on every row (BLAS single-threaded).

    Args:
        X: (n_patients, n_features) features, named columns; y: (n_patients,) subtypes.
        kinds: model kinds of `build_pipeline`; must include `final_kind`.

    Raises:
        ValueError: `final_kind` not in `kinds`; too few patients per class (see `cv.make_splits`).
    """
    if final_kind not in kinds:
        raise ValueError(f"models {list(kinds)} must include {final_kind!r}, the model that is registered")
    y = np.asarray(y, dtype=object)
    with threadpool_limits(limits=1, user_api="blas"):
        cv = cross_validate_models(X, y, kinds=tuple(kinds), n_splits=n_splits, n_repeats=n_repeats, seed=seed,
                                   select_k=select_k)
        model = build_pipeline(final_kind, seed=seed, select_k=select_k).fit(X, y)
        oof = cv.models[final_kind].oof
        thresholds = fit_thresholds(oof[cv.classes], oof["y_true"])
        try:
            importance = permutation_importance_top(build_pipeline(final_kind, seed=seed, select_k=select_k), X, y,
                                                    k=top_k, seed=seed)
        except ValueError as exc:  # the held-out split needs every class at least twice
            warnings.warn(f"permutation importance skipped: {exc}", stacklevel=2)
            importance = pd.DataFrame(columns=["feature", "importance_mean", "importance_std"])
    return TrainedClassifier(cv, model, thresholds, importance, cv_summary_table(cv))


def cv_summary_table(cv: CVResults) -> pd.DataFrame:
    """One row per model: accuracy, balanced_accuracy, macro_f1 (means over folds and repeats),
    their `_std`, `auc_<subtype>` (one-vs-rest ROC AUC, NaN for an absent class), n_splits, n_repeats."""
    rows = []
    for kind, m in cv.models.items():
        row = {"model": kind}
        for name, key in _METRICS.items():
            row[name] = m.summary[f"{key}_mean"]
        for name, key in _METRICS.items():
            row[f"{name}_std"] = m.summary[f"{key}_std"]
        for s in SUBTYPES:
            row[f"auc_{s.lower()}"] = float(m.auc.get(s, np.nan))
        rows.append(row)
    out = pd.DataFrame(rows)
    out["n_splits"], out["n_repeats"] = cv.n_splits, cv.n_repeats
    return out


def cv_metrics(summary: pd.DataFrame) -> dict[str, float]:
    """Flat `cv_<metric>_<model>` numbers of a `cv_summary_table` (NaN left out), for MLflow."""
    out = {}
    for row in summary.to_dict("records"):
        for col, value in row.items():
            if col in ("model", "n_splits", "n_repeats") or value is None or not np.isfinite(value):
                continue
            out[f"cv_{col}_{row['model']}"] = float(value)
    return out


def markdown_table(df: pd.DataFrame, digits: int = 3) -> str:
    """A DataFrame as a markdown table, floats rounded."""
    return df.round(digits).to_markdown(index=False) if len(df) else "(empty)"


def png_markdown(images: Mapping[str, bytes]) -> str:
    """Inline PNGs as markdown images (`![name](data:image/png;base64,...)`), one per paragraph."""
    return "\n\n".join(f"**{name}**\n\n![{name}](data:image/png;base64,{base64.b64encode(data).decode()})"
                       for name, data in images.items())


def write_classifier_report(folder: Path, trained: TrainedClassifier, kind: str, features: list[str]) -> dict[str, bytes]:
    """Write `kind`'s plots and the model's input contract into `folder`; return the PNGs by name.

    Files: roc.png, confusion.png, top_features.png, feature_columns.json (the expected input
    columns, in order), thresholds.json (multi-label thresholds), cv_summary.csv, importance.csv.
    """
    folder.mkdir(parents=True, exist_ok=True)
    m = trained.cv.models[kind]
    pngs = {
        "roc": roc_curves_png(m.oof, m.classes, title=f"{kind}: one-vs-rest ROC (out-of-fold)", path=folder / "roc.png"),
        "confusion": confusion_matrix_png(m.confusion, title=f"{kind}: confusion (out-of-fold, all repeats)",
                                          path=folder / "confusion.png"),
        "top_features": top_features_png(trained.importance, path=folder / "top_features.png"),
    }
    (folder / "feature_columns.json").write_text(json.dumps(list(features), indent=1))
    thresholds = {str(k): float(v) for k, v in trained.thresholds.items()}
    (folder / "thresholds.json").write_text(json.dumps(thresholds, indent=1))
    trained.summary.to_csv(folder / "cv_summary.csv", index=False)
    trained.importance.to_csv(folder / "importance.csv", index=False)
    return pngs


def skops_trusted_types(model) -> list[str]:
    """The types skops must be told to trust to load `model`: only ours, scikit-learn's and numpy's.

    Raises:
        TypeError: the model holds any other type not trusted by default.
    """
    import skops.io

    types = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    foreign = [t for t in types if not t.startswith(("gbm_assets.", "sklearn.", "numpy."))]
    if foreign:
        raise TypeError(f"the pipeline holds types skops should not trust: {foreign}")
    return types


def predictions_table(cohort: str, patient_ids: Sequence[str], proba: np.ndarray, classes: Sequence[str],
                      model_version: str, thresholds: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Per-patient subtype probabilities in the `PREDICTION_COLUMNS` layout.

    Args:
        proba: (n_patients, len(classes)) probabilities from `predict_proba`; a subtype the
            model never saw gets probability 0.
        thresholds: subtype -> one-vs-rest threshold; when given, `MULTILABEL_COLUMN` is added.

    Returns:
        DataFrame, one row per patient in input order; predicted_subtype is the most probable
        class. Zero patients give an empty frame with the same columns.
    """
    proba = np.asarray(proba, dtype=float).reshape(len(patient_ids), len(classes))
    unknown = [c for c in classes if c not in SUBTYPES]
    if unknown:
        raise ValueError(f"model classes {unknown} are not subtypes ({', '.join(SUBTYPES)})")
    P = pd.DataFrame(proba, columns=list(classes)).reindex(columns=list(SUBTYPES), fill_value=0.0)
    out = pd.DataFrame({"cohort": cohort, "patient_id": [str(p) for p in patient_ids]})
    out["predicted_subtype"] = pd.Series(np.asarray(classes, dtype=object)[proba.argmax(axis=1)] if len(P) else [],
                                         dtype=object)
    for s in SUBTYPES:
        out[proba_column(s)] = P[s].to_numpy()
    out["model_version"] = str(model_version)
    if thresholds is not None:
        calls = multilabel_predict(P[list(classes)], None, {c: thresholds.get(c, 0.5) for c in classes})
        out[MULTILABEL_COLUMN] = [",".join(c for c in calls.columns if row[c]) for _, row in calls.iterrows()]
    return out


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
        (NaN where absent). notes: `total_volume_roi_source` and `enhancing_roi_source` (None
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
    others = [s for s in ("predicted", "ground_truth") if s != roi_source]
    burden = burden if len(burden) else pd.DataFrame(columns=["patient_id", "roi_source", "region", "volume_ml"])
    total, total_source = _volume(burden, "whole_tumor", [roi_source, *others])
    enh, enh_source = _volume(burden, "enhancing", ["ground_truth", "predicted"])
    frame["total_volume_ml"] = frame["patient_id"].map(total).astype(float)
    frame["enhancing_volume_ml"] = frame["patient_id"].map(enh).astype(float)
    return frame, {"total_volume_roi_source": total_source, "enhancing_roi_source": enh_source}


def survival_medians(frame: pd.DataFrame, cohort: str) -> tuple[pd.DataFrame, dict[str, tuple]]:
    """Kaplan-Meier medians per group for each of `SURVIVAL_GROUPINGS`, with the log-rank p.

    Events: the `event` column where any patient has one (patients with an unknown event are
    left out, with lifelines' warning); when no patient has one, every patient is a death.

    Returns:
        (table, km): table in the `SURVIVAL_COLUMNS` layout (median_months NaN and
        median_reached False where the curve never reaches 0.5; logrank_p NaN for one group
        and for the "all" grouping); km: grouping -> (curves, medians, p) of
        `kaplan_meier_by_group`, for plots. A grouping with no labelled patient is skipped.
    """
    rows, km = [], {}
    use_events = frame["event"].notna().any()
    for grouping in SURVIVAL_GROUPINGS:
        sub = frame if grouping == "all" else frame.loc[frame[grouping].notna()]
        if sub.empty:
            continue
        groups = None if grouping == "all" else sub[grouping]
        curves, medians, p = kaplan_meier_by_group(sub["survival_months"], sub["event"] if use_events else None, groups)
        km[grouping] = (curves, medians, p)
        for r in medians.to_dict("records"):
            reached = bool(np.isfinite(r["median_months"]))
            rows.append({"cohort": cohort, "grouping": grouping, "group": str(r["group"]), "n": int(r["n"]),
                         "n_events": int(r["n_events"]), "median_months": r["median_months"] if reached else np.nan,
                         "median_reached": reached, "logrank_p": p})
    table = pd.DataFrame(rows, columns=list(SURVIVAL_COLUMNS))
    return table.astype({"n": "int64", "n_events": "int64", "median_months": float, "median_reached": bool,
                         "logrank_p": float}), km


def survival_plots(frame: pd.DataFrame, km: dict[str, tuple], notes: dict, cohort: str,
                   folder: Path | None = None) -> dict[str, bytes]:
    """Kaplan-Meier curves by true and predicted subtype, survival against whole-tumour and
    enhancing volume (each only where there is data); PNGs by title, also written to `folder`."""
    pngs = {f"Kaplan-Meier by {g.replace('_', ' ')}": kaplan_meier_png(*km[g], title=f"{cohort}: {g.replace('_', ' ')}")
            for g in ("true_subtype", "predicted_subtype") if g in km}
    if notes.get("total_volume_roi_source"):
        pngs["survival vs whole-tumour volume"] = survival_scatter_png(frame, "total_volume_ml")
    if notes.get("enhancing_roi_source"):
        pngs["survival vs enhancing volume"] = survival_scatter_png(frame, "enhancing_volume_ml")
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in pngs.items():
            (folder / f"{name.replace(' ', '_').replace('-', '_').lower()}.png").write_bytes(data)
    return pngs
