"""Preprocess: preprocessed volumes and 2D training slices, per cohort."""
