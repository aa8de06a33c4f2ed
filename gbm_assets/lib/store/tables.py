"""Tables on disk: one Parquet file per table and partition, written atomically.

A reader (DuckDB, pandas, another run) sees either the old file or the new one, never a half
written file: `gbm_assets.lib.store.files.write_atomic` writes a hidden temp file beside the target
and renames it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from gbm_assets.lib.store.files import write_atomic


def write_parquet_atomic(df: pd.DataFrame, path: Path) -> Path:
    """Write `df` to `path` atomically (hidden temp file in the same folder, then rename)."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    return write_atomic(path, lambda tmp: pq.write_table(table, tmp))


def read_parquet(path: Path) -> pd.DataFrame:
    """Read one partition's table. Raises FileNotFoundError naming the file if absent."""
    if not path.is_file():
        raise FileNotFoundError(f"table file {path} does not exist; materialize the upstream asset first")
    return pd.read_parquet(path)
