"""Partitions: every cohort is one dynamic partition, registered by the CLI or the sensor."""

import dagster as dg

COHORTS = "cohorts"
cohorts_partitions = dg.DynamicPartitionsDefinition(name=COHORTS)
