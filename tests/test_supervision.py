"""The embedded launcher (``python -m iliad_portal.embedded``, what ``make run`` runs) supervises its
children: real processes, killed for real.

One launcher is started for the module (its setup steps — migrate, collectstatic, the catalog, the
demo data — take most of a minute on a fresh ILIAD_HOME) on free ports with a temporary ILIAD_HOME
and its own embedded broker; the tests run in order and the last one stops it with SIGINT.

Not marked ``e2e``: the launcher brings its own SQLite database and broker, so a second pass on
PostgreSQL + Redis would test the same thing again.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import redis
import requests
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from iliad_portal import embedded
from tests.conftest import document, node

STARTUP_TIMEOUT_S = 240.0


class Launcher:
    """A running ``python -m iliad_portal.embedded`` and what the tests need to talk to it."""

    def __init__(self, home: Path, port: int, process: subprocess.Popen, log_path: Path) -> None:
        self.home = home
        self.port = port
        self.process = process
        self.log_path = log_path
        self.base = f"http://127.0.0.1:{port}"
        self.http = requests.Session()
        self.token = ""

    # console ---------------------------------------------------------------------------------
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, pattern: str, timeout: float, after: int = 0) -> re.Match:
        """Wait until the console (from character ``after`` on) matches ``pattern``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.log()[after:])
            if match:
                return match
            if self.process.poll() is not None:
                pytest.fail(f"the launcher exited ({self.process.returncode}):\n{self.log()[-4000:]}")
            time.sleep(0.1)
        pytest.fail(f"no {pattern!r} on the console within {timeout:.0f} s:\n{self.log()[-4000:]}")

    # children --------------------------------------------------------------------------------
    def child_pid(self, kind: str) -> int | None:
        """pid of the launcher's live ``broker``/``worker``/``beat``/``web`` child."""
        needles = {
            "broker": ("valkey-server", "redis-server"),
            "worker": (" worker",),
            "beat": (" beat",),
            "web": ("uvicorn",),
        }[kind]
        try:
            children = psutil.Process(self.process.pid).children()
        except psutil.NoSuchProcess:
            return None
        for child in children:
            try:
                cmdline = " ".join(child.cmdline())
                if child.status() != psutil.STATUS_ZOMBIE and any(n in cmdline for n in needles):
                    return child.pid
            except psutil.NoSuchProcess:
                continue
        return None

    def wait_new_child(self, kind: str, old_pid: int, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid = self.child_pid(kind)
            if pid is not None and pid != old_pid:
                return pid
            time.sleep(0.1)
        pytest.fail(f"no new {kind} process within {timeout:.0f} s:\n{self.log()[-4000:]}")

    # API -------------------------------------------------------------------------------------
    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Token {self.token}"}
        return self.http.request(method, self.base + path, headers=headers, timeout=30, **kwargs)

    def submit(self, pipeline_id: int) -> requests.Response:
        """Start a run (its steps really execute: not taken from the step cache)."""
        return self.api("POST", f"/api/pipelines/{pipeline_id}/runs/", json={"cache": False})

    def wait_run(self, run_id: int, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        run: dict = {}
        while time.monotonic() < deadline:
            response = self.api("GET", f"/api/runs/{run_id}/")
            if response.status_code == 200:
                run = response.json()
                if run["state"] in ("succeeded", "failed", "cancelled"):
                    return run
            time.sleep(0.2)
        pytest.fail(f"run {run_id} did not finish within {timeout:.0f} s: {run}\n{self.log()[-4000:]}")

    def session_cookie(self) -> str:
        """Sign in as the demo user with the login form; the session cookie for WebSockets."""
        browser = requests.Session()
        browser.get(f"{self.base}/login/", timeout=30)
        csrf = browser.cookies["csrftoken"]
        password = (self.home / "demo-password").read_text().strip().splitlines()[-1].split()[-1]
        response = browser.post(
            f"{self.base}/login/",
            data={
                "username": "demo",
                "password": password,
                "csrfmiddlewaretoken": csrf,
            },
            headers={"Referer": f"{self.base}/login/"},
            timeout=30,
            allow_redirects=False,
        )
        assert response.status_code == 302, response.text[:2000]
        return browser.cookies["sessionid"]

    def websocket(self, run_id: int, cookie: str):
        return ws_connect(
            f"ws://127.0.0.1:{self.port}/ws/runs/{run_id}/",
            additional_headers={"Cookie": f"sessionid={cookie}", "Origin": self.base},
            open_timeout=10,
        )


def _launcher_env(home: Path, port: int) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("REDIS_URL", "CELERY_BROKER_URL", "DATABASE_URL"):
        env.pop(name, None)  # its own embedded broker and SQLite database under ILIAD_HOME
    env.update(
        ILIAD_HOME=str(home),
        PORT=str(port),
        HOST="127.0.0.1",
        ILIAD_BLOCK_MODULES="tests.support.blocks",
        ILIAD_SHUTDOWN_GRACE_S="40",
        PYTHONUNBUFFERED="1",
    )
    return env


def _start_launcher(home: Path, port: int) -> Launcher:
    """Start the launcher, wait for its banner and make an API token for the demo user."""
    log_path = home / "console.log"
    with open(log_path, "ab") as console:
        process = subprocess.Popen(
            [sys.executable, "-m", "iliad_portal.embedded"],
            cwd=embedded.REPO_ROOT,
            env=_launcher_env(home, port),
            stdout=console,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            process_group=0,
        )
    portal = Launcher(home, port, process, log_path)
    mark = len(portal.log())
    try:
        portal.wait_log(r"Iliad Portal is running at", STARTUP_TIMEOUT_S, after=mark)
        broker_url = re.search(r"started \S+ on (redis://\S+)", portal.log()[mark:]).group(1)
        token_env = _launcher_env(home, port) | {"REDIS_URL": broker_url}
        out = subprocess.run(
            [sys.executable, "manage.py", "create_api_token", "demo", "--name", "supervision tests"],
            cwd=embedded.REPO_ROOT,
            env=token_env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        portal.token = out.strip().split()[-1]
    except BaseException:
        _stop(process)
        raise
    return portal


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            for child in psutil.Process(process.pid).children(recursive=True):
                child.kill()
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def launcher(tmp_path_factory):
    portal = _start_launcher(tmp_path_factory.mktemp("launcher-home"), embedded.free_port())
    try:
        yield portal
    finally:
        _stop(portal.process)


@pytest.fixture(scope="module")
def pipeline_id(launcher) -> int:
    doc = document([node("only", "utility.noop")], [])
    response = launcher.api("POST", "/api/pipelines/", json={"name": "supervision", "document": doc})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _iso_to_epoch(value: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def test_a_killed_worker_is_restarted_and_runs_complete_afterwards(launcher, pipeline_id):
    run = launcher.submit(pipeline_id)
    assert run.status_code == 201, run.text
    done = launcher.wait_run(run.json()["id"])
    assert done["state"] == "succeeded", done["steps"]

    old = launcher.child_pid("worker")
    assert old is not None
    mark = len(launcher.log())
    os.kill(old, signal.SIGKILL)
    launcher.wait_log(r"worker exited with signal 9 \(SIGKILL\); restarting in 1 s", 10, after=mark)
    new = launcher.wait_new_child("worker", old)
    assert launcher.process.poll() is None, "the launcher must keep running"
    assert launcher.child_pid("web") is not None and launcher.child_pid("broker") is not None

    started = time.monotonic()
    run = launcher.submit(pipeline_id)
    assert run.status_code == 201, run.text
    assert launcher.wait_run(run.json()["id"])["state"] == "succeeded"
    took = time.monotonic() - started
    print(f"worker {old} killed, {new} took over; a run submitted after the restart took {took:.1f} s")


def test_a_killed_beat_is_noticed_and_restarted(launcher):
    old = launcher.child_pid("beat")
    assert old is not None
    mark = len(launcher.log())
    os.kill(old, signal.SIGKILL)
    launcher.wait_log(r"beat exited with signal 9 \(SIGKILL\); restarting in 1 s", 10, after=mark)
    new = launcher.wait_new_child("beat", old)
    # the new beat schedules again (Celery beat logs its start)
    launcher.wait_log(r"beat: Starting", 30, after=mark)
    assert psutil.pid_exists(new)


def test_while_the_broker_is_down_runs_are_refused_with_503_and_websockets_close_with_a_reason(
    launcher, pipeline_id
):
    ok = launcher.submit(pipeline_id)
    assert ok.status_code == 201, ok.text
    run_id = ok.json()["id"]
    launcher.wait_run(run_id)
    cookie = launcher.session_cookie()
    with launcher.websocket(run_id, cookie) as socket:  # the live events work while the broker is up
        assert socket.recv(timeout=10)

    broker = launcher.child_pid("broker")
    assert broker is not None
    mark = len(launcher.log())
    # Hold the launcher still so the outage lasts as long as the checks need (its supervisor would
    # restart the broker within about a second), then let it notice.
    os.kill(launcher.process.pid, signal.SIGSTOP)
    try:
        os.kill(broker, signal.SIGKILL)

        refused = launcher.submit(pipeline_id)
        assert refused.status_code == 503, refused.text
        assert "broker" in refused.json()["detail"] and "try again" in refused.json()["detail"]
        assert refused.headers.get("Retry-After") == "5"
        runs = sqlite3.connect(launcher.home / "db.sqlite3").execute("SELECT count(*) FROM runs_run")
        count_during_outage = runs.fetchone()[0]

        with launcher.websocket(run_id, cookie) as socket:
            with pytest.raises(ConnectionClosed) as closed:
                socket.recv(timeout=10)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1013
        assert "broker is down" in closed.value.rcvd.reason
    finally:
        os.kill(launcher.process.pid, signal.SIGCONT)

    launcher.wait_log(r"broker exited with signal 9 \(SIGKILL\); restarting in 1 s", 10, after=mark)
    back = launcher.wait_log(r"broker is running again", 30, after=mark)
    assert back
    returned_at = time.time()
    # nothing was created by the refused request
    db = sqlite3.connect(launcher.home / "db.sqlite3")
    assert db.execute("SELECT count(*) FROM runs_run").fetchone()[0] == count_during_outage

    # Submit as soon as the portal accepts again; the step must start within seconds.
    deadline = time.monotonic() + 30
    while True:
        response = launcher.submit(pipeline_id)
        if response.status_code == 201 or time.monotonic() > deadline:
            break
        assert response.status_code == 503, response.text
        time.sleep(0.2)
    assert response.status_code == 201, response.text
    accepted_at = time.time()
    run = launcher.wait_run(response.json()["id"], timeout=30)
    assert run["state"] == "succeeded"
    step_started = _iso_to_epoch(run["steps"][0]["started_at"])
    print(
        f"broker back → run accepted after {accepted_at - returned_at:.1f} s, "
        f"step started {step_started - accepted_at:.1f} s after that "
        f"({step_started - returned_at:.1f} s after the broker's return)"
    )
    assert step_started - returned_at < 15

    with launcher.websocket(run["id"], cookie) as socket:  # live events are back too
        assert socket.recv(timeout=10)


def test_sigint_lets_a_running_step_finish_then_stops_children_in_order(launcher, tmp_path):
    marker = tmp_path / "calls"
    run_id = _start_slow_run(launcher, marker, sleep_s=4.0)

    mark = len(launcher.log())
    started = time.monotonic()
    launcher.process.send_signal(signal.SIGINT)
    assert launcher.process.wait(60) == 0
    took = time.monotonic() - started
    console = launcher.log()[mark:]
    order = [console.index(f"stopping {name} ") for name in ("web", "beat", "worker", "broker")]
    assert order == sorted(order), console
    assert "did not stop" not in console, console
    db = sqlite3.connect(launcher.home / "db.sqlite3")
    state, step_state = db.execute(
        "SELECT r.state, s.state FROM runs_run r JOIN runs_steprun s ON s.run_id = r.id WHERE r.id = ?",
        (run_id,),
    ).fetchone()
    assert (state, step_state) == ("succeeded", "succeeded"), console
    assert marker.read_text().count("\n") == 1
    print(f"SIGINT with a step running: stopped in {took:.1f} s, the step finished")


def _start_slow_run(portal: Launcher, marker: Path, sleep_s: float) -> int:
    doc = document([node("slow", "testing.count_calls", marker=str(marker), sleep_s=sleep_s)], [])
    created = portal.api("POST", "/api/pipelines/", json={"name": f"slow {marker.name}", "document": doc})
    assert created.status_code == 201, created.text
    run = portal.submit(created.json()["id"])
    assert run.status_code == 201, run.text
    deadline = time.monotonic() + 30
    while not (marker.exists() and marker.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), "the slow step did not start"
    return run.json()["id"]


def test_a_second_sigint_stops_at_once_and_hands_the_running_step_back_to_the_queue(launcher, tmp_path):
    assert launcher.process.poll() is not None, "runs after the SIGINT test, on its ILIAD_HOME"
    portal = _start_launcher(launcher.home, embedded.free_port())
    try:
        _start_slow_run(portal, tmp_path / "calls", sleep_s=60.0)
        mark = len(portal.log())
        started = time.monotonic()
        portal.process.send_signal(signal.SIGINT)
        portal.wait_log(r"stopping worker", 20, after=mark)
        time.sleep(0.5)
        portal.process.send_signal(signal.SIGINT)
        assert portal.process.wait(30) == 0
        took = time.monotonic() - started
    finally:
        _stop(portal.process)
    console = portal.log()[mark:]
    assert "again: stopping at once" in console, console
    # the step's message is back in the queue (the broker's append-only file), for the next start
    with embedded.start_redis(launcher.home / "redis") as broker:
        client = redis.Redis.from_url(broker.url)
        queued = client.llen("celery")
        client.close()
    assert queued >= 1, console
    print(f"second SIGINT: stopped in {took:.1f} s with a 60 s step running; {queued} message(s) queued")
