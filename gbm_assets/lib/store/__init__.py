"""Storage under one data root: paths, Parquet tables, the DuckDB warehouse, MLflow tracking, figures."""
