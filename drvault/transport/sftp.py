"""Backend on an SFTP server (OpenSSH's sftp-server or internal-sftp), through paramiko.

Objects are files under the repository path. A write goes to ``.tmp-<random>`` beside its
target, is flushed (``fsync@openssh.com`` where offered) and renamed into place: with
``posix-rename`` to replace, or with a plain rename for ``exclusive``, which OpenSSH refuses
when the target exists. A small pool of SSH connections serves concurrent callers; a connection
that fails is dropped and the next operation dials a new one. A link that goes silent fails the
operation with a "link lost" ``TransientError`` after about ``SftpOptions.link_timeout``
seconds: TCP_USER_TIMEOUT and keepalives on the socket, a channel timeout, and a watchdog that
closes a connection making no progress.

Bulk reads and writes keep many requests in flight through ``SFTPClient``'s request/reply
internals (``_async_request``/``_read_response``, unchanged since paramiko 1.x): its file
object's prefetch and read paths are several times slower on large objects. Each channel's
receive buffer is swapped for :class:`_FifoBytes`, which cut the client's CPU per download
by about a third.

Host keys are checked against an OpenSSH ``known_hosts`` file as ``ssh`` does with
``StrictHostKeyChecking yes``: a server whose key is not listed, or differs from the listed one,
is refused with a ``PermanentError`` showing the offered key's SHA256 fingerprint and how to fix
the file; nothing is ever added to it. Servers off port 22 are listed as ``[host]:port``; hashed
names are understood, ``@revoked`` lines honoured, ``@cert-authority`` lines and wildcard
patterns not supported. Login is by public key only: the configured key file, then the agent's
keys, then ``~/.ssh/id_ed25519``, ``id_ecdsa`` and ``id_rsa``.

The module is longer than the house's usual: it is the one place paramiko may be imported, so
host-key checking and login live here beside the transfers.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import getpass
import hashlib
import logging
import os
import posixpath
import secrets
import socket
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from stat import S_ISDIR, S_ISREG

import paramiko
from paramiko import sftp as fx
from paramiko.sftp import int64

from drvault.errors import (
    AlreadyExistsError,
    DrvaultError,
    NotFoundError,
    PermanentError,
    TransientError,
)
from drvault.transport.base import Capabilities, ObjectInfo, ShortReadError
from drvault.transport.options import SftpOptions, default_known_hosts
from drvault.transport.url import SftpLocation

logging.getLogger("paramiko").addHandler(logging.NullHandler())  # errors are raised, not logged

_TMP_PREFIX = ".tmp-"
_POOL = 4  # connections per backend
_REQUEST = 128 << 10  # bytes per read/write request: OpenSSH takes messages up to 256 KiB
_DEPTH = 32  # requests in flight per transfer
_WINDOW = 4 << 20  # SSH channel window; far larger windows make downloads collapse
_PACKET = 32 << 10  # SSH channel packet size
_CIPHER = "aes128-gcm@openssh.com"  # fastest in paramiko (AES-NI, no separate MAC)
_WRITE_NEW = fx.SFTP_FLAG_WRITE | fx.SFTP_FLAG_CREATE | fx.SFTP_FLAG_EXCL


# ----------------------------------------------------------------- host keys and login


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


# ------------------------------------------------------------------------ the backend


class _FifoBytes(bytearray):
    """A channel receive buffer: paramiko's ``array`` moves all buffered bytes on every read
    from the front; a bytearray drops a prefix in place."""

    def frombytes(self, data: bytes) -> None:
        self.extend(data)

    def __getitem__(self, index):  # type: ignore[no-untyped-def]
        return memoryview(self)[index] if isinstance(index, slice) else super().__getitem__(index)


def _status_error(msg: paramiko.Message) -> OSError | None:
    """The error of a STATUS reply, shaped as paramiko raises it (None for OK)."""
    code, text = msg.get_int(), msg.get_text()
    if code == fx.SFTP_OK:
        return None
    if code == fx.SFTP_NO_SUCH_FILE:
        return FileNotFoundError(errno.ENOENT, text)
    if code == fx.SFTP_PERMISSION_DENIED:
        return PermissionError(errno.EACCES, text)
    err = OSError(text)
    err.sftp_code = code  # type: ignore[attr-defined]
    return err


def _is_status(exc: BaseException) -> bool:
    """Whether ``exc`` is an SFTP error status, not a socket or protocol failure."""
    kinds = (OSError, FileNotFoundError, PermissionError)
    return type(exc) in kinds and getattr(exc, "errno", None) in (None, errno.ENOENT, errno.EACCES)


class _Conn:
    """One SSH connection and its SFTP session, serving one operation at a time."""

    sftp: paramiko.SFTPClient  # set once the session is up

    def __init__(self, transport: paramiko.Transport, limit: float) -> None:
        self.transport = transport
        self.limit = limit  # seconds without progress before the watchdog closes it
        self.last = time.monotonic()
        self.killed: str | None = None  # why the watchdog closed it
        self.fsync = True  # the server offers fsync@openssh.com (until it says otherwise)
        self.read_size = _REQUEST  # lowered if the server answers less per request
        self.got: dict[int, tuple[int, paramiko.Message]] = {}  # replies by request number

    def alive(self) -> bool:
        session = getattr(self, "sftp", None)
        closed = session is not None and session.get_channel().closed
        return self.killed is None and self.transport.is_active() and not closed

    def usable_after(self, exc: BaseException) -> bool:
        """Whether the connection can serve more requests after ``exc`` (a mere refusal)."""
        return self.alive() and (isinstance(exc, DrvaultError) or _is_status(exc))

    def touch(self) -> None:
        self.last = time.monotonic()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.transport.close()

    # paramiko hands replies to ``_async_response`` of the object given with each request.
    def _async_response(self, t: int, msg: paramiko.Message, num: int) -> None:
        self.got[num] = (t, msg)

    def send(self, t: int, *args: object) -> int:
        return self.sftp._async_request(self, t, *args)

    def reply(self, num: int) -> tuple[int, paramiko.Message]:
        while num not in self.got:
            self.sftp._read_response()
            self.touch()
        return self.got.pop(num)

    def call(self, t: int, *args: object) -> paramiko.Message:
        """One request and its reply; an error status is raised as an OSError."""
        kind, msg = self.reply(self.send(t, *args))
        err = _status_error(msg) if kind == fx.CMD_STATUS else None
        if err is not None:
            raise err
        return msg

    def open(self, path: str, flags: int) -> bytes:
        return self.call(fx.CMD_OPEN, path, flags, paramiko.SFTPAttributes()).get_binary()

    def write(self, handle: bytes, data: memoryview) -> None:
        pending: deque[int] = deque()
        offset, size, error = 0, len(data), None
        while offset < size or pending:
            while offset < size and len(pending) < _DEPTH and error is None:
                end = min(offset + _REQUEST, size)
                pending.append(self.send(fx.CMD_WRITE, handle, int64(offset), data[offset:end]))
                offset = end
            if not pending:
                break
            kind, msg = self.reply(pending.popleft())
            if kind == fx.CMD_STATUS and error is None:
                error = _status_error(msg)  # then drain the replies still in flight
        if error is not None:
            raise error

    def read(self, handle: bytes, offset: int, length: int | None) -> bytes:
        """``length`` bytes from ``offset`` (fewer at the end of the file), or all to the end."""
        pending: deque[tuple[int, int, int, int]] = deque()  # number, offset, size, short
        parts: dict[int, bytes] = {}
        end = None if length is None else offset + length
        depth = 1 if length is None else _DEPTH  # size unknown: ramp up from one request
        ahead, eof, error = offset, None, None

        def ask(at: int, n: int, short: int = 0) -> None:
            pending.append((self.send(fx.CMD_READ, handle, int64(at), n), at, n, short))

        while True:
            while len(pending) < depth and eof is None and error is None:
                if end is not None and ahead >= end:
                    break
                n = self.read_size if end is None else min(self.read_size, end - ahead)
                ask(ahead, n)
                ahead += n
            if not pending:
                break
            num, at, n, short = pending.popleft()
            kind, msg = self.reply(num)
            data = msg.get_string() if kind == fx.CMD_DATA else b""
            status = _status_error(msg) if kind == fx.CMD_STATUS else None
            if data:
                parts[at] = data
                depth = min(_DEPTH, depth * 2)
                if short:  # data after a short reply: the server's limit per request
                    self.read_size = min(self.read_size, short)
                if len(data) < n:  # the end of the file, or that limit
                    ask(at + len(data), n - len(data), len(data))
            elif status is None or getattr(status, "sftp_code", None) == fx.SFTP_EOF:
                eof = at if eof is None else min(eof, at)
            else:
                error = error or status
        if error is not None:
            raise error
        chunks, at = [], offset
        while parts.get(at) and (eof is None or at < eof):
            chunks.append(parts[at])
            at += len(parts[at])
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def finish(self, handle: bytes) -> None:
        """Flush a written file to disk where the server can, and close it."""
        if self.fsync:
            try:
                self.call(fx.CMD_EXTENDED, "fsync@openssh.com", handle)
            except OSError as exc:
                if getattr(exc, "sftp_code", None) != fx.SFTP_OP_UNSUPPORTED:
                    raise
                self.fsync = False
        self.call(fx.CMD_CLOSE, handle)

    def discard(self, handle: bytes, path: str | None = None) -> None:
        """Best effort after a refusal: close ``handle`` (if any), remove ``path``."""
        if handle:
            with contextlib.suppress(OSError):
                self.call(fx.CMD_CLOSE, handle)
        if path is not None:
            with contextlib.suppress(OSError):
                self.sftp.remove(path)


def _watch(ref: weakref.ref[SftpBackend]) -> None:
    while True:
        time.sleep(1.0)
        backend = ref()
        if backend is None or backend._closed:
            return
        backend._reap_stalled()
        del backend


class SftpBackend:
    def __init__(self, location: SftpLocation, options: SftpOptions) -> None:
        self._loc = location
        self._opt = options
        self._user = location.user or getpass.getuser()
        host = f"[{location.host}]" if ":" in location.host else location.host
        self._server = f"{host}:{location.port}"
        self._root = location.path
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(_POOL)
        self._idle: list[_Conn] = []
        self._busy: set[_Conn] = set()
        self._dirs: set[str] = set()  # directories known to exist
        self._closed = False
        self._watchdog: threading.Thread | None = None

    @property
    def location(self) -> str:
        return f"sftp://{self._user}@{self._server}{self._root}"

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(storage_classes=False, connections=_POOL, atomic_create=True)

    # ------------------------------------------------------------------ objects

    def put(
        self,
        name: str,
        data: bytes | memoryview,
        *,
        exclusive: bool = False,
        storage_class: str | None = None,
    ) -> None:
        path = self._path(name)
        parent = posixpath.dirname(path)
        tmp = f"{parent}/{_TMP_PREFIX}{secrets.token_hex(8)}"
        with self._session(name) as conn:
            try:
                handle = conn.open(tmp, _WRITE_NEW)
            except FileNotFoundError:
                self._dirs.discard(parent)
                self._makedirs(conn, parent)
                handle = conn.open(tmp, _WRITE_NEW)
            try:
                conn.write(handle, memoryview(data).cast("B"))
                conn.finish(handle)
                handle = b""  # closed
                if exclusive:
                    self._rename_new(conn, name, tmp, path)
                else:
                    conn.sftp.posix_rename(tmp, path)
            except BaseException as exc:
                if conn.usable_after(exc):  # a dead link cannot clean up; list skips .tmp-*
                    conn.discard(handle, tmp)
                raise

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        path = self._path(name)
        with self._session(name) as conn:
            handle = conn.open(path, fx.SFTP_FLAG_READ)
            try:
                data = conn.read(handle, offset, length)
            except BaseException as exc:
                if conn.usable_after(exc):
                    conn.discard(handle)
                raise
            conn.call(fx.CMD_CLOSE, handle)
        if length is not None and len(data) != length:
            raise ShortReadError(name, length, len(data))
        return data

    def stat(self, name: str) -> ObjectInfo:
        path = self._path(name)
        with self._session(name) as conn:
            attrs = conn.sftp.stat(path)
        return ObjectInfo(name, attrs.st_size or 0)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Objects whose names start with ``prefix``, walking only directories that can match."""
        top = prefix.rpartition("/")[0]
        if top:
            self._path(top)
        todo = [top]
        while todo:
            rel = todo.pop()
            with self._session(rel or self._root) as conn:
                try:
                    entries = conn.sftp.listdir_attr(f"{self._root}/{rel}".rstrip("/"))
                except FileNotFoundError:
                    entries = []
            for entry in entries:  # yielded with no connection held
                child = f"{rel}/{entry.filename}" if rel else entry.filename
                mode = entry.st_mode or 0
                if S_ISDIR(mode):
                    if (child + "/").startswith(prefix) or prefix.startswith(child + "/"):
                        todo.append(child)
                    continue
                partial = entry.filename.startswith(_TMP_PREFIX)  # an upload, not an object
                if S_ISREG(mode) and child.startswith(prefix) and not partial:
                    mtime = None if entry.st_mtime is None else float(entry.st_mtime)
                    yield ObjectInfo(child, entry.st_size or 0, mtime=mtime)

    def delete(self, name: str) -> None:
        path = self._path(name)
        with self._session(name) as conn:
            conn.sftp.remove(path)

    def exists(self) -> bool:
        with self._session(self._root) as conn:
            try:
                return S_ISDIR(conn.sftp.stat(self._root).st_mode or 0)
            except FileNotFoundError:
                return False

    def create(self) -> None:
        with self._session(self._root) as conn:
            self._makedirs(conn, self._root)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conns = [*self._idle, *self._busy]
            self._idle.clear()
        for conn in conns:
            conn.close()

    # ------------------------------------------------------------------ paths

    def _path(self, name: str) -> str:
        if not name or name.startswith("/") or ".." in name.split("/"):
            raise PermanentError(f"{name}: invalid object name")
        return f"{self._root}/{name}"

    def _rename_new(self, conn: _Conn, name: str, tmp: str, path: str) -> None:
        try:
            conn.sftp.rename(tmp, path)  # OpenSSH: link() + unlink(): fails if path exists
        except OSError as exc:
            if type(exc) is not OSError or not conn.alive():
                raise
            try:
                conn.sftp.stat(path)
            except FileNotFoundError:
                raise exc from None
            raise AlreadyExistsError(f"{name}: already exists") from None

    def _makedirs(self, conn: _Conn, path: str) -> None:
        missing = []
        while path not in self._dirs and path not in ("", "/"):
            try:
                mode = conn.sftp.stat(path).st_mode or 0
            except FileNotFoundError:
                missing.append(path)
                path = posixpath.dirname(path)
                continue
            if not S_ISDIR(mode):
                raise PermanentError(f"{path}: not a directory on {self._server}")
            break
        for directory in reversed(missing):
            try:
                conn.sftp.mkdir(directory)
            except OSError as exc:  # made meanwhile by another writer?
                if type(exc) is not OSError or not conn.alive():
                    raise
                conn.sftp.stat(directory)
            self._dirs.add(directory)

    # ------------------------------------------------------------------ connections

    @contextlib.contextmanager
    def _session(self, name: str) -> Iterator[_Conn]:
        """A pooled connection for one operation; SFTP and link errors become drvault's."""
        if self._closed:
            raise PermanentError(f"{self.location}: backend is closed")
        with self._slots:
            conn = self._checkout()
            healthy = False
            try:
                yield conn
                healthy = True
            except DrvaultError:
                healthy = conn.alive()
                raise
            except (OSError, EOFError, paramiko.SSHException) as exc:
                healthy = conn.usable_after(exc)
                raise self._translate(conn, name, exc, healthy) from exc
            finally:
                self._checkin(conn, healthy)

    def _translate(self, conn: _Conn, name: str, exc: BaseException, status: bool) -> Exception:
        if status and isinstance(exc, FileNotFoundError):
            return NotFoundError(f"{name}: not found")
        if status and isinstance(exc, PermissionError):
            return PermanentError(f"{name}: permission denied by {self._server}")
        if status:
            return PermanentError(f"{name}: {self._server} refused: {exc}")
        cause = conn.transport.get_exception() or exc  # what ended the transport, if it ended
        if conn.killed:
            detail = conn.killed
        elif isinstance(exc, TimeoutError):
            detail = f"no reply for {self._opt.link_timeout:g} s"
        elif isinstance(cause, OSError) and cause.strerror:
            detail = cause.strerror
        elif isinstance(cause, EOFError) or "dropped" in str(cause):
            detail = "connection closed"
        else:
            detail = str(cause) or type(cause).__name__
        return TransientError(f"{self._server}: link lost ({detail})")

    def _checkout(self) -> _Conn:
        with self._lock:
            while self._idle:
                conn = self._idle.pop()
                if conn.alive():
                    break
                conn.close()
            else:
                conn = None
        if conn is None:
            conn = self._dial()
        conn.limit = self._opt.link_timeout * 1.5
        conn.touch()
        with self._lock:
            self._busy.add(conn)
        return conn

    def _checkin(self, conn: _Conn, healthy: bool) -> None:
        with self._lock:
            self._busy.discard(conn)
            if healthy and conn.alive() and not self._closed:
                self._idle.append(conn)
                return
        conn.close()

    def _reap_stalled(self) -> None:
        now = time.monotonic()
        with self._lock:
            stalled = [c for c in self._busy if now - c.last > c.limit]
        for conn in stalled:
            conn.killed = f"no progress for {conn.limit:g} s"
            conn.close()

    def _dial(self) -> _Conn:
        """Connect, check the host key, log in and start SFTP."""
        opt, loc = self._opt, self._loc
        try:
            sock = socket.create_connection((loc.host, loc.port), timeout=opt.connect_timeout)
        except socket.gaierror as exc:
            raise PermanentError(f"{self._server}: cannot resolve host ({exc.strerror})") from exc
        except TimeoutError as exc:  # nothing answers: a silent link, not a refusal
            raise TransientError(
                f"{self._server}: link lost (no answer to connect within {opt.connect_timeout:g} s)"
            ) from exc
        except OSError as exc:
            detail = exc.strerror or str(exc) or type(exc).__name__
            raise TransientError(f"{self._server}: cannot connect ({detail})") from exc
        probe = max(1, int(opt.link_timeout / 3))
        for level, option, value in (
            (socket.IPPROTO_TCP, "TCP_NODELAY", 1),  # paramiko does not set it
            (socket.SOL_SOCKET, "SO_KEEPALIVE", 1),
            (socket.IPPROTO_TCP, "TCP_USER_TIMEOUT", int(opt.link_timeout * 1000)),
            (socket.IPPROTO_TCP, "TCP_KEEPIDLE", probe),
            (socket.IPPROTO_TCP, "TCP_KEEPINTVL", probe),
            (socket.IPPROTO_TCP, "TCP_KEEPCNT", 3),
        ):
            if hasattr(socket, option):
                sock.setsockopt(level, getattr(socket, option), value)
        transport = paramiko.Transport(
            sock, default_window_size=_WINDOW, default_max_packet_size=_PACKET
        )
        conn = _Conn(transport, max(opt.connect_timeout, opt.link_timeout) + 2)
        with self._lock:
            self._busy.add(conn)  # watched while the handshake runs
        self._start_watchdog()
        try:
            self._handshake(conn)
        except BaseException as exc:
            conn.close()
            if isinstance(exc, DrvaultError):
                raise
            if isinstance(exc, paramiko.IncompatiblePeer):
                raise PermanentError(f"{self._server}: no common SSH algorithms ({exc})") from exc
            # TCP connected, then the SSH handshake got no (or no whole) answer: a lost link
            detail = conn.killed or str(exc) or type(exc).__name__
            raise TransientError(
                f"{self._server}: link lost during the SSH handshake ({detail})"
            ) from exc
        finally:
            with self._lock:
                self._busy.discard(conn)
        return conn

    def _handshake(self, conn: _Conn) -> None:
        opt, transport = self._opt, conn.transport
        transport.banner_timeout = transport.handshake_timeout = opt.connect_timeout
        transport.auth_timeout = opt.connect_timeout
        known = KnownHosts(known_hosts_path(opt.known_hosts), self._loc.host, self._loc.port)
        security = transport.get_security_options()
        ciphers = tuple(security.ciphers)
        if _CIPHER in ciphers:
            security.ciphers = (_CIPHER, *(c for c in ciphers if c != _CIPHER))
        security.key_types = known.algorithms(tuple(security.key_types))
        transport.start_client(timeout=opt.connect_timeout)
        known.verify(transport.get_remote_server_key())
        conn.touch()
        authenticate(transport, self._user, self._server, opt.key)
        conn.touch()
        transport.set_keepalive(max(1, int(opt.link_timeout / 3)))
        channel = transport.open_session(timeout=opt.connect_timeout)
        channel.settimeout(opt.link_timeout)
        if not len(channel.in_buffer):
            channel.in_buffer._buffer = _FifoBytes()
        channel.invoke_subsystem("sftp")
        conn.sftp = paramiko.SFTPClient(channel)

    def _start_watchdog(self) -> None:
        with self._lock:
            if self._watchdog is not None:
                return
            self._watchdog = threading.Thread(
                target=_watch, args=(weakref.ref(self),), name="sftp-watchdog", daemon=True
            )
        self._watchdog.start()
