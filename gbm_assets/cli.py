"""`gbm-assets`: generate synthetic cohorts, register cohorts as partitions, query the warehouse.

    gbm-assets synth --cohort demo --patients 24 --seed 7
    gbm-assets add-cohort my_cohort
    gbm-assets assemble-real --cohort tcga-real
    gbm-assets sql "select status, count(*) from raw_cohort group by 1" [--format table|csv|json|parquet] [--max-rows N]
    gbm-assets sql "select * from radiomic_features_wide limit 2"   wide rows print vertically
    gbm-assets sql "select * from radiomic_features_wide" --format parquet --output wide.parquet
    gbm-assets sql --list                  views and their row counts
    gbm-assets sql describe raw_cohort     a view's columns (also: --describe raw_cohort)

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
from gbm_assets.sql_cli import (
    VERTICAL_MAX_FIELDS,
    CliError,
    cmd_sql,
    print_table,
    views_epilog,
)

__all__ = ["CliError", "build_parser", "main", "print_table", "register_cohort"]

COHORTS_PARTITION = "cohorts"  # the name of defs.partitions.cohorts_partitions, kept Dagster-free here


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


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def build_parser(root: DataRoot | None = None) -> argparse.ArgumentParser:
    """The argument parser; with `root`, `sql --help` lists the views that exist there."""
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

    sql = sub.add_parser("sql", help="run one SELECT on the tables (sandboxed, read-only)", epilog=views_epilog(root),
                         formatter_class=argparse.RawDescriptionHelpFormatter,
                         description="Run one SELECT-type statement on the tables (sandboxed, read-only), list the\n"
                         "views or describe one. Rows wider than the terminal print one field per line;\n"
                         "--format csv/json/parquet gives every row and column.")
    what = sql.add_mutually_exclusive_group(required=True)
    what.add_argument("query", nargs="*", default=[], metavar="SQL",
                      help="one SELECT-type statement (quote it), or `describe VIEW` for a view's columns")
    what.add_argument("--list", action="store_true", help="list the views and their row counts")
    what.add_argument("--describe", metavar="VIEW", help="list a view's columns and types (same as `describe VIEW`)")
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
    sql.set_defaults(func=cmd_sql)
    return parser


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _help_root(argv: list[str]) -> DataRoot | None:
    """The data root whose views `sql --help` lists (only when help is asked for: it reads the disk)."""
    if not {"-h", "--help"} & set(argv):
        return None
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--data-root")
    known, _ = pre.parse_known_args(argv)
    return DataRoot.from_env(known.data_root)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(_help_root(argv)).parse_args(argv)
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
