"""Confined inputs: cohort.yaml globs and paths, and symlinks, cannot reach outside the cohort folder."""

from pathlib import Path

import pytest
import yaml

from gbm_assets.lib.ingest.clinical import ClinicalTableError, clinical_source
from gbm_assets.lib.ingest.confine import OutsideCohortError, check_pattern, confine, outside, parse_allowed
from gbm_assets.lib.ingest.inbox import precheck
from gbm_assets.lib.ingest.layouts import LayoutError
from gbm_assets.lib.ingest.validate import validate_cohort
from gbm_assets_tests.factories import write_brats_cohort, write_clinical

SEQUENCES = {"t1": "*_t1.nii.gz", "t1c": "*_t1ce.nii.gz", "t2": "*_t2.nii.gz", "flair": "*_flair.nii.gz"}


def mapped(cohort_dir: Path, **spec) -> Path:
    spec = {"sequences": dict(SEQUENCES), **spec}
    (cohort_dir / "cohort.yaml").write_text(yaml.safe_dump(spec))
    return cohort_dir


@pytest.fixture
def cohorts(tmp_path):
    write_brats_cohort(tmp_path / "other_cohort", patients=1)
    return tmp_path


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"sequences": {**SEQUENCES, "t2": "../../etc/hostname"}}, "sequence glob 't2' '../../etc/hostname' leaves the cohort folder"),
        ({"patients": "../other_cohort/*"}, "patients glob '../other_cohort/*' leaves the cohort folder"),
        ({"patients": "/etc/*"}, "patients glob '/etc/*' is absolute"),
        ({"sequences": {**SEQUENCES, "t1": "/etc/hostname"}}, "sequence glob 't1' '/etc/hostname' is absolute"),
        ({"labels": "~/seg.nii.gz"}, "labels glob '~/seg.nii.gz' is absolute"),
        ({"labels": "sub/../../x.nii.gz"}, "leaves the cohort folder"),
    ],
)
def test_escaping_globs_fail_the_cohort_naming_the_path(cohorts, spec, message):
    cohort_dir = mapped(write_brats_cohort(cohorts / "mine", patients=1), **spec)
    with pytest.raises(LayoutError, match="cohort.yaml") as raised:
        validate_cohort("mine", cohort_dir)
    assert message in str(raised.value) and str(cohort_dir / "cohort.yaml") in str(raised.value)
    assert message in precheck(cohort_dir)  # the inbox reports it instead of ingesting silently


def test_clinical_path_outside_is_refused_and_allowed_only_by_the_operator(cohorts):
    cohort_dir = write_brats_cohort(cohorts / "mine", patients=1)
    write_clinical(cohorts, [{"patient_id": "P000", "subtype": "Neural"}])
    for path, message in [("../clinical.csv", "leaves the cohort folder"), (str(cohorts / "clinical.csv"), "is absolute")]:
        mapped(cohort_dir, clinical={"path": path})
        with pytest.raises(ClinicalTableError, match=message):
            clinical_source(cohort_dir, {"path": path})
        assert message in precheck(cohort_dir)
    found, _ = clinical_source(cohort_dir, {"path": str(cohorts / "clinical.csv")}, allowed=[cohorts])
    assert found == cohorts / "clinical.csv"
    with pytest.raises(ClinicalTableError, match="outside the cohort folder"):
        clinical_source(cohort_dir, {"path": "/etc/hostname"}, allowed=[cohorts])


def test_a_symlinked_clinical_table_is_judged_by_its_target(cohorts):
    cohort_dir = write_brats_cohort(cohorts / "mine", patients=1)
    (cohort_dir / "clinical.csv").symlink_to("/etc/hostname")
    with pytest.raises(ClinicalTableError, match="resolves to /etc/hostname, outside the cohort folder"):
        clinical_source(cohort_dir, None)


def test_a_symlinked_patient_folder_is_excluded(cohorts):
    cohort_dir = write_brats_cohort(cohorts / "mine", patients=1)
    write_brats_cohort(cohorts / "elsewhere", patients=6)
    (cohort_dir / "P005").symlink_to(cohorts / "elsewhere" / "P005")
    table = validate_cohort("mine", cohort_dir).set_index("patient_id")
    assert table["status"].to_dict() == {"P000": "ok", "P005": "excluded"}
    assert f"resolves to {cohorts / 'elsewhere' / 'P005' / 'P005_t1.nii.gz'}, outside the cohort folder" in table.loc["P005", "problems"]
    assert validate_cohort("mine", cohort_dir, allowed=[cohorts / "elsewhere"]).set_index("patient_id").loc["P005", "status"] == "ok"


def test_pattern_and_path_helpers(tmp_path, monkeypatch):
    assert check_pattern("sub/*.nii.gz", "x", "glob") == "sub/*.nii.gz"
    with pytest.raises(OutsideCohortError, match="is empty"):
        check_pattern(" ", "x", "glob")
    inside = tmp_path / "c" / "a.txt"
    inside.parent.mkdir()
    inside.write_text("")
    assert outside(inside, tmp_path / "c") is None and confine(inside, tmp_path / "c") == inside
    assert outside(tmp_path / "c" / ".." / "b", tmp_path / "c") == tmp_path / "b"
    assert parse_allowed("/a:/b:") == [Path("/a"), Path("/b")] and parse_allowed(None) == []
