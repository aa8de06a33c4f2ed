"""benchmarks/bench_scale.py runs end to end at its smallest size (each stage in its own process)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_scale.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_scale", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


@pytest.mark.slow
def test_bench_scale_quick_prints_every_stage(capsys):
    out = load_bench().main(["--quick"])
    stages = {(r["stage"], r["patients"]) for r in out["results"]}
    assert stages == {(s, n) for s in load_bench().STAGES for n in out["sizes"]} | {("train_epoch_eager", out["sizes"][-1])}
    assert all(r["seconds"] > 0 and r["peak_rss_mb"] >= r["import_rss_mb"] > 0 for r in out["results"])
    printed = capsys.readouterr().out
    assert "| train_epoch |" in printed and "saves" in printed


def test_bench_scale_table_ratios():
    bench = load_bench()
    rows = [{"stage": "masks", "patients": n, "seconds": s, "peak_rss_mb": m} for n, s, m in ((10, 5.0, 400), (40, 30.0, 500))]
    text = bench.table(rows, [10, 40])
    assert "| masks | 0.500 | 400 | 0.750 | 500 | 1.50 | 1.25 |" in text and "train_epoch" not in text
