"""Parameter files: the shipped one validates; PyRadiomics' own schema rejects unknown settings first."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from gbm_assets.lib.radiomics import (
    ParameterFileError,
    PatientTask,
    default_params_path,
    extract_cohort,
    extractor_from,
    load_params,
    validate_params,
)
from gbm_assets.lib.radiomics import extract as extract_module

CLASSES = {"shape", "firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm"}


def test_shipped_parameter_file_validates_and_says_what_it_computes():
    params = load_params()
    assert params.path == default_params_path()
    assert params.sha256 == hashlib.sha256(default_params_path().read_bytes()).hexdigest()
    assert set(params.feature_classes) == CLASSES
    assert params.image_types == {"Original": {}}
    settings = params.settings
    assert settings["additionalInfo"] is False
    assert settings["normalize"] is True and settings["normalizeScale"] == 100  # native MR intensities
    assert settings["binWidth"] > 0 and settings.get("binCount") is None
    assert settings["minimumROIDimensions"] >= 1 and settings["minimumROISize"] >= 2
    assert "#" in default_params_path().read_text()  # a commented file, every choice explained


def test_provenance_records_versions_and_parameter_hash():
    params = load_params()
    prov = params.provenance()
    for key in ("pyradiomics_version", "numpy_version", "simpleitk_version", "python_version"):
        assert prov[key]
    assert prov["params_sha256"] == params.sha256
    assert prov["settings"]["binWidth"] == params.settings["binWidth"]
    assert set(prov["feature_classes"]) == CLASSES


def test_extractor_follows_the_file():
    extractor = load_params().extractor()
    assert set(extractor.enabledFeatures) == CLASSES
    assert extractor.settings["additionalInfo"] is False


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path


def test_unknown_setting_is_rejected_with_the_file_named(tmp_path):
    path = _write(tmp_path, "setting:\n  binWidht: 25\nimageType:\n  Original: {}\n")
    with pytest.raises(ParameterFileError) as err:
        load_params(path)
    assert str(path) in str(err.value) and "binWidht" in str(err.value)


@pytest.mark.parametrize(
    "text, word",
    [
        ("featureClass:\n  glcmm:\n", "glcmm"),  # unknown feature class (PyRadiomics' schema function)
        ("featureClass:\n  firstorder: ['Meann']\n", "Meann"),  # unknown feature
        ("imageType:\n  Wavelett: {}\n", "Wavelett"),  # unknown image type
        ("setting:\n  binWidth: -1\n", "binWidth"),  # out of range
        ("setting:\n  normalize: maybe\n", "normalize"),  # wrong type
        ("setting: [\n", "params.yaml"),  # not YAML
    ],
)
def test_other_invalid_files_are_rejected(tmp_path, text, word):
    with pytest.raises(ParameterFileError, match=word):
        load_params(_write(tmp_path, text))


def test_missing_file_is_a_parameter_error(tmp_path):
    with pytest.raises(ParameterFileError, match="cannot read"):
        load_params(tmp_path / "absent.yaml")


def test_dicts_are_validated_too():
    assert validate_params({"setting": {"binWidth": 5}})["setting"]["binWidth"] == 5
    with pytest.raises(ParameterFileError, match="bin_width"):
        extractor_from({"setting": {"bin_width": 5}})


def test_cohort_rejects_a_bad_file_before_any_work(tmp_path, monkeypatch):
    path = _write(tmp_path, "setting:\n  binWidht: 25\n")

    def must_not_run(task):
        raise AssertionError("extraction started before the parameter file was validated")

    monkeypatch.setattr(extract_module, "extract_patient", must_not_run)
    images, rois = {"t1": str(tmp_path / "t1.nii.gz")}, {"ground_truth": str(tmp_path / "m.nii.gz")}
    task = PatientTask("c", "p1", images, rois, str(path))
    with pytest.raises(ParameterFileError, match="binWidht"):
        extract_cohort([task], workers=1, progress=False)
