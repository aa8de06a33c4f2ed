"""The `gbm-assets` command, called in-process: formats, row limits, one-line errors and exit codes."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from gbm_assets.cli import main
from gbm_assets.lib.store.paths import DataRoot
from gbm_assets.lib.store.tables import write_parquet_atomic


@pytest.fixture
def tables(data_root):
    root = DataRoot.at(data_root)
    write_parquet_atomic(pd.DataFrame({"cohort": "a", "patient_id": [f"p{i:02d}" for i in range(30)], "status": "ok"}),
                         root.table_file("raw_cohort", "a"))  # fmt: skip
    return root


@pytest.fixture
def no_dagster_home(monkeypatch, tmp_path):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.startswith("gbm-assets ")


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_sql_formats(tables, capsys, fmt):
    code, out, _ = run(capsys, "sql", "select patient_id from raw_cohort order by 1 limit 2", "--format", fmt)
    assert code == 0
    if fmt == "json":
        assert json.loads(out) == [{"patient_id": "p00"}, {"patient_id": "p01"}]
    elif fmt == "csv":
        assert out.splitlines() == ["patient_id", "p00", "p01"]
    else:
        assert [line.strip() for line in out.splitlines()] == ["patient_id", "p00", "p01"]


def test_max_rows_limits_the_table_and_says_so(tables, capsys):
    code, out, _ = run(capsys, "sql", "select patient_id from raw_cohort order by 1", "--max-rows", "5")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 1 + 5 + 1
    assert lines[-1].startswith("(5 of 30 rows shown")
    code, out, _ = run(capsys, "sql", "select patient_id from raw_cohort order by 1", "--max-rows", "100")
    assert len(out.splitlines()) == 31  # header + every row, no "..." elision


def test_list_and_describe(tables, capsys):
    code, out, _ = run(capsys, "sql", "--list", "--format", "csv")
    assert code == 0 and out.splitlines() == ["view,rows", "raw_cohort,30"]
    code, out, _ = run(capsys, "sql", "--describe", "raw_cohort", "--format", "json")
    assert code == 0 and [c["column"] for c in json.loads(out)] == ["cohort", "patient_id", "status"]


def test_describe_view_as_words_or_option(tables, capsys):
    for argv in (["describe", "raw_cohort"], ["DESCRIBE raw_cohort;"], ["--describe", "raw_cohort"]):
        code, out, _ = run(capsys, "sql", *argv, "--format", "csv")
        assert code == 0 and out.splitlines() == ["column,type", "cohort,VARCHAR", "patient_id,VARCHAR", "status,VARCHAR"], argv
    code, out, _ = run(capsys, "sql", "select", "count(*)", "as", "n", "from", "raw_cohort", "--format", "csv")
    assert code == 0 and out.splitlines() == ["n", "30"]  # unquoted words are one statement


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["select * from raw_cohorts"], "no view 'raw_cohorts' (did you mean raw_cohort?); views: raw_cohort"),
        (["select * from segmentation_metric"], "no view 'segmentation_metric'; views: raw_cohort"),
        (["describe", "raw_cohrt"], "no view 'raw_cohrt' (did you mean raw_cohort?); views: raw_cohort"),
        (["--describe", "nope"], "no view 'nope'; views: raw_cohort"),
    ],
)
def test_unknown_view_names_the_views_that_exist_not_duckdb_guesses(tables, capsys, argv, expected):
    code, out, err = run(capsys, "sql", *argv)
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1
    assert expected in err and "Did you mean" not in err and "pg_" not in err and "sqlite_" not in err


def test_unknown_view_without_tables_says_none_exist(data_root, capsys):
    code, _, err = run(capsys, "sql", "select * from raw_cohort")
    assert code == 1 and "no view 'raw_cohort': no tables yet under" in err


def test_sql_help_lists_the_views_of_the_data_root(tables, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["sql", "--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0 and "views under" in out and out.rstrip().endswith("raw_cohort")
    with pytest.raises(SystemExit):
        main(["--data-root", str(tables.root / "empty"), "sql", "-h"])  # no such folder: no list, no error
    assert "views under" not in capsys.readouterr().out


@pytest.mark.parametrize(
    "sql, expected",
    [
        ("copy (select 1) to '/tmp/x.csv'", "only SELECT queries run here, not COPY"),
        ("select * from read_csv('/etc/passwd')", "Permission Error"),
        ("select 1; select 2", "exactly one SELECT statement, got 2"),
        ("selec 1", "Parser Error"),
    ],
)
def test_sql_errors_are_one_line_with_exit_1(tables, capsys, sql, expected):
    code, out, err = run(capsys, "sql", sql)
    assert code == 1 and out == "" and expected in err and len(err.strip().splitlines()) == 1


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["sql"])  # neither a query nor --list/--describe
    assert exit_.value.code == 2
    with pytest.raises(SystemExit) as exit_:
        main(["sql", "select 1", "--max-rows", "0"])
    assert exit_.value.code == 2
    code, _, err = run(capsys, "add-cohort", "../evil")
    assert code == 2 and "invalid cohort name" in err


def test_registration_without_dagster_home_fails_in_one_line_and_creates_nothing(data_root, no_dagster_home, capsys):
    for argv in (["add-cohort", "c1"], ["synth", "--cohort", "c1", "--patients", "1", "--shape", "8", "8", "4"]):
        code, _, err = run(capsys, *argv)
        assert code == 1 and "DAGSTER_HOME is not set" in err and len(err.strip().splitlines()) == 1
    assert not (no_dagster_home / ".dagster").exists()
    assert not (data_root / "cohorts" / "c1").exists()  # synth failed before writing


def test_add_cohort_registers_in_dagster_home(data_root, tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    code, out, _ = run(capsys, "add-cohort", "c1")
    assert code == 0 and "'c1' registered" in out
    code, out, _ = run(capsys, "add-cohort", "c1")
    assert code == 0 and "already registered" in out


def test_missing_real_data_is_one_line(data_root, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    code, _, err = run(capsys, "assemble-real", "--shared-data", str(tmp_path / "nowhere"))
    assert code == 1 and "FileNotFoundError" in err and "is missing" in err and len(err.strip().splitlines()) == 1


def test_refresh_views(tables, capsys):
    code, out, _ = run(capsys, "sql", "--refresh-views")
    assert code == 0 and "recreated 1 view(s)" in out and tables.warehouse.is_file()


@pytest.fixture
def wide(tables):
    cols = {f"flair__whole_tumor__firstorder_f{i:03d}": [float(i), float(i) + 0.5] for i in range(80)}
    write_parquet_atomic(pd.DataFrame({"cohort": "a", "patient_id": ["w0", "w1"], **cols}),
                         tables.table_file("radiomic_features_wide", "a"))
    return tables


def test_wide_rows_print_vertically_and_are_truncated_with_a_note(wide, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    code, out, _ = run(capsys, "sql", "select * from radiomic_features_wide order by patient_id")
    lines = out.splitlines()
    assert code == 0 and max(map(len, lines)) <= 120
    assert sum(line.startswith("-[ RECORD") for line in lines) == 2
    assert any(line.startswith("patient_id") and line.endswith("| w0") for line in lines)
    assert any("more columns" in line for line in lines)  # 82 fields, 60 shown per record
    code, out, _ = run(capsys, "sql", "select * from radiomic_features_wide", "--all-fields")
    assert "more columns" not in out and "firstorder_f079" in out
    # a narrow result stays a table unless asked
    code, out, _ = run(capsys, "sql", "select patient_id, status from raw_cohort order by 1 limit 1", "--vertical")
    assert out.splitlines()[1:] == ["patient_id | p00", "status     | ok"]


def test_full_table_formats_keep_every_column(wide, capsys, tmp_path):
    code, out, _ = run(capsys, "sql", "select * from radiomic_features_wide", "--format", "csv")
    assert code == 0 and len(out.splitlines()[0].split(",")) == 82
    target = tmp_path / "wide.parquet"
    code, _, err = run(capsys, "sql", "select * from radiomic_features_wide", "--format", "parquet", "--output", str(target))
    assert code == 0 and pd.read_parquet(target).shape == (2, 82) and "wrote 2 rows x 82 columns" in err
    code, _, err = run(capsys, "sql", "select * from radiomic_features_wide", "--format", "parquet")
    assert code == 1 and "--format parquet needs --output FILE" in err and len(err.splitlines()) == 1


def test_every_option_has_help():
    from gbm_assets.cli import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command").choices
    for name, sub in subparsers.items():
        for action in sub._actions:
            if action.dest != "help":
                assert action.help, f"{name} {action.option_strings or action.dest} has no help"


def test_synth_longitudinal_writes_week_folders_per_patient(tmp_path, capsys):
    from gbm_assets.cli import main

    code = main(["--data-root", str(tmp_path), "synth", "--cohort", "long", "--patients", "2", "--longitudinal",
                 "--no-register", "--shape", "32", "32", "16", "--spacing", "4", "4", "8"])  # fmt: skip
    assert code == 0 and "synthetic subjects" in capsys.readouterr().out
    subjects = sorted(p for p in (tmp_path / "cohorts" / "long").iterdir() if p.is_dir())
    assert len(subjects) == 2
    assert all(len(list(s.glob("week-*"))) >= 3 for s in subjects)
