"""A fork server for step processes: a preloaded parent, without Django and without secrets, that
forks one isolated child per step.

Starting ``python -m blocks.runner`` costs an interpreter start plus the imports of the block library
(numpy, xarray, …), far more than a step of a chain should. The server pays that once: it is started
with a scrubbed environment (:func:`scrubbed_environment`), imports the block library, and then forks a
child per step, which runs :func:`blocks.runner.execute` on the step's manifest. This module imports
nothing from Django, on purpose: the server must hold nothing a block may not see.

Each child, before the block runs:

- starts a session of its own (signals reach the block and anything it started, and nothing else);
- closes every file descriptor it inherited;
- gets ``HOME`` and ``TMPDIR`` set to the step's scratch directory, which is also its working directory;
- when the server runs as root (``uid`` configured): enters a mount namespace of its own in which each
  *hidden* directory (the portal's home: secret key file, SQLite database, other runs' artifacts) is
  covered by an empty read-only tmpfs, with only the step's own output directory (read-write), its
  input artifacts and the data space (read-only) mounted back at their usual paths; then drops to the
  unprivileged ``uid``/``gid`` with no supplementary groups and ``no_new_privs``, so that it cannot
  undo those mounts, read root's files (``/proc/<pid>/environ`` of the portal, 0600 files), or signal
  the portal's processes; with ``no_network``, it also gets a network namespace of its own with no
  interface up (no broker, database or internet).

Protocol (JSON lines over a Unix socket pair; the client is :class:`ForkServer`)::

    → {"op": "start", "token": "t1", "manifest": {...}, "store_root": "/srv/a", "walltime_s": 60,
       "grace_s": 5, "detach": false, "exit_file": "/srv/a/runs/1/x/_exit.json"}
    ← {"op": "started", "token": "t1", "pid": 1234, "start_ticks": 98765}   (or "error": "...")
    → {"op": "stop", "pid": 1234, "grace_s": 3}       SIGTERM to its process group, SIGKILL after grace
    ← {"op": "exited", "pid": 1234, "code": 0, "signal": 0, "reason": ""}
                                                      reason: "cancelled", "walltime exceeded" or ""

The server kills a child that is still running ``grace_s`` after its walltime (the child stops itself
at its walltime first, see :func:`blocks.runner.execute`). When the client goes away (end of file on
the socket) the server kills its children, except those started with ``"detach": true`` (the ``local``
executor's, which must survive a portal restart), and exits.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENV_ALLOWED = frozenset({
    "PATH", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_NUMERIC", "LC_TIME", "TZ", "TERM",
    "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHASHSEED", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED",
    "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS", "PROJ_DATA", "PROJ_LIB", "GDAL_DATA", "HDF5_USE_FILE_LOCKING",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
    "http_proxy", "https_proxy", "no_proxy",
})
"""Variables a step may see (besides ``ILIAD_*`` ones that are not secret, and HOME/TMPDIR which the
child sets to its scratch directory)."""

ENV_SECRET = re.compile(
    r"SECRET|PASSWORD|PASSWD|TOKEN|CREDENTIAL|PRIVATE|_KEY$|^KEY$|DATABASE|_URL$|REDIS|BROKER|OIDC|"
    r"DJANGO|CELERY|AWS_|AZURE|GOOGLE_APPLICATION",
    re.IGNORECASE,
)
"""Names never passed on, even when allowed above or prefixed ``ILIAD_``."""


def scrubbed_environment(
    environ: Mapping[str, str], extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of a step process: the allow-list (``ENV_ALLOWED`` and non-secret ``ILIAD_*``)
    of ``environ``, plus ``extra``; every name matching ``ENV_SECRET`` is dropped, from both."""
    kept = {
        name: value for name, value in environ.items()
        if (name in ENV_ALLOWED or name.startswith("ILIAD_")) and not ENV_SECRET.search(name)
    }
    kept.update({name: value for name, value in (extra or {}).items() if not ENV_SECRET.search(name)})
    return kept


# --- the server -----------------------------------------------------------------------------------

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18
PR_SET_NO_NEW_PRIVS = 38
PR_SET_DUMPABLE = 4
RUNNER_LOG = "_runner.log"
"""The child's stdout and stderr (the runner's log, tracebacks for administrators), in its output
directory."""
EXIT_SETUP_FAILED = 70
"""Exit code of a child whose isolation could not be set up (the block did not run)."""


def start_ticks(pid: int) -> int | None:
    """The start time of process ``pid`` in clock ticks since boot (with the pid, it names one process
    across pid reuse), or None when there is no such live process (zombies count as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


class _Libc:
    def __init__(self) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)

    def _check(self, result: int, what: str) -> None:
        if result != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"{what}: {os.strerror(errno)}")

    def unshare(self, flags: int) -> None:
        self._check(self.libc.unshare(flags), "unshare")

    def mount(
        self, source: str | None, target: str, fstype: str | None, flags: int, data: str | None
    ) -> None:
        def encode(value: str | None) -> bytes | None:
            return value.encode() if value is not None else None

        self._check(
            self.libc.mount(
                encode(source), encode(target), encode(fstype), ctypes.c_ulong(flags), encode(data)
            ),
            f"mount {target}",
        )

    def set_not_dumpable(self) -> None:
        self._check(self.libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "prctl(DUMPABLE)")

    def no_new_privs(self) -> None:
        self._check(self.libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")


def _under(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


def _hide_and_keep(libc: _Libc, hidden: list[Path], keep: list[tuple[Path, bool]]) -> None:
    """In a new mount namespace: an empty tmpfs over each hidden directory, then each kept path
    (writable or not) mounted back at its own place."""
    libc.unshare(CLONE_NEWNS)
    libc.mount(None, "/", None, MS_REC | MS_PRIVATE, None)
    roots: list[Path] = []
    for root in sorted({Path(os.path.realpath(path)) for path in hidden}, key=lambda p: len(p.parts)):
        if root.is_dir() and not any(_under(root, known) for known in roots):
            roots.append(root)
    kept = []
    for path, writable in keep:
        real = Path(os.path.realpath(path))
        if real.exists() and any(_under(real, root) for root in roots):
            kept.append((real, writable, os.open(real, os.O_PATH | os.O_CLOEXEC)))
    for root in roots:
        libc.mount("tmpfs", str(root), "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m")
    # Outer directories first, so an inner kept path is mounted on top of an outer one.
    for real, writable, fd in sorted(kept, key=lambda item: len(item[0].parts)):
        if not real.exists():
            if os.path.isdir(f"/proc/self/fd/{fd}"):
                real.mkdir(parents=True, exist_ok=True)
            else:
                real.parent.mkdir(parents=True, exist_ok=True)
                real.touch()
        libc.mount(f"/proc/self/fd/{fd}", str(real), None, MS_BIND | MS_REC, None)
        if not writable:
            libc.mount(None, str(real), None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, None)
        os.close(fd)
    for root in roots:
        libc.mount(None, str(root), None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, None)


@dataclass
class _Child:
    pid: int
    detach: bool
    exit_file: str
    kill_at: float
    reason: str = ""


class Server:
    """The fork server's loop (runs in the ``python -m apps.compute.launcher`` process)."""

    def __init__(self, sock: socket.socket, config: Mapping[str, Any]) -> None:
        self.sock = sock
        self.config = dict(config)
        self.children: dict[int, _Child] = {}
        self.buffer = b""
        self.libc = _Libc()

    def preload(self) -> None:
        """Import the block library now, so that each child starts with it in memory."""
        import tempfile

        from blocks.manifest import StepManifest, uri_from_path
        from blocks.registry import default_registry
        from blocks.runner import run_step

        default_registry()
        # One step run here first: what the runner initialises lazily (schema validators, compiled
        # patterns, caches) is then in every child's memory instead of built again in each.
        with tempfile.TemporaryDirectory(prefix="iliad-launcher-warmup-") as directory:
            run_step(StepManifest(
                run_id="warm-up", step_id="warm-up", block_id="utility.noop", block_version="1.0.0",
                params={}, inputs={}, output_dir=uri_from_path(Path(directory) / "out"),
            ))
        # Objects that exist now are never collected in a child: the collector would otherwise write
        # to every one of them, copying the whole preloaded heap page by page after each fork.
        gc.freeze()

    def send(self, message: dict[str, Any]) -> None:
        try:
            self.sock.sendall((json.dumps(message) + "\n").encode())
        except OSError:
            pass

    def serve(self) -> None:
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_write, False)
        signal.set_wakeup_fd(wake_write)
        signal.signal(signal.SIGCHLD, lambda *args: None)
        selector = selectors.DefaultSelector()
        selector.register(self.sock, selectors.EVENT_READ, "socket")
        selector.register(wake_read, selectors.EVENT_READ, "child")
        self.send({"op": "ready", "pid": os.getpid()})
        connected = True
        while connected or any(not child.detach for child in self.children.values()):
            timeout = None
            if self.children:
                timeout = max(0.0, min(child.kill_at for child in self.children.values()) - time.monotonic())
            for key, _ in selector.select(timeout):
                if key.data == "socket":
                    data = self.sock.recv(1 << 20)
                    if not data:
                        connected = False
                        selector.unregister(self.sock)
                        for child in self.children.values():
                            if not child.detach:
                                self._kill(child, signal.SIGKILL, "the launcher's client went away")
                        continue
                    self.buffer += data
                    while b"\n" in self.buffer:
                        line, self.buffer = self.buffer.split(b"\n", 1)
                        try:
                            self.handle(json.loads(line))
                        except Exception:  # a bad request must not take the other steps down
                            traceback.print_exc()
                else:
                    os.read(wake_read, 4096)
            self.reap()
            now = time.monotonic()
            for child in list(self.children.values()):
                if now >= child.kill_at:
                    self._kill(child, signal.SIGKILL, child.reason or "walltime exceeded")
                    child.kill_at = now + 1.0
        # Detached children go on by themselves (they enforce their walltime); nothing else to do.

    def _kill(self, child: _Child, sig: int, reason: str) -> None:
        child.reason = child.reason or reason
        try:
            os.killpg(child.pid, sig)
        except ProcessLookupError:
            pass

    def reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            child = self.children.pop(pid, None)
            if child is None:
                continue
            code = os.waitstatus_to_exitcode(status)
            message = {"op": "exited", "pid": pid, "code": max(code, 0), "signal": max(-code, 0),
                       "reason": child.reason}
            if child.exit_file:
                try:
                    earlier = json.loads(Path(child.exit_file).read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    earlier = {}
                reason = earlier.get("reason") or child.reason  # who stopped it first said why
                try:
                    _write_json(Path(child.exit_file), {**message, "reason": reason})
                except OSError:
                    pass
            self.send(message)

    def handle(self, request: dict[str, Any]) -> None:
        op = request.get("op")
        if op == "start":
            try:
                pid = self.fork(request)
            except Exception as error:  # tell the client; the server goes on
                self.send({"op": "started", "token": request.get("token"), "error": f"{error}"})
                return
            self.send({"op": "started", "token": request.get("token"), "pid": pid,
                       "start_ticks": start_ticks(pid)})
        elif op == "stop":
            child = self.children.get(int(request["pid"]))
            if child is not None:
                self._kill(child, signal.SIGTERM, "cancelled")
                child.kill_at = min(child.kill_at, time.monotonic() + float(request.get("grace_s", 3)))

    def fork(self, request: dict[str, Any]) -> int:
        from blocks.manifest import StepManifest, path_from_uri

        manifest = StepManifest.from_dict(request["manifest"])
        store_root = request.get("store_root")
        manifest.check_paths(store_root)
        output_dir = path_from_uri(manifest.output_dir, store_root)
        walltime_s = float(request.get("walltime_s") or manifest.resources.walltime_s)
        grace_s = float(request.get("grace_s", 5))
        pid = os.fork()
        if pid == 0:  # the child: never returns
            code = EXIT_SETUP_FAILED
            try:
                code = self._child(manifest, store_root, output_dir, walltime_s, grace_s)
            except BaseException:
                traceback.print_exc()
            finally:
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                finally:
                    os._exit(code)
        # Past the walltime and the child's own grace, the child is killed without more ado.
        self.children[pid] = _Child(pid=pid, detach=bool(request.get("detach")),
                                    exit_file=str(request.get("exit_file") or ""),
                                    kill_at=time.monotonic() + walltime_s + grace_s + 1.0)
        return pid

    def _child(self, manifest: Any, store_root: str | None, output_dir: Path, walltime_s: float,
               grace_s: float) -> int:
        from blocks import runner
        from blocks.manifest import path_from_uri

        os.setsid()
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        events = path_from_uri(manifest.events_uri, store_root)
        result = path_from_uri(manifest.result_uri, store_root)
        scratch = output_dir / ".scratch"
        # Still root here, in directories an earlier attempt's block may have written: never follow
        # a link it left (chown or truncate through it would hand the block a file of the portal's).
        if scratch.is_symlink():
            scratch.unlink()
        scratch.mkdir(parents=True, exist_ok=True)
        # Not the portal's log: a file reached through /proc/self/fd would bypass the hidden mounts.
        log = open_no_follow(output_dir / RUNNER_LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.closerange(3, 1 << 16)  # the socket to the portal, the wake-up pipe, anything preloaded
        for path in (events.parent, result.parent):
            path.mkdir(parents=True, exist_ok=True)
        os.close(open_no_follow(events, os.O_WRONLY | os.O_CREAT))
        uid, gid = self.config.get("uid"), self.config.get("gid")
        if uid is not None and os.geteuid() == 0:
            writable = {output_dir, events.parent, result.parent}
            for directory, _, files in os.walk(output_dir):  # files of an earlier, in-process run
                for name in files:
                    os.chown(os.path.join(directory, name), uid, gid, follow_symlinks=False)
            for path in writable | {scratch, events, output_dir / RUNNER_LOG}:
                os.chown(path, uid, gid, follow_symlinks=False)
            keep = [(path, True) for path in writable]
            keep += [(path_from_uri(ref.uri, store_root), False) for ref in manifest.inputs.values()]
            keep += [(Path(path), False) for path in self.config.get("keep_readonly", [])]
            _hide_and_keep(self.libc, [Path(path) for path in self.config.get("hide", [])], keep)
            if self.config.get("no_network"):  # only a loopback, down: no broker, database or internet
                self.libc.unshare(CLONE_NEWNET)
        os.chdir(scratch)
        threads = str(max(1, manifest.resources.cpus))
        os.environ.update({"HOME": str(scratch), "TMPDIR": str(scratch), "OMP_NUM_THREADS": threads,
                           "OPENBLAS_NUM_THREADS": threads, "MKL_NUM_THREADS": threads})
        if uid is not None and os.geteuid() == 0:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
        self.libc.no_new_privs()
        # Not dumpable: another step (same unprivileged uid) can neither ptrace this one nor read its
        # /proc entries (environ, mem, root: its mount namespace and output directory).
        self.libc.set_not_dumpable()
        return runner.execute(manifest, store_root=Path(store_root) if store_root else None,
                              walltime_s=walltime_s, walltime_grace_s=grace_s)


def open_no_follow(path: Path, flags: int, mode: int = 0o644) -> int:
    """``os.open`` that refuses a symbolic link or anything but a regular file at ``path`` (removed
    first when ``flags`` create): for files in a step's output directory, which its block controls."""
    if flags & os.O_CREAT and (path.is_symlink() or (path.exists() and not path.is_file())):
        path.unlink()
    return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)


def reset_file(path: Path) -> None:
    """Make ``path`` an empty regular file (a link or other file there is replaced, not followed)."""
    os.close(open_no_follow(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC))


def read_no_follow(path: Path, offset: int = 0) -> bytes:
    """The bytes of a regular file from ``offset``; OSError for a symbolic link (ELOOP) or a missing
    file. For reading what a step's block wrote, from a process that can read more than it."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.lseek(fd, offset, os.SEEK_SET)
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _write_json(path: Path, document: dict[str, Any]) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(document), encoding="utf-8")
    os.replace(partial, path)


def main(argv: list[str] | None = None) -> int:
    """``python -m apps.compute.launcher FD CONFIG_JSON``: serve on the socket at file descriptor FD."""
    argv = sys.argv[1:] if argv is None else argv
    sock = socket.socket(fileno=int(argv[0]))
    config = json.loads(argv[1])
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    server = Server(sock, config)
    if config.get("preload", True):
        server.preload()
    server.serve()
    return 0


# --- the client -----------------------------------------------------------------------------------


class LauncherError(RuntimeError):
    """The fork server could not be started, went away, or refused a step."""


@dataclass(frozen=True)
class Exit:
    pid: int
    code: int
    signal: int
    reason: str


class ForkServer:
    """A handle on one fork server process, started on first use (one per client process).

    ``config``: ``hide`` (directories covered in the children), ``keep_readonly`` (directories under
    them mounted back read-only, e.g. the data space), ``uid``/``gid`` (the children's identity when
    the server runs as root; None: keep the server's), ``no_network`` (as root: no network at all in
    the children), ``preload`` (default True), ``env`` (extra
    environment variables, scrubbed too), ``cwd`` (where the server starts; the repository, so that
    block modules import).
    """

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = dict(config)
        self._lock = threading.Lock()
        self._changed = threading.Condition()
        self._process: subprocess.Popen | None = None
        self._sock: socket.socket | None = None
        self._owner_pid = 0
        self._started: dict[str, dict[str, Any]] = {}
        self._exits: dict[int, Exit] = {}
        self._detached: set[int] = set()
        """Children nobody waits for (their exit is in their exit file): not kept in ``_exits``."""
        self._counter = 0

    def _ensure(self) -> socket.socket:
        if self._sock is not None and self._owner_pid == os.getpid() and self._process.poll() is None:
            return self._sock
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        server_config = {key: value for key, value in self.config.items() if key not in ("env", "cwd")}
        env = scrubbed_environment(os.environ, self.config.get("env"))
        self._process = subprocess.Popen(
            [sys.executable, "-m", "apps.compute.launcher", str(theirs.fileno()), json.dumps(server_config)],
            env=env, cwd=self.config.get("cwd") or Path(__file__).resolve().parents[2],
            pass_fds=(theirs.fileno(),), close_fds=True, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        theirs.close()
        self._sock, self._owner_pid = ours, os.getpid()
        self._started, self._exits, self._detached = {}, {}, set()
        reader = threading.Thread(target=self._read, args=(ours,), name="launcher-reader", daemon=True)
        reader.start()
        with self._changed:
            if not self._changed.wait_for(lambda: "ready" in self._started or self._sock is not ours,
                                          timeout=120):
                raise LauncherError("the step launcher did not start within 120 s")
        if self._sock is not ours or "ready" not in self._started:
            raise LauncherError("the step launcher exited while starting; see the worker's log")
        return ours

    def _read(self, sock: socket.socket) -> None:
        buffer = b""
        while True:
            try:
                data = sock.recv(1 << 16)
            except OSError:
                data = b""
            if not data:
                with self._changed:
                    if self._sock is sock:
                        self._sock = None
                    self._changed.notify_all()
                return
            buffer += data
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                message = json.loads(line)
                with self._changed:
                    if message["op"] == "ready":
                        self._started["ready"] = message
                    elif message["op"] == "started":
                        self._started[message["token"]] = message
                    elif message["op"] == "exited" and message["pid"] in self._detached:
                        self._detached.discard(message["pid"])
                    elif message["op"] == "exited":
                        self._exits[message["pid"]] = Exit(message["pid"], message["code"],
                                                           message["signal"], message["reason"])
                    self._changed.notify_all()

    def warm(self) -> None:
        """Start the server now (it preloads the block library in the background), so that the
        first step does not wait for it."""
        with self._lock:
            self._ensure()

    @property
    def server_pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(
        self, manifest: Mapping[str, Any], *, store_root: str | None = None, walltime_s: float | None = None,
        grace_s: float = 5.0, detach: bool = False, exit_file: str = "",
    ) -> tuple[int, int | None]:
        """Fork a child for this step manifest (a version 2 document); returns (pid, start ticks).
        Raises LauncherError when the server refuses it (message says why) or is gone."""
        with self._lock:
            sock = self._ensure()
            self._counter += 1
            token = f"{os.getpid()}-{self._counter}"
            request = {"op": "start", "token": token, "manifest": dict(manifest), "store_root": store_root,
                       "walltime_s": walltime_s, "grace_s": grace_s, "detach": detach,
                       "exit_file": exit_file}
            try:
                sock.sendall((json.dumps(request) + "\n").encode())
            except OSError as error:
                raise LauncherError(f"the step launcher went away: {error}") from error
        with self._changed:
            self._changed.wait_for(lambda: token in self._started or self._sock is not sock, timeout=60)
            reply = self._started.pop(token, None)
        if reply is None:
            raise LauncherError("the step launcher did not answer")
        if "error" in reply:
            raise LauncherError(reply["error"])
        if detach:
            with self._changed:
                self._detached.add(reply["pid"])
                self._exits.pop(reply["pid"], None)
        return reply["pid"], reply["start_ticks"]

    def stop(self, pid: int, *, grace_s: float = 3.0) -> None:
        """SIGTERM to the child's process group now, SIGKILL after ``grace_s`` if still there."""
        with self._lock:
            if self._sock is None or self._owner_pid != os.getpid():
                return
            try:
                request = {"op": "stop", "pid": pid, "grace_s": grace_s}
                self._sock.sendall((json.dumps(request) + "\n").encode())
            except OSError:
                pass

    def forget(self, pid: int) -> None:
        """Nobody will wait for this child's exit: drop it when it comes."""
        with self._changed:
            if self._exits.pop(pid, None) is None:
                self._detached.add(pid)

    def wait(self, pid: int, timeout: float) -> Exit | None:
        """The child's exit, waiting up to ``timeout`` seconds; None while it runs. Raises
        LauncherError when the server went away (the child is then gone too)."""
        with self._changed:
            self._changed.wait_for(lambda: pid in self._exits or self._sock is None, timeout=timeout)
            if pid in self._exits:
                return self._exits.pop(pid)
            if self._sock is None:
                raise LauncherError("the step launcher went away")
            return None

    def close(self) -> None:
        """Stop the server: it kills its attached children and exits."""
        with self._lock:
            sock, self._sock = self._sock, None
            if sock is not None and self._owner_pid == os.getpid():
                # shutdown, not only close: the reader thread's recv holds the socket open otherwise
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
            if self._process is not None and self._owner_pid == os.getpid():
                try:
                    self._process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait()
            self._process = None


if __name__ == "__main__":
    sys.exit(main())
