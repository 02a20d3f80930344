#!/usr/bin/env bash
# Policy scan of the Bicep templates with checkov; `make test` runs it. The scan is offline
# (only the first run, or a change of infra/requirements-scan.txt, installs from PyPI).
# Fails on any finding and on a file checkov cannot parse. A check that does not fit this
# design is skipped next to its resource, with the reason:
#   // checkov:skip=CKV_AZURE_NN:why
# checkov lives in its own virtual environment (see infra/requirements-scan.txt), rebuilt
# whenever that file changes.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
venv=.venv/scan
requirements=infra/requirements-scan.txt
stamp=$venv/.installed

if [ ! -f "$stamp" ] || [ "$requirements" -nt "$stamp" ]; then
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
    touch "$stamp"
fi

# No platform API, no policy download, no version check against PyPI, no package scan.
export BC_SKIP_MAPPING=TRUE
export CKV_SKIP_PACKAGE_UPDATE_CHECK=true
export CHECKOV_RUN_SCA_PACKAGE_SCAN_V2=false
# A file that does not parse is an error, not a silently smaller scan.
export CKV_PARSE_ERROR_FAIL=true

exec "$venv/bin/checkov" --directory infra --framework bicep --skip-download \
    --quiet --compact
