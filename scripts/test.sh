#!/usr/bin/env bash
# Install every test dependency and run the whole test suite: lint, the suite with the native
# C chunker (a test asserts it is the one loaded) and repositories on local disk, the
# foundation tests again with every repository on S3 (a moto server) and on SFTP (an OpenSSH
# sshd), both started by fixtures on 127.0.0.1, then the chunker tests once more with the
# pure-Python fallback forced.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh test

ruff check drvault tests bench
ruff format --check drvault tests bench
mypy
python -m pytest -q -p no:cacheprovider "$@"
foundation=(tests/test_backup.py tests/test_restore.py tests/test_check.py tests/test_snapshots.py tests/cli)
python -m pytest -q -p no:cacheprovider --site=s3 --ignore=tests/cli/test_centers.py --ignore=tests/cli/test_cold_centers.py "${foundation[@]}"
python -m pytest -q -p no:cacheprovider --site=sftp --ignore=tests/cli/test_centers.py --ignore=tests/cli/test_cold_centers.py "${foundation[@]}"
DRVAULT_CHUNKER=python python -m pytest -q -p no:cacheprovider tests/chunker
