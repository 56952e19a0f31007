"""What users see of a failed step names their parameter and data-space paths, never a server path
or a traceback; administrators get the traceback in the server log and on the admin site.

Users read step errors on the run page, in ``GET /api/runs/{id}/`` (``steps[].error``), in
``GET /api/runs/{id}/events/`` and over the run's WebSocket; all of them are checked here.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings

from apps.pipelines.services import pipeline_create
from apps.runs import orchestration
from apps.runs.models import RunEvent, StepRun
from apps.runs.services import run_submit, step_execute
from blocks.manifest import StepManifest, uri_from_path
from blocks.registry import default_registry
from blocks.runner import run_step
from iliad_portal.asgi import application
from tests.conftest import REPO_ROOT, document, node, wait_for_run
from tests.test_live_events import run_async, session_headers

TRACEBACK = "Traceback (most recent call last)"


def assert_nothing_from_the_server(text: str, *server_dirs: Path | str) -> None:
    """``text`` shows no traceback and none of the server's directories (nor the Python install's)."""
    for secret in (*map(str, server_dirs), sys.prefix, str(REPO_ROOT), TRACEBACK):
        assert secret not in text, f"{secret!r} is shown to users in:\n{text}"


def run_in_process(tmp_path: Path, block_id: str, params: dict[str, Any]) -> tuple[Any, list[dict]]:
    """Run one step with the data space ``tmp_path/data`` and artifacts under ``tmp_path/artifacts``."""
    manifest = StepManifest(
        run_id="1", step_id="step", block_id=block_id, block_version="1.0.0", params=params, inputs={},
        output_dir=uri_from_path(tmp_path / "artifacts" / "runs" / "1" / "step"),
    )
    events: list[dict] = []
    result = run_step(
        manifest, registry=default_registry(), emit=events.append, data_dir=tmp_path / "data",
        artifact_root=tmp_path / "artifacts",
    )
    return result, events


@pytest.fixture
def data_space(tmp_path: Path) -> Path:
    """A data space with a corrupt NetCDF file, ``demo/corrupt.nc``: a classic NetCDF signature, then
    garbage, so that only the NetCDF library finds out, deep inside."""
    (tmp_path / "data" / "demo").mkdir(parents=True)
    (tmp_path / "data" / "demo" / "corrupt.nc").write_bytes(b"CDF\x01 and then no header at all\n")
    return tmp_path / "data"


# ---- the runner -----------------------------------------------------------------------------------

def test_a_block_error_naming_a_data_file_shows_it_relative_to_the_data_space(
    tmp_path: Path, data_space: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="blocks.runner"):
        result, events = run_in_process(tmp_path, "testing.leak_paths", {"source": "demo/sst.nc"})

    assert result.error["type"] == "RuntimeError"
    assert result.error["message"] == "source: cannot use demo/sst.nc"
    assert [(event["kind"], event["message"]) for event in events] == [
        ("progress", "reading demo/sst.nc"),
        ("log", "scratch in <step output>/.scratch, code in <server path>"),
        ("log", "RuntimeError: source: cannot use demo/sst.nc"),
    ]
    assert_nothing_from_the_server(json.dumps([result.error["message"], events]), tmp_path)
    # Administrators get it all: the log has the traceback, the step's error keeps it for the admin.
    assert TRACEBACK in caplog.text and str(data_space / "demo" / "sst.nc") in caplog.text
    assert TRACEBACK in result.error["traceback"] and "leak_paths" in result.error["traceback"]


def test_an_error_raised_deep_in_a_library_hides_the_installation_paths(
    tmp_path: Path, data_space: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="blocks.runner"):
        result, events = run_in_process(tmp_path, "testing.leak_paths", {"where": "library"})

    assert result.error["type"] == "FileNotFoundError"
    assert result.error["message"] == "[Errno 2] No such file or directory: '<server path>'"
    assert events[-1]["message"] == f"FileNotFoundError: {result.error['message']}"
    assert_nothing_from_the_server(json.dumps([result.error["message"], events]), tmp_path)
    assert TRACEBACK in caplog.text and "site-packages" in caplog.text


def test_opening_a_corrupt_file_names_the_parameter_and_the_data_space_path(
    tmp_path: Path, data_space: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="blocks.runner"):
        result, events = run_in_process(tmp_path, "data.open_gridded", {"source": "demo/corrupt.nc"})

    assert result.error["type"] == "ValueError"
    message = result.error["message"]
    assert message.startswith("source: 'demo/corrupt.nc' could not be opened as a NetCDF file")
    assert message.endswith("[Errno 22] Invalid argument: 'demo/corrupt.nc'"), message  # netCDF4's, scrubbed
    assert events[-1] == {"kind": "log", "level": "error", "message": f"ValueError: {message}"}
    assert_nothing_from_the_server(json.dumps([message, events]), tmp_path)
    assert TRACEBACK in caplog.text and "in open_gridded" in caplog.text


def test_the_runner_command_writes_tracebacks_to_stderr_and_clean_events_to_stdout(
    tmp_path: Path, data_space: Path
) -> None:
    manifest = tmp_path / "step.json"
    manifest.write_text(json.dumps({
        "manifest_version": 1, "run_id": "1", "step_id": "leak",
        "block": {"id": "testing.leak_paths", "version": "1.0.0"}, "params": {"source": "demo/a.nc"},
        "inputs": {}, "output_dir": uri_from_path(tmp_path / "artifacts" / "runs" / "1" / "leak"),
    }), encoding="utf-8")
    completed = subprocess.run(
        [sys.executable, "-m", "blocks.runner", str(manifest)], cwd=REPO_ROOT, capture_output=True,
        text=True, timeout=120, check=False,
        env={**os.environ, "ILIAD_DATA_DIR": str(data_space), "ILIAD_BLOCK_MODULES": "tests.support.blocks"},
    )
    assert completed.returncode == 1, completed.stderr
    events = [json.loads(line) for line in completed.stdout.splitlines()]
    # The closing "result" event points the compute backend at _result.json; users never see it.
    shown = [event for event in events if event["kind"] != "result"]
    assert shown[-1]["message"] == "RuntimeError: source: cannot use demo/a.nc"
    assert_nothing_from_the_server(json.dumps(shown), tmp_path)
    assert TRACEBACK in completed.stderr and str(data_space / "demo" / "a.nc") in completed.stderr


# ---- the portal -----------------------------------------------------------------------------------

def test_a_portal_side_failure_shows_users_a_pointer_and_administrators_the_traceback(
    user, catalog, monkeypatch, django_capture_on_commit_callbacks, caplog: pytest.LogCaptureFixture,
    settings, tmp_path,
) -> None:
    # An artifact root of its own: run ids repeat between tests, so an earlier test's runs/<id>
    # directory could already stand where this test puts its blocking file.
    settings.ILIAD_ARTIFACT_ROOT = tmp_path / "artifacts"
    monkeypatch.setattr(orchestration, "dispatch_steps", lambda step_ids, target: None)  # no broker here
    pipeline = pipeline_create(owner=user, name="blocked", document=document(
        [node("nap", "utility.noop")], []))
    with django_capture_on_commit_callbacks(execute=True):
        run = run_submit(pipeline=pipeline, user=user)
    # A file where the run's artifact directory should be: creating the step's output directory
    # fails inside the portal with an error naming the server path.
    blocker = settings.ILIAD_ARTIFACT_ROOT / "runs" / str(run.pk)
    assert not blocker.exists()
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("in the way")
    step = StepRun.objects.get(run=run)
    try:
        with caplog.at_level(logging.ERROR, logger="apps.runs"):
            assert step_execute(step_id=step.pk, local_steps=1)
    finally:
        blocker.unlink()

    step.refresh_from_db()
    assert step.state == "failed"
    message = f"internal error; the administrators have the details (step {step.pk})"
    shown = {"type": "InternalError", "message": message}
    assert {key: step.error[key] for key in ("type", "message")} == shown
    assert str(blocker) in step.error["traceback"]  # for the admin
    assert TRACEBACK in caplog.text and str(blocker) in caplog.text
    state_events = RunEvent.objects.filter(run=run, node_id="nap", kind="state", payload__state="failed")
    assert [event.payload["error"] for event in state_events] == [shown]


@pytest.mark.e2e
def test_a_failed_run_shows_users_no_server_path_and_administrators_the_traceback(
    worker, api, user, client, admin_client
) -> None:
    data_dir = settings.ILIAD_DATA_DIR
    pipeline = api.post("/api/pipelines/", {"name": "leaky", "document": document(
        [node("leak", "testing.leak_paths", source="survey/ctd.nc")], [])}, format="json")
    assert pipeline.status_code == 201, pipeline.content
    created = api.post(f"/api/pipelines/{pipeline.json()['id']}/runs/", {}, format="json")
    assert created.status_code == 201, created.content
    run_id = created.json()["id"]
    wait_for_run(run_id, expect="failed")
    server_dirs = (settings.ILIAD_HOME, data_dir, settings.ILIAD_ARTIFACT_ROOT)

    detail = api.get(f"/api/runs/{run_id}/")
    (step,) = detail.json()["steps"]
    assert step["error"] == {"type": "RuntimeError", "message": "source: cannot use survey/ctd.nc"}
    assert_nothing_from_the_server(detail.content.decode(), *server_dirs)

    events = api.get(f"/api/runs/{run_id}/events/")
    logs = [event["message"] for event in events.json()["events"] if event["kind"] == "log"]
    assert logs == [
        "scratch in <step output>/.scratch, code in <server path>",
        "RuntimeError: source: cannot use survey/ctd.nc",
    ]
    assert_nothing_from_the_server(events.content.decode(), *server_dirs)

    client.force_login(user)
    page = client.get(f"/runs/{run_id}/")
    assert page.status_code == 200
    assert "source: cannot use survey/ctd.nc" in page.content.decode()
    assert_nothing_from_the_server(page.content.decode(), *server_dirs)

    live: list[dict] = []
    headers = session_headers(client, user)

    async def replay() -> None:
        communicator = WebsocketCommunicator(application, f"/ws/runs/{run_id}/", headers=headers)
        connected, _ = await communicator.connect()
        assert connected
        while not await communicator.receive_nothing(timeout=0.5):
            live.append(await communicator.receive_json_from())
        await communicator.disconnect()

    run_async(replay)
    assert [event["seq"] for event in live] == list(range(1, len(live) + 1)) and len(live) >= 4
    assert_nothing_from_the_server(json.dumps(live), *server_dirs)

    step_id = StepRun.objects.get(run_id=run_id).pk
    admin_page = admin_client.get(f"/admin/runs/steprun/{step_id}/change/")
    assert admin_page.status_code == 200
    text = admin_page.content.decode()
    assert TRACEBACK in text and str(data_dir / "survey" / "ctd.nc") in text
