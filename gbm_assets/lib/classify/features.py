"""From the long radiomics table to the classifier's training table.

Feature column names (stable, SQL-friendly: only `[a-z0-9_]`, never starting with a digit)::

    <sequence>__<region>__<feature_class>_<feature>

- `sequence` is the canonical sequence (`contract.canonical_sequence`, so `T1Gd` -> `t1c`);
  shape features carry no sequence (empty string, null, or `"any"` as
  `radiomics.SHAPE_SEQUENCE` writes it) and get the word `shape` instead.
- every part is lower-cased and each run of other characters becomes one `_`, so
  `("t1c", "enhancing", "firstorder", "Mean")` -> `t1c__enhancing__firstorder_mean` and
  `("", "whole_tumor", "shape", "MeshVolume")` -> `shape__whole_tumor__shape_meshvolume`.
- the double underscore only ever separates sequence, region and feature, so a name can be
  split back with `name.split("__")`.

Two long-table entries that sanitise to the same name raise instead of being merged.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd

from gbm_assets.lib.contract import canonical_sequence, normalise_subtype

KEY_COLUMNS: tuple[str, ...] = ("cohort", "patient_id", "roi_source")
LONG_COLUMNS: tuple[str, ...] = (
    "cohort", "patient_id", "sequence", "roi_source", "region", "feature_class", "feature", "value",
)
CLINICAL_COLUMNS: tuple[str, ...] = ("subtype", "survival_months", "idh_status", "age")
NON_FEATURE_COLUMNS: frozenset[str] = frozenset(KEY_COLUMNS + CLINICAL_COLUMNS + ("event",))
"""Columns of a training table that are never features (not reported as `extra`)."""

_OTHER = re.compile(r"[^a-z0-9]+")
NO_SEQUENCE: frozenset[str] = frozenset({"", "any"})
"""`sequence` values meaning "not tied to a sequence" (shape rows), after strip + lower."""


def _part(text: object) -> str:
    return _OTHER.sub("_", str(text).strip().lower()).strip("_")


def feature_name(sequence: object, region: str, feature_class: str, feature: str) -> str:
    """The wide column name of one radiomics feature (see module docstring)."""
    if sequence is None or pd.isna(sequence) or str(sequence).strip().lower() in NO_SEQUENCE:
        seq = "shape"
    else:
        try:
            seq = canonical_sequence(str(sequence))
        except KeyError:
            seq = _part(sequence)
    name = f"{seq}__{_part(region)}__{_part(feature_class)}_{_part(feature)}"
    return name if not name[0].isdigit() else f"f_{name}"


def feature_columns(df: pd.DataFrame) -> list[str]:
    """The feature columns of a wide or training table, in table order."""
    return [c for c in df.columns if c not in NON_FEATURE_COLUMNS and "__" in c]


def wide_features(long_df: pd.DataFrame) -> pd.DataFrame:
    """Pivot the long radiomics table to one row per (cohort, patient_id, roi_source).

    Args:
        long_df: columns `LONG_COLUMNS`; `value` numeric (numeric strings accepted).

    Returns:
        DataFrame with `cohort, patient_id, roi_source` then one float column per feature,
        feature columns sorted by name; a feature a patient lacks is NaN. An empty input
        gives an empty frame with just the key columns.

    Raises:
        KeyError: a required column is absent.
        ValueError: a value is not numeric, or one (patient, feature) appears twice (also when
            two spellings sanitise to the same column name); the message names them.
    """
    absent = [c for c in LONG_COLUMNS if c not in long_df.columns]
    if absent:
        raise KeyError(f"long radiomics table lacks columns {absent}; has {list(long_df.columns)}")
    if long_df.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in KEY_COLUMNS})
    df = long_df.loc[:, list(LONG_COLUMNS)].copy()
    df["sequence"] = df["sequence"].fillna("")  # NaN never equals itself: a bad dict key
    parts = list(df[["sequence", "region", "feature_class", "feature"]].itertuples(index=False, name=None))
    names = {p: feature_name(*p) for p in set(parts)}
    df["column"] = [names[p] for p in parts]
    try:
        df["value"] = pd.to_numeric(df["value"], errors="raise").astype(float)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"non-numeric radiomics value: {exc}") from None
    dup = df.duplicated(list(KEY_COLUMNS) + ["column"], keep=False)
    if dup.any():
        shown = df.loc[dup, [*KEY_COLUMNS, "sequence", "region", "feature_class", "feature", "column"]].head(6)
        raise ValueError(f"{int(dup.sum())} duplicate radiomics entries (same patient and column name):\n"
                         f"{shown.to_string()}")
    wide = df.pivot(index=list(KEY_COLUMNS), columns="column", values="value")
    wide = wide.reindex(columns=sorted(wide.columns)).reset_index()
    wide.columns.name = None
    return wide


def _subtype(label: object, patient: str) -> object:
    """`contract.normalise_subtype` of a label, NaN for a missing one; the error names the patient."""
    try:
        subtype = normalise_subtype(label)
    except ValueError as exc:
        raise ValueError(f"patient {patient}: {exc}") from None
    return np.nan if subtype is None else subtype


def training_table(wide_df: pd.DataFrame, clinical_df: pd.DataFrame, roi_source: str,
                   clinical_columns: tuple[str, ...] = CLINICAL_COLUMNS) -> pd.DataFrame:
    """Join one ROI source's wide features with the clinical table.

    Args:
        wide_df: output of `wide_features`.
        clinical_df: columns `cohort, patient_id, subtype` and optionally `survival_months`
            (months), `idh_status`, `age` (years); absent optional columns become NaN.
        roi_source: which segmentation's features to use (e.g. the ground-truth masks).
        clinical_columns: the clinical columns kept (`CLINICAL_COLUMNS`; the targets' shared table adds `event`).

    Returns:
        DataFrame: `cohort, patient_id, roi_source, subtype, survival_months, idh_status, age`,
        then the feature columns; inner join, one row per patient. Patients without a subtype
        are kept (subtype NaN). Reported in `df.attrs` (and warned about when non-empty):
        `all_missing_features` (columns NaN for every patient), `unlabelled` (patients with
        no subtype), `unmatched_imaging` / `unmatched_clinical` (patients on one side only).
        An empty join gives an empty table with those columns.

    Raises:
        KeyError: the clinical table lacks cohort/patient_id/subtype, or wide_df roi_source.
        ValueError: an unknown subtype label (patient named), or a patient listed twice in
            the clinical table.
    """
    for col in ("cohort", "patient_id", "subtype"):
        if col not in clinical_df.columns:
            raise KeyError(f"clinical table lacks column {col!r}; has {list(clinical_df.columns)}")
    clin = clinical_df.copy()
    for col in clinical_columns:
        if col not in clin.columns:
            clin[col] = np.nan
    clin = clin.loc[:, ["cohort", "patient_id", *clinical_columns]]
    clin["patient_id"] = clin["patient_id"].astype(str)
    twice = clin.duplicated(["cohort", "patient_id"], keep=False)
    if twice.any():
        raise ValueError(f"clinical table lists patients twice: {sorted(set(clin.loc[twice, 'patient_id']))}")
    clin["subtype"] = [_subtype(s, f"{c}/{p}") for c, p, s in zip(clin.cohort, clin.patient_id, clin.subtype)]
    wide = wide_df.loc[wide_df["roi_source"] == roi_source].copy()
    if wide.empty and len(wide_df):
        warnings.warn(f"no features for roi_source {roi_source!r}; the table has "
                      f"{sorted(set(wide_df['roi_source']))}", stacklevel=2)
    wide["patient_id"] = wide["patient_id"].astype(str)
    feats = feature_columns(wide)
    table = wide.loc[:, [*KEY_COLUMNS, *feats]].merge(clin, on=["cohort", "patient_id"], how="inner",
                                                      validate="one_to_one")
    table = table.loc[:, list(KEY_COLUMNS) + list(clinical_columns) + feats].reset_index(drop=True)

    keys_w = set(zip(wide.cohort, wide.patient_id))
    keys_c = set(zip(clin.cohort, clin.patient_id))
    report = {
        "all_missing_features": [c for c in feats if table[c].isna().all()] if len(table) else list(feats),
        "unlabelled": sorted(f"{c}/{p}" for c, p in zip(table.cohort[table.subtype.isna()],
                                                         table.patient_id[table.subtype.isna()])),
        "unmatched_imaging": sorted(f"{c}/{p}" for c, p in keys_w - keys_c),
        "unmatched_clinical": sorted(f"{c}/{p}" for c, p in keys_c - keys_w),
    }
    table.attrs.update(report)
    for what, items in report.items():
        if items:
            warnings.warn(f"training_table({roi_source!r}): {what.replace('_', ' ')}: {items[:10]}"
                          + (f" (+{len(items) - 10} more)" if len(items) > 10 else ""), stacklevel=2)
    return table


def align_features(df: pd.DataFrame, expected_columns: list[str]) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Select and order `df`'s feature columns by name to match a trained model's columns.

    Args:
        df: a wide or training table (n_rows, any columns).
        expected_columns: the feature names the model was fitted on, in its order (for a
            fitted pipeline: `pipeline.feature_names_in_`).

    Returns:
        `(X, missing, extra)`: X is (n_rows, len(expected_columns)) in exactly the expected
        order, matched by name (never by position), index kept; `missing` columns are all-NaN
        in X (the pipeline's imputer fills them) and also warned about; `extra` are feature
        columns of `df` the model does not use (key/clinical columns are never `extra`).

    Raises:
        ValueError: `expected_columns` names a column twice.
    """
    expected = list(expected_columns)
    if len(set(expected)) != len(expected):
        dupes = sorted({c for c in expected if expected.count(c) > 1})
        raise ValueError(f"expected_columns repeats {dupes}")
    present = set(df.columns)
    missing = [c for c in expected if c not in present]
    extra = [c for c in df.columns if c not in set(expected) and c not in NON_FEATURE_COLUMNS]
    if missing:
        warnings.warn(f"{len(missing)} model feature(s) absent, filled with NaN: {missing[:10]}", stacklevel=2)
    X = df.reindex(columns=expected).astype(float)
    return X, missing, extra
