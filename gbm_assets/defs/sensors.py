"""Sensors that span the stages: the one that evaluates the assets' declarative automation conditions."""

import dagster as dg

automation_conditions_sensor = dg.AutomationConditionSensorDefinition(
    "automation_conditions_sensor",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Evaluates the assets' automation conditions (e.g. EAGER) every 30 s; on by default.",
)

