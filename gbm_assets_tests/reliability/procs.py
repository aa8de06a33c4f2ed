"""Helpers of the reliability tests: a temporary Dagster home, `dagster asset materialize` and
`gbm-assets` as subprocesses in their own process group, the process tree under /proc, killing a
whole group, and what a reader sees under `<data root>/tables/`.

Only the public surface is used: the `dagster` and `gbm-assets` executables beside
`sys.executable`, the project's `dagster.yaml`, asset names and run configuration.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import yaml

from gbm_assets_tests.conftest import PROJECT_ROOT

BIN = Path(sys.executable).parent
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}
"""Run configuration: every step in the CLI's own process (one code-location load per run)."""


LOCK_ERRORS = ("database is locked", "could not obtain lock", "deadlock detected", "Could not set lock",
               "OperationalError", "IOException")  # fmt: skip
"""What SQLite, PostgreSQL or DuckDB print when concurrent runs fight over a lock."""


@dataclass
class Project:
    """A temporary DAGSTER_HOME (the project's dagster.yaml, SQLite storage) and a data root."""

    home: Path
    data_root: Path
    logs: Path

    @classmethod
    def create(cls, base: Path) -> Project:
        home, data_root, logs = base / "dagster_home", base / "data", base / "logs"
        for folder in (home, data_root, logs):
            folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
        return cls(home, data_root, logs)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "PYTEST_CURRENT_TEST")}
        return env | {"DAGSTER_HOME": str(self.home), "GBM_DATA_ROOT": str(self.data_root), "PYTHONUNBUFFERED": "1"}

    def gbm_assets(self, *args: str) -> str:
        """Run `gbm-assets <args>` to completion; its stdout, or AssertionError with its output."""
        done = subprocess.run([str(BIN / "gbm-assets"), *args], env=self.env(), cwd=PROJECT_ROOT,
                              capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
        assert done.returncode == 0, f"gbm-assets {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def start_materialize(self, selection: list[str], partition: str, run_config: dict, name: str) -> subprocess.Popen:
        """`dagster asset materialize` in a new session (its own process group), output to logs/<name>.log."""
        config = self.logs / f"{name}.yaml"
        config.write_text(yaml.safe_dump(run_config))
        cmd = [str(BIN / "dagster"), "asset", "materialize", "-m", "gbm_assets.definitions",
               "--select", ",".join(selection), "--partition", partition, "-c", str(config)]  # fmt: skip
        with open(self.logs / f"{name}.log", "w") as log:  # the child keeps its own copy of the descriptor
            return subprocess.Popen(cmd, env=self.env(), cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)  # fmt: skip

    def log_tail(self, name: str, chars: int = 4000) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")[-chars:]

    def materialize_at_once(self, selection: list[str], partitions: list[str], run_config: dict, timeout: float) -> None:
        """One `dagster asset materialize` per partition, all at once; assert each exits 0 with no lock
        error in its log. Every process group is killed afterwards, even on failure."""
        runs = [self.start_materialize(selection, p, run_config, p) for p in partitions]
        try:
            codes = [run.wait(timeout=timeout) for run in runs]
        finally:
            for run in runs:
                kill_group(run)
        for partition, code in zip(partitions, codes):
            log = self.log_tail(partition, 10**6)
            assert code == 0, f"{partition}: exit {code}\n{log[-4000:]}"
            assert not [e for e in LOCK_ERRORS if e in log], f"{partition}: lock error in its log\n{log[-4000:]}"


def _stat(pid: int) -> tuple[int, int, str] | None:
    """(ppid, pgid, state) of a live process, None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), int(fields[2]), fields[0]


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def descendants(pid: int) -> list[int]:
    """Live (non-zombie) descendants of `pid`."""
    children: dict[int, list[int]] = {}
    for p in _pids():
        st = _stat(p)
        if st and st[2] != "Z":
            children.setdefault(st[0], []).append(p)
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group `pgid`."""
    return [p for p in _pids() if (st := _stat(p)) and st[1] == pgid and st[2] != "Z"]


def kill_group(process: subprocess.Popen, timeout: float = 20) -> None:
    """SIGKILL the whole process group of `process` (its session leader) and wait until none is left."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=timeout)
    deadline = time.monotonic() + timeout
    while (left := group_members(process.pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not left, f"processes of group {process.pid} survived SIGKILL: {[cmdline(p) for p in left]}"


def visible_tables(data_root: Path) -> dict[str, pd.DataFrame]:
    """{"<table>/<partition>.parquet": rows} of every file a reader sees under `<data root>/tables/`.

    Hidden names (a leading '.') are temp files of the atomic writer and are skipped; every other
    file must be a complete Parquet file that pyarrow reads, else AssertionError naming it.
    """
    tables = {}
    base = data_root / "tables"
    for path in sorted(base.rglob("*")) if base.is_dir() else []:
        rel = path.relative_to(base)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        assert path.suffix == ".parquet", f"{path}: a visible file under tables/ that is not a .parquet table"
        try:
            tables[str(rel)] = pq.read_table(path).to_pandas()
        except FileNotFoundError:  # replaced or removed between listing and reading: not partial
            continue
        except Exception as exc:
            raise AssertionError(f"{path}: partial or unreadable Parquet visible to readers: {exc}") from exc
    return tables
