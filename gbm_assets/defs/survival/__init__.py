"""Survival: the per-cohort survival view."""
