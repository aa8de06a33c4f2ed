"""Read and normalise a cohort's clinical table.

By default the table is `<cohort>/clinical.csv` with columns `patient_id, subtype,
survival_months, idh_status, age` (the synthetic generator writes exactly that). A
`cohort.yaml` may describe any other table under `clinical:`::

    clinical:
      path: /data/xena/TCGA.GBM.sampleMap-GBM_clinicalMatrix   # relative to the cohort folder, or absolute
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

Output columns (CLINICAL_COLUMNS): cohort, patient_id, subtype (one of contract.SUBTYPES or
missing), survival_months, event (True = death observed, False = censored, missing =
unknown), idh_status (`mutant` / `wildtype` / missing), age (years).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gbm_assets.lib.contract import SUBTYPES

DAYS_PER_MONTH = 30.44
CLINICAL_COLUMNS = ["cohort", "patient_id", "subtype", "survival_months", "event", "idh_status", "age"]
REQUIRED = ("patient_id", "subtype")

_SUBTYPE_ALIASES = {
    **{s.lower(): s for s in SUBTYPES},
    "cl": "Classical", "cla": "Classical", "class": "Classical",
    "mes": "Mesenchymal", "mesen": "Mesenchymal", "mesench": "Mesenchymal",
    "pn": "Proneural", "pro": "Proneural", "pron": "Proneural",
    "ne": "Neural", "neu": "Neural", "neur": "Neural",
}  # fmt: skip
_IDH_ALIASES = {
    "mutant": "mutant", "mut": "mutant", "idh-mutant": "mutant", "idh mutant": "mutant", "mutated": "mutant",
    "g-cimp": "mutant", "gcimp": "mutant", "positive": "mutant",
    "wildtype": "wildtype", "wild-type": "wildtype", "wild type": "wildtype", "wt": "wildtype",
    "idh-wildtype": "wildtype", "non g-cimp": "wildtype", "non-g-cimp": "wildtype", "negative": "wildtype",
}  # fmt: skip
_EVENT_ALIASES = {"deceased": True, "dead": True, "1": True, "true": True, "living": False, "alive": False, "0": False, "false": False}
_MISSING = {"", "na", "n/a", "nan", "none", "null", "[not available]", "[not applicable]", "-"}


class ClinicalTableError(ValueError):
    """The clinical table cannot be normalised; the message names the file and the rows."""


def _normalise(values: pd.Series, aliases: dict, what: str, ids: pd.Series, source: str) -> pd.Series:
    text = values.astype("string").str.strip().str.lower()
    missing = text.isna() | text.isin(_MISSING)
    mapped = text.map(lambda v: aliases.get(v) if isinstance(v, str) else None)
    unknown = ~missing & mapped.isna()
    if unknown.any():
        found = sorted(set(values[unknown].astype(str)))
        who = ", ".join(ids[unknown].astype(str).head(5))
        raise ClinicalTableError(f"{source}: unknown {what} {found} for patient(s) {who}")
    return mapped.where(~missing, None).astype(object)


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
        ClinicalTableError: a required column is missing, or a subtype / IDH / vital status
            value is not recognised (the message lists the values and patients).
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
    out["subtype"] = _normalise(raw[columns["subtype"]], _SUBTYPE_ALIASES, "subtype", ids, source)

    def numeric(name: str) -> pd.Series:
        col = columns.get(name)
        if col not in raw.columns:
            return pd.Series(np.nan, index=raw.index, dtype=float)
        return pd.to_numeric(raw[col].where(~raw[col].str.strip().str.lower().isin(_MISSING)), errors="coerce")

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


def clinical_source(cohort_dir: Path, spec: dict[str, Any] | None) -> tuple[Path | None, dict[str, Any]]:
    """Where the cohort's clinical table is: (path or None when the cohort has none, spec).

    Raises:
        ClinicalTableError: cohort.yaml names a table that does not exist.
    """
    spec = dict(spec or {})
    if "path" in spec:
        path = Path(str(spec["path"])).expanduser()
        path = path if path.is_absolute() else cohort_dir / path
        if not path.is_file():
            raise ClinicalTableError(f"{cohort_dir / 'cohort.yaml'}: clinical table {path} does not exist")
        return path, spec
    for name in ("clinical.csv", "clinical.tsv"):
        if (cohort_dir / name).is_file():
            return cohort_dir / name, spec
    return None, spec


def empty_clinical() -> pd.DataFrame:
    """A clinical table with no rows (a cohort to score that has no clinical data)."""
    return pd.DataFrame({c: pd.Series(dtype=object) for c in CLINICAL_COLUMNS})
