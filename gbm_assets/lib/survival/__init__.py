"""Survival: Kaplan-Meier curves, log-rank tests and survival against tumour volume."""
