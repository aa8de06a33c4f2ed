"""The DuckDB warehouse: views over the Parquet tables, and read-only queries.

Each view reads a glob (`tables/<table>/*.parquet`), so a new cohort's file appears in the view
without touching the database. The database file is written only to create a view the first
time its table gets a file (or when asked to refresh); writers take a file lock and hold the
DuckDB connection for milliseconds, so concurrent partition runs never contend for DuckDB's
write lock. Readers open the database read-only.
"""

from __future__ import annotations

import fcntl
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import duckdb
import pandas as pd

from gbm_assets.lib.paths import DataRoot


def view_sql(name: str, table_dir: Path) -> str:
    glob = str(table_dir / "*.parquet").replace("'", "''")
    return f"CREATE OR REPLACE VIEW \"{name}\" AS SELECT * FROM read_parquet('{glob}', union_by_name = true)"


@contextmanager
def _writer(root: DataRoot, attempts: int = 50) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short-lived read-write connection, serialised across processes by a lock file."""
    root.root.mkdir(parents=True, exist_ok=True)
    with open(root.root / ".warehouse.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for attempt in range(attempts):
            try:
                con = duckdb.connect(str(root.warehouse))
                break
            except duckdb.IOException:  # a reader outside our lock (a user's client) holds the file
                if attempt == attempts - 1:
                    raise
                time.sleep(0.1 * (attempt + 1))
        try:
            yield con
        finally:
            con.close()


def ensure_views(root: DataRoot, tables: list[str] | None = None, refresh: bool = False) -> list[str]:
    """Create (or with `refresh`, recreate) the views for tables that have at least one file.

    Args:
        root: the data root.
        tables: table names to consider; default every folder under `tables/`.
        refresh: recreate views that already exist (after a schema change).

    Returns:
        the names of the views created or replaced (empty when nothing was missing).
    """
    candidates = tables if tables is not None else sorted(p.name for p in root.tables_dir.glob("*") if p.is_dir())
    with_files = [t for t in candidates if any(root.table_dir(t).glob("*.parquet"))]
    if not with_files:
        return []
    with _writer(root) as con:
        existing = {r[0] for r in con.execute("select view_name from duckdb_views() where not internal").fetchall()}
        todo = with_files if refresh else [t for t in with_files if t not in existing]
        for table in todo:
            con.execute(view_sql(table, root.table_dir(table)))
    return todo


def register_sql_view(root: DataRoot, name: str, sql: str) -> None:
    """Create or replace a view defined by arbitrary SQL over other views (e.g. a join)."""
    with _writer(root) as con:
        con.execute(f'CREATE OR REPLACE VIEW "{name}" AS {sql}')


@contextmanager
def connect_readonly(root: DataRoot) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to the warehouse, creating an empty database first if needed."""
    if not root.warehouse.exists():
        with _writer(root):
            pass
    con = duckdb.connect(str(root.warehouse), read_only=True)
    try:
        yield con
    finally:
        con.close()


def query(root: DataRoot, sql: str) -> pd.DataFrame:
    """Run `sql` on a read-only connection and return the result as a DataFrame."""
    ensure_views(root)
    with connect_readonly(root) as con:
        return con.execute(sql).df()
