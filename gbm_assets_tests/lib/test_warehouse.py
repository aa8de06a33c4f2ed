import os

import duckdb
import pandas as pd
import pytest

from gbm_assets.lib.paths import CohortNameError, DataRoot, validate_cohort_name
from gbm_assets.lib.tables import read_parquet, write_parquet_atomic
from gbm_assets.lib.warehouse import connect_readonly, ensure_views, query


@pytest.mark.parametrize("name", ["demo", "TCGA-GBM", "cohort_2024.v1"])
def test_good_cohort_names(name):
    assert validate_cohort_name(name) == name


@pytest.mark.parametrize("name", ["a/b", "..", "../x", "a..b", "", " x", ".hidden", "a\\b", "x" * 129])
def test_bad_cohort_names(name):
    with pytest.raises(CohortNameError):
        validate_cohort_name(name)


def test_atomic_write_leaves_no_temp_files_and_replaces(tmp_path):
    path = tmp_path / "t" / "c.parquet"
    write_parquet_atomic(pd.DataFrame({"a": [1]}), path)
    write_parquet_atomic(pd.DataFrame({"a": [2, 3]}), path)
    assert read_parquet(path)["a"].tolist() == [2, 3]
    assert os.listdir(path.parent) == ["c.parquet"]


def test_missing_table_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="c.parquet"):
        read_parquet(tmp_path / "c.parquet")


def test_views_union_partitions_and_see_new_files_without_refresh(tmp_path):
    root = DataRoot(tmp_path)
    write_parquet_atomic(pd.DataFrame({"cohort": ["a"], "patient_id": ["p1"]}), root.table_file("raw_cohort", "a"))
    assert ensure_views(root, ["raw_cohort"]) == ["raw_cohort"]
    assert ensure_views(root, ["raw_cohort"]) == []  # already there: no write
    # a second cohort with an extra column appears through the glob
    write_parquet_atomic(
        pd.DataFrame({"cohort": ["b", "b"], "patient_id": ["p1", "p2"], "extra": [1, 2]}), root.table_file("raw_cohort", "b")
    )
    out = query(root, "select cohort, count(*) n from raw_cohort group by 1 order by 1")
    assert out.to_dict("records") == [{"cohort": "a", "n": 1}, {"cohort": "b", "n": 2}]


def test_readers_are_read_only_and_coexist(tmp_path):
    root = DataRoot(tmp_path)
    write_parquet_atomic(pd.DataFrame({"x": [1]}), root.table_file("t", "c"))
    ensure_views(root)
    with connect_readonly(root) as a, connect_readonly(root) as b:
        assert a.execute("select * from t").fetchall() == b.execute("select * from t").fetchall() == [(1,)]
        with pytest.raises(duckdb.Error):
            a.execute("create table y (i int)")
