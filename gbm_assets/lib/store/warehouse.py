"""The DuckDB warehouse: views over the Parquet tables, and sandboxed queries.

Two ways in:

- `warehouse.duckdb`, for external clients (DuckDB CLI, notebooks, BI tools): `ensure_views`
  (called by the IO manager after each table write) keeps one view per table over the glob
  `tables/<table>/*.parquet`, so a new cohort's file appears without touching the database.
  The database file is written only to create a view the first time its table gets a file, to
  repair a view that reads another folder, or when asked to refresh; writers take a file lock
  and hold the connection for milliseconds. DuckDB stores a view's glob as an absolute path: a
  data root that is moved or copied keeps views over the OLD folder until the next
  `ensure_views` on the new root (any materialization, or `gbm-assets sql --refresh-views`),
  which notices and recreates them.
- `query` (what `gbm-assets sql` runs) never opens that file. It builds a throwaway in-memory
  DuckDB with views over the CURRENT root's `tables/<table>/*.parquet`, then seals it: file
  access only under `tables/` (`allowed_directories`), `enable_external_access = false`, no
  extension auto-install/auto-load, no temp directory, `lock_configuration = true`. The SQL
  must be exactly one SELECT-type statement (SELECT, WITH, VALUES, FROM-first, DESCRIBE,
  SUMMARIZE, SHOW), as DuckDB's own parser classifies it; everything else (COPY, ATTACH,
  INSTALL/LOAD, SET, PRAGMA, EXPORT, CREATE, EXPLAIN, several statements) is refused with
  `QueryRefused` before running. So a query cannot read or write a file outside `tables/`,
  cannot write inside it, and cannot loosen the settings.
"""

from __future__ import annotations

import fcntl
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import duckdb
import pandas as pd

from gbm_assets.lib.store.paths import DataRoot
from gbm_assets.lib.store.views import create_derived_views, derived_views_for


class QueryRefused(ValueError):
    """SQL that the sandbox does not run (not exactly one SELECT-type statement)."""


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _glob(table_dir: Path) -> str:
    return str(table_dir / "*.parquet").replace("'", "''")


def view_sql(name: str, table_dir: Path) -> str:
    return f"CREATE OR REPLACE VIEW {_ident(name)} AS SELECT * FROM read_parquet('{_glob(table_dir)}', union_by_name = true)"


def tables_with_files(root: DataRoot) -> list[str]:
    """Names of the folders under `tables/` that hold at least one Parquet file, sorted."""
    if not root.tables_dir.is_dir():
        return []
    return sorted(p.name for p in root.tables_dir.iterdir() if p.is_dir() and any(p.glob("*.parquet")))


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
    candidates = tables if tables is not None else tables_with_files(root)
    with_files = [t for t in candidates if any(root.table_dir(t).glob("*.parquet"))]
    if not with_files:
        return []
    with _writer(root) as con:
        existing = dict(con.execute("select view_name, sql from duckdb_views() where not internal").fetchall())
        # a view whose SQL does not read this root's folder (a moved or copied data root) is stale
        todo = [t for t in with_files if refresh or t not in existing or _glob(root.table_dir(t)) not in (existing[t] or "")]
        for table in todo:
            con.execute(view_sql(table, root.table_dir(table)))
        # derived views (lib/store/views.py) over the table views: new, asked to refresh, or over a table just (re)viewed
        derived = [v.name for v in derived_views_for(set(existing) | set(todo))
                   if refresh or v.name not in existing or set(v.requires) & set(todo)]  # fmt: skip
        todo += create_derived_views(con, set(existing) | set(todo), only=derived)
    return todo




@contextmanager
def connect_readonly(root: DataRoot) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to `warehouse.duckdb` (for tests and trusted code; `query` is the
    sandbox for user SQL), creating an empty database first if needed."""
    if not root.warehouse.exists():
        with _writer(root):
            pass
    con = duckdb.connect(str(root.warehouse), read_only=True)
    try:
        yield con
    finally:
        con.close()


@contextmanager
def sandbox(root: DataRoot) -> Iterator[duckdb.DuckDBPyConnection]:
    """A sealed in-memory DuckDB with one view per table of `root` (see the module doc).

    Writes nothing. With no table files yet, the connection has no views.
    """
    con = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    try:
        allowed = str(root.tables_dir).replace("'", "''") + "/"
        con.execute("SET temp_directory = ''")
        con.execute(f"SET allowed_directories = ['{allowed}']")
        tables = tables_with_files(root)
        for table in tables:
            con.execute(view_sql(table, root.table_dir(table)))
        create_derived_views(con, tables)
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        yield con
    finally:
        con.close()


def check_select(sql: str) -> str:
    """Return `sql` if DuckDB parses it as exactly one SELECT-type statement.

    Raises:
        QueryRefused: no statement, several, or one of another type (named in the message).
        duckdb.ParserException: the SQL does not parse (DuckDB's own message).
    """
    statements = duckdb.extract_statements(sql)
    if len(statements) != 1:
        raise QueryRefused(f"refused: expected exactly one SELECT statement, got {len(statements)}")
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        raise QueryRefused(f"refused: only SELECT queries run here, not {kind.name}")
    return sql


def query(root: DataRoot, sql: str) -> pd.DataFrame:
    """Run one SELECT-type statement in the sandbox over `root`'s tables; the result as a DataFrame.

    Raises:
        QueryRefused: not exactly one SELECT-type statement.
        duckdb.Error: DuckDB's own error (parse error, unknown table, permission error, ...).
    """
    check_select(sql)
    with sandbox(root) as con:
        return con.execute(sql).df()


def list_views(root: DataRoot) -> pd.DataFrame:
    """One row per table view of `root`: `view`, `rows` (empty table when there are none)."""
    with sandbox(root) as con:
        names = [r[0] for r in con.execute("select view_name from duckdb_views() where not internal order by 1").fetchall()]
        rows = [con.execute(f"select count(*) from {_ident(n)}").fetchone()[0] for n in names]
    return pd.DataFrame({"view": names, "rows": pd.Series(rows, dtype="int64")})


def describe_view(root: DataRoot, name: str) -> pd.DataFrame:
    """The columns of view `name`: `column`, `type`.

    Raises:
        KeyError: no such view; the message names the views that exist.
    """
    views = tables_with_files(root)
    views += [v.name for v in derived_views_for(views)]
    if name not in views:
        raise KeyError(f"no view {name!r}; views: {', '.join(views) or '(none yet)'}")
    with sandbox(root) as con:
        df = con.execute(f"describe {_ident(name)}").df()
    return df.rename(columns={"column_name": "column", "column_type": "type"})[["column", "type"]]
