"""gbm_assets: Dagster data assets for glioblastoma radiogenomics.

Importing the package turns off the stack's usage telemetry (phone-home) for this process and
the processes it starts, unless the operator set the variables otherwise:

- `MLFLOW_DISABLE_TELEMETRY=true`: MLflow >= 3.x sends usage records to an MLflow endpoint
  (mlflow/telemetry) unless this (or `DO_NOT_TRACK=true`) is set.
- `DAGSTER_DISABLE_TELEMETRY=true`: Dagster's telemetry uploader; dagster.yaml also sets
  `telemetry.enabled: false` for the instance, the webserver and `dg`.

Every Dagster process (webserver, daemon, code server, run workers) imports gbm_assets through
the code location, so this covers them; set the same variables in the shell (the Makefile
does) for processes that start before the code location loads.
"""

import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "true")
