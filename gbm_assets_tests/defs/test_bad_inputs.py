"""The bad-input catalogue of the ingest side: each kind of bad input gets a clear message naming
the cohort, the patient (where there is one) and the file, and the other patients proceed.

Patient-level kinds share one cohort (`many`), materialized once: every bad patient is excluded
with its message in the table and in the run's log, and the good patients stay `ok`. Cohort-level
and clinical-table kinds need a cohort each: the asset fails with a message naming the cohort and
the file, and (for clinical tables) `raw_cohort` still succeeds.
"""

from __future__ import annotations

import gzip

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import yaml

from gbm_assets_tests.conftest import add_cohort, failure_message, materialize
from gbm_assets_tests.factories import save, tiny_labels, write_brats_patient, write_clinical

INGEST = ["raw_cohort", "clinical_records"]
GOOD = ("P000", "P001")


def _truncate(folder, name):
    path = folder / name
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def _corrupt(folder, name):
    (folder / name).write_bytes(gzip.compress(b"not a nifti file at all" * 20))


def _replace(folder, name, array, affine=None):
    save(array, folder / name, affine)


def _shifted():
    affine = np.eye(4)
    affine[0, 3] = 5.0
    return affine


def _nan():
    data = np.random.default_rng(1).normal(100, 10, (8, 8, 6)).astype(np.float32)
    data[1, 1, 1] = np.nan
    return data


def _labels_with(value):
    labels = tiny_labels()
    labels[0, 0, 0] = value
    return labels


# kind -> (patient, how to break it (folder, patient) -> None, expected text, file named)
PATIENT_KINDS = {
    "missing sequence file": ("P010", lambda f, p: (f / f"{p}_t2.nii.gz").unlink(), "missing sequence file: t2", "P010_t2.nii.gz"),
    "truncated file": ("P011", lambda f, p: _truncate(f, f"{p}_t1.nii.gz"), "t1: unreadable file", "P011_t1.nii.gz"),
    "corrupt file": ("P012", lambda f, p: _corrupt(f, f"{p}_flair.nii.gz"), "flair: unreadable file", "P012_flair.nii.gz"),
    "4D volume": ("P013", lambda f, p: _replace(f, f"{p}_t1ce.nii.gz", np.zeros((8, 8, 6, 2), np.float32)), "expected a 3D volume", "P013_t1ce.nii.gz"),
    "shape mismatch": ("P014", lambda f, p: _replace(f, f"{p}_flair.nii.gz", np.ones((8, 8, 5), np.float32)), "flair: shape (8, 8, 5)", "P014_flair.nii.gz"),
    "affine mismatch": ("P015", lambda f, p: _replace(f, f"{p}_t2.nii.gz", np.ones((8, 8, 6), np.float32), _shifted()), "t2: affine of", "P015_t2.nii.gz"),
    "NaN voxels": ("P016", lambda f, p: _replace(f, f"{p}_t1ce.nii.gz", _nan()), "t1c: 1 NaN or infinite voxels", "P016_t1ce.nii.gz"),
    "unknown label values": ("P017", lambda f, p: _replace(f, f"{p}_seg.nii.gz", _labels_with(7)), "unexpected label values [7]", "P017_seg.nii.gz"),
    "mask shape mismatch": ("P018", lambda f, p: _replace(f, f"{p}_seg.nii.gz", np.zeros((4, 4, 4), np.uint8)), "labels: shape (4, 4, 4)", "P018_seg.nii.gz"),
    "symlink out of the cohort": ("P019", lambda f, p: _link_out(f, p), "outside the cohort folder", "P019_t1.nii.gz"),
    "identical images under two ids": ("P020", None, "identical images to patient(s) 'P009'", "P020_t1.nii.gz"),
    "bad patient name": ("P 021", None, "invalid patient id 'P 021'", "P 021_t1.nii.gz"),
}


def _link_out(folder, patient):
    elsewhere = write_brats_patient(folder.parent.parent / "elsewhere", patient, seed=99)
    (folder / f"{patient}_t1.nii.gz").unlink()
    (folder / f"{patient}_t1.nii.gz").symlink_to(elsewhere / f"{patient}_t1.nii.gz")


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    """One cohort holding every patient-level kind, materialized once."""
    root = tmp_path_factory.mktemp("bad") / "data"
    cohort_dir = root / "cohorts" / "many"
    for i, pid in enumerate(GOOD):
        write_brats_patient(cohort_dir, pid, seed=i)
    write_brats_patient(cohort_dir, "P009", seed=9)  # P020 is a copy of it under another id
    for i, (pid, breaker, _, _) in enumerate(PATIENT_KINDS.values()):
        write_brats_patient(cohort_dir, pid, seed=9 if pid == "P020" else 100 + i)
        if breaker:
            breaker(cohort_dir / pid, pid)
    write_clinical(cohort_dir, [{"patient_id": p, "subtype": "Neural"} for p in GOOD])
    (cohort_dir / "cohort.yaml").write_text("expected_sequences: [t1, t1c, t2, flair]\n")  # P010 lacks t2
    instance = dg.DagsterInstance.ephemeral()
    add_cohort(instance, "many")
    result = materialize(root, INGEST, "many", instance=instance)
    logs = [e.user_message for e in instance.all_logs(result.run_id)]
    table = pd.read_parquet(root / "tables" / "raw_cohort" / "many.parquet").set_index("patient_id")
    return table, logs


@pytest.mark.parametrize("kind", list(PATIENT_KINDS))
def test_patient_level_bad_input_excludes_only_that_patient(many, kind):
    table, logs = many
    pid, _, expected, file = PATIENT_KINDS[kind]
    assert table.loc[pid, "status"] == "excluded"
    assert expected in table.loc[pid, "problems"] and file in table.loc[pid, "problems"]
    [line] = [m for m in logs if m.startswith(f"cohort many, patient {pid}: excluded:")]
    assert expected in line and file in line
    assert (table.loc[list(GOOD), "status"] == "ok").all()  # the other patients proceed


def test_identical_images_name_each_other(many):
    table, _ = many
    assert table.loc["P009", "status"] == "excluded"
    assert "identical images to patient(s) 'P020'" in table.loc["P009", "problems"]
    assert table.loc["P009", "subject_id"] == table.loc["P020", "subject_id"]


def test_empty_mask_is_kept_and_recorded(tmp_path):
    root = tmp_path / "data"
    write_brats_patient(root / "cohorts" / "hollow_mask", "P000", labels=np.zeros((8, 8, 6), np.uint8))
    write_brats_patient(root / "cohorts" / "hollow_mask", "P001", seed=1)
    instance = dg.DagsterInstance.ephemeral()
    add_cohort(instance, "hollow_mask")
    result = materialize(root, ["raw_cohort"], "hollow_mask", instance=instance)
    table = pd.read_parquet(root / "tables" / "raw_cohort" / "hollow_mask.parquet").set_index("patient_id")
    assert table["status"].tolist() == ["ok", "ok"] and table["labels_empty"].tolist() == [True, False]
    assert result.asset_materializations_for_node("raw_cohort")[0].metadata["empty_masks"].value == 1


MAPPED = {"t1": "*_t1.nii.gz", "t1c": "*_t1ce.nii.gz", "t2": "*_t2.nii.gz", "flair": "*_flair.nii.gz"}


def _yaml(text):
    return lambda d: (d / "cohort.yaml").write_text(text)


def _spec(**spec):
    return _yaml(yaml.safe_dump({"sequences": MAPPED, **spec}))


# kind -> (how to set up the cohort folder, failing asset, expected text, file named)
COHORT_KINDS = {
    "malformed cohort.yaml": (_yaml("sequences: [t1: *_t1\n  bad"), "raw_cohort", "cannot read", "cohort.yaml"),
    "cohort.yaml not a mapping": (_yaml("- t1\n- t2\n"), "raw_cohort", "expected a mapping at the top level", "cohort.yaml"),
    "unknown label scheme": (_spec(label_scheme="weird"), "raw_cohort", "unknown label_scheme 'weird'", "cohort.yaml"),
    "unknown sequence name": (_spec(sequences={"t3": "*_t1.nii.gz"}), "raw_cohort", "unknown sequence 't3'", "cohort.yaml"),
    "escaping sequence glob": (_spec(sequences={**MAPPED, "t2": "../../etc/hostname"}), "raw_cohort", "leaves the cohort folder", "cohort.yaml"),
    "patients glob into another cohort": (_spec(patients="../other_cohort/*"), "raw_cohort", "patients glob '../other_cohort/*' leaves", "cohort.yaml"),
    "absolute glob": (_spec(patients="/etc/*"), "raw_cohort", "is absolute", "cohort.yaml"),
    "clinical table outside the cohort": (_spec(clinical={"path": "../../secret.csv"}), "clinical_records", "clinical.path", "cohort.yaml"),
    "clinical table missing": (_spec(clinical={"path": "nope.csv"}), "clinical_records", "does not exist", "nope.csv"),
    "unknown subtype": (lambda d: write_clinical(d, [{"patient_id": "P001", "subtype": "Astro"}]), "clinical_records",
                        "unknown subtype ['Astro'] for patient(s) P001", "clinical.csv"),
    "unparseable survival": (lambda d: write_clinical(d, [{"patient_id": "P001", "subtype": "CL", "survival_months": "abc"}]),
                             "clinical_records", "'survival_months' (survival) is not a number for patient(s) P001 ('abc')", "clinical.csv"),
    "unparseable age": (lambda d: write_clinical(d, [{"patient_id": "P001", "subtype": "CL", "age": "x"}]),
                        "clinical_records", "'age' (age) is not a number for patient(s) P001 ('x')", "clinical.csv"),
    "clinical table without subtype": (lambda d: write_clinical(d, [{"patient_id": "P001", "age": 50}]), "clinical_records",
                                       "missing required column(s) subtype", "clinical.csv"),
    "unknown IDH status": (lambda d: write_clinical(d, [{"patient_id": "P001", "subtype": "CL", "idh_status": "maybe"}]),
                           "clinical_records", "unknown IDH status ['maybe'] for patient(s) P001", "clinical.csv"),
    "label map to a non-canonical label": (_spec(label_map={1: 9}), "raw_cohort", "label_map 1: 9 is not a canonical label", "cohort.yaml"),
    "label map and label scheme both": (_spec(label_map={1: 2}, label_scheme="brats"), "raw_cohort", "not both", "cohort.yaml"),
    "unknown expected sequence": (_yaml("expected_sequences: [dwi]\n"), "raw_cohort", "unknown sequence 'dwi'", "cohort.yaml"),
    "dicom without series rules": (_yaml("layout: dicom\n"), "raw_cohort", "layout dicom needs 'series'", "cohort.yaml"),
    "no known layout": (lambda d: [p.rename(p.with_suffix(".txt")) for p in d.rglob("*.nii.gz")], "raw_cohort",
                        "matches no known layout", "cohorts/bad"),
}  # fmt: skip


@pytest.mark.parametrize("kind", list(COHORT_KINDS))
def test_cohort_level_bad_input_fails_its_asset_naming_cohort_and_file(tmp_path, kind):
    setup, failing, expected, file = COHORT_KINDS[kind]
    root = tmp_path / "data"
    cohort_dir = root / "cohorts" / "bad"
    for i, pid in enumerate(GOOD):
        write_brats_patient(cohort_dir, pid, seed=i)
    write_brats_patient(root / "cohorts" / "other_cohort", "Q000")
    setup(cohort_dir)
    instance = dg.DagsterInstance.ephemeral()
    add_cohort(instance, "bad")
    result = materialize(root, INGEST, "bad", instance=instance, raise_on_error=False)
    assert result.is_node_failed(failing)
    message = failure_message(result)
    assert message.startswith("cohort 'bad': ") or "cohort 'bad': " in message
    assert expected in message and file in message
    if failing == "clinical_records":  # the images are fine: raw_cohort proceeds
        assert result.is_node_success("raw_cohort")


def test_bad_cohort_name_is_refused(tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    add_cohort(instance, "a..b")
    result = materialize(tmp_path, ["raw_cohort"], "a..b", instance=instance, raise_on_error=False)
    assert "cohort 'a..b': invalid cohort name 'a..b'" in failure_message(result)


def test_duplicate_patient_ids_exclude_every_copy(tmp_path):
    root = tmp_path / "data"
    cohort_dir = root / "cohorts" / "dups"
    for i, site in enumerate(("site_a", "site_b")):
        write_brats_patient(cohort_dir / site, "P001", seed=i)
    write_brats_patient(cohort_dir / "site_a", "P002", seed=5)
    _spec(patients="*/*")(cohort_dir)
    instance = dg.DagsterInstance.ephemeral()
    add_cohort(instance, "dups")
    materialize(root, ["raw_cohort"], "dups", instance=instance)
    table = pd.read_parquet(root / "tables" / "raw_cohort" / "dups.parquet")
    assert table["status"].tolist() == ["excluded", "ok", "excluded"]
    assert all("duplicate patient id 'P001'" in p for p in table.loc[table.status == "excluded", "problems"])


def _ingest_one(root, cohort):
    instance = dg.DagsterInstance.ephemeral()
    add_cohort(instance, cohort)
    result = materialize(root, ["raw_cohort"], cohort, instance=instance)
    logs = [e.user_message for e in instance.all_logs(result.run_id)]
    return pd.read_parquet(root / "tables" / "raw_cohort" / f"{cohort}.parquet").set_index("patient_id"), logs


def test_label_values_outside_a_declared_map_exclude_only_that_patient(tmp_path):
    root = tmp_path / "data"
    cohort_dir = root / "cohorts" / "mapped_labels"
    for i, pid in enumerate(GOOD):
        write_brats_patient(cohort_dir, pid, seed=i)
    write_brats_patient(cohort_dir, "P030", seed=30, labels=_labels_with(7))
    (cohort_dir / "cohort.yaml").write_text(yaml.safe_dump({"label_map": {1: "necrotic_core", 2: "edema", 4: "enhancing"}}))
    table, logs = _ingest_one(root, "mapped_labels")
    assert (table.loc[list(GOOD), "status"] == "ok").all() and set(table["label_scheme"]) == {"map:0=0,1=1,2=2,4=3"}
    assert table.loc["P030", "status"] == "excluded"
    assert "P030_seg.nii.gz: unexpected label values [7] for label scheme 'map:0=0,1=1,2=2,4=3'" in table.loc["P030", "problems"]
    assert any(m.startswith("cohort mapped_labels, patient P030: excluded:") and "P030_seg.nii.gz" in m for m in logs)


def _dicom_series(folder, description, uid, seed):
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.random.default_rng(seed).integers(0, 500, (4, 8, 8)).astype(np.int16))
    folder.mkdir(parents=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for z in range(image.GetDepth()):
        plane = image[:, :, z]
        for tag, value in {"0008|0060": "MR", "0008|103e": description, "0020|000e": uid, "0020|0013": str(z + 1),
                           "0008|0018": f"{uid}.{z + 1}", "0020|0037": "1\\0\\0\\0\\1\\0",
                           "0020|0032": f"0\\0\\{z}"}.items():  # fmt: skip
            plane.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{z + 1:03d}.dcm"))
        writer.Execute(plane)


def test_dicom_series_matching_no_rule_excludes_only_that_patient(tmp_path):
    root = tmp_path / "data"
    cohort_dir = root / "cohorts" / "scanner"
    _dicom_series(cohort_dir / "A" / "s1", "AX FLAIR", "1.2.3.1", 1)
    _dicom_series(cohort_dir / "B" / "s1", "AX FLAIR", "1.2.3.2", 2)
    _dicom_series(cohort_dir / "B" / "s2", "DWI b1000", "1.2.3.3", 3)
    _dicom_series(cohort_dir / "B" / "s3", "SCOUT", "1.2.3.4", 4)
    (cohort_dir / "cohort.yaml").write_text("layout: dicom\nseries: {flair: flair, t1c: 't1.*gd'}\nskip_series: scout\n")
    table, logs = _ingest_one(root, "scanner")
    assert table.loc["A", "status"] == "ok" and table.loc["A", "sequences"] == "flair"
    assert table.loc["B", "status"] == "excluded"
    problem = table.loc["B", "problems"]
    assert "SeriesDescription 'DWI b1000'" in problem and "B/s2" in problem and "001.dcm" in problem and "SCOUT" not in problem
    assert any(m.startswith("cohort scanner, patient B: excluded:") and "DWI b1000" in m for m in logs)
