"""Radiomics and tumour burden, pure: PyRadiomics features per patient, sequence and region.

- `params`: load a PyRadiomics parameter file, validate it with PyRadiomics' own schema, fingerprint it.
- `extract`: per-ROI and per-patient extraction into long rows, exclusions instead of errors,
  and a process pool for a cohort.
- `cohort`: a cohort's tasks on a process pool.
- `tasks`: cohort tables -> canonical ground truth, `PatientTask`s, exclusion rows, the provenance row.
- `burden`: volume, diameter, centroid and hemisphere per region from a label array and its affine;
  predicted-vs-truth agreement. `burden_rows`: one patient's tumour-burden rows.

Never imports Dagster or MLflow.
"""

from gbm_assets.lib.radiomics.burden import agreement, brain_midline_x, region_burden
from gbm_assets.lib.radiomics.cohort import extract_cohort
from gbm_assets.lib.radiomics.extract import (
    EXCLUSION_COLUMNS,
    FEATURE_COLUMNS,
    SHAPE_SEQUENCE,
    PatientTask,
    extract_patient,
    extract_roi,
)
from gbm_assets.lib.radiomics.params import (
    ParameterFileError,
    RadiomicsParams,
    default_params_path,
    extractor_from,
    load_params,
    validate_params,
)

__all__ = [
    "EXCLUSION_COLUMNS",
    "FEATURE_COLUMNS",
    "SHAPE_SEQUENCE",
    "ParameterFileError",
    "PatientTask",
    "RadiomicsParams",
    "agreement",
    "brain_midline_x",
    "default_params_path",
    "extract_cohort",
    "extract_patient",
    "extract_roi",
    "extractor_from",
    "load_params",
    "region_burden",
    "validate_params",
]
