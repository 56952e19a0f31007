"""The supervisor of the embedded launcher on real child processes (no Django, no broker): back-off,
the crash-loop report, ordered warm stops and the forced stop."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import pytest

from iliad_portal import supervisor as sup


def _python(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], process_group=0, stdin=subprocess.DEVNULL)


def _recorder():
    lines: list[tuple[float, str]] = []
    return lines, lambda message: lines.append((time.monotonic(), message))


def test_a_crashing_child_is_restarted_with_doubling_back_off_and_a_crash_loop_is_reported(capfd):
    lines, log = _recorder()
    supervisor = sup.Supervisor(log)
    child = supervisor.add(sup.Child("flaky", lambda: _python("import sys; sys.exit(3)")))
    supervisor.sleep(1 + 2 + 4 + 1.5)  # three restarts fit
    supervisor.stop_requested = signal.SIGTERM
    supervisor.shutdown(["flaky"])

    exits = [message for _, message in lines if "exited with code 3" in message]
    assert exits[:4] == [
        "flaky exited with code 3; restarting in 1 s",
        "flaky exited with code 3; restarting in 2 s",
        "flaky exited with code 3; restarting in 4 s",
        "flaky exited with code 3; restarting in 8 s",
    ]
    assert child.restarts == 3
    # the delay between an exit and the next start follows the back-off
    starts = [at for at, message in lines if message.startswith("restarting flaky")]
    exit_times = [at for at, message in lines if "exited with code 3" in message]
    for exited, started, delay in zip(exit_times, starts, (1, 2, 4), strict=False):
        assert delay - 0.05 <= started - exited <= delay + 1.0
    out, err = capfd.readouterr()
    assert "flaky has stopped 3 times" in out and "flaky has stopped 3 times" in err


def test_a_child_killed_by_a_signal_is_named_and_restarted():
    lines, log = _recorder()
    supervisor = sup.Supervisor(log)
    child = supervisor.add(sup.Child("sleeper", lambda: _python("import time; time.sleep(60)")))
    first = child.pid
    child.process.send_signal(signal.SIGKILL)
    supervisor.sleep(2.0)
    try:
        assert "sleeper exited with signal 9 (SIGKILL); restarting in 1 s" in [m for _, m in lines]
        assert child.running and child.pid != first
    finally:
        supervisor.stop_requested = signal.SIGTERM
        supervisor.shutdown(["sleeper"])
    assert not child.running


WARM = """
import signal, sys, time
def stop(*_):
    time.sleep({delay})  # "finishing its running task"
    print("{name} finished", flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGQUIT, lambda *_: (print("{name} handed back", flush=True), sys.exit(1)))
print("{name} up", flush=True)
while True:
    time.sleep(0.05)
"""


def _warm_child(name: str, delay: float, out) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", WARM.format(name=name, delay=delay)],
        process_group=0,
        stdout=out,
        stdin=subprocess.DEVNULL,
    )
    return process


def _wait_for(path, text: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in path.read_text():
        assert time.monotonic() < deadline, path.read_text()
        time.sleep(0.02)


def test_shutdown_stops_children_in_order_and_waits_for_a_warm_stop(tmp_path):
    out_path = tmp_path / "out"
    with open(out_path, "w") as out:
        lines, log = _recorder()
        supervisor = sup.Supervisor(log)
        for name, delay in (("web", 0.0), ("worker", 1.5), ("broker", 0.0)):
            supervisor.add(sup.Child(name, lambda n=name, d=delay: _warm_child(n, d, out), grace=10))
        for name in ("web", "worker", "broker"):
            _wait_for(out_path, f"{name} up")
        supervisor.stop_requested = signal.SIGINT
        started = time.monotonic()
        supervisor.shutdown(["web", "worker", "broker"])
    assert 1.4 < time.monotonic() - started < 8
    text = out_path.read_text()
    assert text.index("web finished") < text.index("worker finished") < text.index("broker finished")
    assert [m.split()[1] for _, m in lines if m.startswith("stopping ")] == ["web", "worker", "broker"]


@pytest.mark.parametrize("how", ["second signal", "grace runs out"])
def test_a_forced_stop_sends_the_force_signal_then_kills(tmp_path, how):
    out_path = tmp_path / "out"
    with open(out_path, "w") as out:
        lines, log = _recorder()
        supervisor = sup.Supervisor(log)
        child = supervisor.add(
            sup.Child(
                "worker",
                lambda: _warm_child("worker", 30, out),
                grace=1.0 if how == "grace runs out" else 30,
                force_signal=signal.SIGQUIT,
            )
        )
        _wait_for(out_path, "worker up")
        supervisor._on_signal(signal.SIGINT, None)
        if how == "second signal":

            def second() -> None:
                time.sleep(sup.SIGNAL_DEBOUNCE_S + 0.2)
                supervisor._on_signal(signal.SIGINT, None)

            threading.Thread(target=second).start()
        started = time.monotonic()
        supervisor.shutdown(["worker"])
    assert time.monotonic() - started < sup.FORCE_KILL_AFTER_S
    assert not child.running
    # the warm stop was under way (30 s) when the force signal (SIGQUIT) ended it
    assert "worker handed back" in out_path.read_text()
    messages = [m for _, m in lines]
    if how == "grace runs out":
        assert "worker did not stop within 1 s: forcing it" in messages
    else:
        assert any("again: stopping at once" in m for m in messages)


def test_collectstatic_is_skipped_only_while_the_static_sources_are_unchanged(settings, tmp_path):
    """A second ``make run`` start skips the ~30 s collectstatic when nothing it copies changed."""
    from iliad_portal.setup_steps import static_sources_fingerprint

    source = tmp_path / "static"
    source.mkdir()
    (source / "app.css").write_text("body { color: black }")
    settings.STATICFILES_DIRS = [source]
    first = static_sources_fingerprint()
    assert static_sources_fingerprint() == first
    (source / "app.css").write_text("body { color: navy }")  # other size
    changed = static_sources_fingerprint()
    assert changed != first
    (source / "new.js").write_text("")
    assert static_sources_fingerprint() != changed
