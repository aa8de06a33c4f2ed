"""The demo driver: the whole graph on a synthetic cohort, in ONE process, run by named jobs.

`make demo` calls `python -m gbm_assets.demo`. Torch, MLflow and the code location are imported
once; each stage is a named asset job (`demo_prepare`, `demo_splits`, `demo_unet`, `demo_score`,
`demo_classifier`, `demo_predict`) executed in process on the project's Dagster instance
($DAGSTER_HOME), in lineage order, so every run shows in the UI (`make dev`), tagged `gbm/demo`.
Assets with different partitions (cohorts, model inputs, none) need separate runs: one per stage,
one per model input for the U-Nets. Per-stage times are printed at the end.

Run configs come from `demo/` (YAML files with a top-level `ops:` key, as `dagster asset
materialize -c` reads them).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

DEMO_TAG = "gbm/demo"
DEFAULT_INPUTS = ("t1", "t1c", "t2", "flair", "stack")


@dataclass(frozen=True)
class Stage:
    """One named job of the demo: its assets, partition kind ("cohort", "input" or None) and run config file."""

    job: str
    assets: tuple[str, ...]
    partition: str | None
    config: str | None = None


STAGES: tuple[Stage, ...] = (
    Stage("demo_prepare", ("raw_cohort", "clinical_records", "preprocessed_volumes", "training_slices"), "cohort", "prepare.yaml"),
    Stage("demo_splits", ("training_splits",), None),
    Stage("demo_unet", ("unet_model", "unet_champion", "segmentation_metrics"), "input", "unet.yaml"),
    Stage("demo_score", ("lesion_masks", "radiomic_features", "radiomic_features_wide", "radiomics_exclusions",
                         "radiomics_provenance", "tumor_burden", "tumor_location", "tumor_progression"), "cohort", "score.yaml"),  # fmt: skip
    Stage("demo_classifier", ("subtype_training_table", "subtype_classifier", "subtype_champion", "survival_model"), None),
    Stage("demo_predict", ("subtype_predictions", "survival_view"), "cohort"),
)

SUMMARY_SQL = (
    "select sequence, split, metric, round(value, 3) as value from segmentation_metrics "
    "where split = 'test' and metric in ('dice_3d', 'hd95_mm', 'f1') order by all",
    "select model, round(balanced_accuracy, 3) as balanced_accuracy, round(macro_f1, 3) as macro_f1, "
    "model_version from subtype_classifier order by balanced_accuracy desc",
    "select * from subtype_champion",
    "select predicted_subtype, count(*) as patients from subtype_predictions group by 1 order by 2 desc",
)


@dataclass
class Timings:
    """(label, seconds) per step, in order."""

    rows: list[tuple[str, float]] = field(default_factory=list)

    def table(self) -> str:
        total = sum(s for _, s in self.rows)
        width = max([len(label) for label, _ in self.rows] + [5])
        lines = [f"{label:<{width}}  {seconds:7.1f} s" for label, seconds in self.rows]
        return "\n".join([*lines, f"{'total':<{width}}  {total:7.1f} s"])


def load_run_config(path: Path | None) -> dict:
    """The `ops:` mapping of a run-config YAML ({} for None or a missing file)."""
    import yaml

    if path is None or not path.is_file():
        return {}
    return dict(yaml.safe_load(path.read_text()) or {})


def demo_jobs(stages: tuple[Stage, ...] = STAGES) -> list:
    """One named asset job per stage, tagged `gbm/demo` (checks of the selected assets included)."""
    import dagster as dg

    return [dg.define_asset_job(s.job, selection=dg.AssetSelection.assets(*s.assets), tags={DEMO_TAG: "true"},
                                description=f"make demo: {', '.join(s.assets)}") for s in stages]  # fmt: skip


def run_demo(cohort: str, inputs: tuple[str, ...], config_dir: Path, instance, *, stages: tuple[Stage, ...] = STAGES,
             extra_resources: dict | None = None, log=print) -> Timings:  # fmt: skip
    """Execute `stages` in order on `instance`; raise on the first failed run. Returns the timings.

    `extra_resources` replaces resources of the code location (tests pass a temp data root).
    """
    import dagster as dg

    from gbm_assets.definitions import defs as location

    loaded = location()  # assets, checks and resources of the code location (its sensors / schedules are not needed)
    defs = dg.Definitions(assets=loaded.assets, asset_checks=loaded.asset_checks, jobs=demo_jobs(stages),
                          resources={**(loaded.resources or {}), **(extra_resources or {})})  # fmt: skip
    timings = Timings()
    for stage in stages:
        job = defs.resolve_job_def(stage.job)
        run_config = load_run_config(config_dir / stage.config if stage.config else None)
        keys = {"cohort": [cohort], "input": list(inputs), None: [None]}[stage.partition]
        for key in keys:
            label = stage.job if key is None else f"{stage.job}[{key}]"
            log(f"--- {label}: {', '.join(stage.assets)}")
            started = time.perf_counter()
            result = job.execute_in_process(run_config=run_config, instance=instance, partition_key=key,
                                            tags={DEMO_TAG: "true"}, raise_on_error=False)  # fmt: skip
            timings.rows.append((label, time.perf_counter() - started))
            if not result.success:
                errors = [str(e.event_specific_data.error) for e in result.all_events if e.is_step_failure]
                raise RuntimeError(f"{label} failed (run {result.run_id}):\n" + "\n".join(errors))
    return timings


def _summary(root) -> None:
    from gbm_assets.cli import print_table
    from gbm_assets.lib.store import warehouse

    for sql in SUMMARY_SQL:
        print(f"\n> {sql}")
        print_table(warehouse.query(root, sql), "table")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m gbm_assets.demo", description=__doc__.splitlines()[0])
    ap.add_argument("--cohort", default="demo")
    ap.add_argument("--patients", type=int, default=40)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--inputs", nargs="+", default=list(DEFAULT_INPUTS), help="model inputs to train (U-Net per input)")
    ap.add_argument("--config-dir", type=Path, default=Path("demo"), help="folder of the run-config YAML files")
    ap.add_argument("--skip-synth", action="store_true", help="keep the cohort already on disk")
    args = ap.parse_args(argv)
    home = os.environ.get("DAGSTER_HOME")
    if not home or not Path(home).is_dir():
        print(f"DAGSTER_HOME={home!r} must be an existing folder (make demo creates ./.dagster)", file=sys.stderr)
        return 1
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "true")
    started = time.perf_counter()
    import dagster as dg

    from gbm_assets.cli import register_cohort
    from gbm_assets.lib.store.paths import DataRoot
    from gbm_assets.lib.synth.phantom import write_cohort

    root = DataRoot.from_env(None)
    instance = dg.DagsterInstance.get()
    timings = Timings([("imports", time.perf_counter() - started)])
    if not args.skip_synth:
        t0 = time.perf_counter()
        write_cohort(root.cohorts_dir, args.cohort, args.patients, args.seed)
        timings.rows.append(("synth", time.perf_counter() - t0))
    register_cohort(args.cohort)
    timings.rows += run_demo(args.cohort, tuple(args.inputs), args.config_dir, instance).rows
    print(f"\ndemo finished in {time.perf_counter() - started:.0f} s; per stage:\n{timings.table()}")
    _summary(root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
