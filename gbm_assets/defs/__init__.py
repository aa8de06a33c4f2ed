"""The Dagster layer: one folder per pipeline stage (same names as `gbm_assets.lib`), autoloaded by `dg`."""
