"""Fixtures for browser tests: `dagster dev` on a free port with a temporary instance and data
root, and a headless Debian Chromium driven by Playwright.

Chromium is Debian's (`scripts/install_browser.sh`), never Playwright's own download. Without
it (or without the `playwright` package) the tests skip with the reason, unless
`GBM_REQUIRE_BROWSER=1` (set in CI), where they fail instead. `GBM_E2E_WORKSPACE` points
`dagster dev` at another workspace file (default: the project's `workspace.yaml`).

`start_mlflow_ui` serves a data root's MLflow store (`mlflow server`, as `mlflow ui` would) on a
free port, so pictures the metadata links to (MLflow artifact URLs) load in the browser.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from gbm_assets_tests.conftest import PROJECT_ROOT, free_port

CHROMIUM = Path(os.environ.get("GBM_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LAST_PAGE = Path(os.environ.get("GBM_UI_LAST_PAGE", "/tmp/gbm_ui_last.png"))
"""Screenshot taken when a browser test ends (pass or fail), to see where it stopped."""
SERVER_START_S = 120
"""Longest wait for the webserver to answer and the code location to load."""
SHUTDOWN_S = 20
"""Grace after SIGINT before the process group is killed."""


def pytest_configure(config):
    config.addinivalue_line("markers", "e2e: drives a real browser against `dagster dev` (needs Debian chromium)")


def _missing_browser(reason: str):
    if os.environ.get("GBM_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (GBM_REQUIRE_BROWSER=1: run `bash scripts/install_browser.sh`)")
    pytest.skip(f"{reason}; run `bash scripts/install_browser.sh` to enable the browser tests")


@dataclass
class DagsterDev:
    """A running `dagster dev`: its URL, its temporary instance and data root, and its log."""

    url: str
    home: Path
    data_root: Path
    log: Path
    process: subprocess.Popen
    location: str = ""
    """The code location's name, once loaded."""

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=15) as response:
            payload = json.load(response)
        if payload.get("errors"):
            raise AssertionError(f"GraphQL errors: {payload['errors']}")
        return payload["data"]

    def log_tail(self, lines: int = 60) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_until(self, what: str, probe, timeout_s: float, interval_s: float = 1.0):
        """Call `probe()` until it returns something truthy; fail with the server log after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        last_error = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"dagster dev exited ({self.process.returncode}) while waiting for {what}:\n{self.log_tail()}")
            try:
                result = probe()
                if result:
                    return result
            except (urllib.error.URLError, ConnectionError, TimeoutError, AssertionError) as exc:
                last_error = exc
            time.sleep(interval_s)
        pytest.fail(f"timed out after {timeout_s:.0f}s waiting for {what} (last error: {last_error}):\n{self.log_tail()}")


def _location_loaded(server: DagsterDev):
    data = server.graphql(
        "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus"
        " locationOrLoadError { __typename ... on PythonError { message } } } } } }"
    )
    entries = data["workspaceOrError"]["locationEntries"]
    for entry in entries:
        error = entry["locationOrLoadError"] or {}
        if error.get("__typename") == "PythonError":
            pytest.fail(f"code location {entry['name']} failed to load: {error['message']}")
    if entries and all(e["loadStatus"] == "LOADED" and e["locationOrLoadError"] for e in entries):
        return entries[0]["name"]
    return None


def start_dagster_dev(tmp: Path, prepare) -> DagsterDev:
    """Start `dagster dev` in the project root on a free port, with DAGSTER_HOME and GBM_DATA_ROOT
    under `tmp`. `prepare(home, data_root)` runs first (write cohorts, register partitions)."""
    home, data_root = tmp / "dagster_home", tmp / "data"
    home.mkdir()
    data_root.mkdir()
    shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    prepare(home, data_root)
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "GBM_DATA_ROOT": str(data_root), "PYTHONUNBUFFERED": "1"}
    workspace = os.environ.get("GBM_E2E_WORKSPACE", "workspace.yaml")
    log = tmp / "dagster_dev.log"
    dagster = Path(sys.executable).parent / "dagster"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(dagster), "dev", "-w", workspace, "-h", "127.0.0.1", "-p", str(port)],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # own process group: teardown stops webserver, daemon, code servers, runs
        )
    server = DagsterDev(f"http://127.0.0.1:{port}", home, data_root, log, process)
    try:
        server_info = f"{server.url}/server_info"
        server.wait_until("the webserver", lambda: urllib.request.urlopen(server_info, timeout=5).status == 200, SERVER_START_S)
        server.location = server.wait_until("the code location to load", lambda: _location_loaded(server), SERVER_START_S)
    except BaseException:
        stop_dagster_dev(server)
        raise
    return server


def stop_process_group(process: subprocess.Popen) -> None:
    """Ctrl-C a process started with `start_new_session=True` and its whole group, then kill what is
    left after SHUTDOWN_S (children outliving it: run workers, code servers, server workers)."""
    pgid = process.pid
    try:
        os.killpg(pgid, signal.SIGINT)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=SHUTDOWN_S)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=10)


def stop_dagster_dev(server: DagsterDev) -> None:
    """Stop `dagster dev` and everything it started."""
    stop_process_group(server.process)


def start_mlflow_ui(data_root: Path, port: int, log: Path) -> subprocess.Popen:
    """`mlflow server` over `data_root`'s store (`mlflow.db`, artifacts in `mlartifacts/`) on
    127.0.0.1:`port`, answering /health; stop it with `stop_process_group`."""
    mlflow = Path(sys.executable).parent / "mlflow"
    command = [str(mlflow), "server", "--backend-store-uri", f"sqlite:///{data_root / 'mlflow.db'}",
               "--default-artifact-root", (data_root / "mlartifacts").as_uri(), "--host", "127.0.0.1",
               "--port", str(port), "--workers", "1"]  # fmt: skip
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=data_root, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"mlflow server exited ({process.returncode}):\n{log.read_text(errors='replace')[-3000:]}")
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).status == 200:
                return process
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(1)
    stop_process_group(process)
    pytest.fail(f"mlflow server did not answer within {SERVER_START_S}s:\n{log.read_text(errors='replace')[-3000:]}")


@pytest.fixture
def chromium_page(tmp_path):
    """A Playwright page in headless Debian Chromium (1400 x 900), closed at teardown."""
    if not CHROMIUM.is_file():
        _missing_browser(f"{CHROMIUM} is not installed")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing_browser("the playwright package is not installed")
    with sync_playwright() as playwright:
        # Playwright gives every launch a fresh temporary profile (--user-data-dir).
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(30_000)
            yield page
            try:
                page.screenshot(path=str(LAST_PAGE))  # what the browser showed last, pass or fail
            except Exception as exc:  # a crashed page must not hide the test's own outcome
                print(f"no last-page screenshot: {exc}")
        finally:
            browser.close()
