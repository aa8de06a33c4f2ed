"""Run configuration of the survival view (editable in the Dagster launchpad)."""

import dagster as dg


class SurvivalSettings(dg.Config):
    roi_source: str = "predicted"
    """Whose whole-tumour volume to relate to survival; the other source is used where this one is absent."""

