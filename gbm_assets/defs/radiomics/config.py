"""Run configuration of the radiomics assets and thresholds of their checks (editable in the launchpad)."""

import os

import dagster as dg

from gbm_assets.lib.radiomics.extract import ROI_SOURCES


class RadiomicsSettings(dg.Config):
    params_path: str | None = None
    """PyRadiomics parameter file; None = the shipped gbm_assets/config/radiomics.yaml (for native images)."""
    workers: int | None = None
    """Extraction processes; None = the CPUs this process may use. Never more than the patients."""
    roi_sources: list[str] = list(ROI_SOURCES)
    """Whose masks to extract from: 'ground_truth' (the cohort's labels, where present), 'predicted' (lesion_masks)."""


def check_roi_sources(values: list[str]) -> list[str]:
    """`values` if every one is a known ROI source (and there is one), else a `dg.Failure` naming them."""
    unknown = sorted(set(values) - set(ROI_SOURCES))
    if unknown or not values:
        raise dg.Failure(description=f"roi_sources {values!r}: use one or more of {', '.join(ROI_SOURCES)}")
    return list(values)


def worker_count(requested: int | None, patients: int) -> int:
    """Processes for `patients` tasks: `requested` (or the usable CPUs), at least 1, at most `patients`."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(requested or available, patients))




class NanRateSettings(dg.Config):
    max_rate: float = 0.05
    """radiomic_features: the share of feature values that are NaN (or infinite) must stay below this."""


class VolumeAgreementSettings(dg.Config):
    max_relative_diff: float = 0.5
    """tumor_burden: median |predicted - true| whole-tumour volume / true volume must stay below this."""
