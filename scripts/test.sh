#!/usr/bin/env bash
# Install every test dependency and run the whole test suite: lint, the suite with the native
# C chunker (a test asserts it is the one loaded) and repositories on local disk, the
# foundation tests again with every repository on S3 (a moto server) and on SFTP (an OpenSSH
# sshd), both started by fixtures on 127.0.0.1, then the chunker tests once more with the
# pure-Python fallback forced. The S3 and SFTP stages run side by side.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh test

ruff check drvault tests bench
ruff format --check drvault tests bench
mypy
python -m pytest -q -p no:cacheprovider "$@"
foundation=(tests/test_backup.py tests/test_restore.py tests/test_check.py tests/test_snapshots.py tests/cli)
# Tests that talk to the real servers (moto, sshd) whatever --site says ran once, above.
once=()
for f in centers cold_centers scrub_repair link_faults drill_cli remote_errors; do
    once+=(--ignore="tests/cli/test_$f.py")
done
# The S3 and SFTP stages use their own servers and temporary directories and share nothing:
# they run side by side (each waits on its server much of the time), their output printed in
# turn; either failing fails the run.
logs=$(mktemp -d)
on_site() {
    python -m pytest -q -p no:cacheprovider --basetemp="$logs/tmp-$1" --site="$1" \
        "${once[@]}" "${foundation[@]}" >"$logs/$1.log" 2>&1
}
on_site s3 & s3=$!
on_site sftp & sftp=$!
failed=0
wait "$s3" || failed=1
echo "--- --site=s3"; cat "$logs/s3.log"
wait "$sftp" || failed=1
echo "--- --site=sftp"; cat "$logs/sftp.log"
rm -rf "$logs"
[ "$failed" = 0 ]
DRVAULT_CHUNKER=python python -m pytest -q -p no:cacheprovider tests/chunker
