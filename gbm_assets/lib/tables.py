"""Tables on disk: one Parquet file per table and partition, written atomically.

A reader (DuckDB, pandas, another run) sees either the old file or the new one, never a half
written file: we write `<name>.parquet.tmp-<pid>` beside the target and `os.replace` it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def write_parquet_atomic(df: pd.DataFrame, path: Path) -> Path:
    """Write `df` to `path` atomically (temp file in the same folder, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_parquet(path: Path) -> pd.DataFrame:
    """Read one partition's table. Raises FileNotFoundError naming the file if absent."""
    if not path.is_file():
        raise FileNotFoundError(f"table file {path} does not exist; materialize the upstream asset first")
    return pd.read_parquet(path)
