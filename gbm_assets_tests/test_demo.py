"""The demo driver: its run configs fit its named jobs, it times stages, and it runs stages in one process."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import yaml

from gbm_assets import demo
from gbm_assets.lib.store.paths import DataRoot
from gbm_assets.lib.synth.phantom import SynthOptions, write_cohort
from gbm_assets_tests.conftest import add_cohort, code_location, resources

DEMO_DIR = Path(__file__).resolve().parents[1] / "demo"


def test_every_demo_run_config_validates_against_its_job():
    defs = code_location()  # the demo's jobs are part of the code location (gbm_assets/defs/demo.py)
    names = [s.job for s in demo.STAGES]
    assert len(set(names)) == len(names)
    for stage in demo.STAGES:
        job = defs.resolve_job_def(stage.job)
        assert job.tags[demo.DEMO_TAG] == "true"
        config = demo.load_run_config(DEMO_DIR / stage.config if stage.config else None)
        assert dg.validate_run_config(job, config), stage.job
    selected = {a for s in demo.STAGES for a in s.assets}
    assert selected == {k.to_user_string() for k in code_location().resolve_asset_graph().get_all_asset_keys()}  # the whole graph


def test_timings_table_and_missing_config():
    table = demo.Timings([("a", 1.0), ("bb", 2.5)]).table()
    assert table.splitlines()[-1].split() == ["total", "3.5", "s"]
    assert demo.load_run_config(None) == {} and demo.load_run_config(Path("/no/such.yaml")) == {}


def test_main_refuses_without_dagster_home(monkeypatch, capsys):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert demo.main(["--patients", "1"]) == 1 and "DAGSTER_HOME" in capsys.readouterr().err


@pytest.mark.slow
def test_first_stages_run_in_process_as_named_tagged_jobs(data_root, instance, tmp_path):
    root = DataRoot(data_root)
    write_cohort(root.cohorts_dir, "tiny", 8, seed=3, options=SynthOptions(shape=(48, 48, 24), spacing=(3.0, 3.0, 6.0)))
    add_cohort(instance, "tiny")
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "prepare.yaml").write_text(yaml.safe_dump({"ops": {"preprocessed_volumes": {"config": {"target_spacing_mm": 3.0, "size": 48}}}}))
    (configs / "unet.yaml").write_text(yaml.safe_dump({"ops": {"unet_model": {"config": {"base": 4, "epochs": 1, "batch_size": 8, "schedule": "onecycle"}}}}))
    timings = demo.run_demo("tiny", ("flair",), configs, instance, stages=demo.STAGES[:3], extra_resources=resources(data_root), log=lambda _: None)
    assert [label for label, _ in timings.rows] == ["demo_prepare[tiny]", "demo_splits", "demo_unet[flair]"]
    runs = instance.get_runs()
    assert {r.job_name for r in runs} == {"demo_prepare", "demo_splits", "demo_unet"}
    assert all(r.tags.get(demo.DEMO_TAG) == "true" for r in runs)
    assert (root.table_dir("segmentation_metrics") / "flair.parquet").is_file()
