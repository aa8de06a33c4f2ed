"""Tumour progression over repeated scans of one subject (longitudinal cohorts). Pure (no Dagster)."""
