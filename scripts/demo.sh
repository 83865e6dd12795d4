#!/usr/bin/env bash
# The main job end to end on an embedded default: make a sample data set (with a GBK file
# name, a hard link, a symlink, a sparse file), back it up into a local repository, change it,
# back it up again (incremental), list, restore with verification, compare, check every blob.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh

work=${DRVAULT_DEMO_DIR:-$(mktemp -d /tmp/drvault-demo.XXXXXX)}
mkdir -p "$work"
src="$work/data" repo="$work/repo" out="$work/restore"
rm -rf "$src" "$repo" "$out"
mkdir -p "$src/db" "$src/docs"
printf 'demo-password\n' > "$work/password"
export DRVAULT_PASSWORD_FILE="$work/password"

python - "$src" <<'PY'
import os, random, sys
src = sys.argv[1].encode()
rnd = random.Random(7)
rows = "".join(f"INSERT INTO ledger VALUES ({i}, 'acct-{rnd.randrange(10**6):06d}', {rnd.randrange(10**7)});\n" for i in range(200_000))
open(os.path.join(src, b"db", b"ledger.sql"), "w").write(rows)
open(os.path.join(src, b"docs", "报告".encode("gbk") + b".txt"), "wb").write("季度报告\n".encode("gbk") * 1000)
open(os.path.join(src, b"docs", b"scan.bin"), "wb").write(rnd.randbytes(3 << 20))
os.link(os.path.join(src, b"docs", b"scan.bin"), os.path.join(src, b"docs", b"scan-link.bin"))
os.symlink(b"../db/ledger.sql", os.path.join(src, b"docs", b"ledger-link"))
with open(os.path.join(src, b"vm.img"), "wb") as f:
    f.truncate(256 << 20)
    f.seek(100 << 20)
    f.write(rnd.randbytes(1 << 20))
PY

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }
step drvault init "$repo" --kdf n=16384
step drvault backup "$repo" "$src" --tag demo
printf "INSERT INTO ledger VALUES (200000, 'acct-999999', 1);\n" >> "$src/db/ledger.sql"
step drvault backup "$repo" "$src" --tag demo
step drvault snapshots "$repo"
step drvault ls "$repo" latest "$src/docs"
step drvault restore "$repo" latest --target "$out" --verify
step diff -r "$src" "$out$src"
step drvault check "$repo" --read-data
echo
echo "demo OK: restored bytes equal the source; repository in $repo"
