"""Running drvault, restic and borg side by side: install, init, back up, restore, measure.

Every command runs under GNU time (``/usr/bin/time -f '%e %U %S %M'``), which ``wait4``s its one
child: user + system CPU and peak RSS are exactly that command's (its own waited-for children
included), not a running maximum over everything this process has started, as
``getrusage(RUSAGE_CHILDREN).ru_maxrss`` would be. Wall time is measured here around the
whole command.

Each tool runs with its recommended defaults, listed by ``Tool.settings``; a tool's caches
(restic's, borg's) can be put in a directory of the caller's so runs do not share them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

PASSWORD = "bench-password"
GNU_TIME = "/usr/bin/time"


class ToolError(RuntimeError):
    """A tool exited with an error; the message names the command and ends with its stderr."""

    def __init__(self, cmd: list[str], code: int, stderr: str) -> None:
        tail = "\n".join(stderr.strip().splitlines()[-40:])
        name = cmd[2] if cmd[1:2] == ["-m"] else Path(cmd[0]).name
        super().__init__(f"{name} failed (exit {code}): {' '.join(cmd)}\n{tail}")
        self.cmd, self.code, self.stderr = cmd, code, stderr


def ensure_peers() -> None:
    """Install restic, borg and GNU time from Debian's packages when missing."""
    wanted = (("restic", "restic"), ("borgbackup", "borg"), ("time", GNU_TIME))
    missing = [pkg for pkg, exe in wanted if not shutil.which(exe)]
    if missing:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
            check=True,
            env=env,
        )


def versions() -> dict[str, str]:
    def first_line(cmd: list[str]) -> str:
        return subprocess.run(cmd, capture_output=True, text=True).stdout.strip().splitlines()[0]

    from drvault.version import __version__

    return {
        "drvault": __version__,
        "python": sys.version.split()[0],
        "restic": first_line(["restic", "version"]),
        "borg": first_line(["borg", "--version"]),
    }


@dataclass(frozen=True)
class Run:
    wall: float  # seconds
    cpu: float  # seconds, user + system
    peak_rss: int  # bytes; 0 when GNU time is missing
    stdout: str = ""


def run(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> Run:
    """Run ``cmd``, raising ToolError (with its stderr) unless it exits 0; measure it."""
    full_env = {**os.environ, **(env or {})}
    timed = os.path.exists(GNU_TIME)
    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-time-{os.getpid()}"
    argv = [GNU_TIME, "-f", "%e %U %S %M", "-o", str(out), *cmd] if timed else cmd
    start = time.perf_counter()
    proc = subprocess.run(argv, env=full_env, cwd=cwd, capture_output=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        out.unlink(missing_ok=True)
        raise ToolError(cmd, proc.returncode, proc.stderr.decode(errors="replace"))
    stdout = proc.stdout.decode(errors="replace")
    if not timed:
        return Run(wall, 0.0, 0, stdout)
    fields = out.read_text().strip().splitlines()[-1].split()
    out.unlink()
    return Run(wall, float(fields[1]) + float(fields[2]), int(fields[3]) * 1024, stdout)


run_measured = run  # the name bench.edit_growth knew


class Tool:
    """One backup tool on one repository. ``cache``: where the tool may keep local caches."""

    name = ""
    base_env: ClassVar[dict[str, str]] = {}

    def __init__(self, repo: Path | str, cache: Path | None = None) -> None:
        self.repo = repo  # a directory, or a URL string for remote repositories
        self.cache = cache
        self.env = dict(self.base_env)

    def settings(self) -> str:
        return ""

    def init(self) -> Run: ...

    def backup(self, path: Path) -> Run: ...

    def restore(self, target: Path) -> Run: ...


class Drvault(Tool):
    name = "drvault"
    base_env: ClassVar[dict[str, str]] = {"DRVAULT_PASSWORD": PASSWORD}

    def __init__(
        self,
        repo: Path | str,
        chunk_avg: str | None = None,
        cache: Path | None = None,
        compression_level: int | None = None,
    ) -> None:
        super().__init__(repo, cache)
        self.chunk_avg = chunk_avg
        self.compression_level = compression_level
        self.config: dict[str, object] = {}

    def _cmd(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "drvault", *args]

    def settings(self) -> str:
        c = self.config
        chunker = c.get("chunker", {})
        avg = chunker.get("avg_size") if isinstance(chunker, dict) else None
        avg_text = f"{avg >> 10} KiB" if isinstance(avg, int) else self.chunk_avg or "default"
        changed = [f"--chunk-avg {self.chunk_avg}"] if self.chunk_avg else []
        if self.compression_level is not None:
            changed.append(f"--compression-level {self.compression_level}")
        but = f" but {' '.join(changed)}" if changed else ""
        return (
            f"init defaults{but}: "
            f"chunk avg {avg_text}, suite {c.get('suite', '?')} ({c.get('cipher', '?')}, "
            f"{c.get('id_hash', '?')} ids), "
            f"zstd level {c.get('compression_level', '?')}, default scrypt KDF (one key "
            "derivation per command)"
        )

    def init(self) -> Run:
        extra = ["--chunk-avg", self.chunk_avg] if self.chunk_avg else []
        if self.compression_level is not None:
            extra += ["--compression-level", str(self.compression_level)]
        r = run(self._cmd("--json", "init", str(self.repo), *extra), self.env)
        try:
            self.config = json.loads(r.stdout.strip().splitlines()[-1]).get("config", {})
        except (ValueError, IndexError):
            self.config = {}
        return r

    def backup(self, path: Path) -> Run:
        return run(self._cmd("backup", str(self.repo), str(path)), self.env)

    def restore(self, target: Path) -> Run:
        return run(
            self._cmd("restore", str(self.repo), "latest", "--target", str(target)), self.env
        )


class Restic(Tool):
    name = "restic"
    base_env: ClassVar[dict[str, str]] = {"RESTIC_PASSWORD": PASSWORD}

    def __init__(
        self, repo: Path | str, cache: Path | None = None, options: list[str] | None = None
    ) -> None:
        super().__init__(repo, cache)
        self.options = options or []  # e.g. ["-o", "sftp.command=..."]
        if cache:
            self.env["RESTIC_CACHE_DIR"] = str(cache)

    def settings(self) -> str:
        return (
            "defaults: repository v2, compression auto (zstd), CDC avg 1 MiB, AES-256-CTR + "
            "Poly1305; restore writes zeros (0.14 has no --sparse)"
        )

    def _cmd(self, *args: str) -> list[str]:
        return ["restic", "-r", str(self.repo), *self.options, *args]

    def init(self) -> Run:
        return run(self._cmd("init"), self.env)

    def backup(self, path: Path) -> Run:
        return run(self._cmd("backup", "--quiet", str(path)), self.env)

    def restore(self, target: Path) -> Run:
        return run(self._cmd("restore", "latest", "--target", str(target)), self.env)


class Borg(Tool):
    name = "borg"
    base_env: ClassVar[dict[str, str]] = {
        "BORG_PASSPHRASE": PASSWORD,
        "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes",
    }

    def __init__(self, repo: Path, cache: Path | None = None) -> None:
        super().__init__(repo, cache)
        self.n = 0
        if cache:
            self.env["BORG_BASE_DIR"] = str(cache)

    def settings(self) -> str:
        return (
            "init --encryption=repokey-blake2, create --compression zstd,3; otherwise defaults: "
            "buzhash chunker 19,23,21 (avg 2 MiB), extract without --sparse"
        )

    def init(self) -> Run:
        return run(["borg", "init", "--encryption=repokey-blake2", str(self.repo)], self.env)

    def backup(self, path: Path) -> Run:
        self.n += 1
        archive = f"{self.repo}::a{self.n}"
        return run(["borg", "create", "--compression", "zstd,3", archive, str(path)], self.env)

    def restore(self, target: Path) -> Run:
        target.mkdir(parents=True, exist_ok=True)
        return run(["borg", "extract", f"{self.repo}::a{self.n}"], self.env, cwd=target)


TOOLS: dict[str, type[Tool]] = {t.name: t for t in (Drvault, Restic, Borg)}
