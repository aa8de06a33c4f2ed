"""Every supported layout and label coding, ingested through `raw_cohort` from the real cases in
../shared/data (skipped with a reason when that folder is absent).

Cohorts are built in a temporary data root from MSD BRATS_001's files (renamed, recoded, reduced
to FLAIR + T1c, or written as DICOM series), PyRadiomics' brain1 (NRRD) and the Kaggle LGG patient.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml

from gbm_assets.lib.contract import label_counts, to_canonical
from gbm_assets.lib.store.paths import resolve_paths
from gbm_assets_tests.conftest import add_cohort, materialize, metadata, shared_case

pytestmark = pytest.mark.realdata
MSD_CHANNELS = {"flair": "0000", "t1": "0001", "t1c": "0002", "t2": "0003"}


@pytest.fixture(scope="module")
def msd() -> Path:
    return shared_case("msd-task01-brats001")


def _msd_labels(msd: Path) -> tuple[np.ndarray, np.ndarray]:
    img = nib.load(str(msd / "BRATS_001_labels.nii.gz"))
    return np.asarray(img.dataobj).astype(np.uint8), img.affine


def _recode(msd: Path, lut: dict[int, int], out: Path) -> Path:
    labels, affine = _msd_labels(msd)
    coded = np.zeros_like(labels)
    for src, dst in lut.items():
        coded[labels == src] = dst
    out.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(coded, affine), str(out))
    return out


def _expected_counts(msd: Path) -> dict[int, int]:
    return label_counts(to_canonical(_msd_labels(msd)[0], "msd"))


def _ingest(root: Path, cohort: str, instance) -> tuple[pd.DataFrame, dict]:
    add_cohort(instance, cohort)
    result = materialize(root, ["raw_cohort"], cohort, instance=instance)
    table = resolve_paths(pd.read_parquet(root / "tables" / "raw_cohort" / f"{cohort}.parquet"), root).set_index("patient_id")
    return table, metadata(result, "raw_cohort")


def _counts(row) -> dict[int, int]:
    return {1: row.voxels_necrotic_core, 2: row.voxels_edema, 3: row.voxels_enhancing}


def test_brats2023_named_cohort_with_one_truncated_file(msd, data_root, instance):
    cohort_dir = data_root / "cohorts" / "b23"
    suffix = {"t1n": "t1", "t1c": "t1c", "t2w": "t2", "t2f": "flair"}
    for case in ("BraTS-GLI-00001-000", "BraTS-MEN-00002-000"):
        for name, seq in suffix.items():
            (cohort_dir / case).mkdir(parents=True, exist_ok=True)
            shutil.copy(msd / f"BRATS_001_{MSD_CHANNELS[seq]}.nii.gz", cohort_dir / case / f"{case}-{name}.nii.gz")
        _recode(msd, {1: 2, 2: 1, 3: 3}, cohort_dir / case / f"{case}-seg.nii.gz")  # 1 NETC, 2 SNFH, 3 ET
    broken = cohort_dir / "BraTS-MEN-00002-000" / "BraTS-MEN-00002-000-t2f.nii.gz"
    broken.write_bytes(broken.read_bytes()[:200_000])
    table, meta = _ingest(data_root, "b23", instance)
    assert meta["layout"] == "brats2023"
    ok = table.loc["BraTS-GLI-00001-000"]
    assert ok.status == "ok" and ok.label_scheme == "brats2023" and ok.sequences == "t1,t1c,t2,flair"
    assert _counts(ok) == {k: v for k, v in _expected_counts(msd).items() if k}
    bad = table.loc["BraTS-MEN-00002-000"]
    assert bad.status == "excluded" and "flair: unreadable file BraTS-MEN-00002-000-t2f.nii.gz" in bad.problems


def test_brats2013_coded_cohort_needs_its_named_scheme(msd, data_root, instance):
    cohort_dir = data_root / "cohorts" / "b13"
    for seq, suffix in {"t1": "t1", "t1c": "t1ce", "t2": "t2", "flair": "flair"}.items():
        (cohort_dir / "P1").mkdir(parents=True, exist_ok=True)
        shutil.copy(msd / f"BRATS_001_{MSD_CHANNELS[seq]}.nii.gz", cohort_dir / "P1" / f"P1_{suffix}.nii.gz")
    _recode(msd, {1: 2, 2: 3, 3: 4}, cohort_dir / "P1" / "P1_seg.nii.gz")  # 2 edema, 3 non-enhancing, 4 enhancing
    table, _ = _ingest(data_root, "b13", instance)  # read as BraTS 2021 coding: label 3 is unknown
    assert "unexpected label values [3] for label scheme 'brats'" in table.loc["P1", "problems"]
    (cohort_dir / "cohort.yaml").write_text("label_scheme: brats2013\n")
    table, _ = _ingest(data_root, "b13", instance)
    row = table.loc["P1"]
    assert row.status == "ok" and row.layout == "brats" and row.label_scheme == "brats2013"
    assert _counts(row) == {k: v for k, v in _expected_counts(msd).items() if k}


def test_flair_t1c_cohort_is_ingested_and_scored_by_the_t1c_champion(msd, data_root, instance, tmp_path, monkeypatch):
    from gbm_assets_tests.defs.test_masks import register_champion

    cohort_dir = data_root / "cohorts" / "pair"
    (cohort_dir / "BRATS_001").mkdir(parents=True)
    for seq in ("flair", "t1c"):
        shutil.copy(msd / f"BRATS_001_{MSD_CHANNELS[seq]}.nii.gz", cohort_dir / "BRATS_001" / f"{seq}.nii.gz")
    shutil.copy(msd / "BRATS_001_labels.nii.gz", cohort_dir / "BRATS_001" / "labels.nii.gz")
    spec = {"sequences": {"flair": "flair.nii.gz", "t1c": "t1c.nii.gz"}, "labels": "labels.nii.gz",
            "label_scheme": "msd", "expected_sequences": ["flair", "t1c"]}  # fmt: skip
    (cohort_dir / "cohort.yaml").write_text(yaml.safe_dump(spec))
    table, meta = _ingest(data_root, "pair", instance)
    row = table.loc["BRATS_001"]
    assert row.status == "ok" and row.sequences == "t1c,flair" and row.t1_path is None and row.t2_path is None
    assert meta["patients_per_sequence"] == {"t1": 0, "t1c": 1, "t2": 0, "flair": 1}
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for model_input, dice in (("stack", 0.9), ("t1", 0.95), ("flair", 0.6), ("t1c", 0.7)):
        register_champion(data_root, model_input, dice, tmp_path)
    config = {"preprocessed_volumes": {"config": {"target_spacing_mm": 4.0, "slice_thickness_mm": 4.0, "size": 64}}}
    result = materialize(data_root, ["preprocessed_volumes", "lesion_masks"], "pair", instance=instance, run_config=config)
    masks = metadata(result, "lesion_masks")
    assert masks["model_input"] == "t1c" and masks["model"].startswith("gbm-unet-t1c ")
    mask = resolve_paths(pd.read_parquet(data_root / "tables" / "lesion_masks" / "pair.parquet"), data_root).iloc[0]
    assert mask.status == "ok" and nib.load(mask.mask_path).shape == (240, 240, 155)


def test_nrrd_cohort_from_pyradiomics_brain1(data_root, instance):
    import SimpleITK as sitk

    source = shared_case("pyradiomics-testdata")
    cohort_dir = data_root / "cohorts" / "nrrd"
    (cohort_dir / "brain1").mkdir(parents=True)
    for name in ("brain1_image.nrrd", "brain1_label.nrrd"):
        shutil.copy(source / name, cohort_dir / "brain1" / name)
    spec = {"sequences": {"t1c": "*_image.nrrd"}, "labels": "*_label.nrrd", "label_scheme": "binary"}
    (cohort_dir / "cohort.yaml").write_text(yaml.safe_dump(spec))
    table, _ = _ingest(data_root, "nrrd", instance)
    row = table.loc["brain1"]
    assert row.status == "ok", row.problems
    assert row.t1c_path.endswith("converted/nrrd/brain1/t1c.nii.gz") and row.labels_path.endswith("labels.nii.gz")
    assert (row.shape_x, row.shape_y, row.shape_z) == (256, 256, 25) and row.orientation == "LAS"  # its direction flips Y
    itk = sitk.ReadImage(str(source / "brain1_image.nrrd"))
    img = nib.load(row.t1c_path)
    corner = img.affine @ [255, 0, 24, 1]  # ITK's physical point (LPS) with x and y negated (RAS)
    assert np.allclose(corner[:3], np.array(itk.TransformIndexToPhysicalPoint((255, 0, 24))) * [-1, -1, 1], atol=1e-3)
    assert np.array_equal(np.asarray(img.dataobj), sitk.GetArrayFromImage(itk).transpose(2, 1, 0))
    tumour = int((sitk.GetArrayFromImage(sitk.ReadImage(str(source / "brain1_label.nrrd"))) == 1).sum())
    assert row.voxels_edema == tumour  # the binary scheme puts the whole tumour in edema


def test_kaggle_lgg_patient_ingested_as_slice_stacks(data_root, instance):
    source = shared_case("kaggle-lgg-mri-segmentation") / "kaggle_3m" / "TCGA_DU_7294_19890104"
    cohort_dir = data_root / "cohorts" / "lgg"
    shutil.copytree(source, cohort_dir / source.name)
    (cohort_dir / "cohort.yaml").write_text("spacing_mm: [0.9, 0.9, 3.0]\n")
    table, meta = _ingest(data_root, "lgg", instance)
    row = table.loc[source.name]
    assert meta["layout"] == "kaggle_lgg" and row.status == "ok", row.problems
    assert row.sequences == "t1,t1c,flair" and row.label_scheme == "binary"  # 3 channels, none a FLAIR copy
    slices = len(list(source.glob("*_mask.tif")))
    assert (row.shape_x, row.shape_y, row.shape_z) == (256, 256, slices)
    assert (row.spacing_x_mm, row.spacing_z_mm) == pytest.approx((0.9, 3.0))
    assert row.voxels_edema > 0 and not row.labels_empty
    flair = nib.load(row.flair_path)
    assert flair.shape == (256, 256, slices) and Path(row.labels_path).is_file()


def _write_dicom_series(volume: Path, folder: Path, description: str, uid: str) -> None:
    """Write a NIfTI volume as a DICOM series (int16 slices) with SimpleITK, geometry in the tags."""
    import SimpleITK as sitk

    image = sitk.Cast(sitk.Round(sitk.ReadImage(str(volume))), sitk.sitkInt16)
    d = image.GetDirection()
    folder.mkdir(parents=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for z in range(image.GetDepth()):
        plane = image[:, :, z]
        tags = {"0008|0060": "MR", "0008|103e": description, "0020|000e": uid, "0020|000d": "1.2.826.0.1.3680043.2.1125.1",
                "0010|0020": "BRATS_001", "0020|0037": "\\".join(map(str, (d[0], d[3], d[6], d[1], d[4], d[7]))),
                "0020|0032": "\\".join(map(str, image.TransformIndexToPhysicalPoint((0, 0, z)))),
                "0020|0013": str(z + 1), "0018|0050": str(image.GetSpacing()[2]),
                "0008|0018": f"{uid}.{z + 1}"}  # fmt: skip
        for tag, value in tags.items():
            plane.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{z + 1:04d}.dcm"))
        writer.Execute(plane)


@pytest.mark.slow
def test_dicom_series_converted_with_geometry_intact(msd, data_root, instance):
    cohort_dir = data_root / "cohorts" / "dicom"
    patient = cohort_dir / "BRATS_001"
    _write_dicom_series(msd / "BRATS_001_0000.nii.gz", patient / "series1", "AX T2 FLAIR", "1.2.826.0.1.3680043.2.1125.11")
    _write_dicom_series(msd / "BRATS_001_0002.nii.gz", patient / "series2", "AX T1 POST GD", "1.2.826.0.1.3680043.2.1125.12")
    shutil.copy(msd / "BRATS_001_labels.nii.gz", patient / "seg.nii.gz")
    spec = {"layout": "dicom", "series": {"flair": "flair", "t1c": r"t1.*(post|gd)", "t1": "t1"},
            "labels": "seg.nii.gz", "label_scheme": "msd"}  # fmt: skip
    (cohort_dir / "cohort.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))  # rules are tried in order
    table, meta = _ingest(data_root, "dicom", instance)
    row = table.loc["BRATS_001"]
    assert meta["layout"] == "dicom" and row.status == "ok", row.problems  # labels matched the converted grid
    assert row.sequences == "t1c,flair"
    original = nib.load(str(msd / "BRATS_001_0000.nii.gz"))
    converted = nib.load(row.flair_path)
    assert np.allclose(converted.affine, original.affine, atol=1e-3)
    assert np.array_equal(np.asarray(converted.dataobj), np.round(original.get_fdata()).astype(np.int16))
    assert _counts(row) == {k: v for k, v in _expected_counts(msd).items() if k}
