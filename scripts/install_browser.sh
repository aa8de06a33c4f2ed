#!/usr/bin/env bash
# What the browser end-to-end test (gbm_assets_tests/e2e) needs, installed only if missing:
#   - Debian's Chromium and chromedriver (/usr/bin/chromium), via apt-get;
#   - the Playwright Python package in the project's virtualenv. Playwright drives the Debian
#     Chromium through `executable_path`; its own browser download (`playwright install`) is
#     never used.
# Idempotent: a second run changes nothing. Without root (or sudo) and apt-get it prints what
# is missing and exits 0, so the e2e test skips with that reason; with GBM_REQUIRE_BROWSER=1
# (CI) it exits 1 instead.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${VENV:-.venv}"
PLAYWRIGHT_VERSION="1.65.2"
CHROMIUM="${GBM_CHROMIUM:-/usr/bin/chromium}"

cannot() {
    echo "install_browser.sh: $1" >&2
    if [ "${GBM_REQUIRE_BROWSER:-0}" = "1" ]; then exit 1; fi
    echo "install_browser.sh: the browser test will be skipped" >&2
    exit 0
}

if [ ! -x "$CHROMIUM" ]; then
    if [ "$(id -u)" -eq 0 ]; then
        SUDO=""
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        cannot "$CHROMIUM is missing and installing it needs root (apt-get install chromium chromium-driver)"
    fi
    command -v apt-get >/dev/null || cannot "$CHROMIUM is missing and apt-get is not available"
    echo "install_browser.sh: installing Debian chromium and chromium-driver" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        chromium chromium-driver fonts-liberation >/dev/null
    [ -x "$CHROMIUM" ] || cannot "apt-get finished but $CHROMIUM is still missing"
fi

[ -x "$VENV/bin/python" ] || cannot "$VENV/bin/python is missing (run make install first)"
if ! "$VENV/bin/python" -c "import playwright" 2>/dev/null; then
    echo "install_browser.sh: installing playwright==$PLAYWRIGHT_VERSION into $VENV" >&2
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q -c constraints.txt "playwright==$PLAYWRIGHT_VERSION"
fi
