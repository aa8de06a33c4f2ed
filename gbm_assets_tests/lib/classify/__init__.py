"""Tests of gbm_assets.lib.classify and gbm_assets.lib.survival.analysis (pure, no Dagster)."""
