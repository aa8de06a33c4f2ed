"""From cohort tables to extraction tasks, canonical ground truth, burden rows and the provenance row."""

from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from gbm_assets.lib.radiomics.burden_rows import TUMOR_BURDEN_COLUMNS, patient_burden
from gbm_assets.lib.radiomics.extract import EXCLUSION_COLUMNS
from gbm_assets.lib.radiomics.tasks import (
    PROVENANCE_COLUMNS,
    merge_exclusions,
    provenance_row,
    radiomics_tasks,
    write_canonical_truth,
)

AFFINE = np.array([[-2.0, 0, 0, 40], [0, -2.0, 0, 30], [0, 0, 3.0, -10], [0, 0, 0, 1]])


def _nifti(path, array, affine=AFFINE):
    nib.save(nib.Nifti1Image(array, affine), path)
    return str(path)


@pytest.fixture
def patient(tmp_path):
    """One patient: a brain image, BraTS labels (1 core, 2 edema, 4 enhancing) and a binary predicted mask."""
    brain = np.zeros((20, 20, 10), np.float32)
    brain[2:18, 2:18, 1:9] = 100.0
    labels = np.zeros((20, 20, 10), np.uint8)
    labels[5:9, 5:9, 3:6] = 2
    labels[6:8, 6:8, 4:5] = 4
    labels[6, 6, 4] = 1
    pred = (labels > 0).astype(np.uint8)
    paths = {s: _nifti(tmp_path / f"{s}.nii.gz", brain) for s in ("t1", "t1c", "t2", "flair")}
    row = SimpleNamespace(patient_id="p0", status="ok", problems="", labels_path=_nifti(tmp_path / "seg.nii.gz", labels),
                          label_scheme="brats", **{f"{s}_path": p for s, p in paths.items()})  # fmt: skip
    mask = SimpleNamespace(patient_id="p0", status="ok", problems="", mask_path=_nifti(tmp_path / "mask.nii.gz", pred),
                           roi_scheme="binary")  # fmt: skip
    return row, mask, labels


def test_canonical_truth_keeps_geometry_and_maps_labels(tmp_path, patient):
    row, _, labels = patient
    out = write_canonical_truth(row.labels_path, "brats", tmp_path / "rois" / "p0" / "ground_truth.nii.gz")
    written, source = sitk.ReadImage(str(out)), sitk.ReadImage(row.labels_path)
    assert written.GetOrigin() == source.GetOrigin() and written.GetDirection() == source.GetDirection()
    assert written.GetSpacing() == source.GetSpacing()
    data = np.asarray(nib.load(out).dataobj)
    assert data.dtype == np.uint8 and set(np.unique(data)) == {0, 1, 2, 3}  # BraTS 4 -> canonical 3
    assert (data == 3).sum() == (labels == 4).sum() and not list(out.parent.glob(".*tmp"))


def test_unexpected_label_is_an_error_naming_the_file(tmp_path):
    bad = _nifti(tmp_path / "bad.nii.gz", np.full((4, 4, 4), 7, np.uint8))
    with pytest.raises(ValueError, match="bad.nii.gz"):
        write_canonical_truth(bad, "brats", tmp_path / "out.nii.gz")


def test_tasks_and_exclusions_per_patient(tmp_path, patient):
    row, mask, _ = patient
    raw = pd.DataFrame([vars(row), {**vars(row), "patient_id": "p1", "labels_path": str(tmp_path / "missing.nii.gz")},
                        {**vars(row), "patient_id": "p2", "status": "excluded", "problems": "no t1"}])  # fmt: skip
    masks = pd.DataFrame([vars(mask), {**vars(mask), "patient_id": "p1", "status": "failed", "problems": "oom", "mask_path": None}])
    tasks, exclusions = radiomics_tasks("c", raw, masks, ["ground_truth", "predicted"], "params.yaml", tmp_path / "rois")
    assert [t.patient_id for t in tasks] == ["p0"] and set(tasks[0].rois) == {"ground_truth", "predicted"}
    assert tasks[0].roi_schemes == {"ground_truth": "brats", "predicted": "binary"}
    reasons = {(e["patient_id"], e["roi_source"]): e["reason"] for e in exclusions}
    assert "missing.nii.gz" in reasons[("p1", "ground_truth")] and "oom" in reasons[("p1", "predicted")]
    assert "no t1" in reasons[("p2", "any")]
    merged = merge_exclusions(exclusions, pd.DataFrame(columns=list(EXCLUSION_COLUMNS)))
    assert list(merged.columns) == list(EXCLUSION_COLUMNS) and list(merged["patient_id"]) == ["p1", "p1", "p2"]
    assert radiomics_tasks("c", raw.iloc[:0], masks.iloc[:0], ["predicted"], "p", tmp_path) == ([], [])


def test_burden_rows_pair_prediction_with_truth(patient):
    row, mask, labels = patient
    rows, notes = patient_burden("c", row, mask)
    assert notes == [] and all(set(r) <= set(TUMOR_BURDEN_COLUMNS) for r in rows)
    truth = {r["region"]: r for r in rows if r["roi_source"] == "ground_truth"}
    assert truth["whole_tumor"]["volume_ml"] == pytest.approx((labels > 0).sum() * 12 / 1000)
    (predicted,) = [r for r in rows if r["roi_source"] == "predicted"]  # a binary mask: whole tumour only
    assert predicted["dice"] == 1.0 and predicted["volume_diff_ml"] == 0.0


def test_burden_off_grid_prediction_has_no_agreement(tmp_path, patient):
    row, mask, _ = patient
    shifted = AFFINE.copy()
    shifted[0, 3] += 5
    off = SimpleNamespace(**{**vars(mask), "mask_path": _nifti(tmp_path / "off.nii.gz", np.asarray(nib.load(mask.mask_path).dataobj), shifted)})
    rows, notes = patient_burden("c", row, off)
    (predicted,) = [r for r in rows if r["roi_source"] == "predicted"]
    assert np.isnan(predicted["dice"]) and "not on the ground truth's grid" in notes[0]


def test_provenance_row_with_and_without_timings():
    prov = {"pyradiomics_version": "3", "numpy_version": "2", "simpleitk_version": "2", "python_version": "3.12",
            "params_path": "p.yaml", "params_sha256": "ab", "settings": {"binWidth": 25}, "image_types": {"Original": {}},
            "feature_classes": {"shape": None}}  # fmt: skip
    row = provenance_row("c", "run", prov, ["predicted"], 2, 3, 100, 1, pd.Series([1.0, 3.0]), 5.0)
    assert list(row.columns) == PROVENANCE_COLUMNS and row["seconds_per_patient_max"].iloc[0] == 3.0
    assert row["settings_json"].iloc[0] == '{"binWidth": 25}'
    empty = provenance_row("c", "run", prov, ["predicted"], 1, 0, 0, 0, pd.Series([], dtype=float), 0.0)
    assert np.isnan(empty["seconds_per_patient_mean"].iloc[0])
