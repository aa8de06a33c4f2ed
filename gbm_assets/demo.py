"""The demo driver: the whole graph on a synthetic cohort, in ONE process, run by named jobs.

`make demo` calls `python -m gbm_assets.demo`. Torch, MLflow and the code location are imported
once; each stage is a named asset job (`demo_prepare`, `demo_splits`, `demo_unet`, `demo_score`,
`demo_longitudinal`, `demo_classifier`, `demo_predict`) executed in process on the project's Dagster instance
($DAGSTER_HOME), in lineage order, so every run shows in the UI (`make dev`), tagged `gbm/demo`.
Assets with different partitions (cohorts, model inputs, none) need separate runs: one per stage,
one per model input for the U-Nets. Per-stage times are printed at the end.

Beside the main cohort, a small longitudinal synthetic cohort (`<cohort>_long`: 6 subjects x 3-4 scans,
`lib/synth/longitudinal.py`) is ingested, preprocessed and segmented by the trained champion after the
U-Nets train (`demo_longitudinal`: masks, burden, progression; no radiomics, no training), so
`tumor_progression` shows responses measured on predicted masks. It never joins training (no
`training_slices`, no radiomic features). A blocking check that stops a champion from moving (a gate)
is reported, not fatal: the demo goes on and the summary shows what was not promoted.

Run configs come from `demo/` (YAML files with a top-level `ops:` key, as `dagster asset
materialize -c` reads them); `demo/synth.yaml` gives the phantoms' geometry (`shape`, `spacing`:
`lib/synth/phantom.SynthOptions`), which `prepare.yaml` and `longitudinal.yaml` resample to unchanged.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

DEMO_TAG = "gbm/demo"
DEFAULT_INPUTS = ("t1", "t1c", "t2", "flair", "stack", "all")


@dataclass(frozen=True)
class Stage:
    """One named job of the demo: its assets, partition kind ("cohort", "longitudinal", "input" or None) and
    run config file."""

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
    Stage("demo_longitudinal", ("raw_cohort", "clinical_records", "preprocessed_volumes", "lesion_masks", "tumor_burden",
                                "tumor_progression"), "longitudinal", "longitudinal.yaml"),  # fmt: skip
    Stage("demo_classifier", ("subtype_training_table", "subtype_classifier", "subtype_champion", "target_training_table",
                              "idh_classifier", "idh_champion", "short_survival_classifier", "short_survival_champion",
                              "survival_model"), None, "classifier.yaml"),  # fmt: skip
    Stage("demo_predict", ("subtype_predictions", "idh_predictions", "short_survival_predictions", "survival_view"), "cohort"),
)
LONGITUDINAL_SUBJECTS = 6
LONGITUDINAL_TIMEPOINTS = (3, 4)

SUMMARY_SQL = (
    ("select sequence, " + ", ".join(f"round(max(value) filter (where coalesce(region, 'whole_tumor') = '{r}'), 3) as {r}"
                                      for r in ("whole_tumor", "tumor_core", "enhancing"))
     + " from segmentation_metrics where split = 'test' and metric = 'dice_3d' group by sequence order by sequence"),
    ("select cohort, region, count(*) as patients, round(avg(volume_ml), 1) as mean_volume_ml, round(avg(dice), 3) as mean_dice "
     "from tumor_burden where roi_source = 'predicted' group by all order by all"),
    ("select count(*) as patients, round(avg(enhancing_volume_ml), 1) as enhancing_ml, "
     "round(avg(necrosis_volume_ml), 1) as non_enhancing_ml, round(avg(enhancing_max_3d_diameter_mm), 1) as enhancing_diameter_mm from notebook_features where roi_source = 'predicted'"),
    ("select model, round(balanced_accuracy, 3) as balanced_accuracy, round(macro_f1, 3) as macro_f1, "
     "model_version from subtype_classifier order by balanced_accuracy desc"),
    "select * from subtype_champion",
    "select predicted_subtype, count(*) as patients from subtype_predictions group by 1 order by 2 desc",
    ("select 'idh' as target, model, round(balanced_accuracy, 3) as balanced_accuracy, round(macro_f1, 3) as macro_f1, "
     "status, skip_reason from idh_classifier union all by name select 'short_survival' as target, model, "
     "round(balanced_accuracy, 3) as balanced_accuracy, round(macro_f1, 3) as macro_f1, status, skip_reason "
     "from short_survival_classifier order by target, balanced_accuracy desc"),
    # one query per champion: a gate that held one back (no table) must not hide the other
    "select model_name, champion_version, promoted, skip_reason from idh_champion",
    "select model_name, champion_version, promoted, skip_reason from short_survival_champion",
    ("select 'idh' as target, predicted_idh as predicted, count(*) as patients from idh_predictions group by all "
     "union all select 'short_survival', predicted_short_survival, count(*) from short_survival_predictions "
     "group by all order by 1, 2"),
    ("select subject, timepoint, round(volume_ml, 1) as volume_ml, round(change_from_baseline_pct) as from_baseline_pct, "
     "response from tumor_progression where roi_source = 'predicted' and region = 'whole_tumor' order by subject, week"),
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


def _merged(base: dict, over: dict) -> dict:
    """`over` laid over `base`, mappings merged key by key at every depth."""
    out = dict(base)
    for key, value in over.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def stage_run_config(config_dir: Path, stage: Stage, key: str | None) -> dict:
    """A stage's run config for one partition: `<config>` (e.g. `unet.yaml`) with `<stem>.<key>.yaml`, where it
    exists (e.g. `unet.all.yaml`: what only the `all` U-Net trains differently), merged over it."""
    if stage.config is None:
        return {}
    config = load_run_config(config_dir / stage.config)
    if key is None:
        return config
    return _merged(config, load_run_config(config_dir / f"{Path(stage.config).stem}.{key}.yaml"))


def synth_options(config_dir: Path):
    """The phantoms' `SynthOptions` from `<config_dir>/synth.yaml` (keys of SynthOptions; none: its defaults)."""
    from gbm_assets.lib.synth.phantom import SynthOptions

    values = load_run_config(config_dir / "synth.yaml")
    return SynthOptions(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def demo_jobs(stages: tuple[Stage, ...] = STAGES) -> list:
    """One named asset job per stage, tagged `gbm/demo` (checks of the selected assets included)."""
    import dagster as dg

    return [dg.define_asset_job(s.job, selection=dg.AssetSelection.assets(*s.assets), tags={DEMO_TAG: "true"},
                                description=f"make demo: {', '.join(s.assets)}") for s in stages]  # fmt: skip


def blocked_gates(result) -> tuple[list[str], list[str]]:
    """(failed checks, other step failures) of a run: a failed blocking check fails its own step with
    `DagsterAssetCheckFailedError` (the asset it gates is then skipped); anything else is a real failure."""
    checks = sorted(c.check_name for c in result.get_asset_check_evaluations() if not c.passed)
    errors = [e.event_specific_data.error for e in result.all_events if e.is_step_failure]
    return checks, [str(e) for e in errors if e.cls_name != "DagsterAssetCheckFailedError"]


def run_demo(cohort: str, inputs: tuple[str, ...], config_dir: Path, instance, *, stages: tuple[Stage, ...] = STAGES,
             extra_resources: dict | None = None, log=print, longitudinal: str | None = None) -> Timings:  # fmt: skip
    """Execute `stages` in order on `instance`; raise on the first failed run. Returns the timings.

    A run whose only failures are blocking checks (a champion gate that held) is logged and the demo
    goes on. `longitudinal` names the longitudinal cohort (None: its stages are skipped).
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
        keys = {"cohort": [cohort], "longitudinal": [longitudinal] if longitudinal else [], "input": list(inputs),
                None: [None]}[stage.partition]
        for key in keys:
            run_config = stage_run_config(config_dir, stage, key)
            label = stage.job if key is None else f"{stage.job}[{key}]"
            log(f"--- {label}: {', '.join(stage.assets)}")
            started = time.perf_counter()
            result = job.execute_in_process(run_config=run_config, instance=instance, partition_key=key,
                                            tags={DEMO_TAG: "true"}, raise_on_error=False)  # fmt: skip
            timings.rows.append((label, time.perf_counter() - started))
            if not result.success:
                checks, errors = blocked_gates(result)
                if errors or not checks:
                    raise RuntimeError(f"{label} failed (run {result.run_id}):\n" + "\n".join(errors))
                log(f"--- {label}: gate held, champion not moved: {', '.join(checks)} failed (see the run's checks)")
    return timings


def _summary(root) -> None:
    import duckdb

    from gbm_assets.cli import print_table
    from gbm_assets.lib.store import warehouse

    for sql in SUMMARY_SQL:
        print(f"\n> {sql}")
        try:
            print_table(warehouse.query(root, sql), "table")
        except duckdb.Error as exc:  # a table a held gate never wrote: say so, show the rest
            print(f"(not available: {str(exc).splitlines()[0]})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m gbm_assets.demo", description=__doc__.splitlines()[0])
    ap.add_argument("--cohort", default="demo")
    ap.add_argument("--patients", type=int, default=40)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--inputs", nargs="+", default=list(DEFAULT_INPUTS), help="model inputs to train (U-Net per input)")
    ap.add_argument("--config-dir", type=Path, default=Path("demo"), help="folder of the run-config YAML files")
    ap.add_argument("--skip-synth", action="store_true", help="keep the cohorts already on disk")
    ap.add_argument("--longitudinal-subjects", type=int, default=LONGITUDINAL_SUBJECTS,
                    help="subjects of the longitudinal cohort <cohort>_long (3-4 scans each); 0 leaves it out")
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
    from gbm_assets.lib.synth.longitudinal import write_longitudinal_cohort
    from gbm_assets.lib.synth.phantom import write_cohort

    root = DataRoot.from_env(None)
    instance = dg.DagsterInstance.get()
    timings = Timings([("imports", time.perf_counter() - started)])
    if not args.skip_synth:
        t0 = time.perf_counter()
        options = synth_options(args.config_dir)
        write_cohort(root.cohorts_dir, args.cohort, args.patients, args.seed, options)
        if args.longitudinal_subjects > 0:
            write_longitudinal_cohort(root.cohorts_dir, f"{args.cohort}_long", args.longitudinal_subjects, args.seed,
                                      options, timepoints=LONGITUDINAL_TIMEPOINTS)
        timings.rows.append(("synth", time.perf_counter() - t0))
    register_cohort(args.cohort)
    longitudinal = f"{args.cohort}_long" if args.longitudinal_subjects > 0 else None
    if longitudinal:
        register_cohort(longitudinal)
    timings.rows += run_demo(args.cohort, tuple(args.inputs), args.config_dir, instance, longitudinal=longitudinal).rows
    print(f"\ndemo finished in {time.perf_counter() - started:.0f} s; per stage:\n{timings.table()}")
    _summary(root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
