"""raw_cohort validation: every bad input the issue lists gets a clear, recorded reason."""

import gzip
import json
import shutil

import nibabel as nib
import numpy as np
import pytest

from gbm_assets.lib.ingest.layouts import LayoutError, reader_for
from gbm_assets.lib.ingest.validate import RAW_COHORT_COLUMNS, problems_markdown, validate_cohort
from gbm_assets_tests.conftest import shared_case
from gbm_assets_tests.factories import save, tiny_labels, write_brats_cohort, write_brats_patient


def rows(table):
    return {r["patient_id"]: r for r in table.to_dict("records")}


def test_good_brats_cohort_is_all_ok(tmp_path):
    table = validate_cohort("c1", write_brats_cohort(tmp_path / "c1", patients=3))
    assert list(table.columns) == RAW_COHORT_COLUMNS
    assert table["status"].tolist() == ["ok"] * 3
    assert (table["problems"] == "").all()
    row = table.iloc[0]
    assert (row.shape_x, row.shape_y, row.shape_z) == (8, 8, 6)
    assert row.orientation == "RAS" and row.label_scheme == "brats" and row.layout == "brats"
    assert (row.voxels_necrotic_core, row.voxels_enhancing) == (1, 7)
    assert "No problems" in problems_markdown(table)


def _broken_cohort(tmp_path, breaker):
    cohort = write_brats_cohort(tmp_path / "c", patients=3)
    breaker(cohort / "P001")
    return rows(validate_cohort("c", cohort))


def _assert_only_p001_excluded(by_id, *fragments):
    assert by_id["P000"]["status"] == by_id["P002"]["status"] == "ok"
    assert by_id["P001"]["status"] == "excluded"
    for fragment in fragments:
        assert fragment in by_id["P001"]["problems"], by_id["P001"]["problems"]


def test_missing_expected_sequence_file(tmp_path):
    def drop_t2(p):
        (p / "P001_t2.nii.gz").unlink()
        (p.parent / "cohort.yaml").write_text("expected_sequences: [t1, t1ce, t2, flair]\n")

    _assert_only_p001_excluded(_broken_cohort(tmp_path, drop_t2), "missing sequence file: t2", "P001_t2.nii.gz")


def test_patient_is_valid_with_the_sequences_it_has(tmp_path):
    by_id = _broken_cohort(tmp_path, lambda p: (p / "P001_t2.nii.gz").unlink())
    assert {r["status"] for r in by_id.values()} == {"ok"}
    assert by_id["P001"]["sequences"] == "t1,t1c,flair" and by_id["P001"]["t2_path"] is None
    assert by_id["P001"]["image_sha256"] and by_id["P000"]["sequences"] == "t1,t1c,t2,flair"


def test_patient_without_any_image_is_excluded(tmp_path):
    by_id = _broken_cohort(tmp_path, lambda p: [f.unlink() for f in p.glob("*.nii.gz") if "_seg" not in f.name])
    _assert_only_p001_excluded(by_id, "no BraTS-named files")


def test_unknown_expected_sequence_is_a_cohort_error(tmp_path):
    cohort = write_brats_cohort(tmp_path / "c", patients=1)
    (cohort / "cohort.yaml").write_text("expected_sequences: [dwi]\n")
    with pytest.raises(LayoutError, match="cohort.yaml: expected_sequences: unknown sequence 'dwi'"):
        validate_cohort("c", cohort)


def test_truncated_gzip(tmp_path):
    def truncate(p):
        path = p / "P001_flair.nii.gz"
        path.write_bytes(path.read_bytes()[:60])

    _assert_only_p001_excluded(_broken_cohort(tmp_path, truncate), "flair: unreadable file P001_flair.nii.gz")


def test_corrupt_not_nifti(tmp_path):
    def corrupt(p):
        (p / "P001_t1.nii.gz").write_bytes(gzip.compress(b"this is not a nifti header" * 20))

    _assert_only_p001_excluded(_broken_cohort(tmp_path, corrupt), "t1: unreadable file P001_t1.nii.gz")


def test_shape_mismatch(tmp_path):
    def reshape(p):
        save(np.ones((8, 8, 5), np.float32), p / "P001_t1ce.nii.gz")

    _assert_only_p001_excluded(_broken_cohort(tmp_path, reshape), "t1c: shape (8, 8, 5)")


def test_affine_mismatch(tmp_path):
    def shift(p):
        affine = np.eye(4)
        affine[0, 3] = 5.0
        save(np.ones((8, 8, 6), np.float32), p / "P001_t2.nii.gz", affine)

    _assert_only_p001_excluded(_broken_cohort(tmp_path, shift), "t2: affine of P001_t2.nii.gz differs")


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_voxels(tmp_path, value):
    def poison(p):
        data = np.ones((8, 8, 6), np.float32)
        data[1, 1, 1] = value
        save(data, p / "P001_flair.nii.gz")

    _assert_only_p001_excluded(_broken_cohort(tmp_path, poison), "flair: 1 NaN or infinite voxels")


def test_unknown_label_values_name_file_and_values(tmp_path):
    def relabel(p):
        seg = tiny_labels()
        seg[0, 0, 0] = 7
        save(seg, p / "P001_seg.nii.gz")

    by_id = _broken_cohort(tmp_path, relabel)
    _assert_only_p001_excluded(by_id, "P001_seg.nii.gz", "unexpected label values [7]")


def test_empty_segmentation_is_recorded_not_excluded(tmp_path):
    by_id = _broken_cohort(tmp_path, lambda p: save(np.zeros((8, 8, 6), np.uint8), p / "P001_seg.nii.gz"))
    assert by_id["P001"]["status"] == "ok" and by_id["P001"]["labels_empty"]
    assert not by_id["P000"]["labels_empty"]


def test_cohort_without_masks_is_valid(tmp_path):
    cohort = tmp_path / "score_me"
    write_brats_patient(cohort, "P000", labels=None)
    row = validate_cohort("score_me", cohort).iloc[0]
    assert row.status == "ok" and not row.has_labels and row.labels_path is None


def test_duplicate_patient_ids_exclude_every_copy(tmp_path):
    cohort = tmp_path / "dup"
    meta = {"modality": {"0": "FLAIR", "1": "T1w", "2": "T1gd", "3": "T2w"}}
    for site in ("siteA", "siteB"):
        for ch in range(4):
            save(np.ones((4, 4, 3), np.float32), cohort / site / f"CASE_1_000{ch}.nii.gz")
        (cohort / site / "dataset.json").write_text(json.dumps(meta))
    table = validate_cohort("dup", cohort)
    assert len(table) == 2
    assert (table["status"] == "excluded").all()
    assert table["problems"].str.contains("duplicate patient id 'CASE_1'").all()


def test_empty_cohort_folder_raises_naming_it(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(LayoutError, match="empty"):
        validate_cohort("empty", tmp_path / "empty")


def test_unknown_layout_raises(tmp_path):
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "notes.txt").write_text("hello")
    with pytest.raises(LayoutError, match="matches no known layout"):
        validate_cohort("odd", tmp_path / "odd")


def test_cohort_yaml_reports_ambiguous_and_missing_globs(tmp_path):
    cohort = tmp_path / "mapped"
    for name in ("a_T1.nii.gz", "b_T1.nii.gz", "FLAIR.nii.gz", "T2.nii.gz"):
        save(np.ones((4, 4, 3), np.float32), cohort / "X1" / name)
    globs = "sequences: {t1: '*T1.nii.gz', t2: 'T2.nii.gz', flair: 'FLAIR.nii.gz', t1c: 'CT1.nii.gz'}\n"
    (cohort / "cohort.yaml").write_text(globs + "expected_sequences: [t1c]\n")
    problems = validate_cohort("mapped", cohort).iloc[0]["problems"]
    assert "ambiguous t1 file" in problems and "missing t1c file" in problems
    (cohort / "cohort.yaml").write_text(globs)  # t1c not expected: only the ambiguity is a problem
    problems = validate_cohort("mapped", cohort).iloc[0]["problems"]
    assert "ambiguous t1 file" in problems and "t1c" not in problems


@pytest.mark.realdata
def test_msd_case_ingests_with_canonical_label_counts(tmp_path):
    source = shared_case("msd-task01-brats001")
    cohort = tmp_path / "msd"
    shutil.copytree(source, cohort)
    assert reader_for(cohort).name == "msd"
    row = validate_cohort("msd", cohort).iloc[0]
    assert row.status == "ok", row.problems
    assert row.patient_id == "BRATS_001" and row.orientation == "RAS"
    assert row.t1c_path.endswith("_0002.nii.gz") and row.flair_path.endswith("_0000.nii.gz")
    raw = np.asanyarray(nib.load(str(source / "BRATS_001_labels.nii.gz")).dataobj)
    # MSD: 1 edema, 2 non-enhancing, 3 enhancing -> canonical 2, 1, 3
    assert row.voxels_edema == np.count_nonzero(raw == 1) == 53050
    assert row.voxels_necrotic_core == np.count_nonzero(raw == 2) == 27189
    assert row.voxels_enhancing == np.count_nonzero(raw == 3) == 31485


TCGA_YAML = """\
patients: "TCGA-*"
sequences:
  t1: T1_reorient_bet.nii.gz
  t1c: CT1_reorient_bet_reg.nii.gz
  t2: T2_reorient_bet_reg.nii.gz
  flair: FLAIR_reorient_bet_reg.nii.gz
labels: tcga_06_1802_hd_glio_predict.nii.gz
label_scheme: hd_glio
"""


def tcga_cohort(tmp_path):
    source = shared_case("tcga-gbm-06-1802-elmed219")
    cohort = tmp_path / "tcga"
    (cohort / "TCGA-06-1802").mkdir(parents=True)
    for f in source.glob("*.nii.gz"):
        (cohort / "TCGA-06-1802" / f.name).symlink_to(f)
    (cohort / "cohort.yaml").write_text(TCGA_YAML)
    return cohort


@pytest.mark.realdata
def test_tcga_case_ingests_through_cohort_yaml(tmp_path):
    cohort = tcga_cohort(tmp_path)  # its files link into ../shared/data: the operator allows that folder
    assert validate_cohort("tcga", cohort).iloc[0].status == "excluded"
    row = validate_cohort("tcga", cohort, allowed=[shared_case("tcga-gbm-06-1802-elmed219")]).iloc[0]
    assert row.status == "ok", row.problems
    assert row.layout == "mapped" and row.label_scheme == "hd_glio"
    assert row.orientation == "LAS"
    assert (row.shape_x, row.shape_y, row.shape_z) == (512, 512, 30)
    assert row.spacing_z_mm == pytest.approx(5.0, abs=0.01)
    # SOURCE.md: HD-GLIO {1: 142441 non-enhancing, 2: 49695 enhancing} -> canonical edema / enhancing
    assert (row.voxels_necrotic_core, row.voxels_edema, row.voxels_enhancing) == (0, 142441, 49695)
