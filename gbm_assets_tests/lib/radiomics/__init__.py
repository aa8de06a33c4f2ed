"""Tests of gbm_assets.lib.radiomics (pure: no Dagster)."""
