"""Where gbm_assets keeps things on disk, derived from one data root.

Layout under the data root (`$GBM_DATA_ROOT`, default `./data`):

    cohorts/<cohort>/...                 raw cohorts as dropped by people (read-only to us)
    tables/<table>/<cohort>.parquet      one Parquet file per table and cohort partition
    volumes/<stage>/<cohort>/<patient>/  NIfTI / npy files produced by assets
    results/<stage>/<cohort>/<patient>.json  content-keyed per-patient results (`lib/store/keyed.py`)
    warehouse.duckdb                     DuckDB views over tables/

Tables store file paths RELATIVE to the data root (`to_stored_paths`, in the table IO manager),
and readers resolve them against the CURRENT data root (`resolve_paths`): a data root that is
copied, moved or mounted elsewhere reads its own files. A path outside the data root (a
parameter file in the package, an allowed input folder) and an old table's absolute path stay
as they are.
    mlflow.db, mlartifacts/              MLflow tracking store and artifacts
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd

DEFAULT_DATA_ROOT = "data"
_PATH_COLUMN = re.compile(r"(^|_)(path|dir)$")
"""Table columns that hold file or folder paths: `*_path`, `dir`, `*_dir`, `path`."""
_COHORT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class CohortNameError(ValueError):
    """A cohort name that cannot safely be a folder and partition key."""


def validate_cohort_name(name: str) -> str:
    """Return `name` if it is a safe cohort name, else raise `CohortNameError`.

    A cohort name is 1-128 characters of letters, digits, `.`, `_` and `-`, starting with a
    letter or digit: no path separators, no `..`, no spaces.
    """
    if not isinstance(name, str) or ".." in name or "/" in name or "\\" in name or not _COHORT_NAME.match(name):
        raise CohortNameError(
            f"invalid cohort name {name!r}: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, with no path separators and no '..'"
        )
    return name


@dataclass(frozen=True)
class DataRoot:
    """Paths under one data root. Pure: creates nothing until asked."""

    root: Path

    @classmethod
    def at(cls, root: str | os.PathLike[str]) -> "DataRoot":
        """The data root at `root`, made absolute."""
        return cls(Path(root).expanduser().resolve())

    @classmethod
    def from_env(cls, root: str | os.PathLike[str] | None = None) -> "DataRoot":
        """For the command line: the data root given, else `$GBM_DATA_ROOT`, else `./data`."""
        return cls.at(root if root is not None else os.environ.get("GBM_DATA_ROOT", DEFAULT_DATA_ROOT))

    @property
    def cohorts_dir(self) -> Path:
        return self.root / "cohorts"

    def cohort_dir(self, cohort: str) -> Path:
        return self.cohorts_dir / validate_cohort_name(cohort)

    @property
    def tables_dir(self) -> Path:
        return self.root / "tables"

    def table_dir(self, table: str) -> Path:
        return self.tables_dir / table

    def table_file(self, table: str, partition: str) -> Path:
        """`tables/<table>/<partition>.parquet`; cohort partitions are validated."""
        return self.table_dir(table) / f"{validate_cohort_name(partition)}.parquet"

    def volume_dir(self, stage: str, cohort: str, patient: str | None = None) -> Path:
        base = self.root / "volumes" / stage / validate_cohort_name(cohort)
        return base / patient if patient else base

    def model_dir(self, name: str) -> Path:
        return self.root / "models" / name

    def results_dir(self, stage: str, cohort: str) -> Path:
        """`results/<stage>/<cohort>/`: one content-keyed record per patient (`lib/store/keyed.py`)."""
        return self.root / "results" / stage / validate_cohort_name(cohort)

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse.duckdb"


def is_path_column(name: str) -> bool:
    """Whether a table column holds paths (`*_path`, `dir`, `*_dir`, `path`)."""
    return bool(_PATH_COLUMN.search(str(name)))


def stored_path(value: Any, root: str | os.PathLike[str]) -> Any:
    """`value` relative to `root` (POSIX text) when it is a path under `root`; anything else unchanged."""
    if not isinstance(value, (str, os.PathLike)) or not str(value) or not os.path.isabs(value):
        return value
    try:
        return PurePosixPath(Path(value).relative_to(root)).as_posix()
    except ValueError:  # outside the data root: kept absolute
        return str(value) if isinstance(value, str) else value


def resolved_path(value: Any, root: str | os.PathLike[str]) -> Any:
    """A stored path read back: relative -> under the CURRENT `root`; absolute, empty or missing -> unchanged."""
    if not isinstance(value, str) or not value or os.path.isabs(value):
        return value
    return str(Path(root) / value)


def _map_path_columns(table: pd.DataFrame, convert) -> pd.DataFrame:
    columns = [c for c in table.columns if is_path_column(c) and table[c].dtype == object]
    if not columns:
        return table
    out = table.copy()
    for column in columns:
        out[column] = out[column].map(convert)
    return out


def to_stored_paths(table: pd.DataFrame, root: str | os.PathLike[str]) -> pd.DataFrame:
    """`table` with its path columns relative to `root` (what is written to Parquet)."""
    return _map_path_columns(table, lambda v: stored_path(v, root))


def resolve_paths(table: pd.DataFrame, root: str | os.PathLike[str]) -> pd.DataFrame:
    """`table` (as read from Parquet) with its relative path columns resolved under the current `root`."""
    return _map_path_columns(table, lambda v: resolved_path(v, root))


def map_paths_in(value: Any, convert) -> Any:
    """`value` (nested dicts, lists and tuples) with `convert` applied to every path-keyed text entry."""
    if isinstance(value, dict):
        return {k: convert(v) if is_path_column(k) and isinstance(v, str) else map_paths_in(v, convert) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(map_paths_in(v, convert) for v in value)
    return value
