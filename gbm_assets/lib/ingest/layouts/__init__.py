"""Layout readers: how a cohort's files are arranged on disk.

Importing this package registers every reader, in priority order: a `cohort.yaml` wins,
then MSD (needs `dataset.json`), then BraTS naming.
"""

from gbm_assets.lib.layouts import mapped, msd, brats  # noqa: F401  (registration order)
from gbm_assets.lib.layouts.base import (
    CohortScan,
    LayoutError,
    LayoutReader,
    PatientFiles,
    reader_for,
    register,
    registered_layouts,
)

__all__ = [
    "CohortScan",
    "LayoutError",
    "LayoutReader",
    "PatientFiles",
    "reader_for",
    "register",
    "registered_layouts",
]
