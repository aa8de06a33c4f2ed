"""Ingest: cohort layouts, per-patient validation, clinical tables and the cohort inbox."""
