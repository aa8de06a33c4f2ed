import math

import pandas as pd
import pytest

from gbm_assets.lib.ingest.clinical import (
    DAYS_PER_MONTH,
    ClinicalTableError,
    clinical_source,
    normalise_clinical,
    read_table,
)
from gbm_assets_tests.conftest import shared_case


def table(**columns):
    return pd.DataFrame({k: [str(v) for v in vs] for k, vs in columns.items()})


def test_subtype_names_abbreviations_and_case_are_normalised():
    raw = table(patient_id=["a", "b", "c", "d", "e", "f"], subtype=["MES", "classical", "PN", " Neural ", "NA", ""])
    out = normalise_clinical(raw, "c1", "x.csv")
    assert out["subtype"].tolist() == ["Mesenchymal", "Classical", "Proneural", "Neural", None, None]
    assert (out["cohort"] == "c1").all()


def test_survival_in_days_becomes_months():
    raw = table(patient_id=["a"], subtype=["Neural"], survival_days=[304.4])
    assert normalise_clinical(raw, "c", "x.csv")["survival_months"].iloc[0] == pytest.approx(10.0)


def test_idh_and_vital_status_are_normalised():
    raw = table(patient_id=["a", "b", "c"], subtype=["CL"] * 3, idh_status=["G-CIMP", "NON G-CIMP", "wt"],
                vital_status=["DECEASED", "LIVING", ""])  # fmt: skip
    out = normalise_clinical(raw, "c", "x.csv")
    assert out["idh_status"].tolist() == ["mutant", "wildtype", "wildtype"]
    assert out["event"].tolist() == [True, False, None]


def test_unknown_subtype_names_patient_and_value():
    raw = table(patient_id=["a", "b"], subtype=["Classical", "Glioma-X"])
    with pytest.raises(ClinicalTableError, match=r"x.csv: unknown subtype \['Glioma-X'\] for patient\(s\) b"):
        normalise_clinical(raw, "c", "x.csv")


def test_missing_required_column_names_it():
    with pytest.raises(ClinicalTableError, match="missing required column.*subtype"):
        normalise_clinical(table(patient_id=["a"], survival_months=[3]), "c", "x.csv")


def test_configured_table_that_does_not_exist(tmp_path):
    with pytest.raises(ClinicalTableError, match="does not exist"):
        clinical_source(tmp_path, {"path": "nope.tsv"})


@pytest.mark.realdata
def test_xena_matrix_maps_tcga_06_1802():
    path = shared_case("tcga-gbm-clinical-subtypes") / "TCGA.GBM.sampleMap-GBM_clinicalMatrix"
    spec = {
        "patient_id_pattern": r"^(TCGA-\d\d-\d{4})",
        "columns": {"patient_id": "sampleID", "subtype": "GeneExp_Subtype", "survival": "CDE_survival_time",
                    "idh_status": "G_CIMP_STATUS", "age": "CDE_DxAge", "vital_status": "vital_status"},
        "survival_unit": "days",
    }  # fmt: skip
    out = normalise_clinical(read_table(path), "tcga", str(path), spec).set_index("patient_id")
    case = out.loc["TCGA-06-1802"]
    assert case.subtype == "Mesenchymal" and case.idh_status == "wildtype" and case.event is False
    assert case.survival_months == pytest.approx(239 / DAYS_PER_MONTH)
    assert math.isclose(case.age, 61.7)
    assert out.loc["TCGA-02-0003"].subtype == "Proneural"
    assert out.index.is_unique


@pytest.mark.parametrize(
    "column, value, ours",
    [("survival_months", "abc", "survival"), ("age", "x", "age"), ("age", "inf", "age"), ("survival_days", "12 days", "survival")],
)
def test_unparseable_numbers_are_errors_naming_patient_column_and_file(column, value, ours):
    raw = table(patient_id=["a", "b"], subtype=["CL", "PN"], **{column: ["3", value]})
    with pytest.raises(ClinicalTableError, match=rf"x.csv: column '{column}' \({ours}\) is not a number for patient\(s\) b \('{value}'\)"):
        normalise_clinical(raw, "c", "x.csv")


def test_missing_numbers_stay_missing():
    out = normalise_clinical(table(patient_id=["a", "b"], subtype=["CL", "PN"], age=["NA", " 61.5 "]), "c", "x.csv")
    assert math.isnan(out["age"].iloc[0]) and out["age"].iloc[1] == 61.5


def test_clinical_must_be_a_mapping(tmp_path):
    with pytest.raises(ClinicalTableError, match="'clinical' must be a mapping"):
        clinical_source(tmp_path, "clinical.csv")
