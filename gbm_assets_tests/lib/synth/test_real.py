import pytest

from gbm_assets.lib.ingest.clinical import DAYS_PER_MONTH, clinical_source, normalise_clinical, read_table
from gbm_assets.lib.ingest.layouts.mapped import read_cohort_yaml
from gbm_assets.lib.synth.real import assemble_real_cohort
from gbm_assets.lib.ingest.validate import validate_cohort
from gbm_assets_tests.conftest import SHARED_DATA, shared_case


@pytest.mark.realdata
def test_assembled_tcga_cohort_validates_and_gets_its_xena_subtype(tmp_path):
    shared_case("tcga-gbm-06-1802-elmed219")
    folder = assemble_real_cohort(SHARED_DATA, tmp_path / "cohorts", "tcga-real")
    assemble_real_cohort(SHARED_DATA, tmp_path / "cohorts", "tcga-real")  # idempotent
    row = validate_cohort("tcga-real", folder).iloc[0]
    assert row.status == "ok" and row.patient_id == "TCGA-06-1802" and row.label_scheme == "hd_glio"

    path, spec = clinical_source(folder, read_cohort_yaml(folder)["clinical"])
    clinical = normalise_clinical(read_table(path), "tcga-real", str(path), spec).set_index("patient_id")
    case = clinical.loc["TCGA-06-1802"]
    assert case.subtype == "Mesenchymal" and case.survival_months == pytest.approx(239 / DAYS_PER_MONTH)


def test_missing_real_data_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="T1_reorient_bet.nii.gz"):
        assemble_real_cohort(tmp_path, tmp_path / "cohorts")
