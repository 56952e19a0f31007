"""Run a step's block in an isolated child process instead of inside the worker that holds the secrets.

:func:`run_isolated` is what the in-worker agent calls (Celery, RQ) when a target's configuration has
``"isolate": true`` or ``ILIAD_ISOLATE_STEPS`` is on; the ``local`` executor uses the same launcher.
The child is forked from a preloaded fork server (:mod:`apps.compute.launcher`) that never imported
Django and was started with a scrubbed environment. What that protects, on this machine, is what
:func:`protections` says:

- always: the child's environment holds no secret key, database, broker or OIDC settings (an
  allow-list, :func:`apps.compute.launcher.scrubbed_environment`); it inherits no open file
  descriptor of the worker (no database or broker connection); its working directory, ``HOME`` and
  ``TMPDIR`` are its scratch directory; it is stopped (SIGTERM, then SIGKILL) on cancel and at its
  walltime, so a hung block no longer holds the worker;
- when the worker runs as root (``ILIAD_ISOLATE_UID``, default 65534 "nobody"): the child runs as
  that unprivileged user in a mount namespace of its own where ``ILIAD_HOME`` (secret key file, SQLite
  database, every run's artifacts) and the artifact root are empty, except its own output directory,
  its inputs and the data space; it cannot read ``/proc/<worker>/environ`` nor files only root may read;
- when the worker does not run as root: the child has the worker's user id, so it CAN read any file
  the worker can (the secret key file, a SQLite database) and the worker's ``/proc/<pid>/environ``.
  Only the environment, the file descriptors and the working directory are separated then.

Settings (environment): ``ILIAD_ISOLATE_UID`` / ``ILIAD_ISOLATE_GID`` (numeric ids, or ``none`` to
keep the worker's), ``ILIAD_ISOLATE_HIDE`` (more directories to hide, separated by ``:``),
``ILIAD_ISOLATE_GRACE_S`` (how long a block has to stop after SIGTERM or its walltime, default 3),
``ILIAD_ISOLATE_NETWORK=none`` (as root: steps get no network at all; blocks that download data then
fail, but a step can no longer reach the broker or the database over the network).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings

from apps.compute.launcher import EXIT_SETUP_FAILED, ForkServer, LauncherError, read_no_follow, reset_file
from blocks.context import Emit
from blocks.manifest import ResultManifest, StepManifest, path_from_uri
from blocks.runner import EXIT_WALLTIME

logger = logging.getLogger(__name__)

FIRST_POLL_S = 0.002
POLL_S = 0.05
"""How often the events file is read while the child runs: every 2 ms at first, doubling up to this
(a short step's result is seen within milliseconds; its process ending is noticed at once anyway)."""
NOBODY = 65534


def _id_from_env(name: str) -> int | None:
    value = os.environ.get(name, "").strip().lower()
    if value == "none":
        return None
    if value:
        return int(value)
    return NOBODY if os.geteuid() == 0 else None


def grace_s() -> float:
    return float(os.environ.get("ILIAD_ISOLATE_GRACE_S", "3"))


def unreachable_path(uid: int, paths: list[Path], hidden: list[Path]) -> tuple[Path, Path] | None:
    """The first of ``paths`` that user ``uid`` cannot reach, with the directory on its way that
    stops it (neither theirs nor open to others: e.g. a checkout under ``/root`` or in a ``mktemp -d``
    folder, both mode 0700); None when every path is reachable. Directories in ``hidden`` and below
    do not count: the child sees a fresh file system there, with its own directories mounted back."""
    hidden = [path.resolve() for path in hidden]
    for path in paths:
        for directory in [*reversed(path.resolve().parents), path.resolve()]:
            if any(directory == root or root in directory.parents for root in hidden):
                break
            try:
                info = directory.stat()
            except OSError:
                break  # not created yet: what lies below is made by the portal
            if info.st_uid != uid and not info.st_mode & 0o001:
                return path, directory
    return None


def launcher_config() -> dict[str, Any]:
    """The fork server's configuration, from the settings (see the module docstring)."""
    uid = _id_from_env("ILIAD_ISOLATE_UID")
    if uid is not None and os.geteuid() == 0:
        # What the child opens after the fork: its inputs and outputs, the data space. The Python
        # installation and the block library are already loaded by the preloading fork server.
        needed = [Path(settings.ILIAD_ARTIFACT_ROOT), Path(settings.ILIAD_DATA_DIR)]
        hidden = [Path(settings.ILIAD_HOME), Path(settings.ILIAD_ARTIFACT_ROOT)]
        blocked = unreachable_path(uid, needed, hidden)
        if blocked is not None:
            # The child could not write its outputs nor import the block library: it keeps the
            # worker's user (environment and descriptors are still separated) and the log says why.
            logger.warning(
                "isolated steps run as the worker's user, not as uid %s: it cannot reach %s (%s is "
                "mode %o); move the installation or open that directory to run steps as uid %s",
                uid, blocked[0], blocked[1], blocked[1].stat().st_mode & 0o777, uid,
            )
            uid = None
    opened: list[str] = []  # closed directories the children see as an empty tmpfs ...
    code: list[str] = []  # ... with the Python installation or the checkout mounted back, read-only
    if uid is not None and os.geteuid() == 0:
        opened, code = _code_paths_to_open(uid)
        if opened is None:
            uid = None
            opened, code = [], []
    gid = _id_from_env("ILIAD_ISOLATE_GID") if uid is not None else None
    hide = [str(settings.ILIAD_HOME), str(settings.ILIAD_ARTIFACT_ROOT), *opened]
    hide += [path for path in os.environ.get("ILIAD_ISOLATE_HIDE", "").split(":") if path]
    return {
        "uid": uid,
        "gid": gid if gid is not None else uid,
        "hide": hide,
        "keep_readonly": [str(settings.ILIAD_DATA_DIR), *code],
        "no_network": os.environ.get("ILIAD_ISOLATE_NETWORK", "").strip().lower() in ("none", "off", "false"),
        "env": {
            "ILIAD_DATA_DIR": str(settings.ILIAD_DATA_DIR),
            "ILIAD_ARTIFACT_ROOT": str(settings.ILIAD_ARTIFACT_ROOT),
            "ILIAD_STORE_ROOT": str(settings.ILIAD_ARTIFACT_ROOT),
        },
    }


def _code_paths_to_open(uid: int) -> tuple[list[str] | None, list[str]]:
    """The Python installation, the virtualenv and the checkout must stay readable by the children:
    a block imports modules the fork server never loaded (the standard library's ``getopt``, say) when
    it runs. Where one of them lies under a directory closed to others (Python installed under
    ``/root``, mode 0700), the children get that directory as an empty tmpfs with the installation
    mounted back read-only. Returns (directories to cover, paths to mount back), or (None, []) when
    mounting a path back would also show the portal's data (ILIAD_HOME inside the checkout, itself
    closed): the children then keep the worker's user, and the log says why."""
    portal_data = [Path(settings.ILIAD_HOME).resolve(), Path(settings.ILIAD_ARTIFACT_ROOT).resolve()]
    opened: list[str] = []
    code: list[str] = []
    for path in dict.fromkeys(Path(p).resolve() for p in (sys.base_prefix, sys.prefix, settings.BASE_DIR)):
        blocked = unreachable_path(uid, [path], portal_data)
        if blocked is None:
            continue
        closed = blocked[1]
        if any(data == path or path in data.parents for data in portal_data):
            logger.warning(
                "isolated steps run as the worker's user, not as uid %s: %s is closed to others "
                "(mode %o) and holds the portal's data; move the installation or open that directory",
                uid, closed, closed.stat().st_mode & 0o777,
            )
            return None, []
        if str(closed) not in opened:
            opened.append(str(closed))
        code.append(str(path))
    return opened, code


def protections(config: dict[str, Any] | None = None) -> dict[str, bool]:
    """Which protections hold for children of a launcher with ``config`` on this machine."""
    config = config if config is not None else launcher_config()
    separate_user = config.get("uid") is not None and os.geteuid() == 0
    return {
        "scrubbed_environment": True,
        "no_inherited_descriptors": True,
        "killed_on_cancel_and_walltime": True,
        "separate_user": separate_user,
        "portal_home_hidden": separate_user and bool(config.get("hide")),
        "no_network": separate_user and bool(config.get("no_network")),
    }


_launcher: ForkServer | None = None
_launcher_lock = threading.Lock()


def default_launcher() -> ForkServer:
    """This process's fork server (started on first use, with :func:`launcher_config`)."""
    global _launcher
    with _launcher_lock:
        if _launcher is None:
            _launcher = ForkServer(launcher_config())
        return _launcher


def run_isolated(
    manifest: StepManifest,
    *,
    emit: Emit | None = None,
    cancel_requested: Callable[[], bool] | None = None,
    walltime_s: float | None = None,
    store_root: Path | None = None,
    launcher: ForkServer | None = None,
) -> ResultManifest:
    """Run one step in an isolated child process and return its result manifest.

    Events the block emits are passed to ``emit`` as they arrive (without their ``ts``).
    ``cancel_requested`` is asked every ``POLL_S``: True stops the child (SIGTERM, SIGKILL after
    ``ILIAD_ISOLATE_GRACE_S``) and the step ends ``cancelled``; an exception it raises (e.g.
    WalltimeExceeded) stops the child and fails the step with that error. ``walltime_s`` (default
    the manifest's ``resources.walltime_s``) is enforced by the child itself and, should it not stop,
    by the launcher. A child that ends without a result gives a failed result saying how it ended.
    Raises LauncherError when the launcher cannot be started or refuses the manifest.
    """
    launcher = launcher or default_launcher()
    emit = emit or (lambda event: None)
    output_dir = path_from_uri(manifest.output_dir, store_root)
    events_path = path_from_uri(manifest.events_uri, store_root)
    result_path = path_from_uri(manifest.result_uri, store_root)
    output_dir.mkdir(parents=True, exist_ok=True)
    events_path.parent.mkdir(parents=True, exist_ok=True)
    reset_file(events_path)  # a previous attempt's events are not this one's
    result_path.unlink(missing_ok=True)
    limit = float(walltime_s or manifest.resources.walltime_s)
    pid, _ = launcher.start(
        manifest.to_dict(), store_root=str(store_root) if store_root else None, walltime_s=limit,
        grace_s=grace_s(),
    )
    offset, stopped_with, delay = 0, None, FIRST_POLL_S
    while True:
        ended = launcher.wait(pid, delay)
        offset, finished = forward_events(events_path, offset, emit)
        if ended is not None:
            break
        if finished:  # its result is written; the process only has its own ending left to do
            # (and should a block have faked that last event, it does not run on unwatched)
            launcher.stop(pid, grace_s=grace_s())
            launcher.forget(pid)
            break
        delay = min(delay * 2, POLL_S)
        if stopped_with is None and cancel_requested is not None:
            try:
                if cancel_requested():
                    stopped_with = ("cancelled", "the run was cancelled")
            except Exception as error:  # e.g. WalltimeExceeded: the step fails with it
                stopped_with = (type(error).__name__, str(error))
            if stopped_with is not None:
                launcher.stop(pid, grace_s=grace_s())
    result = read_result(result_path)
    if result is not None:
        if stopped_with is not None and (result.error or {}).get("type") == "cancelled":
            result.error = {"type": stopped_with[0], "message": stopped_with[1], "traceback": ""}
        return result
    if stopped_with is not None:
        kind, message = stopped_with
    elif ended.reason == "walltime exceeded" or ended.code == EXIT_WALLTIME:
        kind = "WalltimeExceeded"
        message = f"step ran longer than its walltime of {limit:g} s; it was stopped"
    elif ended.reason == "cancelled":
        kind, message = "cancelled", "the step was stopped"
    elif ended.code == EXIT_SETUP_FAILED:
        kind = "IsolationError"
        message = "the step's isolated process could not be set up (see the worker log)"
    else:
        how = f"signal {ended.signal}" if ended.signal else f"exit code {ended.code}"
        kind, message = "StepDied", f"the step's process ended without a result ({how})"
    return ResultManifest(
        run_id=manifest.run_id, step_id=manifest.step_id, block_id=manifest.block_id,
        block_version=manifest.block_version, ok=False, attempt=manifest.attempt,
        error={"type": kind, "message": message, "traceback": ""},
    )


def read_result(path: Path) -> ResultManifest | None:
    """The result manifest a step's block wrote, or None when there is none (or a symbolic link
    there, which the block may have put to make the portal read one of its own files)."""
    try:
        return ResultManifest.from_dict(json.loads(read_no_follow(path)))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def read_events(path: Path, offset: int) -> tuple[list[dict[str, Any]], int]:
    """Whole JSON lines of an events file from byte ``offset``, and the offset after the last one
    (a line still being written is left for next time). No file yet (or a symbolic link, which is
    never followed): nothing, same offset."""
    try:
        data = read_no_follow(path, offset)
    except OSError:
        return [], offset
    end = data.rfind(b"\n") + 1
    events = []
    for line in data[:end].splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:  # not ours to judge; a broken line is skipped, not fatal
            continue
    return events, offset + end


def forward_events(path: Path, offset: int, emit: Emit) -> tuple[int, bool]:
    """Pass the progress and log events appended since ``offset`` to ``emit``; the new offset, and
    whether the runner's last event (``result``) was among them."""
    events, offset = read_events(path, offset)
    finished = False
    for event in events:
        if event.get("kind") in ("progress", "log"):
            event.pop("ts", None)
            emit(event)
        finished = finished or event.get("kind") == "result"
    return offset, finished


__all__ = ["LauncherError", "run_isolated", "protections", "launcher_config", "read_events", "read_result"]
