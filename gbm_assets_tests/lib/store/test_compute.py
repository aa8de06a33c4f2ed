"""The compute backends: the same (item, result | exception) pairs from a local process pool, this
process and a Dask cluster; a killed worker retried once, then recorded; clear errors for an
unreachable scheduler and a data root a worker cannot see."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from gbm_assets.lib.store.compute import (
    ComputeUnavailable,
    LocalCompute,
    WorkerLost,
    collect,
    open_compute,
)


def square(x: int) -> int:
    if x == 3:
        raise ValueError(f"patient {x} is bad")
    return x * x


def dies(item: tuple[str, str]) -> str:
    """('always', _) kills its worker process every time; ('once', marker) the first time only."""
    kind, marker = item
    if kind == "always" or (kind == "once" and not Path(marker).exists()):
        if kind == "once":
            Path(marker).write_text("died once")
        os._exit(13)  # like kill -9 / the OOM killer: no exception, the process is gone
    return kind


def _plain(pairs):
    return [(item, repr(r) if isinstance(r, BaseException) else r) for item, r in pairs]


ITEMS = list(range(6))
EXPECTED = [(i, repr(ValueError(f"patient {i} is bad")) if i == 3 else i * i) for i in ITEMS]


def test_in_process_and_pool_give_the_same_pairs_in_input_order():
    assert _plain(collect(LocalCompute(1).map_patients(square, ITEMS), ITEMS)) == EXPECTED
    assert _plain(collect(LocalCompute(2).map_patients(square, ITEMS), ITEMS)) == EXPECTED


def test_a_killed_worker_is_retried_once_then_recorded_and_the_others_complete(tmp_path):
    items = [("ok", ""), ("always", ""), ("once", str(tmp_path / "marker")), ("ok", ""), ("ok", "")]
    pairs = dict((id(i), r) for i, r in LocalCompute(2).map_patients(dies, items))
    assert [pairs[id(i)] for i in items if i[0] != "always"] == ["ok", "once", "ok", "ok"]
    lost = pairs[id(items[1])]
    assert isinstance(lost, WorkerLost) and "died twice" in str(lost)


def test_unknown_backend_and_unreachable_scheduler_fail_before_any_work():
    with pytest.raises(ValueError, match="use one of local, dask"):
        with open_compute("slurm"):
            pass
    with socket.socket() as s:  # a free port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    with pytest.raises(ComputeUnavailable, match=f"Dask scheduler {address} unreachable"):
        with open_compute("dask", scheduler_address=address):
            pass


@pytest.fixture(scope="module")
def dask_cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1",
                                  dashboard_address=None) as cluster:  # fmt: skip
        yield cluster.scheduler_address


@pytest.mark.slow
def test_dask_gives_the_local_pairs_and_checks_the_data_root(dask_cluster, tmp_path):
    with open_compute("dask", scheduler_address=dask_cluster, data_root=str(tmp_path)) as compute:
        assert compute.workers == 2
        assert _plain(collect(compute.map_patients(square, ITEMS), ITEMS)) == EXPECTED
    missing = tmp_path / "not-mounted"
    with pytest.raises(ComputeUnavailable, match=f"data root {missing} is not visible from Dask worker"):
        with open_compute("dask", scheduler_address=dask_cluster, data_root=str(missing)):
            pass
