"""Where gbm_assets keeps things on disk, derived from one data root.

Layout under the data root (`$GBM_DATA_ROOT`, default `./data`):

    cohorts/<cohort>/...                 raw cohorts as dropped by people (read-only to us)
    tables/<table>/<cohort>.parquet      one Parquet file per table and cohort partition
    volumes/<stage>/<cohort>/<patient>/  NIfTI / npy files produced by assets
    warehouse.duckdb                     DuckDB views over tables/
    mlflow.db, mlartifacts/              MLflow tracking store and artifacts
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DATA_ROOT = "data"
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

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse.duckdb"
