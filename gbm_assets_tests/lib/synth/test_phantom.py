"""The synthetic cohort generator: determinism, files, labels, contrasts, affines, subtypes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from gbm_assets.lib.contract import SEQUENCES, SUBTYPES
from gbm_assets.lib.store.paths import CohortNameError
from gbm_assets.lib.synth.phantom import CLINICAL_COLUMNS, SynthOptions, synth_affine, synth_patient, write_cohort
from gbm_assets.lib.synth.anatomy import CSF, GM, WM

# Same field of view as the default (192 x 192 x 160 mm), 8x fewer voxels: fast tests.
SMALL = SynthOptions(shape=(64, 64, 32), spacing=(3.0, 3.0, 5.0))
COARSE = SynthOptions(shape=(48, 48, 24), spacing=(4.0, 4.0, 20 / 3))
FILE_SUFFIXES = ("t1", "t1ce", "t2", "flair", "seg")


def _tree_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_cohort(tmp_path_factory.mktemp("a"), "demo", 8, seed=7, options=SMALL)


def test_same_seed_gives_same_bytes_and_another_seed_differs(small_cohort: Path, tmp_path: Path) -> None:
    again = write_cohort(tmp_path / "b", "demo", 8, seed=7, options=SMALL)
    first, second = _tree_bytes(small_cohort), _tree_bytes(again)
    assert first.keys() == second.keys()
    assert first == second
    other = _tree_bytes(write_cohort(tmp_path / "c", "demo", 2, seed=8, options=SMALL))
    for name in ("demo-000/demo-000_t1.nii.gz", "demo-000/demo-000_seg.nii.gz", "demo-001/demo-001_flair.nii.gz"):
        assert other[name] != first[name]
    assert not list(tmp_path.rglob("*.tmp")), "temporary files left behind"


def test_cohort_has_brats_files_and_clinical_table(small_cohort: Path) -> None:
    assert small_cohort.name == "demo"
    patients = sorted(p.name for p in small_cohort.iterdir() if p.is_dir())
    assert patients == [f"demo-{i:03d}" for i in range(8)]
    for pid in patients:
        assert sorted(p.name for p in (small_cohort / pid).iterdir()) == sorted(
            f"{pid}_{s}.nii.gz" for s in FILE_SUFFIXES
        )
        seg = nib.load(small_cohort / pid / f"{pid}_seg.nii.gz")
        for suffix in ("t1", "t1ce", "t2", "flair"):
            img = nib.load(small_cohort / pid / f"{pid}_{suffix}.nii.gz")
            assert img.shape == SMALL.shape and img.get_data_dtype() == np.float32
            np.testing.assert_allclose(img.affine, seg.affine)
            assert int(img.header["qform_code"]) == int(img.header["sform_code"]) == 1
        assert seg.get_data_dtype() == np.uint8
        np.testing.assert_allclose(seg.affine, synth_affine(SMALL))

    table = pd.read_csv(small_cohort / "clinical.csv")
    assert tuple(table.columns) == CLINICAL_COLUMNS
    assert table.patient_id.tolist() == patients
    assert table.subtype.value_counts().to_dict() == {s: 2 for s in SUBTYPES}
    assert set(table.idh_status) <= {"mutant", "wildtype"}
    assert table.age.between(25, 85).all() and table.survival_months.between(2, 60).all()


def test_every_mask_has_all_brats_labels_inside_the_brain(small_cohort: Path) -> None:
    for folder in sorted(p for p in small_cohort.iterdir() if p.is_dir()):
        seg = np.asarray(nib.load(folder / f"{folder.name}_seg.nii.gz").dataobj)
        t1 = np.asarray(nib.load(folder / f"{folder.name}_t1.nii.gz").dataobj)
        assert set(np.unique(seg).tolist()) == {0, 1, 2, 4}, folder.name
        assert (t1[seg > 0] > 0).all(), "tumour outside the brain"
        assert (t1 == 0).mean() > 0.3, "background should be zero outside the brain"


@pytest.mark.parametrize("subtype", SUBTYPES)
def test_canonical_labels_present_at_default_size(subtype: str) -> None:
    patient = synth_patient(11, subtype)
    assert patient.labels.dtype == np.uint8 and patient.labels.shape == SynthOptions().shape
    assert set(np.unique(patient.labels).tolist()) == {0, 1, 2, 3}
    for seq in SEQUENCES:
        assert patient.images[seq].dtype == np.float32 and patient.images[seq].shape == SynthOptions().shape


@pytest.mark.parametrize("subtype", SUBTYPES)
def test_sequence_contrasts_are_roughly_realistic(subtype: str) -> None:
    patient = synth_patient(3, subtype)
    healthy = patient.labels == 0
    masks = {name: healthy & (patient.tissues == code) for name, code in (("csf", CSF), ("gm", GM), ("wm", WM))}
    masks.update(necrotic=patient.labels == 1, edema=patient.labels == 2, enhancing=patient.labels == 3)
    # mean signal of each tissue relative to healthy white matter, per sequence
    m = {
        seq: {name: float(patient.images[seq][mask].mean() / patient.images[seq][masks["wm"]].mean())
              for name, mask in masks.items()}
        for seq in SEQUENCES
    }

    assert 1 > m["t1"]["gm"] > m["t1"]["csf"]
    assert m["t1"]["necrotic"] < 0.8
    assert m["t1c"]["enhancing"] > 1.4 * m["t1"]["enhancing"]
    if subtype in ("Classical", "Mesenchymal"):
        assert m["t1c"]["enhancing"] > 1.3
    assert m["t2"]["csf"] == max(m["t2"].values())
    assert m["t2"]["edema"] > 1.3 and m["t2"]["gm"] > 1
    assert m["flair"]["csf"] < 0.5 and m["flair"]["csf"] < m["flair"]["edema"]
    assert m["flair"]["edema"] > 1.3 and m["flair"]["gm"] > 1
    assert m["flair"]["necrotic"] > 1 and m["flair"]["enhancing"] > 1


def test_lps_and_oblique_affines() -> None:
    ras = synth_affine(SynthOptions())
    assert nib.aff2axcodes(ras) == ("R", "A", "S")
    np.testing.assert_allclose(np.diag(ras)[:3], SynthOptions().spacing)
    centre = ras @ np.append((np.asarray(SynthOptions().shape) - 1) / 2, 1)
    np.testing.assert_allclose(centre[:3], 0, atol=1e-9)

    lps = synth_affine(SynthOptions(orientation="LPS"))
    assert nib.aff2axcodes(lps) == ("L", "P", "S")
    oblique = synth_affine(SynthOptions(orientation="LPS", oblique_deg=20.0))
    assert nib.aff2axcodes(oblique) == ("L", "P", "S")
    np.testing.assert_allclose(nib.affines.voxel_sizes(oblique), SynthOptions().spacing)
    angle = np.degrees(np.arctan2(oblique[1, 0], oblique[0, 0]))
    assert angle == pytest.approx(20.0 - 180.0)  # x points left (LPS), then turned by 20 degrees


def test_lps_patient_has_the_same_anatomy_in_world_space() -> None:
    ras = synth_patient(5, "Neural", SMALL)
    lps = synth_patient(5, "Neural", replace(SMALL, orientation="LPS"))
    np.testing.assert_array_equal(lps.labels, ras.labels[::-1, ::-1])
    np.testing.assert_array_equal(lps.images["flair"], ras.images["flair"][::-1, ::-1])

    def tumour_centre_mm(p) -> np.ndarray:
        return nib.affines.apply_affine(p.affine, np.argwhere(p.labels > 0).mean(axis=0))

    np.testing.assert_allclose(tumour_centre_mm(lps), tumour_centre_mm(ras), atol=1e-6)


def test_subtypes_shift_phenotype_with_overlap() -> None:
    rows = [
        dict(subtype=s, **{k: synth_patient(100 + i, s, COARSE).params[k] for k in ("whole_tumor_ml", "age", "lobe")})
        for s in SUBTYPES
        for i in range(10)
    ]
    table = pd.DataFrame(rows)
    volume = table.groupby("subtype").whole_tumor_ml
    assert volume.mean()["Mesenchymal"] > 1.5 * volume.mean()["Neural"]
    assert volume.min()["Mesenchymal"] < volume.max()["Neural"], "subtype volumes should overlap"
    assert table.groupby("subtype").age.mean()["Proneural"] < table.groupby("subtype").age.mean()["Classical"]
    assert table.whole_tumor_ml.gt(0).all()


@pytest.mark.parametrize("name", ["", "../escape", "a/b", "with space", ".hidden"])
def test_invalid_cohort_name_is_rejected(tmp_path: Path, name: str) -> None:
    with pytest.raises(CohortNameError):
        write_cohort(tmp_path, name, 1, seed=0, options=SMALL)
    assert not any(tmp_path.iterdir())


def test_bad_arguments_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="subtype"):
        synth_patient(0, "Glioma", SMALL)
    with pytest.raises(ValueError, match="orientation"):
        SynthOptions(orientation="LAS")
    with pytest.raises(ValueError, match="n_patients"):
        write_cohort(tmp_path, "demo", 0, seed=0, options=SMALL)


PINNED = SynthOptions(shape=(32, 32, 16), spacing=(5.0, 5.0, 8.0))
# sha256 (first 16 hex) of the images and labels, written BEFORE the IDH status got its own stream:
# the clinical change must never move the images (the demo's segmentation numbers depend on them).
IMAGE_SHA = {(11, "Proneural"): "93c66b446be42d37", (12, "Neural"): "7096029d884bf8b1", (13, "Classical"): "a3bd752b0302921f"}


@pytest.mark.parametrize(("seed", "subtype"), list(IMAGE_SHA))
def test_images_do_not_move_with_the_idh_stream(seed: int, subtype: str) -> None:
    import hashlib

    patient = synth_patient(seed, subtype, PINNED)
    digest = hashlib.sha256()
    for sequence in sorted(patient.images):
        digest.update(patient.images[sequence].tobytes())
    digest.update(patient.labels.tobytes())
    assert digest.hexdigest()[:16] == IMAGE_SHA[(seed, subtype)]


def test_idh_status_follows_subtype_and_the_visible_phenotype() -> None:
    from gbm_assets.lib.synth.phantom import _draw_phenotype, idh_status

    rows = []
    for seed in range(400):
        subtype = SUBTYPES[seed % 4]
        p = _draw_phenotype(np.random.default_rng(seed), subtype)
        rows.append((subtype, p["necrosis_fraction"], idh_status(seed, subtype, p) == "mutant"))
    df = pd.DataFrame(rows, columns=["subtype", "necrosis", "mutant"])
    rate = df.groupby("subtype")["mutant"].mean()
    assert rate["Proneural"] > 0.4 and rate["Mesenchymal"] < 0.1  # Verhaak 2010: IDH-mutant tumours are Proneural
    assert df.loc[df.mutant, "necrosis"].mean() < df.loc[~df.mutant, "necrosis"].mean()  # visible in the images
    assert idh_status(5, "Neural", p) == idh_status(5, "Neural", p)  # seeded
