"""`gbm-assets sql` for people: wide rows printed vertically, every row and column in csv/json/parquet,
the views listed and described, and errors that name the views that exist.

Split from `gbm_assets.cli` (which parses the arguments and reports errors) to keep both short.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from pathlib import Path

from gbm_assets.lib.store.paths import DataRoot


class CliError(Exception):
    """An error the command reports as one line, exit status 1."""


VERTICAL_MAX_FIELDS = 60
"""Fields printed per record in vertical output before a "... N more" note."""


def _terminal_width() -> int:
    import shutil

    return shutil.get_terminal_size((120, 40)).columns


def print_vertical(df, max_fields: int | None = VERTICAL_MAX_FIELDS) -> None:
    """One `column: value` line per field, records separated by a `-[ RECORD n ]-` line; at most
    `max_fields` fields per record (None: all), then a note of how many were left out."""
    names = [str(c) for c in df.columns]
    width = max(len(n) for n in names[: max_fields or len(names)])
    for i, row in enumerate(df.itertuples(index=False), start=1):
        print(f"-[ RECORD {i} ]" + "-" * 20)
        values = list(row)
        for name, value in list(zip(names, values))[: max_fields or len(names)]:
            text = " ".join(str(value).split())
            print(f"{name.ljust(width)} | {text[:200]}{'...' if len(text) > 200 else ''}")
        if max_fields and len(names) > max_fields:
            print(f"... {len(names) - max_fields} more columns (--all-fields to show them, --format csv/json/parquet "
                  "--output FILE for the full table)")


def print_table(df, fmt: str, max_rows: int | None = None, *, vertical: bool | None = None, output: str | None = None,
                all_fields: bool = False) -> None:
    """Print a DataFrame as an aligned table (at most `max_rows` rows), CSV or JSON records, or
    write it (csv/json/parquet) to `output`; csv/json/parquet always hold every row and column.

    Table format: printed vertically when `vertical` is True, or (None) when the rows would not
    fit the terminal's width.
    """
    if fmt == "parquet":
        if not output:
            raise CliError("--format parquet needs --output FILE")
        df.to_parquet(output, index=False)
        print(f"wrote {len(df)} rows x {len(df.columns)} columns to {output}", file=sys.stderr)
        return
    if fmt in ("csv", "json"):
        text = df.to_csv(index=False) if fmt == "csv" else df.to_json(orient="records", indent=2, date_format="iso") + "\n"
        if output:
            Path(output).write_text(text)
            print(f"wrote {len(df)} rows x {len(df.columns)} columns to {output}", file=sys.stderr)
        else:
            sys.stdout.write(text)
        return
    if not len(df):
        print(f"(no rows) columns: {', '.join(map(str, df.columns))}")
        return
    shown = df if max_rows is None or len(df) <= max_rows else df.head(max_rows)
    text = shown.to_string(index=False, max_rows=None, max_colwidth=80)
    too_wide = max(len(line) for line in text.splitlines()) > _terminal_width()
    if vertical or (vertical is None and too_wide):
        print_vertical(shown, None if all_fields else VERTICAL_MAX_FIELDS)
    else:
        print(text)
    if len(shown) < len(df):
        print(f"({len(shown)} of {len(df)} rows shown; --max-rows to change, --format csv for all)")


_DESCRIBE = re.compile(r"^\s*describe\s+(?:table\s+)?\"?([A-Za-z0-9_.\-]+)\"?\s*;?\s*$", re.IGNORECASE)
_MISSING_TABLE = re.compile(r"Table with name (\S+?) does not exist", re.IGNORECASE)


def unknown_view_message(name: str, views: list[str], tables_dir: Path) -> str:
    """`no view NAME` with the closest views and every view that exists (never DuckDB's guess among
    its catalog tables, e.g. "Did you mean pg_enum?")."""
    if not views:
        return f"no view {name!r}: no tables yet under {tables_dir} (materialize an asset first)"
    close = difflib.get_close_matches(name, views, n=3, cutoff=0.6)
    hint = f" (did you mean {' or '.join(close)}?)" if close else ""
    return f"no view {name!r}{hint}; views: {', '.join(views)}"


def _catalog_error(exc: Exception, root: DataRoot) -> str:
    """DuckDB's catalog error, rewritten to name the views that exist when the unknown name is a table."""
    from gbm_assets.lib.store import warehouse

    found = _MISSING_TABLE.search(str(exc))
    if found is None:
        return f"SQL error: {exc}"
    return unknown_view_message(found.group(1).strip('"'), warehouse.tables_with_files(root), root.tables_dir)


def cmd_sql(args: argparse.Namespace) -> int:
    """`gbm-assets sql`: a query, `--list`, `describe VIEW` / `--describe VIEW` or `--refresh-views`."""
    import duckdb

    from gbm_assets.lib.store import warehouse

    root = DataRoot.from_env(args.data_root)
    if args.refresh_views:
        done = warehouse.ensure_views(root, refresh=True)
        print(f"recreated {len(done)} view(s) in {root.warehouse}: {', '.join(done) or '(no tables yet)'}")
        return 0
    sql = " ".join(args.query)
    describe = args.describe or (m.group(1) if (m := _DESCRIBE.match(sql)) else None)
    try:
        if args.list:
            df = warehouse.list_views(root)
        elif describe:
            views = warehouse.tables_with_files(root)
            if describe not in views:
                raise CliError(unknown_view_message(describe, views, root.tables_dir))
            df = warehouse.describe_view(root, describe)
        else:
            df = warehouse.query(root, sql)
    except KeyError as exc:
        raise CliError(exc.args[0]) from None
    except warehouse.QueryRefused as exc:
        raise CliError(f"SQL {exc}") from None
    except duckdb.CatalogException as exc:
        raise CliError(_catalog_error(exc, root)) from None
    except duckdb.Error as exc:
        raise CliError(f"SQL error: {exc}") from None
    print_table(df, args.format, args.max_rows, vertical=True if args.vertical else None, output=args.output,
                all_fields=args.all_fields)
    return 0


def views_epilog(root: DataRoot | None) -> str | None:
    """For `sql --help`: the views that exist under `root` (None without a data root folder)."""
    if root is None or not root.root.is_dir():
        return None
    from gbm_assets.lib.store import warehouse

    views = warehouse.tables_with_files(root)
    if not views:
        return f"no views yet: no tables under {root.tables_dir} (materialize an asset first)"
    return f"views under {root.tables_dir} (`--list` for row counts):\n  " + "\n  ".join(views)
