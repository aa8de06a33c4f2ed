"""Ingest: raw cohorts, their clinical tables, the cohort inbox sensor, per cohort."""
