"""Step manifest version 2: store-relative URIs that cannot leave the store, resources, attempt,
events and result files; version 1 still read; the runner command's events, SIGTERM and walltime."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from blocks.manifest import (
    ManifestError,
    ResultManifest,
    StepManifest,
    StepResources,
    path_from_uri,
    store_uri,
)
from blocks.runner import EXIT_BAD_MANIFEST, EXIT_CANCELLED, EXIT_OK, EXIT_WALLTIME, run_step

REPOSITORY = Path(__file__).resolve().parents[2]


def document(**fields) -> dict:
    base = {"manifest_version": 2, "run_id": "r1", "step_id": "s1",
            "block": {"id": "utility.noop", "version": "1.0.0"}, "params": {"sleep_s": 0},
            "inputs": {}, "output_dir": "store:runs/r1/s1"}
    return {**base, **fields}


def test_version_2_round_trips_with_defaults_filled_in():
    manifest = StepManifest.from_dict(document(attempt=2, resources={"walltime_s": 30, "cpus": 2}))
    assert manifest.attempt == 2
    assert manifest.resources == StepResources(cpus=2, memory_mb=1024, walltime_s=30, gpus=0)
    data = manifest.to_dict()
    assert data["manifest_version"] == 2
    assert data["events"] == "store:runs/r1/s1/_events.jsonl"
    assert data["result"] == "store:runs/r1/s1/_result.json"
    assert StepManifest.from_dict(data) == StepManifest.from_dict({**data})


def test_version_1_documents_are_still_read():
    manifest = StepManifest.from_dict({
        "manifest_version": 1, "run_id": "1", "step_id": "a", "block": {"id": "x", "version": "1.0.0"},
        "params": {}, "inputs": {}, "output_dir": "file:///srv/runs/1/a",
    })
    assert manifest.attempt == 1 and manifest.resources == StepResources()
    assert manifest.result_uri == "file:///srv/runs/1/a/_result.json"


@pytest.mark.parametrize("fields, field_name", [
    ({"manifest_version": 3}, "manifest_version"),
    ({"attempt": 0}, "attempt"),
    ({"resources": {"walltime_s": -1}}, "resources.walltime_s"),
    ({"resources": {"walltime_s": 0}}, "resources.walltime_s"),
    ({"resources": {"disk": 1}}, "resources has unknown fields"),
    ({"resources": "big"}, "resources must be an object"),
])
def test_malformed_fields_are_named(fields, field_name):
    with pytest.raises(ManifestError, match=field_name):
        StepManifest.from_dict(document(**fields))


def test_store_uris_resolve_under_the_store_root(tmp_path):
    (tmp_path / "runs").mkdir()
    assert path_from_uri("store:runs/1/a.nc", tmp_path) == tmp_path.resolve() / "runs/1/a.nc"
    assert path_from_uri("runs/1/a.nc", tmp_path) == tmp_path.resolve() / "runs/1/a.nc"
    assert store_uri(tmp_path / "runs" / "x.json", tmp_path) == "store:runs/x.json"


@pytest.mark.parametrize("uri", ["store:../secret", "store:runs/../../secret", "store:/etc/passwd",
                                 "runs/../../x", "store:runs/link/passwd", "store:runs/link"])
def test_store_uris_never_leave_the_store(tmp_path, uri):
    store = tmp_path / "store"
    (store / "runs").mkdir(parents=True)
    (store / "runs" / "link").symlink_to("/etc")
    with pytest.raises(ManifestError):
        path_from_uri(uri, store)


def test_a_store_uri_needs_a_store_root(monkeypatch):
    monkeypatch.delenv("ILIAD_STORE_ROOT", raising=False)
    monkeypatch.delenv("ILIAD_ARTIFACT_ROOT", raising=False)
    with pytest.raises(ManifestError, match="store root"):
        path_from_uri("store:runs/1")


def test_an_unsafe_input_is_refused_before_the_block_runs(tmp_path):
    unsafe = {"trigger": {"uri": "store:../x.json", "type": "json"}}
    manifest = StepManifest.from_dict(document(inputs=unsafe))
    with pytest.raises(ManifestError, match="inputs.trigger"):
        run_step(manifest, store_root=tmp_path)
    assert not (tmp_path / "runs").exists()


def test_run_step_writes_store_relative_artifacts_and_the_result_where_the_manifest_says(tmp_path):
    manifest = StepManifest.from_dict(document(result="store:runs/r1/results/s1.json"))
    result = run_step(manifest, store_root=tmp_path)
    assert result.ok
    assert [artifact.uri for artifact in result.artifacts] == ["store:runs/r1/s1/result.json"]
    assert ResultManifest.load(tmp_path / "runs/r1/results/s1.json").ok


def start_runner(tmp_path: Path, fields: dict, *extra: str) -> tuple[subprocess.Popen, Path]:
    path = tmp_path / "step.json"
    path.write_text(json.dumps(document(**fields)))
    environment = {**os.environ, "ILIAD_BLOCK_MODULES": "tests.support.isolation_blocks"}
    process = subprocess.Popen(
        [sys.executable, "-m", "blocks.runner", str(path), "--store-root", str(tmp_path / "store"), *extra],
        cwd=REPOSITORY, env=environment, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    return process, tmp_path / "store" / "runs" / "r1" / "s1"


def read_events(output_dir: Path) -> list[dict]:
    path = output_dir / "_events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_the_command_appends_events_and_prints_them(tmp_path):
    process, output_dir = start_runner(tmp_path, {})
    stdout, _ = process.communicate(timeout=120)
    assert process.returncode == EXIT_OK
    events = read_events(output_dir)
    assert [json.loads(line) for line in stdout.splitlines()] == events
    assert events[-1]["kind"] == "result" and events[-1]["ok"] is True
    assert all("ts" in event for event in events)
    assert ResultManifest.load(output_dir / "_result.json").ok


def test_sigterm_ends_the_step_as_cancelled_and_removes_its_scratch(tmp_path):
    process, output_dir = start_runner(tmp_path, {"block": {"id": "isolation.sleep", "version": "1.0.0"},
                                                  "params": {"seconds": 60}})
    deadline = time.monotonic() + 120
    while not any(event["kind"] == "log" for event in read_events(output_dir)):
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.05)
    assert (output_dir / ".scratch" / "busy").exists()
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=5)
    assert process.returncode == EXIT_CANCELLED
    result = ResultManifest.load(output_dir / "_result.json")
    assert result.error["type"] == "cancelled"
    assert "SIGTERM" in result.error["message"]
    assert not (output_dir / ".scratch").exists()
    assert read_events(output_dir)[-1]["kind"] == "result"


def test_the_command_enforces_the_walltime(tmp_path):
    process, output_dir = start_runner(tmp_path, {"block": {"id": "isolation.sleep", "version": "1.0.0"},
                                                  "params": {"seconds": 60}, "resources": {"walltime_s": 1}})
    process.communicate(timeout=60)
    assert process.returncode == EXIT_WALLTIME
    assert ResultManifest.load(output_dir / "_result.json").error["type"] == "WalltimeExceeded"


def test_a_bad_manifest_exits_2(tmp_path):
    process, _ = start_runner(tmp_path, {"output_dir": "store:../outside"})
    process.communicate(timeout=60)
    assert process.returncode == EXIT_BAD_MANIFEST
    assert not (tmp_path / "outside").exists()
