"""Per-cohort table files, labelled rows, the training matrix and the predictions table."""

import numpy as np
import pandas as pd
import pytest

from gbm_assets.lib.classify.tables import (
    MULTILABEL_COLUMN,
    PREDICTION_COLUMNS,
    labelled_rows,
    predictions_table,
    read_tables,
    registered_row,
    table_files,
    training_matrix,
)


def test_table_files_and_filtered_reads(tmp_path):
    pd.DataFrame({"roi_source": ["predicted", "ground_truth"], "v": [1, 2]}).to_parquet(tmp_path / "a.parquet")
    pd.DataFrame({"roi_source": ["ground_truth"], "v": [3]}).to_parquet(tmp_path / "b.parquet")
    files = table_files(tmp_path)
    assert list(files) == ["a", "b"] and list(table_files(tmp_path, ["b", "zz"])) == ["b"]
    assert read_tables(files.values(), where={"roi_source": "predicted"})["v"].tolist() == [1]
    assert read_tables([], where={"roi_source": "x"}).empty


def test_labelled_rows_and_training_matrix():
    table = pd.DataFrame({"cohort": "c", "patient_id": ["p0", "p1", "p2"], "roi_source": "predicted",
                          "subtype": ["Classical", None, "Neural"], "t1__whole_tumor__a": [1.0, 2.0, 3.0],
                          "t1__whole_tumor__b": [np.nan, 1.0, np.nan]})  # fmt: skip
    labelled, dropped = labelled_rows(table)
    assert list(labelled["patient_id"]) == ["p0", "p2"] and dropped == ["t1__whole_tumor__b"]
    X, y = training_matrix(labelled)
    assert list(X.index) == ["c/p0", "c/p2"] and list(X.columns) == ["t1__whole_tumor__a"] and list(y) == ["Classical", "Neural"]


def test_registered_row_is_exactly_one():
    table = pd.DataFrame({"model": ["mlp", "majority"], "registered": [True, False], "model_version": ["3", "3"]})
    assert registered_row(table)["model"] == "mlp"
    with pytest.raises(ValueError, match="2 registered rows"):
        registered_row(table.assign(registered=True))


def test_predictions_table_layout_and_multilabel():
    proba = np.array([[0.7, 0.3], [0.2, 0.8]])
    out = predictions_table("c", ["p0", "p1"], proba, ["Classical", "Neural"], "4", {"Classical": 0.25, "Neural": 0.9})
    assert list(out.columns) == [*PREDICTION_COLUMNS, MULTILABEL_COLUMN]
    assert list(out["predicted_subtype"]) == ["Classical", "Neural"] and out["p_mesenchymal"].eq(0).all()
    assert list(out[MULTILABEL_COLUMN]) == ["Classical", "Neural"]  # p1 passes no threshold of its own: the top one
    assert predictions_table("c", [], np.zeros((0, 2)), ["Classical", "Neural"], "4").empty
    with pytest.raises(ValueError, match="not subtypes"):
        predictions_table("c", ["p0"], [[1.0]], ["G-CIMP"], "4")
