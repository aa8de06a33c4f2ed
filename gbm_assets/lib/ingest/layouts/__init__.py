"""Layout readers: how a cohort's files are arranged on disk.

Importing this package registers every reader, in priority order: a `cohort.yaml` with `sequences`
globs (mapped) or with `series` rules (DICOM), then MSD (needs `dataset.json`), BraTS 2021 naming,
BraTS 2023-2024 naming, and the Kaggle LGG 2D slices.
"""

from gbm_assets.lib.ingest.layouts import dicom, mapped, msd, brats, brats2023, kaggle  # noqa: F401  (registration order)
from gbm_assets.lib.ingest.layouts import longitudinal  # noqa: F401,E402  (Patient/week-NNN/ time points)
from gbm_assets.lib.ingest.layouts.base import (
    CohortScan,
    DicomSeries,
    LayoutError,
    LayoutReader,
    PatientFiles,
    SliceStack,
    Source,
    reader_for,
    register,
    registered_layouts,
    scan_cohort,
    source_files,
)

__all__ = [
    "CohortScan",
    "DicomSeries",
    "LayoutError",
    "LayoutReader",
    "PatientFiles",
    "SliceStack",
    "Source",
    "reader_for",
    "register",
    "registered_layouts",
    "scan_cohort",
    "source_files",
]
