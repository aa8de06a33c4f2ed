"""Read and normalise a cohort's clinical table.

By default the table is `<cohort>/clinical.csv` with columns `patient_id, subtype,
survival_months, idh_status, age` (the synthetic generator writes exactly that). A
`cohort.yaml` may describe any other table under `clinical:`::

    clinical:
      path: xena/TCGA.GBM.sampleMap-GBM_clinicalMatrix   # relative to the cohort folder
      separator: "\\t"                  # default: tab for .tsv/.txt/no extension, comma otherwise
      patient_id_pattern: "^(TCGA-\\d\\d-\\d{4})"   # first group = patient id (trims sample suffixes)
      columns:                           # our name: the table's column
        patient_id: sampleID
        subtype: GeneExp_Subtype
        survival: CDE_survival_time
        idh_status: G_CIMP_STATUS
        age: CDE_DxAge
        vital_status: vital_status
      survival_unit: days                # days or months

The table must resolve (symlinks followed) inside the cohort folder, or inside a directory the
operator allows (`allowed`; see `gbm_assets.lib.ingest.confine`). Values are never silently
coerced: an unparseable number (survival "abc", age "x") or an unknown subtype / IDH / vital
status is an error naming the file, the column and the patients.

Output columns (CLINICAL_COLUMNS): cohort, patient_id, subtype (one of contract.SUBTYPES or
missing), survival_months, event (True = death observed, False = censored, missing =
unknown), idh_status (`mutant` / `wildtype` / missing), age (years).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gbm_assets.lib.contract import MISSING_MARKERS, normalise_subtype
from gbm_assets.lib.ingest.confine import OutsideCohortError, check_pattern, confine

DAYS_PER_MONTH = 30.44
CLINICAL_COLUMNS = ["cohort", "patient_id", "subtype", "survival_months", "event", "idh_status", "age"]
REQUIRED = ("patient_id", "subtype")

_IDH_ALIASES = {
    "mutant": "mutant", "mut": "mutant", "idh-mutant": "mutant", "idh mutant": "mutant", "mutated": "mutant",
    "g-cimp": "mutant", "gcimp": "mutant", "positive": "mutant",
    "wildtype": "wildtype", "wild-type": "wildtype", "wild type": "wildtype", "wt": "wildtype",
    "idh-wildtype": "wildtype", "non g-cimp": "wildtype", "non-g-cimp": "wildtype", "negative": "wildtype",
}  # fmt: skip
_EVENT_ALIASES = {"deceased": True, "dead": True, "1": True, "true": True, "living": False, "alive": False, "0": False, "false": False}
_MISSING = MISSING_MARKERS


class ClinicalTableError(ValueError):
    """The clinical table cannot be normalised; the message names the file and the rows."""


def _normalise(values: pd.Series, aliases: dict, what: str, ids: pd.Series, source: str) -> pd.Series:
    text = values.astype("string").str.strip().str.lower().str.replace(r"\s+", " ", regex=True)
    missing = text.isna() | text.isin(_MISSING)
    mapped = text.map(lambda v: aliases.get(v) if isinstance(v, str) else None)
    unknown = ~missing & mapped.isna()
    if unknown.any():
        found = sorted(set(values[unknown].astype(str)))
        who = ", ".join(ids[unknown].astype(str).head(5))
        raise ClinicalTableError(f"{source}: unknown {what} {found} for patient(s) {who}")
    return mapped.where(~missing, None).astype(object)


def _subtypes(values: pd.Series, ids: pd.Series, source: str) -> pd.Series:
    """`contract.normalise_subtype` on every value; unknown ones raise, naming values and patients."""
    out, unknown = [], []
    for value, pid in zip(values, ids):
        try:
            out.append(normalise_subtype(value))
        except ValueError:
            out.append(None)
            unknown.append((str(value), str(pid)))
    if unknown:
        found = sorted({v for v, _ in unknown})
        who = ", ".join(p for _, p in unknown[:5])
        raise ClinicalTableError(f"{source}: unknown subtype {found} for patient(s) {who}")
    return pd.Series(out, index=values.index, dtype=object)


def read_table(path: Path, separator: str | None = None) -> pd.DataFrame:
    """Read a CSV/TSV clinical table as strings. Raises ClinicalTableError if unreadable."""
    sep = separator or ("," if path.suffix.lower() == ".csv" else "\t")
    try:
        return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise ClinicalTableError(f"{path}: cannot read clinical table ({exc})") from exc


def normalise_clinical(raw: pd.DataFrame, cohort: str, source: str, spec: dict[str, Any] | None = None) -> pd.DataFrame:
    """Map a raw clinical table to CLINICAL_COLUMNS.

    Args:
        raw: the table as read (strings).
        cohort: the cohort the table belongs to (written to every row).
        source: the file it came from, named in errors.
        spec: the `clinical:` mapping of cohort.yaml (columns, survival_unit, patient_id_pattern).

    Raises:
        ClinicalTableError: a required column is missing, a subtype / IDH / vital status
            value is not recognised, or a survival / age value is not a number (the message
            names the file, the column, the values and the patients).
    """
    spec = spec or {}
    columns = {"patient_id": "patient_id", "subtype": "subtype", "idh_status": "idh_status", "age": "age"}
    columns |= {"vital_status": "vital_status", "event": "event"}
    unit = str(spec.get("survival_unit", "months"))
    if "survival_days" in raw.columns and "columns" not in spec:
        columns["survival"], unit = "survival_days", "days"
    else:
        columns["survival"] = "survival_months"
    columns |= dict(spec.get("columns", {}))
    absent = [f"{ours} (column {columns[ours]!r})" for ours in REQUIRED if columns[ours] not in raw.columns]
    if absent:
        raise ClinicalTableError(f"{source}: missing required column(s) {', '.join(absent)}; has {list(raw.columns)[:20]}")
    if unit not in ("days", "months"):
        raise ClinicalTableError(f"{source}: survival_unit must be 'days' or 'months', not {unit!r}")

    ids = raw[columns["patient_id"]].astype(str).str.strip()
    if pattern := spec.get("patient_id_pattern"):
        extracted = ids.str.extract(re.compile(pattern), expand=False)
        ids = extracted.iloc[:, 0] if isinstance(extracted, pd.DataFrame) else extracted
    out = pd.DataFrame({"cohort": cohort, "patient_id": ids})
    out["subtype"] = _subtypes(raw[columns["subtype"]], ids, source)

    def numeric(name: str) -> pd.Series:
        col = columns.get(name)
        if col not in raw.columns:
            return pd.Series(np.nan, index=raw.index, dtype=float)
        text = raw[col].astype("string").str.strip()
        missing = text.isna() | text.str.lower().isin(_MISSING)
        values = pd.to_numeric(text.where(~missing), errors="coerce")
        bad = ~missing & (values.isna() | ~np.isfinite(values.astype(float)))
        if bad.any():
            shown = ", ".join(f"{pid} ({text[i]!r})" for i, pid in ids[bad].head(5).items())
            raise ClinicalTableError(f"{source}: column {col!r} ({name}) is not a number for patient(s) {shown}")
        return values.astype(float)

    survival = numeric("survival")
    out["survival_months"] = survival / DAYS_PER_MONTH if unit == "days" else survival
    event_col = next((columns[c] for c in ("event", "vital_status") if columns[c] in raw.columns), None)
    out["event"] = (
        _normalise(raw[event_col], _EVENT_ALIASES, "vital status", ids, source) if event_col else None
    )
    out["idh_status"] = (
        _normalise(raw[columns["idh_status"]], _IDH_ALIASES, "IDH status", ids, source)
        if columns["idh_status"] in raw.columns
        else None
    )
    out["age"] = numeric("age")
    out = out[out["patient_id"].notna() & (out["patient_id"] != "")]
    return out.drop_duplicates("patient_id", keep="first").reset_index(drop=True)[CLINICAL_COLUMNS]


def clinical_source(
    cohort_dir: Path, spec: dict[str, Any] | None, allowed: Sequence[Path] = ()
) -> tuple[Path | None, dict[str, Any]]:
    """Where the cohort's clinical table is: (path or None when the cohort has none, spec).

    Args:
        allowed: directories outside the cohort folder the table may resolve into (the
            operator's allowance). A relative `path` is relative to the cohort folder; an
            absolute one is accepted only inside an allowed directory.

    Raises:
        ClinicalTableError: `clinical` is not a mapping, or the table does not exist or lies
            outside the cohort folder and every allowed directory (the message names it).
    """
    if spec is not None and not isinstance(spec, dict):
        raise ClinicalTableError(f"{cohort_dir / 'cohort.yaml'}: 'clinical' must be a mapping, not {type(spec).__name__}")
    spec = dict(spec or {})
    where = cohort_dir / "cohort.yaml"
    try:
        if "path" in spec:
            path = Path(str(spec["path"])).expanduser()
            if not (path.is_absolute() and allowed):
                path = cohort_dir / check_pattern(str(spec["path"]), str(where), "clinical.path")
            confine(path, cohort_dir, allowed, what="clinical table")
            if not path.is_file():
                raise ClinicalTableError(f"{where}: clinical table {path} does not exist")
            return path, spec
        for name in ("clinical.csv", "clinical.tsv"):
            if (cohort_dir / name).is_file():
                return confine(cohort_dir / name, cohort_dir, allowed, what="clinical table"), spec
    except OutsideCohortError as exc:
        raise ClinicalTableError(f"{where}: {exc}" if str(where) not in str(exc) else str(exc)) from None
    return None, spec


def empty_clinical() -> pd.DataFrame:
    """A clinical table with no rows (a cohort to score that has no clinical data)."""
    return pd.DataFrame({c: pd.Series(dtype=object) for c in CLINICAL_COLUMNS})
