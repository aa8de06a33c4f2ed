"""Progression: tumour volumes over repeated scans of one subject (longitudinal cohorts)."""
