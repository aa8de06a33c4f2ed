"""The demo driver: its run configs fit its named jobs, it times stages, and it runs stages in one process."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import yaml

from gbm_assets import demo
from gbm_assets.lib.preprocess.intensity import DEFAULT_PERCENTILE_SCALED
from gbm_assets.lib.store.paths import DataRoot
from gbm_assets.lib.synth.longitudinal import write_longitudinal_cohort
from gbm_assets.lib.synth.phantom import SynthOptions, write_cohort
from gbm_assets_tests.conftest import add_cohort, code_location, resources

DEMO_DIR = Path(__file__).resolve().parents[1] / "demo"


PROFILES = [DEMO_DIR, DEMO_DIR / "quick"]
"""make demo's run configs and make demo-quick's."""


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_every_demo_run_config_validates_against_its_job(profile):
    defs = code_location()  # the demo's jobs are part of the code location (gbm_assets/defs/demo.py)
    names = [s.job for s in demo.STAGES]
    assert len(set(names)) == len(names)
    for stage in demo.STAGES:
        job = defs.resolve_job_def(stage.job)
        assert job.tags[demo.DEMO_TAG] == "true"
        keys = {"input": demo.DEFAULT_INPUTS, None: [None]}.get(stage.partition, ["demo"])
        for key in keys:  # every partition's config, with its `<stem>.<key>.yaml` override where one exists
            assert dg.validate_run_config(job, demo.stage_run_config(profile, stage, key)), (stage.job, key)
    selected = {a for s in demo.STAGES for a in s.assets}
    assert selected == {k.to_user_string() for k in code_location().resolve_asset_graph().get_all_asset_keys()}  # the whole graph


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_each_profile_preprocesses_its_phantoms_on_their_own_grid(profile):
    """Both cohorts of a profile are resampled to the phantoms' in-plane spacing and field of view, so the
    longitudinal cohort meets the U-Nets on the grid they were trained on, and nothing is up- or downsampled."""
    options = demo.synth_options(profile)
    scaled = set()
    for name in ("prepare.yaml", "longitudinal.yaml"):
        config = demo.load_run_config(profile / name)["ops"]["preprocessed_volumes"]["config"]
        assert config["target_spacing_mm"] == options.spacing[0] == options.spacing[1], (profile, name)
        assert config["size"] == options.shape[0] == options.shape[1], (profile, name)
        scaled.add(tuple(config.get("percentile_scaled", DEFAULT_PERCENTILE_SCALED)))
    assert len(scaled) == 1, (profile, scaled)  # scaled as the U-Nets were trained, or lesion_masks refuses the cohort


def test_synth_options_come_from_the_profile(tmp_path):
    assert demo.synth_options(tmp_path) == SynthOptions()  # no synth.yaml: the phantoms' defaults
    (tmp_path / "synth.yaml").write_text("shape: [64, 64, 32]\nspacing: [3.0, 3.0, 5.0]\n")
    assert demo.synth_options(tmp_path) == SynthOptions(shape=(64, 64, 32), spacing=(3.0, 3.0, 5.0))
    (tmp_path / "synth.yaml").write_text("shape: [64, 64]\n")
    with pytest.raises(ValueError, match="3-D shape"):
        demo.synth_options(tmp_path)


def test_longitudinal_cohort_is_scored_after_the_unets_and_never_trains():
    order = [s.job for s in demo.STAGES]
    assert order.index("demo_unet") < order.index("demo_longitudinal") < order.index("demo_classifier")
    stage = next(s for s in demo.STAGES if s.job == "demo_longitudinal")
    assert stage.partition == "longitudinal" and "tumor_progression" in stage.assets
    assert not {"training_slices", "radiomic_features"} & set(stage.assets)  # it never joins training
    by_job = {s.job: set(s.assets) for s in demo.STAGES}
    targets = {f"{t}_{a}" for t in ("idh", "short_survival") for a in ("classifier", "champion")}
    assert targets <= by_job["demo_classifier"] and {"idh_predictions", "short_survival_predictions"} <= by_job["demo_predict"]
    assert any("idh_classifier" in sql and "short_survival_classifier" in sql for sql in demo.SUMMARY_SQL)


def test_a_held_gate_is_reported_and_a_real_failure_is_not_hidden():
    @dg.asset
    def model() -> int:
        return 1

    @dg.asset_check(asset=model, blocking=True)
    def model_beats_champion() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=False)

    @dg.asset(deps=[model])
    def champion() -> None:
        pass

    @dg.asset
    def broken() -> None:
        raise ValueError("boom")

    defs = dg.Definitions(assets=[model, champion, broken], asset_checks=[model_beats_champion])
    held = dg.materialize([model, champion, model_beats_champion], raise_on_error=False)
    assert not held.success and demo.blocked_gates(held) == (["model_beats_champion"], [])
    assert not held.asset_materializations_for_node("champion")
    crashed = dg.materialize([broken], raise_on_error=False)
    checks, errors = demo.blocked_gates(crashed)
    assert checks == [] and "boom" in errors[0]
    assert defs  # the definitions load together


def test_a_partition_override_is_merged_over_its_stage_config(tmp_path):
    stage = next(s for s in demo.STAGES if s.job == "demo_unet")
    (tmp_path / "unet.yaml").write_text(yaml.safe_dump({"ops": {"unet_model": {"config": {"base": 8, "epochs": 9}}}}))
    (tmp_path / "unet.all.yaml").write_text(yaml.safe_dump({"ops": {"unet_model": {"config": {"epochs": 20}}}}))
    assert demo.stage_run_config(tmp_path, stage, "all") == {"ops": {"unet_model": {"config": {"base": 8, "epochs": 20}}}}
    assert demo.stage_run_config(tmp_path, stage, "t2") == {"ops": {"unet_model": {"config": {"base": 8, "epochs": 9}}}}
    assert demo.stage_run_config(tmp_path, demo.STAGES[1], None) == {}  # a stage without a config file


def test_timings_table_and_missing_config():
    table = demo.Timings([("a", 1.0), ("bb", 2.5)]).table()
    assert table.splitlines()[-1].split() == ["total", "3.5", "s"]
    assert demo.load_run_config(None) == {} and demo.load_run_config(Path("/no/such.yaml")) == {}


def test_main_refuses_without_dagster_home(monkeypatch, capsys):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert demo.main(["--patients", "1"]) == 1 and "DAGSTER_HOME" in capsys.readouterr().err


@pytest.mark.slow
def test_first_stages_run_in_process_as_named_tagged_jobs(data_root, instance, tmp_path):
    """Prepare, splits, one U-Net, then the longitudinal cohort scored by that champion (masks, burden,
    progression from predicted masks), on tiny grids."""
    root = DataRoot(data_root)
    small = SynthOptions(shape=(48, 48, 24), spacing=(3.0, 3.0, 6.0))
    write_cohort(root.cohorts_dir, "tiny", 8, seed=3, options=small)
    write_longitudinal_cohort(root.cohorts_dir, "tiny_long", 2, seed=3, options=small, timepoints=(3, 3))
    add_cohort(instance, "tiny", "tiny_long")
    configs = tmp_path / "configs"
    configs.mkdir()
    grid = {"ops": {"preprocessed_volumes": {"config": {"target_spacing_mm": 3.0, "size": 48}}}}
    (configs / "prepare.yaml").write_text(yaml.safe_dump(grid))
    (configs / "longitudinal.yaml").write_text(yaml.safe_dump(grid))
    (configs / "unet.yaml").write_text(yaml.safe_dump({"ops": {"unet_model": {"config": {"base": 4, "epochs": 1, "batch_size": 8, "schedule": "onecycle"}}}}))
    stages = (*demo.STAGES[:3], next(s for s in demo.STAGES if s.job == "demo_longitudinal"))
    timings = demo.run_demo("tiny", ("flair",), configs, instance, stages=stages, extra_resources=resources(data_root),
                            log=lambda _: None, longitudinal="tiny_long")
    assert [label for label, _ in timings.rows] == ["demo_prepare[tiny]", "demo_splits", "demo_unet[flair]",
                                                    "demo_longitudinal[tiny_long]"]
    runs = instance.get_runs()
    assert {r.job_name for r in runs} == {"demo_prepare", "demo_splits", "demo_unet", "demo_longitudinal"}
    assert all(r.tags.get(demo.DEMO_TAG) == "true" for r in runs)
    assert (root.table_dir("segmentation_metrics") / "flair.parquet").is_file()
    progression = pd.read_parquet(root.table_file("tumor_progression", "tiny_long"))
    predicted = progression[(progression["roi_source"] == "predicted") & (progression["region"] == "whole_tumor")]
    assert len(predicted) == 6 and set(predicted["subject"]) == {"tiny_long-000", "tiny_long-001"}
    assert not (root.table_dir("training_slices") / "tiny_long.parquet").exists()  # never a training cohort
