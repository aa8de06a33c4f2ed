"""The ingest assets and checks, materialized through Dagster on tiny cohorts in a temp data root."""

import pandas as pd
import pytest
import yaml

from gbm_assets.lib.store.paths import DataRoot
from gbm_assets.lib.store.warehouse import query
from gbm_assets_tests.conftest import add_cohort, check_evaluation, failure_message
from gbm_assets_tests.conftest import materialize as materialize_assets
from gbm_assets_tests.factories import write_brats_cohort, write_brats_patient, write_clinical

INGEST = ["raw_cohort", "clinical_records"]


def materialize(cohort: str, data_root, *, raise_on_error=True, run_config=None):
    import dagster as dg

    instance = dg.DagsterInstance.ephemeral()
    add_cohort(instance, cohort)
    return materialize_assets(data_root, INGEST, cohort, instance=instance, raise_on_error=raise_on_error, run_config=run_config)


def checks_by_name(result):
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_raw_assets_materialize_with_checks_and_sql_views(data_root):
    cohort_dir = write_brats_cohort(DataRoot(data_root).cohorts_dir / "small", patients=3)
    (cohort_dir / "P001" / "P001_t2.nii.gz").unlink()
    (cohort_dir / "cohort.yaml").write_text("expected_sequences: [t1, t1c, t2, flair]\n")
    write_clinical(cohort_dir, [{"patient_id": "P000", "subtype": "MES"}, {"patient_id": "P001", "subtype": "PN"}])

    result = materialize("small", data_root)
    assert result.success
    raw = pd.read_parquet(data_root / "tables" / "raw_cohort" / "small.parquet")
    assert raw.set_index("patient_id")["status"].to_dict() == {"P000": "ok", "P001": "excluded", "P002": "ok"}
    meta = result.asset_materializations_for_node("raw_cohort")[0].metadata
    assert meta["excluded_patients"].value == 1 and meta["valid_patients"].value == 2
    assert "missing sequence file: t2" in meta["problems"].value

    checks = checks_by_name(result)
    assert checks["raw_cohort_patient_ids_unique"].passed
    assert not checks["raw_cohort_patients_complete"].passed  # P001 lacks T2
    assert not checks["clinical_records_cover_imaged_patients"].passed  # P002 has no clinical row
    assert checks["clinical_records_cover_imaged_patients"].metadata["without_clinical_row"].value == ["P002"]

    counts = query(DataRoot(data_root), "select r.status, count(*) n, count(c.subtype) labelled from raw_cohort r "
                   "left join clinical_records c using (cohort, patient_id) group by 1 order by 1")  # fmt: skip
    assert counts.to_dict("records") == [{"status": "excluded", "n": 1, "labelled": 1}, {"status": "ok", "n": 2, "labelled": 1}]


def test_complete_cohort_passes_every_check(data_root):
    cohort_dir = write_brats_cohort(DataRoot(data_root).cohorts_dir / "good", patients=2)
    write_clinical(cohort_dir, [{"patient_id": f"P00{i}", "subtype": "Neural", "survival_months": 9} for i in range(2)])
    checks = checks_by_name(materialize("good", data_root))
    assert all(c.passed for c in checks.values()), checks


def test_empty_cohort_folder_fails_with_a_clear_message(data_root):
    (data_root / "cohorts" / "hollow").mkdir(parents=True)
    result = materialize("hollow", data_root, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure and e.step_key.startswith("raw_cohort"))
    assert "cohort 'hollow'" in str(failure.event_specific_data.error) and "empty" in str(failure.event_specific_data.error)


def test_unknown_subtype_fails_clinical_records_only(data_root):
    cohort_dir = write_brats_cohort(DataRoot(data_root).cohorts_dir / "oddsub", patients=1)
    write_clinical(cohort_dir, [{"patient_id": "P000", "subtype": "Astro"}])
    result = materialize("oddsub", data_root, raise_on_error=False)
    assert result.is_node_success("raw_cohort")
    assert result.is_node_failed("clinical_records")
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "unknown subtype ['Astro']" in str(failure.event_specific_data.error)


def test_cohort_name_with_path_separator_is_refused(data_root):
    with pytest.raises(Exception, match="invalid cohort name"):
        materialize("..", data_root)


def test_identical_images_under_two_ids_are_both_excluded_and_the_check_fails(data_root):
    cohort_dir = write_brats_cohort(DataRoot(data_root).cohorts_dir / "twins", patients=2)
    write_brats_patient(cohort_dir, "P009", seed=0)  # the same images as P000
    result = materialize("twins", data_root)
    raw = pd.read_parquet(data_root / "tables" / "raw_cohort" / "twins.parquet").set_index("patient_id")
    assert raw["status"].to_dict() == {"P000": "excluded", "P001": "ok", "P009": "excluded"}
    assert "identical images to patient(s) 'P009'" in raw.loc["P000", "problems"]
    assert "identical images to patient(s) 'P000'" in raw.loc["P009", "problems"]
    assert raw.loc["P000", "subject_id"] == raw.loc["P009", "subject_id"] != raw.loc["P001", "subject_id"]
    assert raw.loc["P001", "subject_id"].startswith("sha256:") and len(raw.loc["P001", "subject_id"]) == 7 + 16
    check = check_evaluation(result, "raw_cohort_images_unique")
    assert not check.passed and check.metadata["patients_with_identical_images"].value == {raw.loc["P000", "image_sha256"][:16]: ["P000", "P009"]}
    assert check_evaluation(result, "raw_cohort_patient_ids_unique").passed


def test_declared_subject_ids_and_the_subject_check_passing(data_root):
    cohort_dir = write_brats_cohort(DataRoot(data_root).cohorts_dir / "declared", patients=2)
    (cohort_dir / "cohort.yaml").write_text(yaml.safe_dump({"subject_ids": {"P000": "SUBJ-A"}}))
    result = materialize("declared", data_root)
    raw = pd.read_parquet(data_root / "tables" / "raw_cohort" / "declared.parquet").set_index("patient_id")
    assert raw.loc["P000", "subject_id"] == "SUBJ-A" and raw.loc["P001", "subject_id"].startswith("sha256:")
    assert check_evaluation(result, "raw_cohort_images_unique").passed


def test_time_points_of_one_declared_subject_pass_the_image_check(data_root):
    cohort_dir = write_brats_cohort(DataRoot(data_root).cohorts_dir / "visits", patients=2)
    (cohort_dir / "cohort.yaml").write_text(yaml.safe_dump({"subject_ids": {"P000": "SUBJ-A", "P001": "SUBJ-A"}}))
    result = materialize("visits", data_root)
    raw = pd.read_parquet(data_root / "tables" / "raw_cohort" / "visits.parquet")
    assert set(raw["subject_id"]) == {"SUBJ-A"} and (raw["status"] == "ok").all()
    assert check_evaluation(result, "raw_cohort_images_unique").passed


def test_subject_id_ignores_file_names_and_compression(tmp_path):
    import gzip
    import shutil

    from gbm_assets.lib.ingest.validate import validate_cohort

    a = write_brats_cohort(tmp_path / "a", patients=1)
    b = tmp_path / "b" / "Q7"
    b.mkdir(parents=True)
    for f in (a / "P000").iterdir():
        data = gzip.decompress(f.read_bytes())
        (b / f.name.replace("P000", "Q7")).write_bytes(gzip.compress(data, compresslevel=1))
    assert validate_cohort("a", a)["subject_id"].item() == validate_cohort("b", tmp_path / "b")["subject_id"].item()
    shutil.rmtree(b)
    write_brats_patient(tmp_path / "b", "Q7", seed=1)
    assert validate_cohort("a", a)["subject_id"].item() != validate_cohort("b", tmp_path / "b")["subject_id"].item()


def _mapped(cohort_dir, **spec):
    spec = {"sequences": {"t1": "*_t1.nii.gz", "t1c": "*_t1ce.nii.gz", "t2": "*_t2.nii.gz", "flair": "*_flair.nii.gz"}, **spec}
    (cohort_dir / "cohort.yaml").write_text(yaml.safe_dump(spec))


def test_clinical_table_outside_the_cohort_needs_the_operators_allowance(data_root, tmp_path):
    cohort_dir = write_brats_cohort(DataRoot(data_root).cohorts_dir / "ext", patients=1)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    write_clinical(outside, [{"patient_id": "P000", "subtype": "Neural"}])
    _mapped(cohort_dir, clinical={"path": str(outside / "clinical.csv")})
    result = materialize("ext", data_root, raise_on_error=False)
    assert result.is_node_success("raw_cohort") and result.is_node_failed("clinical_records")
    assert "clinical.path" in failure_message(result) and "is absolute" in failure_message(result)
    allowed = {"clinical_records": {"config": {"allowed_input_dirs": [str(outside)]}}}
    result = materialize("ext", data_root, run_config=allowed)
    assert pd.read_parquet(data_root / "tables" / "clinical_records" / "ext.parquet")["subtype"].tolist() == ["Neural"]


def test_a_symlink_out_of_the_cohort_excludes_its_patient_unless_allowed(data_root, tmp_path):
    cohort_dir = write_brats_cohort(DataRoot(data_root).cohorts_dir / "linked", patients=2)
    secret = write_brats_patient(tmp_path / "secret", "S", seed=5)
    target = cohort_dir / "P001" / "P001_t2.nii.gz"
    target.unlink()
    target.symlink_to(secret / "S_t2.nii.gz")
    materialize("linked", data_root)
    raw = pd.read_parquet(data_root / "tables" / "raw_cohort" / "linked.parquet").set_index("patient_id")
    assert raw["status"].to_dict() == {"P000": "ok", "P001": "excluded"}
    assert f"t2: file {target} resolves to {secret / 'S_t2.nii.gz'}, outside the cohort folder" in raw.loc["P001", "problems"]
    materialize("linked", data_root, run_config={"raw_cohort": {"config": {"allowed_input_dirs": [str(tmp_path / "secret")]}}})
    raw = pd.read_parquet(data_root / "tables" / "raw_cohort" / "linked.parquet").set_index("patient_id")
    assert raw.loc["P001", "status"] == "ok"


def test_partial_sequences_are_valid_and_counted(data_root):
    cohort_dir = write_brats_cohort(DataRoot(data_root).cohorts_dir / "partial", patients=2)
    for f in cohort_dir.glob("P001/*_t2.nii.gz"):
        f.unlink()
    result = materialize("partial", data_root)
    meta = result.asset_materializations_for_node("raw_cohort")[0].metadata
    assert meta["valid_patients"].value == 2
    assert meta["patients_per_sequence"].value == {"t1": 2, "t1c": 2, "t2": 1, "flair": 2}
    assert checks_by_name(result)["raw_cohort_patients_complete"].passed
