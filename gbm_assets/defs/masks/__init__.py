"""Masks: predicted lesion masks on each patient's native grid, per cohort."""
