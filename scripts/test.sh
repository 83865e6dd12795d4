#!/usr/bin/env bash
# Install every test dependency and run the whole test suite: lint, the suite with the native
# C chunker (a test asserts it is the one loaded), then the chunker tests once more with the
# pure-Python fallback forced.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh test

ruff check drvault tests bench
ruff format --check drvault tests bench
mypy
python -m pytest -q -p no:cacheprovider "$@"
DRVAULT_CHUNKER=python python -m pytest -q -p no:cacheprovider tests/chunker
