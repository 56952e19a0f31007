"""Isolated step processes (apps.compute.isolation, apps.compute.launcher): a block run through
``run_isolated`` finds none of the portal's secrets, is stopped on cancel and at its walltime, and
its events arrive in order. Real fork server, real child processes."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from django.conf import settings

from apps.compute.isolation import launcher_config, protections, run_isolated
from apps.compute.launcher import ForkServer, scrubbed_environment, start_ticks
from blocks.context import WalltimeExceeded
from blocks.manifest import StepManifest, uri_from_path
from blocks.runner import run_step

TEST_BLOCK_MODULES = "tests.support.blocks,tests.support.isolation_blocks"
SECRETS = {
    "ILIAD_SECRET_KEY": "isolation-test-secret-key-value",
    "SECRET_KEY": "isolation-test-plain-secret",
    "DATABASE_URL": "postgres://portal:db-password-value@db.example/iliad",
    "CELERY_BROKER_URL": "redis://:broker-password-value@broker.example/0",
    "OIDC_RP_CLIENT_SECRET": "oidc-secret-value",
    "ILIAD_S3_SECRET_ACCESS_KEY": "s3-secret-value",
}


@pytest.fixture(scope="module")
def launcher():
    """A fork server started while the portal's process holds secrets in its environment."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in SECRETS.items():
            patch.setenv(name, value)
        patch.setenv("ILIAD_BLOCK_MODULES", TEST_BLOCK_MODULES)
        server = ForkServer(launcher_config())
        server._ensure()
    yield server
    server.close()


def needs_separate_user() -> None:
    """Skip where the worker is not root (it cannot hand steps another user); as root (CI and the
    compose file), protections that do not hold are a failure, never a skip."""
    if os.geteuid() != 0:
        pytest.skip("the file protections need the worker to run as root (see apps.compute.isolation)")
    assert protections()["separate_user"], "running as root, yet steps do not get a user of their own"


def manifest_for(
    block_id: str, params: dict | None = None, *, run: str, walltime_s: int = 60
) -> StepManifest:
    output_dir = settings.ILIAD_ARTIFACT_ROOT / "runs" / run / "step"
    return StepManifest.from_dict({
        "manifest_version": 2, "run_id": run, "step_id": "step",
        "block": {"id": block_id, "version": "1.0.0"},
        "params": params or {}, "inputs": {}, "output_dir": uri_from_path(output_dir),
        "resources": {"walltime_s": walltime_s},
    })


def output_of(result) -> dict:
    from blocks.manifest import path_from_uri

    return json.loads(path_from_uri(result.artifacts[0].uri).read_text())


def test_the_environment_of_a_step_is_an_allow_list():
    environ = {"PATH": "/usr/bin", "LANG": "C.UTF-8", "ILIAD_DATA_DIR": "/d", "DJANGO_SETTINGS_MODULE": "x",
               "ILIAD_BLOCK_MODULES": "m", "HOME": "/root", "SSH_AUTH_SOCK": "/tmp/agent", **SECRETS,
               "REDIS_URL": "redis://x", "ILIAD_OIDC_CLIENT_ID": "c", "AWS_SECRET_ACCESS_KEY": "a"}
    assert scrubbed_environment(environ) == {
        "PATH": "/usr/bin", "LANG": "C.UTF-8", "ILIAD_DATA_DIR": "/d", "ILIAD_BLOCK_MODULES": "m",
    }
    extra = {"ILIAD_STORE_ROOT": "/s", "DATABASE_URL": "x"}
    assert scrubbed_environment({}, extra) == {"ILIAD_STORE_ROOT": "/s"}


def test_a_block_in_an_isolated_step_finds_no_secrets(launcher):
    """Environment, secret key file, database file, other runs' artifacts, the portal's and the
    launcher's /proc/<pid>/environ and /proc/<pid>/root: all out of reach."""
    needs_separate_user()
    home = settings.ILIAD_HOME
    secret_file = home / "secret_key"
    assert secret_file.read_text().strip() == settings.SECRET_KEY
    database_file = home / "isolation-db.sqlite3"
    database_file.write_text("database-content-marker")
    database_file.chmod(0o644)
    other_artifact = settings.ILIAD_ARTIFACT_ROOT / "runs" / "someone-else" / "out" / "result.json"
    other_artifact.parent.mkdir(parents=True, exist_ok=True)
    other_artifact.write_text("other-users-result-marker")
    other_artifact.chmod(0o644)
    paths = [str(secret_file), str(database_file), str(other_artifact)]

    result = run_isolated(
        manifest_for("isolation.snoop", {"paths": paths, "pids": [os.getpid()]}, run="snoop"),
        launcher=launcher,
    )

    assert result.ok, result.error
    found = output_of(result)
    text = json.dumps(found)
    markers = ["database-content-marker", "other-users-result-marker"]
    for value in [*SECRETS.values(), settings.SECRET_KEY, *markers]:
        assert value not in text
    for name in ("SECRET_KEY", "ILIAD_SECRET_KEY", "DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL",
                 "DJANGO_SETTINGS_MODULE", "OIDC_RP_CLIENT_SECRET"):
        assert name not in found["environ"]
    for kind in ("files", "proc_environ", "proc_root"):
        assert all(content.startswith("denied") for content in found[kind].values()), found[kind]
    assert found["django_loaded"] is False
    assert found["uid"] == 65534
    scratch = settings.ILIAD_ARTIFACT_ROOT / "runs" / "snoop" / "step" / ".scratch"
    assert found["cwd"] == str(scratch)
    assert found["environ"]["HOME"] == found["environ"]["TMPDIR"] == str(scratch)
    # stdin/stdout/stderr, the events file, the directory being listed: no socket, no database
    assert len(found["fds"]) <= 5, found["fds"]
    # the portal itself still reads its own files
    assert database_file.read_text() == "database-content-marker"


def test_a_block_imports_what_the_fork_server_never_loaded(launcher):
    """As the separate user, with Python installed where others may not look (/root/.pyenv, /root
    being 0700, on these machines): the installation is mounted back read-only in the child's view,
    so a module a block imports only when it runs is found. Without it every such step failed with
    "No module named ..." (seen under `make run`: the demo dataset block, No module named 'getopt')."""
    import sys

    module = "tabnanny"
    assert module not in sys.modules
    result = run_isolated(
        manifest_for("isolation.late_import", {"module": module}, run="late-import"), launcher=launcher
    )
    assert result.ok, result.error
    found = output_of(result)
    assert Path(found["file"]).parent == Path(sys.base_prefix, "lib", f"python{sys.version_info.major}."
                                              f"{sys.version_info.minor}")  # fmt: skip
    if os.geteuid() == 0:
        assert found["uid"] == 65534  # still the separate user, not the worker's


def test_the_installation_is_mounted_back_but_never_the_portal_data(monkeypatch):
    from apps.compute import isolation

    home = Path(settings.ILIAD_HOME).resolve()
    for path in launcher_config()["keep_readonly"]:
        assert not home.is_relative_to(Path(path).resolve()), path
    # A closed checkout that holds ILIAD_HOME is never mounted back: the worker's user is kept instead.
    monkeypatch.setattr(isolation, "unreachable_path", lambda uid, paths, hidden: (paths[0], Path("/x")))
    monkeypatch.setattr(isolation.settings, "ILIAD_HOME", Path(settings.BASE_DIR) / "var")
    monkeypatch.setattr(isolation.Path, "stat", lambda self: os.stat("/"))
    assert isolation._code_paths_to_open(65534) == (None, [])


def test_isolated_output_equals_the_in_process_output(launcher):
    manifest = manifest_for("utility.noop", {"sleep_s": 0}, run="same")
    isolated = output_of(run_isolated(manifest, launcher=launcher))
    in_process = output_of(run_step(manifest))
    assert isolated == in_process == {"ok": True, "received": False}


def test_events_arrive_in_order(launcher):
    events = []
    result = run_isolated(manifest_for("isolation.chatty", {"lines": 40, "pause_s": 0.005}, run="chatty"),
                          emit=events.append, launcher=launcher)
    assert result.ok
    lines = [event["message"] for event in events if event["kind"] == "log"]
    assert lines == [f"line {number}" for number in range(40)]
    assert all("ts" not in event for event in events)


def test_cancel_stops_the_child_within_seconds(launcher):
    events, asked_at = [], []

    def cancel_requested() -> bool:
        asked_at.append(time.monotonic())
        return any(event["kind"] == "log" for event in events)

    started = time.monotonic()
    result = run_isolated(manifest_for("isolation.sleep", {"seconds": 60}, run="cancel"), emit=events.append,
                          cancel_requested=cancel_requested, launcher=launcher)
    assert time.monotonic() - started < 5
    assert result.error["type"] == "cancelled"
    pid = int(events[0]["message"].split()[-1])
    assert start_ticks(pid) is None
    assert not (settings.ILIAD_ARTIFACT_ROOT / "runs" / "cancel" / "step" / ".scratch").exists()


def test_a_walltime_raised_by_the_agent_fails_the_step_with_it(launcher):
    def cancel_requested() -> bool:
        raise WalltimeExceeded("step ran longer than the 1 s walltime of isolation.sleep@1.0.0")

    result = run_isolated(manifest_for("isolation.sleep", {"seconds": 60}, run="agent-walltime"),
                          cancel_requested=cancel_requested, launcher=launcher)
    assert result.error["type"] == "WalltimeExceeded"
    assert "1 s walltime" in result.error["message"]


def test_the_child_stops_itself_at_its_walltime(launcher):
    started = time.monotonic()
    result = run_isolated(manifest_for("isolation.sleep", {"seconds": 60}, run="walltime", walltime_s=1),
                          launcher=launcher)
    assert time.monotonic() - started < 4
    assert result.error["type"] == "WalltimeExceeded"
    assert "walltime of 1 s" in result.error["message"]


def test_a_hung_block_is_killed_at_its_walltime(launcher, monkeypatch):
    """SIGTERM and SIGALRM blocked: the process is ended from outside, and the worker is free again."""
    monkeypatch.setenv("ILIAD_ISOLATE_GRACE_S", "1")
    events = []
    started = time.monotonic()
    result = run_isolated(manifest_for("isolation.hang", run="hang", walltime_s=1), emit=events.append,
                          launcher=launcher)
    assert time.monotonic() - started < 5
    assert result.ok is False
    assert result.error["type"] == "WalltimeExceeded"


def test_a_bad_manifest_is_refused_before_anything_runs(launcher):
    from apps.compute.launcher import LauncherError

    manifest = StepManifest.from_dict({
        "manifest_version": 2, "run_id": "bad", "step_id": "s",
        "block": {"id": "utility.noop", "version": "1.0.0"},
        "params": {}, "inputs": {"x": {"uri": "store:../../etc/passwd", "type": "json"}},
        "output_dir": uri_from_path(settings.ILIAD_ARTIFACT_ROOT / "runs" / "bad" / "s"),
    })
    with pytest.raises(LauncherError, match="leaves|'..'"):
        launcher.start(manifest.to_dict(), store_root=str(settings.ILIAD_ARTIFACT_ROOT))


def test_the_launcher_holds_no_secrets_and_no_django(launcher):
    environ = Path(f"/proc/{launcher.server_pid}/environ").read_bytes().decode()
    for value in SECRETS.values():
        assert value not in environ
    assert "DJANGO_SETTINGS_MODULE" not in environ


def test_links_a_block_leaves_in_its_output_are_never_followed(launcher):
    """A block replaces its events file (and more) with links to the secret key file; the next
    attempt in the same directory, run by root, neither truncates, chowns nor reads through them."""
    needs_separate_user()
    secret_file = settings.ILIAD_HOME / "secret_key"
    before = (secret_file.read_text(), secret_file.stat().st_uid, secret_file.stat().st_mode)
    manifest = manifest_for("isolation.plant_links", {"target": str(secret_file)}, run="links")
    assert run_isolated(manifest, launcher=launcher).ok
    assert (settings.ILIAD_ARTIFACT_ROOT / "runs" / "links" / "step" / "_events.jsonl").is_symlink()
    events = []
    again = run_isolated(manifest_for("utility.noop", run="links"), emit=events.append, launcher=launcher)
    assert again.ok
    assert (secret_file.read_text(), secret_file.stat().st_uid, secret_file.stat().st_mode) == before
    assert settings.SECRET_KEY not in json.dumps(events)


def test_without_network_a_step_cannot_reach_the_broker(monkeypatch):
    """The broker (embedded, no password) is reachable from a step by default: a known gap. With
    ILIAD_ISOLATE_NETWORK=none it is not."""
    if os.geteuid() != 0:
        pytest.skip("needs the worker to run as root")
    from urllib.parse import urlparse

    broker = urlparse(os.environ["REDIS_URL"])
    params = {"host": broker.hostname, "port": broker.port}
    monkeypatch.setenv("ILIAD_BLOCK_MODULES", TEST_BLOCK_MODULES)
    for network, reachable in (("", True), ("none", False)):
        monkeypatch.setenv("ILIAD_ISOLATE_NETWORK", network)
        server = ForkServer(launcher_config())
        try:
            result = run_isolated(manifest_for("isolation.connect", params, run=f"net-{network or 'on'}"),
                                  launcher=server)
        finally:
            server.close()
        assert output_of(result)["connected"] is reachable, network


def test_a_step_cannot_look_into_another_running_step(launcher):
    """Both run as the same unprivileged user: the other's /proc entries (environment, its root and
    with it its private output directory) stay closed."""
    needs_separate_user()
    import threading

    events: list[dict] = []
    other = threading.Thread(target=run_isolated, daemon=True, kwargs={
        "manifest": manifest_for("isolation.sleep", {"seconds": 3}, run="neighbour"),
        "emit": events.append, "launcher": launcher})
    other.start()
    deadline = time.monotonic() + 30
    while not events and time.monotonic() < deadline:
        time.sleep(0.05)
    neighbour_pid = int(events[0]["message"].split()[-1])
    neighbour_busy = settings.ILIAD_ARTIFACT_ROOT / "runs" / "neighbour" / "step" / ".scratch" / "busy"
    params = {"paths": [str(neighbour_busy)], "pids": [neighbour_pid]}
    result = run_isolated(manifest_for("isolation.snoop", params, run="nosy"), launcher=launcher)
    found = output_of(result)
    assert found["proc_environ"][str(neighbour_pid)].startswith("denied")
    assert all(content.startswith("denied") for content in found["proc_root"].values()), found["proc_root"]
    assert found["files"][str(neighbour_busy)].startswith("denied")
    other.join(timeout=30)
