#!/usr/bin/env bash
# Policy scan of the Bicep templates with checkov; `make test` runs it. The scan is offline
# (only the first run, or a change of infra/requirements-scan.txt, installs from PyPI).
# Fails on any finding and on a file checkov cannot parse. A check that does not fit this
# design is skipped next to its resource, with the reason:
#   // checkov:skip=CKV_AZURE_NN:why
# checkov lives in its own virtual environment (see infra/requirements-scan.txt), kept outside
# the checkout (SCAN_VENV, default ~/.cache/remediation/scan-KEY, KEY a hash of that file and
# the Python version) so a fresh clone reuses it; a change of either makes a new one.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
requirements=infra/requirements-scan.txt
key=$({ cat "$requirements"; "$python" -c 'import sys; print(sys.version)'; } \
      | sha256sum | cut -c1-16)
venv=${SCAN_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/remediation/scan-$key}
stamp=$venv/.installed-$key  # a SCAN_VENV built from another file is rebuilt too

mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9  # two scans at once: the second waits for the first's install, then reuses it
if [ ! -f "$stamp" ]; then  # by content: a fresh clone's files are all newer than it
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
    touch "$stamp"
fi
flock -u 9

# No platform API, no policy download, no version check against PyPI, no package scan.
export BC_SKIP_MAPPING=TRUE
export CKV_SKIP_PACKAGE_UPDATE_CHECK=true
export CHECKOV_RUN_SCA_PACKAGE_SCAN_V2=false
# A file that does not parse is an error, not a silently smaller scan.
export CKV_PARSE_ERROR_FAIL=true

exec "$venv/bin/checkov" --directory infra --framework bicep --skip-download \
    --quiet --compact
