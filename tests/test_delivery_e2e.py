"""End-to-end: a pipeline runs on a real Celery worker, and when it succeeds the worker delivers its
results, report, provenance and STAC to the data space chosen at submission; a WebDAV server that is
down when the run ends is retried with back-off by the worker until it is back."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pandas as pd
import pytest

from apps.dataspaces.models import DataSpace
from apps.delivery.models import Delivery
from tests.conftest import document, edge, node, wait_for_run
from tests.support.dataspace_servers import WEBDAV_USER
from tests.test_delivery import start_webdav
from tests.test_e2e_runs import BOX, DEMO, create_pipeline
from tests.test_report import assert_valid_workflow_run_crate, local_json_ld_contexts  # noqa: F401

pytestmark = pytest.mark.e2e


def delivering_document() -> dict:
    return document(
        [
            node("demo", "ocean.demo_dataset", **DEMO),
            node("subset", "ocean.subset", **BOX),
            node("mean", "ocean.area_mean", variable="sst"),
            node("csv", "deliver.csv", "1.1.0", decimals=3),
        ],
        [
            edge("demo", "dataset", "subset", "dataset"),
            edge("subset", "dataset", "mean", "dataset"),
            edge("mean", "table", "csv", "table"),
        ],
    )


def wait_for_delivery(delivery_id: int, state: str, timeout: float = 120.0) -> Delivery:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        delivery = Delivery.objects.get(pk=delivery_id)
        if delivery.state == state:
            return delivery
        if delivery.state in ("failed", "skipped") and state not in ("failed", "skipped"):
            pytest.fail(f"delivery {delivery_id} ended {delivery.state}: {delivery.error}")
        time.sleep(0.2)
    pytest.fail(f"delivery {delivery_id} did not become {state}; it is {delivery.state} ({delivery.error})")


def test_a_run_on_a_worker_is_delivered_to_the_local_folder_chosen_at_submission(worker, api, user, tmp_path):
    root = tmp_path / "space"
    root.mkdir()
    DataSpace.objects.create(
        name="results", title="Results", kind="local", owner=user, config={"root": str(root)}
    )
    pipeline_id = create_pipeline(api, delivering_document(), name="Biscay SST")
    run = api.post(f"/api/pipelines/{pipeline_id}/runs/", {}, format="json").json()
    requested = api.post(
        f"/api/runs/{run['id']}/delivery/", {"space": "results", "folder": "sst"}, format="json"
    )
    assert requested.status_code == 201, requested.json()

    wait_for_run(run["id"], expect="succeeded")
    delivery = wait_for_delivery(requested.json()["id"], "delivered")

    folder = root / "sst" / f"Biscay-SST-run-{run['id']}"
    assert delivery.target_path == f"sst/{folder.name}"
    delivered = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
    assert delivered == {
        "deliverables/csv-table.csv",
        "deliverables/csv-units.json",
        "report/report.html",
        "report/report.pdf",
        "pipeline.json",
        "provenance.json",
        "items/csv-table.csv.json",
        "items/csv-units.json.json",
        "collection.json",
        "ro-crate-metadata.json",
    }
    detail = api.get(f"/api/runs/{run['id']}/").json()
    csv = next(a for a in detail["artifacts"] if a["node"] == "csv" and a["port"] == "table")
    body = b"".join(api.get(csv["download_url"]).streaming_content)
    assert (folder / "deliverables/csv-table.csv").read_bytes() == body
    table = pd.read_csv(io.BytesIO(body))
    assert list(table.columns) == ["time", "sst"] and len(table) == 10

    from stac_pydantic import Collection, Item

    Collection.model_validate(json.loads((folder / "collection.json").read_text()))
    item = json.loads((folder / "items/csv-table.csv.json").read_text())
    Item.model_validate(item)
    assert item["properties"]["start_datetime"] == "2022-06-05T00:00:00Z"
    assert item["properties"]["end_datetime"] == "2022-06-14T00:00:00Z"
    assert "deliver.csv@1.1.0" in item["properties"]["processing:lineage"]
    html = (folder / "report/report.html").read_text()
    for text in ("alice", "ocean.subset@1.0.0", "lat_min", "<svg"):
        assert text in html, text
    assert (folder / "report/report.pdf").read_bytes().startswith(b"%PDF-")
    assert_valid_workflow_run_crate(folder)

    panel = api.get(f"/api/runs/{run['id']}/delivery/").json()
    assert panel["latest"]["state"] == "delivered" and panel["latest"]["files"] == 10
    events = api.get(f"/api/runs/{run['id']}/events/").json()["events"]
    assert any(
        e["kind"] == "log" and e["message"].startswith("delivered 10 files to results:sst/") for e in events
    )
    choice = api.get(f"/api/pipelines/{pipeline_id}/delivery-choice/").json()["choice"]
    assert choice == {"space": "results", "folder": "sst"}


def test_a_worker_retries_a_webdav_space_that_is_down_until_it_is_back(killable_worker, api, user, tmp_path):
    killable_worker(
        "delivery",
        ILIAD_DELIVERY_RETRY_S="1",
        ILIAD_DELIVERY_RETRY_MAX_S="2",
        ILIAD_URL_ALLOWED_HOSTS="127.0.0.1",
    )
    server = start_webdav(tmp_path / "dav")
    server.stop()  # the drive is down when the run ends
    space = DataSpace(name="drive", title="Drive", kind="webdav", owner=user, config={"url": server.url})
    space.set_credentials(dict(WEBDAV_USER))
    space.save()
    pipeline_id = create_pipeline(api, delivering_document(), name="Biscay SST")
    run = api.post(f"/api/pipelines/{pipeline_id}/runs/", {}, format="json").json()
    delivery_id = api.post(f"/api/runs/{run['id']}/delivery/", {"space": "drive"}, format="json").json()["id"]
    wait_for_run(run["id"], expect="succeeded")

    retrying = wait_for_delivery(delivery_id, "retrying")
    assert "cannot reach the WebDAV server" in retrying.error
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # it tries again on its own after its back-off, and fails again
        again = Delivery.objects.get(pk=delivery_id)
        if again.attempts >= 2 and again.state == "retrying":
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the delivery was not tried again: {again.state}, {again.attempts} attempts")
    restarted = start_webdav(server.root, server.port)
    try:
        delivered = wait_for_delivery(delivery_id, "delivered", timeout=60)
    finally:
        restarted.stop()
    assert delivered.attempts >= 3 and delivered.error == ""
    folder = Path(server.root) / f"Biscay-SST-run-{run['id']}"
    assert (folder / "deliverables/csv-table.csv").is_file() and (folder / "ro-crate-metadata.json").is_file()
    messages = [
        e["message"] for e in api.get(f"/api/runs/{run['id']}/events/").json()["events"] if e["kind"] == "log"
    ]
    assert any("attempt 1 failed" in m and "trying again in 1 s" in m for m in messages)
    assert any(m.startswith("delivered 10 files to drive:") for m in messages)


def test_a_run_submitted_through_the_api_with_a_delivery_is_delivered(worker, api, user, tmp_path):
    from apps.runs.models import Run

    root = tmp_path / "space"
    root.mkdir()
    DataSpace.objects.create(name="api-results", title="API results", kind="local", owner=user,
                             config={"root": str(root)})
    pipeline_id = create_pipeline(api, delivering_document(), name="Via API")
    # Refused before anything starts: a space the user may not write to, an escaping folder.
    for body, field in (
        ({"delivery": {"space": "data"}}, "space"),  # the portal's own store is read-only for users
        ({"delivery": {"space": "api-results", "folder": "../up"}}, "folder"),
        ({"delivery": {"folder": "x"}}, "space"),
        ({"delivery": "api-results"}, None),
    ):
        answer = api.post(f"/api/pipelines/{pipeline_id}/runs/", body, format="json")
        assert answer.status_code == 400, (body, answer.content)
        assert "delivery" in answer.json()["fields"], answer.json()
        if field:
            assert field in json.dumps(answer.json()["fields"]["delivery"]), answer.json()
    assert not Run.objects.filter(pipeline_id=pipeline_id).exists()

    answer = api.post(f"/api/pipelines/{pipeline_id}/runs/",
                      {"delivery": {"space": "api-results", "folder": "by-api"}}, format="json")
    assert answer.status_code == 201, answer.content
    run_id = answer.json()["id"]
    [delivery] = Delivery.objects.filter(run_id=run_id)
    wait_for_run(run_id, expect="succeeded")
    delivery = wait_for_delivery(delivery.pk, "delivered")
    folder = root / "by-api" / f"Via-API-run-{run_id}"
    assert (folder / "deliverables/csv-table.csv").is_file()
    assert (folder / "report/report.pdf").read_bytes().startswith(b"%PDF-")
    assert api.get(f"/api/pipelines/{pipeline_id}/delivery-choice/").json()["choice"] == {
        "space": "api-results", "folder": "by-api"}
