"""`gbm-assets`: generate synthetic cohorts, register cohorts as partitions, query the warehouse.

    gbm-assets synth --cohort demo --patients 24 --seed 7
    gbm-assets add-cohort my_cohort
    gbm-assets assemble-real --cohort tcga-real
    gbm-assets sql "select status, count(*) from raw_cohort group by 1" [--format table|csv|json]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from gbm_assets.lib.paths import CohortNameError, DataRoot, validate_cohort_name

COHORTS_PARTITION = "cohorts"  # the name of defs.partitions.cohorts_partitions, kept Dagster-free here


def _instance():
    """The project's Dagster instance: `$DAGSTER_HOME`, else `./.dagster` seeded with `./dagster.yaml`."""
    from dagster import DagsterInstance

    if not os.environ.get("DAGSTER_HOME"):
        home = Path.cwd() / ".dagster"
        home.mkdir(exist_ok=True)
        if Path("dagster.yaml").is_file() and not (home / "dagster.yaml").exists():
            shutil.copy("dagster.yaml", home / "dagster.yaml")
        os.environ["DAGSTER_HOME"] = str(home)
    return DagsterInstance.get()


def register_cohort(cohort: str) -> bool:
    """Add `cohort` to the `cohorts` dynamic partitions; False when it was already there."""
    instance = _instance()
    if instance.has_dynamic_partition(COHORTS_PARTITION, cohort):
        return False
    instance.add_dynamic_partitions(COHORTS_PARTITION, [cohort])
    return True


def _cmd_synth(args: argparse.Namespace) -> int:
    from gbm_assets.lib.synth import SynthOptions, write_cohort

    root = DataRoot.from_env(args.data_root)
    options = SynthOptions(
        shape=tuple(args.shape),
        spacing=tuple(args.spacing),
        orientation=args.orientation,
        oblique_deg=args.oblique_deg,
    )
    folder = write_cohort(root.cohorts_dir, args.cohort, args.patients, args.seed, options)
    print(f"wrote {args.patients} synthetic patients to {folder}")
    if not args.no_register:
        added = register_cohort(args.cohort)
        print(f"cohort partition {args.cohort!r} {'registered' if added else 'already registered'}")
    return 0


def _cmd_add_cohort(args: argparse.Namespace) -> int:
    folder = DataRoot.from_env(args.data_root).cohort_dir(args.cohort)
    if not folder.is_dir():
        print(f"note: {folder} does not exist yet; copy the cohort there before materializing", file=sys.stderr)
    added = register_cohort(args.cohort)
    print(f"cohort partition {args.cohort!r} {'registered' if added else 'already registered'}")
    return 0


def _cmd_assemble_real(args: argparse.Namespace) -> int:
    from gbm_assets.lib.real_cohort import assemble_real_cohort

    folder = assemble_real_cohort(Path(args.shared_data), DataRoot.from_env(args.data_root).cohorts_dir, args.cohort)
    print(f"linked the real TCGA-06-1802 case into {folder}")
    added = register_cohort(args.cohort)
    print(f"cohort partition {args.cohort!r} {'registered' if added else 'already registered'}")
    return 0


def _cmd_sql(args: argparse.Namespace) -> int:
    import duckdb

    from gbm_assets.lib.warehouse import query

    try:
        df = query(DataRoot.from_env(args.data_root), args.query)
    except duckdb.Error as exc:
        print(f"SQL error: {exc}", file=sys.stderr)
        return 1
    if args.format == "csv":
        df.to_csv(sys.stdout, index=False)
    elif args.format == "json":
        print(df.to_json(orient="records", indent=2, date_format="iso"))
    else:
        import pandas as pd

        with pd.option_context("display.max_rows", args.max_rows, "display.max_columns", None, "display.width", 200):
            print(df.to_string(index=False) if len(df) else f"(no rows) columns: {', '.join(df.columns)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gbm-assets", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", help="data root (default: $GBM_DATA_ROOT, else ./data)")
    sub = parser.add_subparsers(dest="command", required=True)

    synth = sub.add_parser("synth", help="write a seeded synthetic cohort and register its partition")
    synth.add_argument("--cohort", required=True)
    synth.add_argument("--patients", type=int, default=24)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--shape", type=int, nargs=3, default=(128, 128, 64), metavar=("X", "Y", "Z"))
    synth.add_argument("--spacing", type=float, nargs=3, default=(1.5, 1.5, 2.5), metavar=("SX", "SY", "SZ"), help="mm")
    synth.add_argument("--orientation", choices=("RAS", "LPS"), default="RAS")
    synth.add_argument("--oblique-deg", type=float, default=0.0, help="rotate the affine about z (degrees)")
    synth.add_argument("--no-register", action="store_true", help="do not add the Dagster partition")
    synth.set_defaults(func=_cmd_synth)

    add = sub.add_parser("add-cohort", help="register a cohort folder as a Dagster partition")
    add.add_argument("cohort")
    add.set_defaults(func=_cmd_add_cohort)

    real = sub.add_parser("assemble-real", help="link the real cases in ../shared/data into a cohort and register it")
    real.add_argument("--cohort", default="tcga-real")
    real.add_argument("--shared-data", default="../shared/data")
    real.set_defaults(func=_cmd_assemble_real)

    sql = sub.add_parser("sql", help="run SQL on the DuckDB warehouse (read-only)")
    sql.add_argument("query")
    sql.add_argument("--format", choices=("table", "csv", "json"), default="table")
    sql.add_argument("--max-rows", type=int, default=200)
    sql.set_defaults(func=_cmd_sql)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "cohort", None) is not None:
            validate_cohort_name(args.cohort)
        return args.func(args)
    except CohortNameError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
