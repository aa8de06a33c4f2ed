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


@pytest.mark.slow
def test_bench_scale_quick_compares_dask_with_the_local_pool(capsys):
    pytest.importorskip("distributed")
    runs = load_bench().main(["--quick", "--compare-dask", "--repeats", "2"])["compare"]
    order = [(r["stage"], r["backend"]) for r in runs]  # the order alternates between repeats
    assert order == [("preprocess", "local"), ("radiomics", "local"), ("preprocess", "dask"), ("radiomics", "dask"),
                     ("preprocess", "dask"), ("radiomics", "dask"), ("preprocess", "local"), ("radiomics", "local")]  # fmt: skip
    assert all(r["seconds"] > 0 and r["workers"] == 2 for r in runs)
    printed = capsys.readouterr().out
    assert "| preprocess | 6 | 2 | 2 |" in printed and "| radiomics | 6 | 2 | 2 |" in printed
    assert printed.count("| yes |") == 2  # both backends wrote the same rows and features


def test_bench_scale_compare_table_medians_ratio_and_identity():
    runs = [{"stage": "radiomics", "backend": b, "patients": 40, "workers": 2, "seconds": s, "startup_s": 2.0, "digest": d}
            for b, s, d in (("local", 10.0, "a"), ("dask", 12.0, "a"), ("dask", 11.0, "a"), ("local", 30.0, "a"),
                            ("local", 9.0, "a"), ("dask", 10.0, "b"))]  # fmt: skip
    text = load_bench().compare_table(runs)
    assert "| radiomics | 40 | 2 | 3 | 10.00 | 11.00 | 1.10 | 2.0 | 1.30 | NO |" in text  # a differing output shows
