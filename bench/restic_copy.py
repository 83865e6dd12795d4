"""restic's repository-to-repository copy, the peer of ``drvault.replicate`` in
``bench.replication``.

restic has no keyless copy: ``restic copy`` opens both repositories (one scrypt key derivation
each), downloads the source packs that hold the snapshots' blobs, decrypts every blob and
encrypts (and, in a version 2 repository, compresses) it again under the target's key into new
packs. As restic recommends, the target is first made with ``restic init --copy-chunker-params
--from-repo SOURCE`` (untimed), so that later backups into it deduplicate against the copy.

Everything runs with restic's defaults (repository version 2, compression auto, 16 MiB packs,
5 backend connections, a cache in a directory of the bench's) through ``bench.tools.run``, so
each command's CPU time and peak RSS are measured too.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.tools import Run, ToolError, run

RESTIC = "restic"
PASSWORD = "bench-replication-restic"


class ResticError(RuntimeError):
    """restic is missing, or a copy is not the source's snapshot."""


def version() -> str:
    """``restic version``'s first line; ResticError when restic is not installed."""
    if shutil.which(RESTIC) is None:
        raise ResticError("restic not found (Debian package restic; or run with --no-restic)")
    done = subprocess.run([RESTIC, "version"], capture_output=True, text=True, check=False)
    return (done.stdout.strip().splitlines() or ["restic ?"])[0]


@dataclass(frozen=True)
class ResticSource:
    """A local restic repository holding one snapshot of the bench's source files."""

    repo: Path
    password_file: Path
    cache: Path
    data_bytes: int  # the files backed up: the payload of every copy
    repo_bytes: int
    tree: str  # the snapshot's root tree: a copy must have the same
    open_seconds: float  # process start + opening one repository (`restic cat config`)

    def env(self) -> dict[str, str]:
        return {"RESTIC_CACHE_DIR": str(self.cache)}


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _snapshots(
    repo: str, password_file: Path, options: list[str], env: dict[str, str]
) -> list[dict[str, Any]]:
    cmd = [RESTIC, "-r", repo, *options, "--password-file", str(password_file)]
    out = run([*cmd, "snapshots", "--json"], env).stdout
    return json.loads(out.strip().splitlines()[-1])


def make_source(work: Path, data: Path, data_bytes: int) -> ResticSource:
    """``restic init`` + ``restic backup`` of ``data`` into ``work``/restic-source."""
    repo, cache = work / "restic-source", work / "restic-cache"
    shutil.rmtree(repo, ignore_errors=True)
    shutil.rmtree(cache, ignore_errors=True)
    password_file = work / "restic-password"
    password_file.write_text(PASSWORD + "\n")
    env = {"RESTIC_CACHE_DIR": str(cache)}
    base = [RESTIC, "-r", str(repo), "--password-file", str(password_file)]
    run([*base, "init"], env)
    run([*base, "backup", "--quiet", "--host", "bench", str(data)], env)
    snaps = _snapshots(str(repo), password_file, [], env)
    if len(snaps) != 1:
        raise ResticError(f"the restic source holds {len(snaps)} snapshots, not 1")
    opens = [run([*base, "cat", "config"], env).wall for _ in range(3)]
    return ResticSource(
        repo,
        password_file,
        cache,
        data_bytes,
        _dir_bytes(repo),
        snaps[0]["tree"],
        statistics.median(opens),
    )


def sftp_options(user: str, host: str, port: int, key: Path, known_hosts: Path) -> list[str]:
    """restic's ``-o sftp.command=...``: OpenSSH's ssh with the bench's key and known_hosts."""
    ssh = (
        f"ssh -p {port} -i {key} -o IdentitiesOnly=yes -o BatchMode=yes "
        f"-o UserKnownHostsFile={known_hosts} -o StrictHostKeyChecking=yes "
        f"{user}@{host} -s sftp"
    )
    return ["-o", f"sftp.command={ssh}"]


def copy(source: ResticSource, target: str, options: list[str]) -> Run:
    """Initialise ``target`` with the source's chunker parameters (untimed), time ``restic
    copy`` into it, then check that it holds the source's snapshot (untimed)."""
    env = source.env()
    base = [RESTIC, "-r", target, *options, "--password-file", str(source.password_file)]
    origin = ["--from-repo", str(source.repo), "--from-password-file", str(source.password_file)]
    run([*base, "init", "--copy-chunker-params", *origin], env)
    timed = run([*base, "copy", *origin], env)
    snaps = _snapshots(target, source.password_file, options, env)
    if [s.get("tree") for s in snaps] != [source.tree]:
        raise ResticError(f"{target}: after the copy {snaps!r}, not the source's tree")
    try:
        run([*base, "check"], env)
    except ToolError as exc:
        raise ResticError(f"{target}: restic check failed after the copy: {exc}") from exc
    return timed


@dataclass(frozen=True)
class ResticCase:
    link: str
    backend: str
    payload_bytes: int  # the source files' size
    uploaded_bytes: int  # the target repository's size after the copy
    seconds: float
    cpu_seconds: float
    peak_rss: int

    @property
    def mb_s(self) -> float:
        return self.payload_bytes / 1e6 / self.seconds

    @property
    def uploaded_mb_s(self) -> float:
        return self.uploaded_bytes / 1e6 / self.seconds
