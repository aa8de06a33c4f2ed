"""Servers of the cluster test, started and stopped by the test itself: a throwaway PostgreSQL
cluster (Debian's binaries; `scripts/install_cluster.sh` installs them) and a Dask scheduler with
two worker processes on 127.0.0.1. Each is stopped on teardown, also when the test fails."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from gbm_assets_tests.conftest import free_port


def pytest_configure(config):
    config.addinivalue_line("markers", "cluster: starts PostgreSQL and a Dask cluster on 127.0.0.1 (run by make test)")


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).resolve().parent if pg_ctl else None


@dataclass
class Postgres:
    host: str
    port: int
    user: str
    db: str

    def env(self) -> dict[str, str]:
        """The variables deploy/dagster-postgres.yaml reads."""
        return {"DAGSTER_PG_HOST": self.host, "DAGSTER_PG_PORT": str(self.port), "DAGSTER_PG_USER": self.user,
                "DAGSTER_PG_PASSWORD": "unused-trust-auth", "DAGSTER_PG_DB": self.db}  # fmt: skip


@pytest.fixture
def postgres():
    """A fresh PostgreSQL cluster on a free port of 127.0.0.1 (trust auth), stopped on teardown.

    Root cannot run postgres: as root the cluster belongs to (and runs as) the `postgres` user."""
    pytest.importorskip("dagster_postgres", reason="dagster-postgres is missing (scripts/install_cluster.sh installs it)")
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (scripts/install_cluster.sh installs it: apt-get install postgresql)")
    base = Path(tempfile.mkdtemp(prefix="gbm-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server")
        os.chown(base, owner.pw_uid, owner.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data, port = base / "data", free_port()
    run = lambda *cmd: subprocess.run([*prefix, *map(str, cmd)], check=True, capture_output=True, text=True)  # noqa: E731
    started = False
    try:
        run(bindir / "initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        run(bindir / "pg_ctl", "-D", data, "-l", base / "server.log", "-w", "-t", "60",
            "-o", f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c max_connections=200", "start")  # fmt: skip
        started = True
        run(bindir / "createdb", "-h", "127.0.0.1", "-p", port, "-U", "postgres", "dagster")
        yield Postgres("127.0.0.1", port, "postgres", "dagster")
    except subprocess.CalledProcessError as exc:
        log = (base / "server.log").read_text() if (base / "server.log").exists() else ""
        raise RuntimeError(f"PostgreSQL ({' '.join(exc.cmd)}) failed: {exc.stderr}\n{log[-2000:]}") from exc
    finally:
        if started:
            subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                           capture_output=True, check=False)  # fmt: skip
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def dask_scheduler():
    """The address of a Dask scheduler with two single-threaded worker processes on 127.0.0.1."""
    distributed = pytest.importorskip("distributed", reason="dask distributed is missing (scripts/install_cluster.sh)")
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1",
                                  dashboard_address=None) as cluster:  # fmt: skip
        yield cluster.scheduler_address
