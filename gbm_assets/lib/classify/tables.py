"""The classify stage's tables: per-cohort Parquet files read directly, the labelled training rows,
and per-patient predictions in the `subtype_predictions` layout. Pure pandas (no Dagster, no MLflow).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from gbm_assets.lib.classify.features import feature_columns
from gbm_assets.lib.classify.model import multilabel_predict
from gbm_assets.lib.classify.targets import Target
from gbm_assets.lib.contract import SUBTYPES

PREDICTION_COLUMNS: tuple[str, ...] = (
    "cohort", "patient_id", "predicted_subtype", "p_classical", "p_mesenchymal", "p_proneural", "p_neural", "model_version",
)  # fmt: skip
MULTILABEL_COLUMN = "subtypes_multilabel"
"""Comma-separated subtypes whose one-vs-rest threshold the patient passes (at least the top one)."""


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


def training_matrix(table: pd.DataFrame, labels: str | pd.Series = "subtype") -> tuple[pd.DataFrame, np.ndarray]:
    """(X indexed by "cohort/patient_id", y) of a training table: the rows and order every CV sees.

    `labels` is the label column's name or a Series aligned with `table` (`targets.target_labels`).
    The index also carries each row's cohort, the batch of `harmonize.ComBat`."""
    X = table[feature_columns(table)].set_axis(table["cohort"] + "/" + table["patient_id"], axis=0)
    y = table[labels] if isinstance(labels, str) else pd.Series(labels)
    return X, y.to_numpy(dtype=object)


def target_predictions_table(target: Target, cohort: str, patient_ids: Sequence[str], proba: np.ndarray,
                             classes: Sequence[str], model_version: str) -> pd.DataFrame:
    """Per-patient probabilities of a non-subtype target: `cohort, patient_id, <target.label_column>,
    p_<class> for each of target.classes (0 for a class the model never saw), model_version`.
    Zero patients give an empty frame with the same columns."""
    proba = np.asarray(proba, dtype=float).reshape(len(patient_ids), len(classes))
    unknown = [c for c in classes if c not in target.classes]
    if unknown:
        raise ValueError(f"model classes {unknown} are not {target.name} labels ({', '.join(target.classes)})")
    P = pd.DataFrame(proba, columns=list(classes)).reindex(columns=list(target.classes), fill_value=0.0)
    out = pd.DataFrame({"cohort": pd.Series([cohort] * len(P), dtype=object),
                        "patient_id": pd.Series([str(p) for p in patient_ids], dtype=object)})
    out[target.label_column] = pd.Series(np.asarray(classes, dtype=object)[proba.argmax(axis=1)] if len(P) else [],
                                         dtype=object)
    for c in target.classes:
        out[target.proba_column(c)] = P[c].to_numpy()
    out["model_version"] = pd.Series([str(model_version)] * len(P), dtype=object)
    return out


def registered_row(subtype_classifier: pd.DataFrame) -> pd.Series:
    """The registered model's row of a `subtype_classifier` table (the version that run produced)."""
    rows = subtype_classifier.loc[subtype_classifier["registered"]]
    if len(rows) != 1:
        raise ValueError(f"subtype_classifier has {len(rows)} registered rows; expected exactly one")
    return rows.iloc[0]
