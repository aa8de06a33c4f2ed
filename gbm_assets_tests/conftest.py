"""Shared fixtures and helpers, written once: a temporary data root, the real cases in ../shared/data,
and the Dagster helpers (the code location's assets and checks, resources on one data root,
`materialize`, failure messages, check results by name)."""

from __future__ import annotations

import os
import socket
from functools import lru_cache
from pathlib import Path

import dagster as dg
import pytest

import gbm_assets
from gbm_assets.defs.compute import ComputeResource
from gbm_assets.defs.resources import (
    DataRootResource,
    MlflowResource,
    PartitionedParquetIOManager,
)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = (PROJECT_ROOT / ".." / "shared" / "data").resolve()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for servers the tests start)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def shared_case(name: str) -> Path:
    """Path of a folder in ../shared/data, or skip the test with the reason it is missing."""
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"real test data {path} is absent (it ships beside the project in ../shared/data)")
    return path


@pytest.fixture
def data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty GBM_DATA_ROOT for one test."""
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("GBM_DATA_ROOT", str(root))
    return root

def code_location() -> dg.Definitions:
    """Every definition under `gbm_assets/defs`, loaded as `dg` loads them.

    Cached per value of the GBM_* settings: resources read them through `dg.EnvVar` when they are
    set at load time, so a location loaded under one environment must not serve another."""
    return _load_code_location(tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("GBM_"))))


@lru_cache(maxsize=4)
def _load_code_location(settings: tuple) -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(gbm_assets.__file__).parent)


def assets_and_checks() -> list:
    defs = code_location()
    return [*defs.assets, *defs.asset_checks]


def only_assets(*keys: str) -> list:
    """The definitions of asset `keys` and the checks on them alone (for a test that supplies the
    rest itself, e.g. a stub upstream asset)."""
    wanted = {dg.AssetKey(k) for k in keys}
    out = []
    for node in assets_and_checks():
        asset_keys = set(getattr(node, "keys", set()))
        check_targets = {c.asset_key for c in getattr(node, "check_keys", set())}
        if (asset_keys and asset_keys <= wanted) or (not asset_keys and check_targets and check_targets <= wanted):
            out.append(node)
    return out


def resources(root: str | Path) -> dict:
    """The code location's resources on one data root (nested as there), compute on the local pool."""
    data_root = DataRootResource(path=str(root))
    return {
        "data_root": data_root,
        "table_io_manager": PartitionedParquetIOManager(data_root=data_root),
        "mlflow": MlflowResource(data_root=data_root),
        "compute": ComputeResource(),
    }


def materialize(root, selection, partition=None, *, instance=None, run_config=None, raise_on_error=True, assets=None):
    """`dg.materialize` of `selection` (asset keys) from the whole code location on data root `root`."""
    return dg.materialize(
        assets if assets is not None else assets_and_checks(),
        selection=selection,
        partition_key=partition,
        instance=instance,
        resources=resources(root),
        run_config={"ops": run_config or {}},
        raise_on_error=raise_on_error,
    )


def failure_message(result) -> str:
    """Every step failure's error of a run, one per line."""
    return "\n".join(str(e.event_specific_data.error) for e in result.all_events if e.is_step_failure)


def checks_by_name(result) -> dict[str, bool]:
    """{check name: passed} of a run's check evaluations."""
    return {c.check_name: c.passed for c in result.get_asset_check_evaluations()}


def check_evaluation(result, name: str):
    """The evaluation of check `name` in a run (KeyError when it did not run)."""
    return {c.check_name: c for c in result.get_asset_check_evaluations()}[name]


def metadata(result, node: str) -> dict:
    """{key: value} of the first materialization of `node` in a run."""
    return {k: v.value for k, v in result.asset_materializations_for_node(node)[0].metadata.items()}


@pytest.fixture
def instance() -> dg.DagsterInstance:
    """An ephemeral instance with the `cohorts` partitions registered by `add_cohort`."""
    return dg.DagsterInstance.ephemeral()


def add_cohort(instance: dg.DagsterInstance, *names: str) -> None:
    instance.add_dynamic_partitions("cohorts", list(names))
