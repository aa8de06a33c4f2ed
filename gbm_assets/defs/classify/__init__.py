"""Classify: subtype training table, cross-validated classifier (MLflow), its champion, per-cohort predictions."""
