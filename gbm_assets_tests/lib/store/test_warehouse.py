import os

import duckdb
import pandas as pd
import pytest

from gbm_assets.lib.store.paths import CohortNameError, DataRoot, validate_cohort_name
from gbm_assets.lib.store.tables import read_parquet, write_parquet_atomic
from gbm_assets.lib.store.warehouse import QueryRefused, connect_readonly, describe_view, ensure_views, list_views, query


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


# The SQL sandbox -------------------------------------------------------------------------------


@pytest.fixture
def warehouse(tmp_path):
    root = DataRoot.at(tmp_path / "data")
    write_parquet_atomic(pd.DataFrame({"cohort": "a", "patient_id": ["p1", "p2"], "status": "ok"}), root.table_file("raw_cohort", "a"))
    write_parquet_atomic(pd.DataFrame({"cohort": "a", "patient_id": ["p1"], "subtype": ["Neural"]}), root.table_file("clinical_records", "a"))
    (tmp_path / "secret.csv").write_text("k,v\nsecret,42\n")
    return root


def _files(path):
    return sorted(p.relative_to(path).as_posix() for p in path.rglob("*"))


@pytest.mark.parametrize(
    "sql",
    [
        "select * from read_csv('/etc/passwd')",
        "select * from read_text('/etc/hostname')",
        "select * from glob('/etc/*')",
        "select * from read_csv('{root}/../secret.csv')",
        "select * from read_csv('{root}/tables/../../secret.csv')",
        "select * from read_parquet('https://example.com/x.parquet')",
        "select * from read_csv('{root}/warehouse.duckdb')",
    ],
)
def test_sandbox_refuses_reading_outside_the_tables_folder(warehouse, sql):
    with pytest.raises(duckdb.PermissionException, match="disabled by configuration"):
        query(warehouse, sql.format(root=warehouse.root))


@pytest.mark.parametrize(
    "sql, kind",
    [
        ("copy (select 1) to '/tmp/gbm_sandbox_probe.csv'", "COPY"),
        ("attach '{root}/new.duckdb' (read_only false)", "ATTACH"),
        ("install httpfs", "LOAD"),
        ("load httpfs", "LOAD"),
        ("set enable_external_access = true", "SET"),
        ("pragma show_tables", "PRAGMA"),
        ("create table t as select 1", "CREATE"),
        ("export database '{root}/dump'", "EXPORT"),
        ("explain analyze copy (select 1) to '{root}/x.csv'", "EXPLAIN"),
    ],
)
def test_sandbox_refuses_every_statement_but_select(warehouse, sql, kind):
    before = _files(warehouse.root)
    with pytest.raises(QueryRefused, match=f"only SELECT queries run here, not {kind}"):
        query(warehouse, sql.format(root=warehouse.root))
    assert _files(warehouse.root) == before and not os.path.exists("/tmp/gbm_sandbox_probe.csv")


def test_sandbox_refuses_several_statements(warehouse):
    with pytest.raises(QueryRefused, match="exactly one SELECT statement, got 2"):
        query(warehouse, "select 1; copy (select 1) to '/tmp/gbm_sandbox_probe.csv'")


def test_poisoning_copy_into_the_tables_folder_is_refused_and_the_view_is_unchanged(warehouse):
    poison = f"copy (select * replace ('excluded' as status) from raw_cohort) to '{warehouse.table_dir('raw_cohort')}/zz.parquet'"
    with pytest.raises(QueryRefused, match="not COPY"):
        query(warehouse, poison)
    assert sorted(p.name for p in warehouse.table_dir("raw_cohort").iterdir()) == ["a.parquet"]
    assert query(warehouse, "select status, count(*) n from raw_cohort group by 1").to_dict("records") == [{"status": "ok", "n": 2}]


def test_sandbox_settings_are_locked_even_from_a_select(warehouse):
    with pytest.raises(duckdb.Error):
        query(warehouse, "select * from read_text('/etc/hostname') where current_setting('enable_external_access')")
    settings = query(warehouse, "select name, value from duckdb_settings() where name in "
                     "('enable_external_access', 'lock_configuration', 'autoinstall_known_extensions', 'autoload_known_extensions')")  # fmt: skip
    assert dict(zip(settings["name"], settings["value"])) == {
        "enable_external_access": "false", "lock_configuration": "true",
        "autoinstall_known_extensions": "false", "autoload_known_extensions": "false",
    }  # fmt: skip


def test_query_writes_nothing_and_reads_a_moved_root(warehouse, tmp_path):
    before = _files(warehouse.root)
    joined = query(warehouse, "select r.patient_id, c.subtype from raw_cohort r left join clinical_records c using (cohort, patient_id) order by 1")
    assert joined["subtype"].tolist() == ["Neural", None]
    assert _files(warehouse.root) == before  # no warehouse.duckdb, no lock file
    import shutil

    moved = DataRoot.at(tmp_path / "moved")
    shutil.copytree(warehouse.root, moved.root)
    write_parquet_atomic(pd.DataFrame({"cohort": "b", "patient_id": ["q"], "status": "ok"}), moved.table_file("raw_cohort", "b"))
    assert query(moved, "select count(*) n from raw_cohort")["n"].item() == 3
    assert query(warehouse, "select count(*) n from raw_cohort")["n"].item() == 2


def test_unknown_table_is_duckdbs_catalog_error(warehouse):
    with pytest.raises(duckdb.CatalogException, match="nope"):
        query(warehouse, "select * from nope")


def test_list_and_describe_views(warehouse):
    assert list_views(warehouse).to_dict("records") == [{"view": "clinical_records", "rows": 1}, {"view": "raw_cohort", "rows": 2}]
    assert describe_view(warehouse, "clinical_records")["column"].tolist() == ["cohort", "patient_id", "subtype"]
    with pytest.raises(KeyError, match="views: clinical_records, raw_cohort"):
        describe_view(warehouse, "nope")


def test_ensure_views_repairs_views_of_a_moved_root(warehouse, tmp_path):
    import shutil

    ensure_views(warehouse)
    moved = DataRoot.at(tmp_path / "moved")
    shutil.copytree(warehouse.root, moved.root)
    assert sorted(ensure_views(moved)) == ["clinical_records", "raw_cohort"]  # stale: they read the old folder
    shutil.rmtree(warehouse.root)
    with connect_readonly(moved) as con:
        assert con.execute("select count(*) from raw_cohort").fetchone() == (2,)
    assert ensure_views(moved) == []
