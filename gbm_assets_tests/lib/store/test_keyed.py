"""Content-keyed per-patient results and relative paths: unchanged patients are reused, a changed
file (same size, same mtime) recomputes only its patient, a failure mid-run leaves the finished
patients recorded, a deleted output is recomputed, and a copied data root reuses its records and
resolves its own paths."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from gbm_assets.lib.store.compute import LocalCompute
from gbm_assets.lib.store.keyed import KeyedCompute, ResultStore, content_key
from gbm_assets.lib.store.paths import (
    resolve_paths,
    resolved_path,
    stored_path,
    to_stored_paths,
)


def double(item: tuple[str, str]) -> dict:
    """A stage step: reads the patient's input, writes its output beside it, returns its row."""
    patient, path = item
    text = Path(path).read_text()
    if text == "boom":
        raise ValueError(f"{patient}: bad input")
    out = Path(path).with_suffix(".out")
    out.write_text(text * 2)
    return {"patient_id": patient, "out_path": str(out), "n": len(text) * 2}


def key_of(item):
    return item[0], content_key({"input": item[1]}, {"factor": 2})


def run(root: Path, items, workers=1) -> tuple[dict, KeyedCompute]:
    keyed = KeyedCompute(LocalCompute(workers), ResultStore(root / "results" / "s" / "c", root), key_of,
                         lambda row: [row["out_path"]])  # fmt: skip
    return {i[0]: r for i, r in keyed.map_patients(double, items)}, keyed


@pytest.fixture
def cohort(tmp_path) -> tuple[Path, list]:
    root = tmp_path / "root"
    (root / "in").mkdir(parents=True)
    items = []
    for i in range(4):
        path = root / "in" / f"p{i}.txt"
        path.write_text(f"v{i}")
        items.append((f"p{i}", str(path)))
    return root, items


def test_second_run_reuses_every_patient(cohort):
    root, items = cohort
    first, keyed = run(root, items, workers=2)
    assert (keyed.reused, keyed.computed) == (0, 4)
    second, keyed = run(root, items)
    assert (keyed.reused, keyed.computed) == (0 + 4, 0) and second == first


def test_a_changed_file_of_the_same_size_and_mtime_recomputes_only_its_patient(cohort):
    root, items = cohort
    run(root, items)
    path = Path(items[2][1])
    stat = path.stat()
    path.write_text("w2")  # same size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same mtime: only the content tells
    result, keyed = run(root, items)
    assert (keyed.reused, keyed.computed) == (3, 1) and result["p2"]["n"] == 4
    assert Path(result["p2"]["out_path"]).read_text() == "w2w2"


def test_a_failure_mid_run_keeps_the_finished_patients_and_a_rerun_computes_only_the_missing(cohort):
    root, items = cohort
    Path(items[1][1]).write_text("boom")
    result, keyed = run(root, items)
    assert isinstance(result["p1"], ValueError) and keyed.computed == 3
    assert not (root / "results" / "s" / "c" / "p1.json").exists(), "a failure is never recorded"
    Path(items[1][1]).write_text("v1")
    result, keyed = run(root, items)
    assert (keyed.reused, keyed.computed) == (3, 1) and result["p1"]["n"] == 4


def test_a_deleted_output_or_an_unreadable_input_is_not_reused(cohort):
    root, items = cohort
    first, _ = run(root, items)
    Path(first["p0"]["out_path"]).unlink()
    result, keyed = run(root, items)
    assert (keyed.reused, keyed.computed) == (3, 1) and Path(result["p0"]["out_path"]).exists()
    Path(items[3][1]).unlink()
    result, keyed = run(root, items)
    assert isinstance(result["p3"], FileNotFoundError) and str(items[3][1]) in str(result["p3"])


def test_a_recompute_removes_the_old_record_first(cohort, monkeypatch):
    """A crash between rewriting a patient's outputs and recording it leaves no record to match."""
    root, items = cohort
    run(root, items)
    Path(items[0][1]).write_text("changed")
    store = ResultStore(root / "results" / "s" / "c", root)
    seen = []
    monkeypatch.setattr(store, "put", lambda *a, **k: seen.append((store.folder / "p0.json").exists()))
    keyed = KeyedCompute(LocalCompute(1), store, key_of, lambda row: [row["out_path"]])
    list(keyed.map_patients(double, items))
    assert seen == [False]


def test_a_copied_data_root_reuses_its_records_and_resolves_its_own_paths(cohort, tmp_path):
    root, items = cohort
    run(root, items)
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    shutil.rmtree(root)
    moved = [(p, str(copy / "in" / Path(path).name)) for p, path in items]
    result, keyed = run(copy, moved)
    assert keyed.reused == 4
    assert all(r["out_path"].startswith(str(copy)) for r in result.values())


def test_paths_are_stored_relative_and_resolved_against_the_current_root(tmp_path):
    root, other = tmp_path / "root", tmp_path / "elsewhere"
    table = pd.DataFrame({"patient_id": ["a", "b", "c"], "t1_path": [str(root / "cohorts/x/a.nii.gz"), str(other / "b.nii"), None],
                          "dir": [str(root / "volumes/p/a"), "", None], "note": [str(root / "kept"), "", ""]})  # fmt: skip
    stored = to_stored_paths(table, root)
    assert stored["t1_path"].tolist() == ["cohorts/x/a.nii.gz", str(other / "b.nii"), None]
    assert stored["dir"].tolist() == ["volumes/p/a", "", None] and stored["note"].equals(table["note"])
    moved = tmp_path / "moved"
    back = resolve_paths(stored, moved)
    assert back["t1_path"].tolist() == [str(moved / "cohorts/x/a.nii.gz"), str(other / "b.nii"), None]
    assert resolve_paths(table, moved)["t1_path"].equals(table["t1_path"]), "old absolute-path tables read as before"
    assert stored_path(str(root), root) == "." and resolved_path("", root) == ""
