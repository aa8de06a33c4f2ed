"""`gbm-assets`: generate synthetic cohorts, register cohorts as partitions, query the warehouse.

    gbm-assets synth --cohort demo --patients 24 --seed 7
    gbm-assets add-cohort my_cohort
    gbm-assets assemble-real --cohort tcga-real
    gbm-assets sql "select status, count(*) from raw_cohort group by 1" [--format table|csv|json|parquet] [--max-rows N]
    gbm-assets sql "select * from radiomic_features_wide limit 2"   wide rows print vertically
    gbm-assets sql "select * from radiomic_features_wide" --format parquet --output wide.parquet
    gbm-assets sql --list                  views and their row counts
    gbm-assets sql --describe raw_cohort   a view's columns

`sql` runs one SELECT-type statement in a sealed, in-memory DuckDB over $GBM_DATA_ROOT/tables
(no file access outside tables/, no writes, no extensions). Commands that register a partition
need $DAGSTER_HOME (the Makefile sets it to ./.dagster). Errors print one line and exit 1;
usage errors exit 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib import metadata
from pathlib import Path

from gbm_assets.lib.store.paths import CohortNameError, DataRoot, validate_cohort_name

COHORTS_PARTITION = "cohorts"  # the name of defs.partitions.cohorts_partitions, kept Dagster-free here


class CliError(Exception):
    """An error the command reports as one line, exit status 1."""


def _version() -> str:
    try:
        return metadata.version("gbm_assets")
    except metadata.PackageNotFoundError:
        return "unknown"


def _instance():
    """The Dagster instance at `$DAGSTER_HOME`; never creates one anywhere else."""
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        raise CliError("DAGSTER_HOME is not set: point it at the project's instance folder (the Makefile uses ./.dagster)")
    if not Path(home).is_dir():
        raise CliError(f"DAGSTER_HOME={home} is not a directory: create it and copy dagster.yaml there")
    from dagster import DagsterInstance

    return DagsterInstance.get()


def register_cohort(cohort: str) -> bool:
    """Add `cohort` to the `cohorts` dynamic partitions; False when it was already there."""
    instance = _instance()
    if instance.has_dynamic_partition(COHORTS_PARTITION, cohort):
        return False
    instance.add_dynamic_partitions(COHORTS_PARTITION, [cohort])
    return True


def _registered(cohort: str) -> None:
    added = register_cohort(cohort)
    print(f"cohort partition {cohort!r} {'registered' if added else 'already registered'}")


def _cmd_synth(args: argparse.Namespace) -> int:
    from gbm_assets.lib.synth.phantom import SynthOptions, write_cohort

    if not args.no_register:
        _instance()  # fail before writing anything
    root = DataRoot.from_env(args.data_root)
    options = SynthOptions(
        shape=tuple(args.shape),
        spacing=tuple(args.spacing),
        orientation=args.orientation,
        oblique_deg=args.oblique_deg,
    )
    if args.longitudinal:
        from gbm_assets.lib.synth.longitudinal import write_longitudinal_cohort

        manifest = write_longitudinal_cohort(root.cohorts_dir, args.cohort, args.patients, args.seed, options)
        folder = root.cohort_dir(args.cohort)
        print(f"wrote {args.patients} synthetic subjects ({len(manifest)} scans) to {folder}")
    else:
        folder = write_cohort(root.cohorts_dir, args.cohort, args.patients, args.seed, options)
        print(f"wrote {args.patients} synthetic patients to {folder}")
    if not args.no_register:
        _registered(args.cohort)
    return 0


def _cmd_add_cohort(args: argparse.Namespace) -> int:
    folder = DataRoot.from_env(args.data_root).cohort_dir(args.cohort)
    _instance()
    if not folder.is_dir():
        print(f"note: {folder} does not exist yet; copy the cohort there before materializing", file=sys.stderr)
    _registered(args.cohort)
    return 0


def _cmd_assemble_real(args: argparse.Namespace) -> int:
    from gbm_assets.lib.synth.real import assemble_real_cohort

    _instance()
    folder = assemble_real_cohort(Path(args.shared_data), DataRoot.from_env(args.data_root).cohorts_dir, args.cohort)
    print(f"copied the real TCGA-06-1802 case into {folder}")
    _registered(args.cohort)
    return 0


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


def _cmd_sql(args: argparse.Namespace) -> int:
    import duckdb

    from gbm_assets.lib.store import warehouse

    root = DataRoot.from_env(args.data_root)
    if args.refresh_views:
        done = warehouse.ensure_views(root, refresh=True)
        print(f"recreated {len(done)} view(s) in {root.warehouse}: {', '.join(done) or '(no tables yet)'}")
        return 0
    try:
        if args.list:
            df = warehouse.list_views(root)
        elif args.describe:
            df = warehouse.describe_view(root, args.describe)
        else:
            df = warehouse.query(root, args.query)
    except KeyError as exc:
        raise CliError(exc.args[0]) from None
    except warehouse.QueryRefused as exc:
        raise CliError(f"SQL {exc}") from None
    except duckdb.CatalogException as exc:
        views = warehouse.tables_with_files(root)
        raise CliError(f"SQL error: {exc} (views: {', '.join(views) or f'none yet under {root.tables_dir}'})") from None
    except duckdb.Error as exc:
        raise CliError(f"SQL error: {exc}") from None
    print_table(df, args.format, args.max_rows, vertical=True if args.vertical else None, output=args.output,
                all_fields=args.all_fields)
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gbm-assets", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("--data-root", help="data root (default: $GBM_DATA_ROOT, else ./data)")
    sub = parser.add_subparsers(dest="command", required=True)

    synth = sub.add_parser("synth", help="write a seeded synthetic cohort and register its partition")
    synth.add_argument("--cohort", required=True, help="cohort name (folder under cohorts/ and partition key)")
    synth.add_argument("--patients", type=_positive, default=24, help="number of patients (default 24)")
    synth.add_argument("--seed", type=int, default=0, help="random seed; the same seed writes the same cohort (default 0)")
    synth.add_argument("--shape", type=_positive, nargs=3, default=(128, 128, 64), metavar=("X", "Y", "Z"),
                       help="volume size in voxels (default 128 128 64)")
    synth.add_argument("--spacing", type=float, nargs=3, default=(1.5, 1.5, 2.5), metavar=("SX", "SY", "SZ"),
                       help="voxel size in mm (default 1.5 1.5 2.5)")
    synth.add_argument("--orientation", choices=("RAS", "LPS"), default="RAS", help="axis orientation of the affine (default RAS)")
    synth.add_argument("--oblique-deg", type=float, default=0.0, help="rotate the affine about z (degrees)")
    synth.add_argument("--longitudinal", action="store_true",
                       help="3-5 scans per patient (week-NNN folders) whose tumour grows, responds or stays stable")
    synth.add_argument("--no-register", action="store_true", help="do not add the Dagster partition")
    synth.set_defaults(func=_cmd_synth)

    add = sub.add_parser("add-cohort", help="register a cohort folder as a Dagster partition")
    add.add_argument("cohort", help="cohort name (a folder under <data root>/cohorts)")
    add.set_defaults(func=_cmd_add_cohort)

    real = sub.add_parser("assemble-real", help="copy the real case in ../shared/data into a cohort and register it")
    real.add_argument("--cohort", default="tcga-real", help="cohort name to create (default tcga-real)")
    real.add_argument("--shared-data", default="../shared/data", help="folder holding the real case (default ../shared/data)")
    real.set_defaults(func=_cmd_assemble_real)

    sql = sub.add_parser("sql", help="run one SELECT on the tables (sandboxed, read-only)")
    what = sql.add_mutually_exclusive_group(required=True)
    what.add_argument("query", nargs="?", help="one SELECT-type statement")
    what.add_argument("--list", action="store_true", help="list the views and their row counts")
    what.add_argument("--describe", metavar="VIEW", help="list a view's columns and types")
    what.add_argument("--refresh-views", action="store_true", help="recreate warehouse.duckdb's views (after moving the data root)")
    sql.add_argument("--format", choices=("table", "csv", "json", "parquet"), default="table",
                     help="table (for people; wide rows vertical), or csv/json/parquet: every row and column "
                     "(parquet needs --output)")
    sql.add_argument("--output", metavar="FILE", help="write csv/json/parquet to FILE instead of standard output")
    sql.add_argument("--vertical", action="store_true",
                     help="table format: one `column | value` line per field (automatic when rows are wider than the terminal)")
    sql.add_argument("--all-fields", action="store_true",
                     help=f"vertical output: print every field, not the first {VERTICAL_MAX_FIELDS}")
    sql.add_argument("--max-rows", type=_positive, default=200, help="rows shown in table format (default 200)")
    sql.set_defaults(func=_cmd_sql)
    return parser


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "cohort", None) is not None:
            validate_cohort_name(args.cohort)
        return args.func(args)
    except CohortNameError as exc:
        print(f"gbm-assets: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except CliError as exc:
        print(f"gbm-assets {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:  # any other failure: one line naming it, not a traceback
        print(f"gbm-assets {args.command}: error: {type(exc).__name__}: {_one_line(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
