"""Preprocessing: native volumes -> canonical RAS, resampled, cropped, normalised; 2D training slices;
subject-level splits.

Pure numpy / SimpleITK / nibabel; never imports Dagster.
"""

from gbm_assets.lib.preprocess.slices import (
    SliceArrays,
    SliceConfig,
    select_slices,
    write_slice_arrays,
)
from gbm_assets.lib.preprocess.splits import (
    SPLITS,
    subject_ids,
    subject_split,
    subject_splits,
    subjects_in_several_splits,
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
    "SPLITS",
    "NativeTransform",
    "PreprocessConfig",
    "PreprocessedPatient",
    "SliceArrays",
    "SliceConfig",
    "load_preprocessed",
    "preprocess_patient",
    "read_case",
    "save_preprocessed",
    "select_slices",
    "subject_ids",
    "subject_split",
    "subject_splits",
    "subjects_in_several_splits",
    "to_native",
    "write_slice_arrays",
]
