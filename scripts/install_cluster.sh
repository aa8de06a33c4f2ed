#!/usr/bin/env bash
# What the cluster test (gbm_assets_tests/cluster) needs, installed only if missing:
#   - Debian's PostgreSQL server binaries (initdb, pg_ctl), via apt-get install postgresql;
#   - Dask distributed, dagster-postgres and psycopg2 in the project's virtualenv.
# The test starts and stops its own throwaway PostgreSQL cluster and Dask scheduler/workers; this
# script starts nothing. Idempotent: a second run changes nothing. Without root (or sudo) it
# prints what is missing and exits 0, so the test skips with that reason; with
# GBM_REQUIRE_CLUSTER=1 (CI) it exits 1 instead.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${VENV:-.venv}"
PY_PACKAGES=("dask[distributed]==2026.8.0" "dagster-postgres==0.29.27" "psycopg2-binary==2.9.13")

cannot() {
    echo "install_cluster.sh: $1" >&2
    if [ "${GBM_REQUIRE_CLUSTER:-0}" = "1" ]; then exit 1; fi
    echo "install_cluster.sh: the cluster test will be skipped" >&2
    exit 0
}

if ! "$VENV/bin/python" -c "import distributed, dagster_postgres, psycopg2" 2>/dev/null; then
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q -c constraints.txt "${PY_PACKAGES[@]}"
fi

if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 && ! command -v pg_ctl >/dev/null; then
    if [ "$(id -u)" -eq 0 ]; then
        SUDO=""
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        cannot "PostgreSQL is missing and installing it needs root (apt-get install postgresql)"
    fi
    command -v apt-get >/dev/null || cannot "PostgreSQL is missing and there is no apt-get"
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends postgresql
fi
echo "install_cluster.sh: PostgreSQL and the Python cluster packages are present"
