"""Preprocessing: native volumes -> canonical RAS, resampled, cropped, normalised; 2D training slices.

Pure numpy / SimpleITK / nibabel; never imports Dagster.
"""

from gbm_assets.lib.preprocess.slices import (
    INPUTS,
    SPLITS,
    SliceArrays,
    SliceConfig,
    assert_disjoint_splits,
    patient_splits,
    select_slices,
    write_slice_arrays,
)
from gbm_assets.lib.preprocess.volumes import (
    NativeTransform,
    PreprocessConfig,
    PreprocessedPatient,
    load_preprocessed,
    preprocess_patient,
    read_case,
    save_preprocessed,
    to_native,
)

__all__ = [
    "INPUTS",
    "SPLITS",
    "NativeTransform",
    "PreprocessConfig",
    "PreprocessedPatient",
    "SliceArrays",
    "SliceConfig",
    "assert_disjoint_splits",
    "load_preprocessed",
    "patient_splits",
    "preprocess_patient",
    "read_case",
    "save_preprocessed",
    "select_slices",
    "to_native",
    "write_slice_arrays",
]
