"""blocks.runner: in-process steps chained through manifests, failures, and the command line."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from blocks.library.demo_data import make_demo_dataset
from blocks.manifest import ResultManifest, StepManifest, path_from_uri, uri_from_path
from blocks.registry import Registry, discover
from blocks.runner import RESULT_FILE, run_step
from tests.blocks.sample_blocks import FAILURE_MESSAGE

REPOSITORY = Path(__file__).resolve().parents[2]
DEMO_PARAMS = {"start": "2022-07-10", "days": 40, "lat_min": 43.0, "lat_max": 46.0, "lon_min": -6.0,
               "lon_max": -1.0, "resolution": 0.5}


@pytest.fixture(scope="module")
def registry() -> Registry:
    return discover(extra_modules=["tests.blocks.sample_blocks"])


def write_manifest(
    directory: Path, step_id: str, block_id: str, params: dict[str, Any],
    inputs: dict[str, dict[str, str]] | None = None, version: str = "1.0.0",
) -> Path:
    """Write a step manifest document to ``directory/<step_id>.json`` and return its path."""
    document = {
        "manifest_version": 1, "run_id": "run-1", "step_id": step_id,
        "block": {"id": block_id, "version": version}, "params": params, "inputs": inputs or {},
        "output_dir": uri_from_path(directory / step_id),
    }
    path = directory / f"{step_id}.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def step(
    directory: Path, registry: Registry, step_id: str, block_id: str, params: dict[str, Any],
    inputs: dict[str, dict[str, str]] | None = None, version: str = "1.0.0", **options: Any,
) -> ResultManifest:
    """Write a step manifest, load it back and run it in-process."""
    manifest = StepManifest.load(write_manifest(directory, step_id, block_id, params, inputs, version))
    return run_step(manifest, registry=registry, **options)


def artifact_input(result: ResultManifest, port: str) -> dict[str, str]:
    (record,) = [artifact for artifact in result.artifacts if artifact.port == port]
    return {"uri": record.uri, "type": record.type}


def check_artifacts(result: ResultManifest, media_types: dict[str, str]) -> None:
    assert {artifact.port: artifact.media_type for artifact in result.artifacts} == media_types
    for artifact in result.artifacts:
        data = path_from_uri(artifact.uri).read_bytes()
        assert artifact.sha256 == hashlib.sha256(data).hexdigest()
        assert artifact.size == len(data)


def test_three_step_chain(tmp_path: Path, registry: Registry) -> None:
    events: list[dict[str, Any]] = []
    demo = step(tmp_path, registry, "demo", "ocean.demo_dataset", DEMO_PARAMS, emit=events.append)
    assert demo.ok, demo.error
    check_artifacts(demo, {"dataset": "application/x-netcdf"})
    selection = {"lat_min": 44.0, "lat_max": 45.5, "lon_min": -5.0, "lon_max": -2.5,
                 "start": "2022-07-18", "end": "2022-08-07", "variables": ["sst"]}
    cut = step(tmp_path, registry, "subset", "ocean.subset", selection,
               {"dataset": artifact_input(demo, "dataset")}, emit=events.append)
    assert cut.ok, cut.error
    check_artifacts(cut, {"dataset": "application/x-netcdf"})
    mean = step(tmp_path, registry, "mean", "ocean.area_mean", {"variable": "sst"},
                {"dataset": artifact_input(cut, "dataset")}, emit=events.append)
    assert mean.ok, mean.error
    check_artifacts(mean, {"table": "text/csv"})

    table = pd.read_csv(path_from_uri(mean.artifacts[0].uri))
    expected = make_demo_dataset(**DEMO_PARAMS).sst.sel(
        lat=slice(44.0, 45.5), lon=slice(-5.0, -2.5), time=slice("2022-07-18", "2022-08-07"))
    weights = np.cos(np.deg2rad(expected.lat.values))[None, :, None]
    expected_means = (expected.values * weights).sum(axis=(1, 2)) / (weights.sum() * expected.sizes["lon"])
    assert list(table.columns) == ["time", "sst"]
    assert table["time"].iloc[0] == "2022-07-18" and table["time"].iloc[-1] == "2022-08-07"
    np.testing.assert_allclose(table["sst"].to_numpy(), expected_means, rtol=1e-6)
    assert table["sst"].min() > 23.0  # the planted heatwave

    for step_id, result in (("demo", demo), ("subset", cut), ("mean", mean)):
        written = json.loads((tmp_path / step_id / RESULT_FILE).read_text(encoding="utf-8"))
        assert written == json.loads(json.dumps(result.to_dict()))
        assert ResultManifest.from_dict(written) == result
        assert not (tmp_path / step_id / ".scratch").exists()
    assert any(event["kind"] == "progress" for event in events)
    assert not [event for event in events if event.get("level") == "error"]


def test_a_failing_block_gives_a_failed_result_with_traceback(tmp_path: Path, registry: Registry) -> None:
    events: list[dict[str, Any]] = []
    result = step(tmp_path, registry, "boom", "tests.fail", {}, emit=events.append)
    assert not result.ok and result.artifacts == []
    assert result.error is not None
    assert result.error["type"] == "RuntimeError" and result.error["message"] == FAILURE_MESSAGE
    assert "Traceback" in result.error["traceback"] and "sample_blocks.py" in result.error["traceback"]
    assert {"kind": "log", "level": "info", "message": "about to fail"} in events
    errors = [event for event in events if event["kind"] == "log" and event["level"] == "error"]
    assert len(errors) == 1 and errors[0]["message"] == f"RuntimeError: {FAILURE_MESSAGE}"
    assert json.loads((tmp_path / "boom" / RESULT_FILE).read_text(encoding="utf-8"))["ok"] is False


@pytest.mark.parametrize(("block_id", "params", "message"), [
    ("ocean.demo_dataset", {"days": 0}, "params/days: 0 is less than the minimum of 1"),
    ("ocean.demo_dataset", {"lat_min": "40"}, "params/lat_min: '40' is not of type 'number'"),
    ("ocean.demo_dataset", {"colour": "red"}, "params/(root): Additional properties are not allowed"),
    ("utility.noop", {"sleep_s": 61}, "params/sleep_s: 61 is greater than the maximum of 60"),
])
def test_invalid_params_name_the_parameter_path(
    tmp_path: Path, registry: Registry, block_id: str, params: dict, message: str
) -> None:
    result = step(tmp_path, registry, "bad", block_id, params)
    assert not result.ok and result.error is not None
    assert result.error["type"] == "BlockInputError"
    assert message in result.error["message"]


def test_input_problems_are_reported(tmp_path: Path, registry: Registry) -> None:
    missing = step(tmp_path, registry, "a", "ocean.subset", {})
    assert missing.error is not None and "input port 'dataset' is required" in missing.error["message"]
    unknown = step(tmp_path, registry, "b", "ocean.subset", {}, version="9.0.0")
    assert unknown.error is not None and unknown.error["type"] == "BlockNotFound"
    assert "has no version '9.0.0' (known: 1.0.0, 1.1.0)" in unknown.error["message"]


def test_any_input_and_optional_json_input(tmp_path: Path, registry: Registry) -> None:
    noop = step(tmp_path, registry, "noop", "utility.noop", {})
    assert noop.ok
    check_artifacts(noop, {"result": "application/json"})  # not overwritten by the result manifest
    assert json.loads(path_from_uri(noop.artifacts[0].uri).read_text()) == {"ok": True, "received": False}
    trigger = {"trigger": artifact_input(noop, "result")}
    triggered = step(tmp_path, registry, "noop2", "utility.noop", {}, trigger)
    assert json.loads(path_from_uri(triggered.artifacts[0].uri).read_text()) == {"ok": True, "received": True}
    echo = step(tmp_path, registry, "echo", "tests.echo", {}, {"value": artifact_input(noop, "result")},
                version="0.1.0")
    assert json.loads(path_from_uri(echo.artifacts[0].uri).read_text()) == {"received": "dict"}


def test_noop_sleeps_with_progress(tmp_path: Path, registry: Registry) -> None:
    events: list[dict[str, Any]] = []
    result = step(tmp_path, registry, "nap", "utility.noop", {"sleep_s": 0.6}, emit=events.append)
    fractions = [event["fraction"] for event in events if event["kind"] == "progress"]
    assert result.ok and result.duration_s >= 0.6
    assert fractions[0] == 0.0 and fractions[-1] == 1.0 and len(fractions) >= 3
    assert fractions == sorted(fractions)


def test_cancelled_step(tmp_path: Path, registry: Registry) -> None:
    result = step(tmp_path, registry, "nap", "utility.noop", {"sleep_s": 30}, cancel_requested=lambda: True)
    assert not result.ok and result.error is not None and result.error["type"] == "cancelled"
    assert result.duration_s < 5


def run_command(manifest: Path, **env: str) -> tuple[int, list[dict[str, Any]]]:
    completed = subprocess.run(
        [sys.executable, "-m", "blocks.runner", str(manifest)], cwd=REPOSITORY, env={**os.environ, **env},
        capture_output=True, text=True, timeout=120, check=False,
    )
    return completed.returncode, [json.loads(line) for line in completed.stdout.splitlines()]


def test_command_succeeds_with_json_line_events(tmp_path: Path) -> None:
    code, events = run_command(write_manifest(tmp_path, "nap", "utility.noop", {"sleep_s": 0.3}))
    assert code == 0
    assert events[0]["kind"] == "progress" and "ts" in events[0]
    assert events[-1] == events[-1] | {"kind": "result", "ok": True}
    assert path_from_uri(events[-1]["result"]) == (tmp_path / "nap" / RESULT_FILE).resolve()


def test_command_exits_1_when_the_block_fails(tmp_path: Path) -> None:
    code, events = run_command(write_manifest(tmp_path, "boom", "tests.fail", {}),
                               ILIAD_BLOCK_MODULES="tests.blocks.sample_blocks")
    assert code == 1
    assert any(event.get("level") == "error" and FAILURE_MESSAGE in event["message"] for event in events)
    assert events[-1]["kind"] == "result" and events[-1]["ok"] is False


def test_command_exits_2_on_a_bad_manifest(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"manifest_version": 1, "run_id": "x"}', encoding="utf-8")
    code, events = run_command(broken)
    assert code == 2
    assert events[0]["level"] == "error" and "missing or has a malformed field" in events[0]["message"]
    code, events = run_command(tmp_path / "absent.json")
    assert code == 2 and events[0]["message"].endswith("'<server path>'")  # the full path goes to stderr
