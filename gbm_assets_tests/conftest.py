"""Shared fixtures: a temporary data root, and the real cases in ../shared/data."""

from __future__ import annotations

from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = (PROJECT_ROOT / ".." / "shared" / "data").resolve()


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
