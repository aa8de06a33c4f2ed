#!/usr/bin/env bash
# MLflow tracking server for several machines: runs and the model registry in PostgreSQL,
# artifacts proxied by the server (clients never need direct access to the artifact store).
# Point the platform at it: export GBM_MLFLOW_TRACKING_URI=http://<this host>:${MLFLOW_PORT:-5000}
# (the MlflowResource reads its tracking_uri from that variable; every MLflow client gets it explicitly).
#
# Required: MLFLOW_PG_USER, MLFLOW_PG_PASSWORD, MLFLOW_PG_HOST; optional MLFLOW_PG_PORT (5432),
# MLFLOW_PG_DB (mlflow), MLFLOW_ARTIFACTS (a shared folder or s3://bucket/prefix), MLFLOW_HOST, MLFLOW_PORT.
# The database must exist: createdb -h "$MLFLOW_PG_HOST" -U "$MLFLOW_PG_USER" mlflow
set -euo pipefail
: "${MLFLOW_PG_USER:?set MLFLOW_PG_USER}" "${MLFLOW_PG_PASSWORD:?set MLFLOW_PG_PASSWORD}" "${MLFLOW_PG_HOST:?set MLFLOW_PG_HOST}"
BACKEND="postgresql://${MLFLOW_PG_USER}:${MLFLOW_PG_PASSWORD}@${MLFLOW_PG_HOST}:${MLFLOW_PG_PORT:-5432}/${MLFLOW_PG_DB:-mlflow}"
export MLFLOW_DISABLE_TELEMETRY=true
exec mlflow server \
  --backend-store-uri "$BACKEND" \
  --artifacts-destination "${MLFLOW_ARTIFACTS:-/srv/mlflow/artifacts}" \
  --serve-artifacts \
  --host "${MLFLOW_HOST:-0.0.0.0}" \
  --port "${MLFLOW_PORT:-5000}" \
  --workers "${MLFLOW_WORKERS:-4}"
