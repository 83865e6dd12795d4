"""SSH keys for the SFTP transport: the server's host key, and the client's keys to log in.

The host key is checked against an OpenSSH ``known_hosts`` file as ``ssh`` does with
``StrictHostKeyChecking yes``: a server whose key is not listed, or whose key
differs from the listed one, is refused with a ``PermanentError`` that shows the offered key's
SHA256 fingerprint and how to fix the file. Nothing is ever added to the file. Servers on a port
other than 22 are listed as ``[host]:port``; hashed names are understood, ``@revoked`` lines are
honoured, ``@cert-authority`` lines and wildcard patterns are not supported.

Login is by public key only: the configured key file, then the agent's keys, then
``~/.ssh/id_ed25519``, ``id_ecdsa`` and ``id_rsa``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import paramiko

from drvault.errors import PermanentError, TransientError
from drvault.transport.options import default_known_hosts


def known_hosts_path(option: str | None) -> Path:
    """The file named by the option, else ``DRVAULT_SFTP_KNOWN_HOSTS``, else ~/.ssh/known_hosts."""
    chosen = option or os.environ.get("DRVAULT_SFTP_KNOWN_HOSTS")
    return Path(chosen).expanduser() if chosen else default_known_hosts()


def host_entry(host: str, port: int) -> str:
    """The name a server has in known_hosts: ``host``, or ``[host]:port`` off port 22."""
    return host if port == 22 else f"[{host}]:{port}"


def fingerprint(key: paramiko.PKey) -> str:
    """``SHA256:<base64 without padding>`` of the public key, as ``ssh-keygen -l`` shows it."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _family(algorithm: str) -> str:
    """The known_hosts key type that signs with ``algorithm`` (RSA keys have several)."""
    return "ssh-rsa" if algorithm.startswith("rsa-sha2-") else algorithm


class KnownHosts:
    """The keys one known_hosts file lists for one server."""

    def __init__(self, path: Path, host: str, port: int) -> None:
        self.path = path
        self.host = host
        self.port = port
        self.entry = host_entry(host, port)
        self.server = f"{host}:{port}"
        self.keys: dict[str, paramiko.PKey] = {}
        self.revoked: set[bytes] = set()
        if not path.is_file():
            return
        try:
            text = path.read_text(errors="replace")
        except OSError as exc:
            raise PermanentError(f"{path}: cannot read known_hosts file ({exc})") from exc
        listed = paramiko.HostKeys()  # matches plain and hashed names
        for line in text.splitlines():
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            if fields[0].startswith("@"):  # @revoked HOSTS TYPE KEY, @cert-authority ...
                if fields[0] == "@revoked" and len(fields) >= 4:
                    with contextlib.suppress(ValueError):
                        self.revoked.add(base64.b64decode(fields[3]))
                continue
            try:
                entry = paramiko.hostkeys.HostKeyEntry.from_line(" ".join(fields))
            except Exception:  # a malformed line: ssh skips it too
                continue
            for name in entry.hostnames if entry is not None else ():
                listed.add(name, entry.key.get_name(), entry.key)
        self.keys = dict(listed.lookup(self.entry) or {})

    def algorithms(self, offered: Sequence[str]) -> tuple[str, ...]:
        """The host-key algorithms to negotiate: those of the listed key types, if any."""
        if not self.keys:
            return tuple(offered)
        wanted = tuple(a for a in offered if _family(a) in self.keys)
        return wanted or tuple(offered)

    def verify(self, key: paramiko.PKey) -> None:
        """Accept ``key`` only if the file lists exactly this key for the server."""
        kind, offered = key.get_name(), fingerprint(key)
        if key.asbytes() in self.revoked:
            raise PermanentError(
                f"{self.server}: the server's host key {kind} {offered} is marked @revoked "
                f"in {self.path}; refusing to connect"
            )
        listed = self.keys.get(kind)
        if listed is not None and listed.asbytes() == key.asbytes():
            return
        if listed is None and not self.keys:
            keyscan = f"ssh-keyscan -p {self.port} {self.host}"
            if self.port == 22:
                keyscan = f"ssh-keyscan {self.host}"
            raise PermanentError(
                f"{self.server}: unknown host key {kind} {offered} (no entry for {self.entry} "
                f"in {self.path}); if that fingerprint is the server's (ask its administrator), "
                f"add it with: {keyscan} >> {self.path}"
            )
        known = ", ".join(f"{k} {fingerprint(v)}" for k, v in sorted(self.keys.items()))
        raise PermanentError(
            f"{self.server}: the host key changed! {self.path} lists {known} but the server "
            f"offers {kind} {offered}; someone may be intercepting the connection, or the "
            f"server was reinstalled: if the change is expected, remove the old entry "
            f"(ssh-keygen -R '{self.entry}' -f {self.path}) and add the new key"
        )


_DEFAULT_KEYS = ("id_ed25519", "id_ecdsa", "id_rsa")


def client_keys(option: str | None) -> Iterator[tuple[str, paramiko.PKey]]:
    """Keys to offer, labelled: the option's file (else DRVAULT_SFTP_KEY's), agent, ~/.ssh."""
    configured = option or os.environ.get("DRVAULT_SFTP_KEY")
    if configured:
        path = Path(configured).expanduser()
        try:
            key = paramiko.PKey.from_path(path)
        except paramiko.PasswordRequiredException as exc:
            raise PermanentError(
                f"{path}: the SSH key is passphrase-protected; load it into ssh-agent instead"
            ) from exc
        except (OSError, paramiko.SSHException, ValueError) as exc:
            raise PermanentError(f"{path}: cannot load SSH key ({exc})") from exc
        yield str(path), key
    agent_keys: tuple[paramiko.AgentKey, ...] = ()
    with contextlib.suppress(OSError, paramiko.SSHException):  # no agent, or a dead one
        agent = paramiko.Agent()
        try:
            agent_keys = tuple(agent.get_keys())
        finally:
            agent.close()
    for agent_key in agent_keys:
        yield f"agent key {agent_key.get_name()} {fingerprint(agent_key)}", agent_key
    for filename in _DEFAULT_KEYS:
        path = Path.home() / ".ssh" / filename
        if path.is_file():
            try:
                key = paramiko.PKey.from_path(path)
            except (OSError, paramiko.SSHException, ValueError):
                continue  # passphrase-protected or unreadable: a case for the agent
            yield str(path), key


def authenticate(transport: paramiko.Transport, user: str, server: str, key: str | None) -> None:
    """Log in as ``user`` with the first key the server accepts."""
    tried: list[str] = []
    for label, candidate in client_keys(key):
        try:
            transport.auth_publickey(user, candidate)
        except paramiko.BadAuthenticationType as exc:
            allowed = ", ".join(exc.allowed_types) or "nothing"
            raise PermanentError(
                f"{server}: the server takes no public keys for {user} (it allows {allowed}); "
                "drvault logs in with keys only"
            ) from exc
        except paramiko.AuthenticationException as exc:
            if not transport.is_active() or "timeout" in str(exc).lower():
                # no answer to the login, or the connection died: the link, not the key
                raise TransientError(f"{server}: link lost during login ({exc})") from exc
            tried.append(label)
            continue
        if transport.is_authenticated():
            return
        tried.append(f"{label} (the server wants a further factor)")
    what = ", ".join(tried) if tried else "no key found"
    raise PermanentError(
        f"{server}: authentication as {user} failed (tried: {what}); give a key with "
        "-o sftp.key=FILE or DRVAULT_SFTP_KEY, or load one into ssh-agent"
    )
