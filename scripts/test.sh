#!/usr/bin/env bash
# Install every test dependency and run the whole test suite: lint, the suite with the native
# C chunker (a test asserts it is the one loaded) and repositories on local disk, the
# foundation tests again with every repository on S3 (a moto server) and on SFTP (an OpenSSH
# sshd), both started by fixtures on 127.0.0.1, then the chunker tests once more with the
# pure-Python fallback forced.
# The four stages share nothing (each its own servers and temporary directory) and run side by
# side: each alone keeps about one core busy, waiting on servers, subprocesses and link-fault
# timeouts much of the time. Their output is printed in turn; any failing fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh test

ruff check drvault tests bench
ruff format --check drvault tests bench
mypy
foundation=(tests/test_backup.py tests/test_restore.py tests/test_check.py tests/test_snapshots.py tests/cli)
# Tests that talk to the real servers (moto, sshd) whatever --site says run once, locally.
once=()
for f in centers cold_centers scrub_repair link_faults drill_cli remote_errors; do
    once+=(--ignore="tests/cli/test_$f.py")
done
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
stage() {  # stage NAME PYTEST-ARGS...: run pytest, its output to $logs/NAME.log
    local name=$1
    shift
    python -m pytest -q -p no:cacheprovider --basetemp="$logs/tmp-$name" "$@" >"$logs/$name.log" 2>&1
}
stage local "$@" & local_pid=$!
stage s3 --site=s3 "${once[@]}" "${foundation[@]}" & s3=$!
stage sftp --site=sftp "${once[@]}" "${foundation[@]}" & sftp=$!
DRVAULT_CHUNKER=python stage fallback tests/chunker & fallback=$!
failed=0
for pair in local:$local_pid s3:$s3 sftp:$sftp fallback:$fallback; do
    wait "${pair#*:}" || failed=1
    echo "--- ${pair%%:*}"
    cat "$logs/${pair%%:*}.log"
done
[ "$failed" = 0 ]
