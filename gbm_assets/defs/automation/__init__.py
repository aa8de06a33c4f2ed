"""Automation: the cohort inbox sensor, the scoring and training jobs, the schedules, and `EAGER`.

Wiring (in `definitions.py`): `jobs=[*build_jobs(assets)]`, `sensors=sensors`,
`schedules=schedules`, where `assets` are every asset of the code location.
"""

from gbm_assets.defs.automation.jobs import (
    RESCORE_ASSETS,
    SCORE_COHORT_ASSETS,
    SCORE_COHORT_JOB,
    TRAIN_MODELS_ASSETS,
    TRAIN_MODELS_JOB,
    build_jobs,
    missing_keys,
)
from gbm_assets.defs.automation.schedules import nightly_rescore_schedule, weekly_retrain_schedule
from gbm_assets.defs.automation.sensors import EAGER, EAGER_EXCEPT_MODELS, automation_conditions_sensor, new_cohort_sensor

sensors = [new_cohort_sensor, automation_conditions_sensor]
schedules = [nightly_rescore_schedule, weekly_retrain_schedule]

__all__ = [
    "EAGER",
    "EAGER_EXCEPT_MODELS",
    "RESCORE_ASSETS",
    "SCORE_COHORT_ASSETS",
    "SCORE_COHORT_JOB",
    "TRAIN_MODELS_ASSETS",
    "TRAIN_MODELS_JOB",
    "automation_conditions_sensor",
    "build_jobs",
    "missing_keys",
    "new_cohort_sensor",
    "nightly_rescore_schedule",
    "schedules",
    "sensors",
    "weekly_retrain_schedule",
]
