#!/usr/bin/env bash
# The official BraTS evaluation (PyPI brats-evaluation, which runs panoptica) in an environment of its own,
# .venv-brats, installed only if missing: panoptica pins numpy < 2.3 and rich < 14, so it cannot live in the
# project's .venv. Only the lesion-wise metrics test (gbm_assets_tests/lib/segment/test_lesions.py) uses it, to
# check lib/segment/lesions.py against the official figures. Versions pinned in brats-eval-requirements.txt.
# Idempotent. If it cannot install, it says so and exits 0 (the test then skips with that reason); with
# GBM_REQUIRE_BRATS_EVAL=1 (CI) it exits 1 instead.
set -euo pipefail
cd "$(dirname "$0")/.."

BRATS_VENV="${BRATS_VENV:-.venv-brats}"

if "$BRATS_VENV/bin/python" -c "import brats_evaluation, panoptica" 2>/dev/null; then
    echo "install_brats_eval.sh: the official BraTS evaluation is present in $BRATS_VENV"
    exit 0
fi
if ! { python3 -m venv "$BRATS_VENV" \
       && "$BRATS_VENV/bin/python" -m pip install --disable-pip-version-check -q -r scripts/brats-eval-requirements.txt; }; then
    echo "install_brats_eval.sh: could not install brats-evaluation into $BRATS_VENV" >&2
    if [ "${GBM_REQUIRE_BRATS_EVAL:-0}" = "1" ]; then exit 1; fi
    echo "install_brats_eval.sh: the cross-check against the official BraTS evaluation will be skipped" >&2
    exit 0
fi
echo "install_brats_eval.sh: installed the official BraTS evaluation in $BRATS_VENV"
