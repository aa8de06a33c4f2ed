"""The measuring scripts behind the README's tables: seeds summarised as median and range, transfer to real cases."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

from gbm_assets.lib.store.tables import write_parquet_atomic

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def script(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_seed_table_gives_median_range_and_every_seed(tmp_path):
    demo_seeds = script("demo_seeds")
    values = pd.DataFrame({"s7": [0.9, 0.5], "s8": [0.7, np.nan], "s9": [0.8, 0.3]}, index=["stack dice_3d", "t1 dice_3d"])
    lines = demo_seeds.spread_table(values).splitlines()
    assert lines[0] == "| result | median | range | s7 | s8 | s9 |"
    assert lines[2] == "| stack dice_3d | 0.800 | 0.700-0.900 | 0.900 | 0.700 | 0.800 |"
    assert lines[3] == "| t1 dice_3d | 0.400 | 0.300-0.500 | 0.500 | - | 0.300 |"  # a missing seed is shown, not counted


def test_seed_values_read_a_root_and_tolerate_a_missing_table(tmp_path):
    demo_seeds = script("demo_seeds")
    rows = pd.DataFrame({"model": ["mlp", "majority"], "balanced_accuracy": [0.6, 0.25]})
    write_parquet_atomic(rows, tmp_path / "tables" / "subtype_classifier" / "all.parquet")
    sql = dict(demo_seeds.RESULTS)
    assert demo_seeds.seed_values(tmp_path, sql["subtype (CV balanced accuracy)"]).to_dict() == {"mlp": 0.6, "majority": 0.25}
    assert demo_seeds.seed_values(tmp_path, sql["survival (out-of-fold Harrell's C)"]).empty  # a gate held: no table


def test_transfer_dice_and_a_root_without_champions(tmp_path, capsys):
    transfer = script("transfer")
    a = np.zeros((4, 4), bool)
    b = a.copy()
    a[:2], b[1:3] = True, True
    assert transfer.dice(a, b) == 0.5 and transfer.dice(a & False, b & False) == 1.0
    assert transfer.main(["--data-root", str(tmp_path), "--shared-data", str(tmp_path)]) == 1
    assert "no champion U-Net" in capsys.readouterr().err
