"""One data root: setting only GBM_DATA_ROOT moves every output, and the `dg` CLI loads and launches.

These run the real command-line tools in subprocesses, with nothing but GBM_DATA_ROOT and
DAGSTER_HOME set, from a working directory that is neither the data root nor the project.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gbm_assets.defs.resources import DataRootResource, MlflowResource, PartitionedParquetIOManager
from gbm_assets.lib.synth.phantom import SynthOptions, write_cohort
from gbm_assets_tests.conftest import PROJECT_ROOT

BIN = Path(sys.executable).parent
TINY = SynthOptions(shape=(32, 32, 16), spacing=(4.0, 4.0, 8.0))


def _env(data_root: Path, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GBM_", "MLFLOW_", "DAGSTER_"))}
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    env.update(GBM_DATA_ROOT=str(data_root), DAGSTER_HOME=str(home), VIRTUAL_ENV=str(BIN.parent),
               PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}")  # fmt: skip
    return env


def _run(args: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
    done = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def test_every_resource_follows_the_one_data_root(tmp_path):
    data_root = DataRootResource(path=str(tmp_path / "elsewhere"))
    io = PartitionedParquetIOManager(data_root=data_root)
    tracking = MlflowResource(data_root=data_root)
    root = (tmp_path / "elsewhere").resolve()
    assert data_root.root().root == root
    assert io.data_root.root().table_file("raw_cohort", "c").is_relative_to(root)
    store = tracking.store()
    assert store.tracking_uri == f"sqlite:///{root / 'mlflow.db'}" and store.artifact_root == root / "mlartifacts"


def test_a_tracking_server_is_set_on_the_resource_not_through_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:1")  # a stray variable changes nothing
    tracking = MlflowResource(data_root=DataRootResource(path=str(tmp_path)))
    assert tracking.store().tracking_uri.startswith("sqlite:///")
    server = MlflowResource(data_root=DataRootResource(path=str(tmp_path)), tracking_uri="http://127.0.0.1:5000")
    assert server.store().tracking_uri == "http://127.0.0.1:5000"


@pytest.mark.slow
def test_dg_checks_the_definitions_and_launches_a_partition_into_the_data_root_alone(tmp_path):
    data_root, cwd = tmp_path / "moved" / "root", tmp_path / "cwd"
    cwd.mkdir()
    write_cohort(data_root / "cohorts", "c1", 2, seed=1, options=TINY)
    env = _env(data_root, tmp_path / "home")
    _run([str(BIN / "dg"), "check", "defs"], env, PROJECT_ROOT)
    _run([str(BIN / "gbm-assets"), "add-cohort", "c1"], env, cwd)
    _run([str(BIN / "dg"), "launch", "--assets", "raw_cohort,clinical_records", "--partition", "c1"], env, PROJECT_ROOT)
    assert (data_root / "tables" / "raw_cohort" / "c1.parquet").is_file()
    assert (data_root / "tables" / "clinical_records" / "c1.parquet").is_file()
    assert (data_root / "warehouse.duckdb").is_file()
    assert not (PROJECT_ROOT / "data" / "tables" / "raw_cohort" / "c1.parquet").exists()
    assert not any(cwd.iterdir()), f"files written outside the data root: {list(cwd.iterdir())}"
    out = _run([str(BIN / "gbm-assets"), "sql", "select count(*) as n from raw_cohort", "--format", "csv"], env, cwd)
    assert out.stdout.strip().splitlines()[-1] == "2"
