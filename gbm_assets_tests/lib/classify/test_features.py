"""Wide pivot names, the training-table join and column alignment."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from gbm_assets.lib.classify.features import (
    align_features,
    feature_name,
    training_table,
    wide_features,
)

SQL_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def long_table() -> pd.DataFrame:
    rows = [
        # cohort, patient, sequence, roi_source, region, class, feature, value
        ("tcga", "P1", "t1c", "manual", "enhancing", "firstorder", "Mean", 10.0),
        ("tcga", "P1", "FLAIR", "manual", "edema", "gldm", "GrayLevelNonUniformity", 3.5),
        ("tcga", "P1", "", "manual", "whole_tumor", "shape", "MeshVolume", 1000.0),
        ("tcga", "P2", "t1c", "manual", "enhancing", "firstorder", "Mean", 20.0),
        ("tcga", "P2", None, "manual", "whole_tumor", "shape", "MeshVolume", "2000"),  # numeric string
        ("tcga", "P1", "t1c", "auto", "enhancing", "firstorder", "Mean", 11.0),
    ]
    return pd.DataFrame(rows, columns=["cohort", "patient_id", "sequence", "roi_source", "region",
                                       "feature_class", "feature", "value"])


def clinical_table() -> pd.DataFrame:
    return pd.DataFrame({"cohort": ["tcga", "tcga", "tcga"], "patient_id": ["P1", "P2", "P9"],
                         "subtype": ["classical", " Mesenchymal ", None], "survival_months": [12.0, 4.0, 30.0],
                         "age": [61, 55, 70]})


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (("t1c", "enhancing", "firstorder", "Mean"), "t1c__enhancing__firstorder_mean"),
        (("T1Gd", "enhancing", "firstorder", "Mean"), "t1c__enhancing__firstorder_mean"),  # alias -> canonical
        (("", "whole_tumor", "shape", "MeshVolume"), "shape__whole_tumor__shape_meshvolume"),
        ((None, "whole_tumor", "shape", "Maximum3DDiameter"), "shape__whole_tumor__shape_maximum3ddiameter"),
        ((np.nan, "edema", "shape", "Elongation"), "shape__edema__shape_elongation"),
        (("any", "edema", "shape", "Sphericity"), "shape__edema__shape_sphericity"),  # radiomics.SHAPE_SEQUENCE
        (("t2", "edema", "wavelet-LLH_glcm", "Idmn"), "t2__edema__wavelet_llh_glcm_idmn"),
        (("flair", "tumor_core", "GLCM", "Contrast (x)"), "flair__tumor_core__glcm_contrast_x"),
    ],
)
def test_feature_name_is_stable_and_sql_friendly(parts, expected):
    name = feature_name(*parts)
    assert name == expected
    assert SQL_NAME.match(name)
    assert len(name.split("__")) == 3


def test_wide_features_one_row_per_patient_and_source_with_named_columns():
    wide = wide_features(long_table())
    assert list(wide.columns[:3]) == ["cohort", "patient_id", "roi_source"]
    feats = list(wide.columns[3:])
    assert feats == sorted(feats) == [
        "flair__edema__gldm_graylevelnonuniformity",
        "shape__whole_tumor__shape_meshvolume",
        "t1c__enhancing__firstorder_mean",
    ]
    assert len(wide) == 3  # P1/manual, P2/manual, P1/auto
    p2 = wide.set_index(["patient_id", "roi_source"]).loc[("P2", "manual")]
    assert p2["shape__whole_tumor__shape_meshvolume"] == 2000.0
    assert np.isnan(p2["flair__edema__gldm_graylevelnonuniformity"])  # absent -> NaN


def test_wide_features_empty_input_gives_key_columns_only():
    wide = wide_features(long_table().iloc[:0])
    assert list(wide.columns) == ["cohort", "patient_id", "roi_source"] and wide.empty


def test_wide_features_refuses_duplicates_and_collisions_and_text():
    dup = pd.concat([long_table(), long_table().iloc[[0]]])
    with pytest.raises(ValueError, match="duplicate"):
        wide_features(dup)
    collide = long_table()
    extra = collide.iloc[[0]].assign(feature="MEAN")  # sanitises to the same column as "Mean"
    with pytest.raises(ValueError, match="duplicate"):
        wide_features(pd.concat([collide, extra]))
    with pytest.raises(ValueError, match="non-numeric"):
        wide_features(long_table().assign(value="n/a"))
    with pytest.raises(KeyError, match="value"):
        wide_features(long_table().drop(columns="value"))


def test_training_table_joins_normalises_and_reports():
    wide = wide_features(long_table())
    with pytest.warns(UserWarning):
        table = training_table(wide, clinical_table(), "manual")
    assert list(table.columns[:7]) == ["cohort", "patient_id", "roi_source", "subtype", "survival_months",
                                       "idh_status", "age"]
    assert list(table.patient_id) == ["P1", "P2"]
    assert list(table.subtype) == ["Classical", "Mesenchymal"]
    assert table.attrs["unmatched_clinical"] == ["tcga/P9"]
    assert table.attrs["unmatched_imaging"] == []
    assert table.attrs["all_missing_features"] == []
    assert table.idh_status.isna().all()  # absent optional column -> NaN

    with pytest.warns(UserWarning) as caught:
        auto = training_table(wide, clinical_table(), "auto")
    assert any("all missing features" in str(w.message) for w in caught)
    assert list(auto.patient_id) == ["P1"]
    assert set(auto.attrs["all_missing_features"]) == {
        "flair__edema__gldm_graylevelnonuniformity", "shape__whole_tumor__shape_meshvolume"}


def test_training_table_unknown_subtype_names_the_patient():
    clin = clinical_table()
    clin.loc[1, "subtype"] = "G-CIMP"
    with pytest.raises(ValueError, match=r"tcga/P2.*G-CIMP"):
        training_table(wide_features(long_table()), clin, "manual")


def test_align_features_matches_by_name_reports_missing_and_extra():
    df = pd.DataFrame({"patient_id": ["A", "B"], "b": [1.0, 2.0], "x": [9.0, 9.0], "a": [10.0, 20.0]})
    with pytest.warns(UserWarning, match="absent"):
        X, missing, extra = align_features(df, ["a", "c", "b"])
    assert list(X.columns) == ["a", "c", "b"]  # the expected order, not df's
    assert X["a"].tolist() == [10.0, 20.0] and X["b"].tolist() == [1.0, 2.0]  # values follow names
    assert X["c"].isna().all()
    assert missing == ["c"]
    assert extra == ["x"]  # patient_id is a key column, never "extra"


def test_align_features_no_missing_no_warning_and_duplicates_refused():
    df = pd.DataFrame({"a": [1.0], "b": [2.0]})
    X, missing, extra = align_features(df, ["b", "a"])
    assert (missing, extra) == ([], []) and X.iloc[0].tolist() == [2.0, 1.0]
    with pytest.raises(ValueError, match="repeats"):
        align_features(df, ["a", "a"])
