"""Where Slurm's commands run: on this host, or on a cluster's login node through SSH.

Both answer the same small interface: run a command (with optional standard input), write a file,
read a file from a byte offset, fetch a directory. The SSH shell keeps one connection per target and
reconnects when it dropped; host keys are always checked against the target's ``known_hosts``.
Errors are ``BackendError``: permanent for what retrying cannot fix (a refused key, an unknown host
key, a command Slurm rejects), transient for the rest (a timeout, a dropped connection).
"""

from __future__ import annotations

import io
import os
import shlex
import stat
import subprocess
import threading
from pathlib import Path, PurePosixPath
from typing import Protocol

from apps.compute.base import BackendError

COMMAND_TIMEOUT_S = 60
TRANSIENT_MARKERS = (
    "Socket timed out", "Unable to contact slurm controller", "Connection refused", "try again",
    "Resource temporarily unavailable", "Slurm temporarily unable",
)
"""Slurm's words for a failure that may pass: anything else a command rejects is permanent."""


class Shell(Protocol):
    def run(self, argv: list[str], *, stdin: str | None = None, timeout: float = COMMAND_TIMEOUT_S) -> str:
        """Standard output of ``argv``; BackendError when it exits non-zero (the message names it)."""
        ...

    def write(self, path: str, text: str) -> None:
        """Write ``text`` to ``path`` (parents created)."""
        ...

    def read(self, path: str, offset: int = 0) -> bytes:
        """The bytes of ``path`` from ``offset`` (empty when it does not exist yet)."""
        ...

    def fetch_dir(self, remote: str, local: Path) -> None:
        """Copy the files of directory ``remote`` into ``local`` (one level deep)."""
        ...

    def put_file(self, local: Path, remote: str) -> None:
        """Copy one local file to ``remote`` (parents created)."""
        ...

    def link(self, target: str, link: str) -> None:
        """Make ``link`` a symbolic link to ``target`` (parents of both created; an old link replaced)."""
        ...


def _failure(argv: list[str], code: int, stderr: str) -> BackendError:
    message = (stderr or "").strip().splitlines()[-1:] or [f"exit status {code}"]
    text = f"{argv[0]} failed: {message[0][:300]}"
    return BackendError(text, permanent=not any(marker in (stderr or "") for marker in TRANSIENT_MARKERS))


class LocalShell:
    """Slurm's commands on the portal's own host (a submit host of the cluster)."""

    def run(self, argv: list[str], *, stdin: str | None = None, timeout: float = COMMAND_TIMEOUT_S) -> str:
        try:
            done = subprocess.run(
                argv, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
            )
        except FileNotFoundError as error:
            raise BackendError(f"{argv[0]} is not installed on this host", permanent=True) from error
        except subprocess.TimeoutExpired as error:
            raise BackendError(f"{argv[0]} did not answer within {timeout:.0f} s") from error
        if done.returncode != 0:
            raise _failure(argv, done.returncode, done.stderr)
        return done.stdout

    def write(self, path: str, text: str) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text, encoding="utf-8")

    def read(self, path: str, offset: int = 0) -> bytes:
        try:
            with open(path, "rb") as handle:
                handle.seek(offset)
                return handle.read()
        except FileNotFoundError:
            return b""

    def fetch_dir(self, remote: str, local: Path) -> None:
        if Path(remote).resolve() == Path(local).resolve():
            return
        local.mkdir(parents=True, exist_ok=True)
        for entry in Path(remote).iterdir():
            if entry.is_file():
                (local / entry.name).write_bytes(entry.read_bytes())

    def put_file(self, local: Path, remote: str) -> None:
        if Path(remote).resolve() == Path(local).resolve():
            return
        Path(remote).parent.mkdir(parents=True, exist_ok=True)
        Path(remote).write_bytes(Path(local).read_bytes())

    def link(self, target: str, link: str) -> None:
        try:
            Path(target).mkdir(parents=True, exist_ok=True)
            Path(link).parent.mkdir(parents=True, exist_ok=True)
            Path(link).unlink(missing_ok=True)
            os.symlink(target, link)
        except OSError as error:
            raise BackendError(f"cannot prepare the job's log directory: {error}") from error


class SSHShell:
    """Slurm's commands on a login node over SSH (paramiko), one reused connection per target."""

    def __init__(self, *, host: str, port: int = 22, user: str, private_key: str, known_hosts: str,
                 connect_timeout: float = 15) -> None:
        if not known_hosts.strip():
            raise BackendError(
                "the SSH target needs its login node's host key ('known_hosts')", permanent=True
            )
        self.host, self.port, self.user = host, int(port), user
        self._key_text, self._known_hosts = private_key, known_hosts
        self._timeout = connect_timeout
        self._client = None
        self._lock = threading.Lock()

    def _connect(self):
        import paramiko  # imported when an SSH target is first used: web processes never need it

        key = None
        for key_class in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
            try:
                key = key_class.from_private_key(io.StringIO(self._key_text))
                break
            except (paramiko.SSHException, ValueError):
                continue
        if key is None:
            raise BackendError("the target's SSH key cannot be read (Ed25519, ECDSA or RSA, unencrypted)",
                               permanent=True)
        client = paramiko.SSHClient()
        host_keys = client.get_host_keys()
        for line in self._known_hosts.splitlines():
            entry = paramiko.hostkeys.HostKeyEntry.from_line(line) if line.strip() else None
            if entry is not None:
                for name in entry.hostnames:
                    host_keys.add(name, entry.key.get_name(), entry.key)
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            client.connect(self.host, port=self.port, username=self.user, pkey=key, timeout=self._timeout,
                           banner_timeout=self._timeout, auth_timeout=self._timeout,
                           allow_agent=False, look_for_keys=False)
        except paramiko.BadHostKeyException as error:
            raise BackendError(f"the host key of {self.host} does not match the target's known_hosts",
                               permanent=True) from error
        except paramiko.SSHException as error:
            permanent = isinstance(error, paramiko.AuthenticationException) or "known_hosts" in str(error)
            raise BackendError(
                f"SSH to {self.host}:{self.port} failed: {error}", permanent=permanent
            ) from error
        except OSError as error:
            raise BackendError(f"SSH to {self.host}:{self.port} failed: {error}") from error
        transport = client.get_transport()
        if transport is not None:
            transport.set_keepalive(30)
        return client

    def _session(self):
        with self._lock:
            transport = self._client.get_transport() if self._client else None
            if transport is None or not transport.is_active():
                self._client = self._connect()
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def run(self, argv: list[str], *, stdin: str | None = None, timeout: float = COMMAND_TIMEOUT_S) -> str:
        import paramiko

        command = " ".join(shlex.quote(part) for part in argv)
        try:
            stdin_f, stdout_f, stderr_f = self._session().exec_command(command, timeout=timeout)
            if stdin is not None:
                stdin_f.write(stdin)
                stdin_f.channel.shutdown_write()
            out = stdout_f.read().decode("utf-8", "replace")
            err = stderr_f.read().decode("utf-8", "replace")
            code = stdout_f.channel.recv_exit_status()
        except (paramiko.SSHException, OSError, TimeoutError) as error:
            self.close()
            raise BackendError(f"{argv[0]} over SSH to {self.host} failed: {error}") from error
        if code != 0:
            raise _failure(argv, code, err)
        return out

    def _sftp(self):
        return self._session().open_sftp()

    def _mkdirs(self, sftp, path: PurePosixPath) -> None:
        missing = []
        while str(path) not in ("/", "."):
            try:
                sftp.stat(str(path))
                break
            except FileNotFoundError:
                missing.append(path)
                path = path.parent
        for directory in reversed(missing):
            sftp.mkdir(str(directory))

    def write(self, path: str, text: str) -> None:
        try:
            with self._sftp() as sftp:
                self._mkdirs(sftp, PurePosixPath(path).parent)
                with sftp.open(path, "w") as handle:
                    handle.write(text.encode("utf-8"))
        except OSError as error:
            raise BackendError(f"cannot write {os.path.basename(path)} on {self.host}: {error}") from error

    def read(self, path: str, offset: int = 0) -> bytes:
        try:
            with self._sftp() as sftp, sftp.open(path, "rb") as handle:
                handle.seek(offset)
                return handle.read()
        except FileNotFoundError:
            return b""
        except OSError as error:
            raise BackendError(f"cannot read {os.path.basename(path)} on {self.host}: {error}") from error

    def fetch_dir(self, remote: str, local: Path) -> None:
        local.mkdir(parents=True, exist_ok=True)
        try:
            with self._sftp() as sftp:
                for entry in sftp.listdir_attr(remote):
                    if stat.S_ISREG(entry.st_mode or 0):
                        sftp.get(f"{remote}/{entry.filename}", str(local / entry.filename))
        except OSError as error:
            raise BackendError(f"cannot fetch results from {self.host}: {error}") from error

    def link(self, target: str, link: str) -> None:
        try:
            with self._sftp() as sftp:
                self._mkdirs(sftp, PurePosixPath(target))
                self._mkdirs(sftp, PurePosixPath(link).parent)
                try:
                    sftp.remove(link)
                except FileNotFoundError:
                    pass
                sftp.symlink(target, link)
        except OSError as error:
            raise BackendError(f"cannot prepare the job's log directory on {self.host}: {error}") from error

    def put_file(self, local: Path, remote: str) -> None:
        try:
            with self._sftp() as sftp:
                self._mkdirs(sftp, PurePosixPath(remote).parent)
                sftp.put(str(local), remote)
        except OSError as error:
            raise BackendError(f"cannot stage {local.name} to {self.host}: {error}") from error
