"""Supervision of the embedded launcher's long-running children (broker, worker, beat, web).

A child that exits while the launcher is not stopping is restarted after a back-off of 1, 2, 4, …
seconds (capped at :data:`BACKOFF_MAX_S`; back to 1 s once it has run :data:`STABLE_AFTER_S`
without exiting), and the console says so::

    [iliad] worker exited with signal 9 (SIGKILL); restarting in 1 s

A child exiting :data:`CRASH_LOOP_COUNT` times within :data:`CRASH_LOOP_WINDOW_S` is reported in a
banner on stdout and stderr (it is still restarted, at the capped back-off: an operator may fix what
it needs, e.g. free a port, without restarting the portal).

Stopping (:meth:`Supervisor.shutdown`) goes through the children in the order given, one at a time:
each gets its stop signal (SIGTERM: a Celery worker then finishes its running tasks, a "warm"
shutdown) and its own grace period; a second Ctrl-C, or the grace period running out, sends the
child's force signal (SIGQUIT: Celery's cold shutdown, which hands the running tasks back to the
queue) and, a few seconds later, SIGKILL to its whole process group.

Imports nothing from Django: the launcher runs before Django is configured.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import FrameType

#: first restart delay, doubled on each crash in a row
BACKOFF_START_S = 1.0
#: the longest restart delay
BACKOFF_MAX_S = 30.0
#: a child that ran this long since its last start is restarted at BACKOFF_START_S again
STABLE_AFTER_S = 30.0
#: this many exits within CRASH_LOOP_WINDOW_S seconds is reported as a crash loop
CRASH_LOOP_COUNT = 3
CRASH_LOOP_WINDOW_S = 60.0
#: seconds between a child's force signal and SIGKILL of its process group
FORCE_KILL_AFTER_S = 5.0
#: a second stop signal this soon after the first is the same request (e.g. make forwarding it)
SIGNAL_DEBOUNCE_S = 1.0
#: how often the supervision loop looks at its children
POLL_S = 0.2


def _log(message: str) -> None:
    print(f"[iliad] {message}", flush=True)


def describe_exit(returncode: int) -> str:
    """``"exited with signal 9 (SIGKILL)"`` or ``"exited with code 1"``."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "unknown signal"
        return f"exited with signal {-returncode} ({name})"
    return f"exited with code {returncode}"


def signal_group(process: subprocess.Popen, signum: int) -> None:
    """Send ``signum`` to the process group led by ``process`` (children start with process_group=0).

    The group outlives a dead leader while members remain (Linux keeps the pgid reserved meanwhile);
    ESRCH means it is empty.
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


@dataclass(eq=False)
class Child:
    """A supervised long-running child.

    ``start`` starts it and returns its process (the leader of its own process group); it may block
    until the child is ready (the broker waits for PING) and raises ``RuntimeError`` when it cannot
    start, which counts as a crash. ``grace`` is how long a stop waits after ``stop_signal`` before
    sending ``force_signal`` (then SIGKILL to the group after :data:`FORCE_KILL_AFTER_S`).
    ``stop_note`` is printed when the stop starts (e.g. that running steps are being waited for).
    """

    name: str
    start: Callable[[], subprocess.Popen]
    grace: float = 10.0
    stop_signal: int = signal.SIGTERM
    force_signal: int = signal.SIGKILL
    stop_note: str = ""
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    backoff: float = 0.0
    restart_at: float | None = None
    restarts: int = 0
    exits: deque[float] = field(default_factory=lambda: deque(maxlen=CRASH_LOOP_COUNT))

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class Supervisor:
    """Starts children, restarts those that exit, and stops them in order on request."""

    def __init__(self, log: Callable[[str], None] = _log) -> None:
        self.log = log
        self.children: list[Child] = []
        self.stop_requested: int | None = None  # signal number of the first stop request
        self.force_requested = False
        self._first_signal_at = 0.0

    # signals ------------------------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        now = time.monotonic()
        if self.stop_requested is None:
            self.stop_requested = signum
            self._first_signal_at = now
            self.log(
                f"received {signal.Signals(signum).name}: shutting down "
                "(running steps are allowed to finish; press Ctrl-C again to stop at once)"
            )
        elif not self.force_requested and now - self._first_signal_at >= SIGNAL_DEBOUNCE_S:
            self.force_requested = True
            self.log(f"received {signal.Signals(signum).name} again: stopping at once")

    # starting and restarting ---------------------------------------------------------------
    def add(self, child: Child) -> Child:
        """Supervise ``child`` from now on, starting it unless its ``process`` is already set."""
        self.children.append(child)
        if child.process is None:
            self._start(child)
        return child

    def child(self, name: str) -> Child:
        return next(child for child in self.children if child.name == name)

    def _start(self, child: Child) -> None:
        child.restart_at = None
        child.started_at = time.monotonic()
        try:
            child.process = child.start()
        except RuntimeError as exc:
            child.process = None
            self.log(f"{child.name} could not start: {exc}")
            self._schedule_restart(child, "could not start")

    def _schedule_restart(self, child: Child, how: str) -> None:
        now = time.monotonic()
        if now - child.started_at >= STABLE_AFTER_S:
            child.backoff = 0.0
        child.backoff = BACKOFF_START_S if child.backoff == 0 else min(child.backoff * 2, BACKOFF_MAX_S)
        child.restart_at = now + child.backoff
        child.exits.append(now)
        self.log(f"{child.name} {how}; restarting in {child.backoff:g} s")
        if len(child.exits) == CRASH_LOOP_COUNT and now - child.exits[0] <= CRASH_LOOP_WINDOW_S:
            self._report_crash_loop(child, how, now - child.exits[0])

    def _report_crash_loop(self, child: Child, how: str, window: float) -> None:
        bar = "!" * 78
        text = (
            f"\n{bar}\n!! {child.name} has stopped {CRASH_LOOP_COUNT} times in {window:.0f} s "
            f"(last: {how}).\n!! It is restarted every {BACKOFF_MAX_S:g} s at most; its output above "
            f"says what is wrong.\n{bar}\n"
        )
        print(text, flush=True)
        print(text, file=sys.stderr, flush=True)

    def poll(self) -> None:
        """Notice children that exited (and kill what is left of their process group), restart
        those whose back-off has elapsed. Does nothing once a stop was requested."""
        if self.stop_requested is not None:
            return
        for child in self.children:
            if child.process is not None and child.restart_at is None:
                code = child.process.poll()
                if code is not None:
                    # e.g. the prefork pool processes of a worker whose main process was killed
                    signal_group(child.process, signal.SIGKILL)
                    self._schedule_restart(child, describe_exit(code))
            if child.restart_at is not None and time.monotonic() >= child.restart_at:
                child.restarts += 1
                self.log(f"restarting {child.name} (restart {child.restarts})")
                self._start(child)
                if child.process is not None:
                    self.log(f"{child.name} is running again (pid {child.pid})")

    def sleep(self, seconds: float) -> bool:
        """Supervise for ``seconds``; False as soon as a stop is requested."""
        deadline = time.monotonic() + seconds
        while self.stop_requested is None:
            self.poll()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True
            time.sleep(min(POLL_S, remaining))
        return False

    def run(self) -> None:
        """Supervise until a stop is requested."""
        while self.sleep(3600):
            pass

    # stopping ------------------------------------------------------------------------------
    def shutdown(self, order: Iterable[str]) -> None:
        """Stop the named children one after another, then any other child, then reap them all."""
        by_name = {child.name: child for child in self.children}
        ordered = [by_name[name] for name in order if name in by_name]
        ordered += [child for child in self.children if child not in ordered]
        for child in ordered:
            self._stop(child)
        self.children.clear()

    def _stop(self, child: Child) -> None:
        process = child.process
        child.restart_at = None
        if process is None:
            return
        if process.poll() is None:
            self.log(f"stopping {child.name} (pid {process.pid}){child.stop_note}")
            if self.force_requested:
                self._force(child)
            else:
                # only the leader: a Celery worker stops its own pool (its warm shutdown lets the pool
                # finish its tasks; a SIGTERM to the pool processes would end them)
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(child.stop_signal)
                deadline = time.monotonic() + child.grace
                while process.poll() is None and not self.force_requested and time.monotonic() < deadline:
                    time.sleep(0.05)
                if process.poll() is None:
                    if not self.force_requested:
                        self.log(f"{child.name} did not stop within {child.grace:g} s: forcing it")
                    self._force(child)
        # whatever is left of its group (grandchildren that outlived their parent)
        signal_group(process, signal.SIGKILL)
        process.wait()

    def _force(self, child: Child) -> None:
        process = child.process
        assert process is not None
        if child.force_signal != signal.SIGKILL:
            # only the leader: a Celery worker's main process cancels its pool's tasks itself
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(child.force_signal)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(FORCE_KILL_AFTER_S)
        signal_group(process, signal.SIGKILL)
        process.wait()


def run_to_completion(supervisor: Supervisor, name: str, start: Callable[[], subprocess.Popen]) -> int | None:
    """Run a one-off setup command; its exit code, or None if a stop was requested meanwhile
    (the command is then stopped)."""
    process = start()
    while process.poll() is None:
        if supervisor.stop_requested is not None:
            signal_group(process, signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                signal_group(process, signal.SIGKILL)
                process.wait()
            return None
        time.sleep(0.1)
    return process.returncode
