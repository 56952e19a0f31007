"""Delivering a run's results to data spaces: what lands where, retries with back-off after
transient failures (a WebDAV server stopped mid-way and restarted), a clear failure when an S3
bucket may not be written, "deliver again", and the delivery API and report pages.

These tests call the delivery service in the test process against real servers on 127.0.0.1; the
end-to-end path through a worker is in test_delivery_e2e.py.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from django.test import Client

from apps.dataspaces.models import DataSpace
from apps.delivery.models import Delivery, DeliveryState, PipelineDeliveryChoice
from apps.delivery.services import delivery_again, delivery_attempt, delivery_request, run_folder_name
from apps.runs.models import RunEvent
from iliad_portal.embedded import free_port
from tests.support.dataspace_servers import S3_USER, WEBDAV_USER, S3Server, WebDAVServer
from tests.support.delivery_runs import make_finished_run

EXPECTED_FILES = {
    "deliverables/table-table.csv",
    "deliverables/picture-image.png",
    "report/report.html",
    "report/report.pdf",
    "pipeline.json",
    "provenance.json",
    "items/table-table.csv.json",
    "items/picture-image.png.json",
    "collection.json",
    "ro-crate-metadata.json",
}


@pytest.fixture
def loopback_allowed(monkeypatch):
    """The URL guard refuses loopback addresses unless an administrator allows them."""
    monkeypatch.setenv("ILIAD_URL_ALLOWED_HOSTS", "127.0.0.1")


@pytest.fixture
def quick_retries(settings):
    settings.ILIAD_DELIVERY_RETRY_S = 0
    settings.ILIAD_DELIVERY_RETRY_MAX_S = 0
    settings.ILIAD_DELIVERY_ATTEMPTS = 3


@pytest.fixture
def run(user, tmp_path):
    return make_finished_run(user, tmp_path=tmp_path)


@pytest.fixture
def local_space(user, tmp_path):
    root = tmp_path / "space"
    root.mkdir()
    return DataSpace.objects.create(
        name="results", title="My results", kind="local", owner=user, config={"root": str(root)}
    )


def files_under(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()}


def log_messages(run) -> list[tuple[str, str]]:
    return [
        (e.payload["level"], e.payload["message"])
        for e in RunEvent.objects.filter(run=run, kind="log")
        if "delivery" in e.payload
    ]


def test_a_succeeded_run_is_delivered_to_a_local_folder_with_report_provenance_and_stac(
    run, user, local_space
):
    delivery = delivery_request(run=run, user=user, space=local_space, folder="campaign/2026")
    assert delivery.state == DeliveryState.QUEUED

    outcome = delivery_attempt(delivery_id=delivery.pk)

    assert outcome.state == DeliveryState.DELIVERED
    delivery.refresh_from_db()
    folder = Path(local_space.config["root"]) / "campaign/2026" / f"SST-at-the-site-run-{run.pk}"
    assert delivery.target_path == f"campaign/2026/{run_folder_name(run)}" == f"campaign/2026/{folder.name}"
    assert files_under(folder) == EXPECTED_FILES
    table = run.artifacts.get(port="table")
    assert (folder / "deliverables/table-table.csv").read_bytes() == Path(table.uri[7:]).read_bytes()
    assert (folder / "report/report.pdf").read_bytes().startswith(b"%PDF-")
    assert "alice" in (folder / "report/report.html").read_text()
    crate = json.loads((folder / "ro-crate-metadata.json").read_text())
    assert any(entity["@id"] == "deliverables/table-table.csv" for entity in crate["@graph"])
    assert sorted(entry["path"].split("/", 3)[-1] for entry in delivery.entries) == sorted(EXPECTED_FILES)
    assert delivery.attempts == 1 and delivery.error == ""
    assert log_messages(run)[-1] == ("info", f"delivered 10 files to results:{delivery.target_path}")
    assert PipelineDeliveryChoice.objects.count() == 0  # the run has no pipeline to remember it for


def test_a_delivery_is_claimed_once(run, user, local_space):
    delivery = delivery_request(run=run, user=user, space=local_space)
    assert delivery_attempt(delivery_id=delivery.pk).state == DeliveryState.DELIVERED
    assert delivery_attempt(delivery_id=delivery.pk) is None  # a duplicate task message does nothing


def test_a_run_that_failed_is_not_delivered(user, tmp_path, local_space):
    failed = make_finished_run(user, state="failed", tmp_path=tmp_path)
    delivery = delivery_request(run=failed, user=user, space=local_space)
    assert delivery.state == DeliveryState.SKIPPED
    assert delivery_attempt(delivery_id=delivery.pk) is None


def test_a_delivery_waits_for_its_run_and_starts_when_run_finished_is_sent(run, user, local_space):
    from apps.runs.models import Run
    from apps.runs.signals import run_finished

    Run.objects.filter(pk=run.pk).update(state="running", finished_at=None)
    run.refresh_from_db()
    delivery = delivery_request(run=run, user=user, space=local_space)
    assert delivery.state == DeliveryState.WAITING
    Run.objects.filter(pk=run.pk).update(state="succeeded")
    run_finished.send(sender=Run, run_id=run.pk, state="succeeded")
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.QUEUED


def start_webdav(root: Path, port: int | None = None) -> WebDAVServer:
    """A WebDAV server on ``port`` (default: a free one) serving ``root``. A port given explicitly,
    not 0, gets SO_REUSEADDR from cheroot, so the server can be started again on it at once."""
    server = WebDAVServer(root)
    server.server.bind_addr = ("127.0.0.1", port or free_port())
    # start() prepares the server (binds the port), so the thread only has to serve
    server.thread = threading.Thread(target=server.server.serve, daemon=True)
    return server.start()


@pytest.fixture
def webdav(tmp_path, loopback_allowed):
    server = start_webdav(tmp_path / "dav")
    yield server
    server.stop()


def webdav_space(user, server) -> DataSpace:
    space = DataSpace(
        name="drive", title="Research drive", kind="webdav", owner=user, config={"url": server.url}
    )
    space.set_credentials(dict(WEBDAV_USER))
    space.save()
    return space


def restart_on_same_port(server: WebDAVServer) -> WebDAVServer:
    """Start the server again at the same URL."""
    return start_webdav(server.root, server.port)


def test_a_webdav_server_stopped_mid_way_is_retried_and_nothing_is_sent_twice(
    run, user, webdav, quick_retries
):
    space = webdav_space(user, webdav)
    delivery = delivery_request(run=run, user=user, space=space, folder="out")
    first = webdav.root / "out" / run_folder_name(run) / "deliverables/table-table.csv"
    second = first.with_name("picture-image.png")

    def stop_after_the_first_file() -> None:
        # Files go one after the other: once the second appears, the first was written and confirmed.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if second.exists():
                webdav.stop()
                return
            time.sleep(0.002)

    watcher = threading.Thread(target=stop_after_the_first_file)
    watcher.start()
    outcome = delivery_attempt(delivery_id=delivery.pk)
    watcher.join()

    assert outcome.state == DeliveryState.RETRYING and outcome.retry_in == 0
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.RETRYING
    assert "cannot reach the WebDAV server" in delivery.error
    arrived = {entry["path"] for entry in delivery.entries}
    assert f"out/{run_folder_name(run)}/deliverables/table-table.csv" in arrived
    assert len(arrived) < len(EXPECTED_FILES)
    first_written = first.stat().st_mtime_ns
    level, message = log_messages(run)[-1]
    assert level == "warning" and "attempt 1 failed" in message and "trying again" in message

    restarted = restart_on_same_port(webdav)
    try:
        outcome = delivery_attempt(delivery_id=delivery.pk)
    finally:
        restarted.stop()

    assert outcome.state == DeliveryState.DELIVERED
    delivery.refresh_from_db()
    assert delivery.attempts == 2 and delivery.error == ""
    assert files_under(webdav.root / "out" / run_folder_name(run)) == EXPECTED_FILES
    assert first.stat().st_mtime_ns == first_written  # what arrived before the stop was not sent again
    assert len({entry["path"] for entry in delivery.entries}) == len(delivery.entries) == len(EXPECTED_FILES)


def test_a_server_that_stays_down_fails_the_delivery_after_the_last_attempt_and_keeps_the_outputs(
    run, user, webdav, quick_retries
):
    space = webdav_space(user, webdav)
    webdav.stop()
    delivery = delivery_request(run=run, user=user, space=space)
    states = [delivery_attempt(delivery_id=delivery.pk).state for _ in range(3)]
    assert states == [DeliveryState.RETRYING, DeliveryState.RETRYING, DeliveryState.FAILED]
    delivery.refresh_from_db()
    assert delivery.finished_at is not None and delivery.next_attempt_at is None
    level, message = log_messages(run)[-1]
    assert level == "error" and "failed after 3 attempts" in message and "results are kept" in message
    assert all(Path(artifact.uri[7:]).is_file() for artifact in run.artifacts.all())

    restarted = restart_on_same_port(webdav)
    try:
        assert delivery_again(delivery=delivery).state == DeliveryState.QUEUED
        assert delivery_attempt(delivery_id=delivery.pk).state == DeliveryState.DELIVERED
    finally:
        restarted.stop()
    assert files_under(webdav.root / run_folder_name(run)) == EXPECTED_FILES


def test_retry_delays_double_up_to_the_maximum(settings):
    from apps.delivery.services import retry_delay_s

    settings.ILIAD_DELIVERY_RETRY_S = 30
    settings.ILIAD_DELIVERY_RETRY_MAX_S = 200
    assert [retry_delay_s(n) for n in (1, 2, 3, 4, 5)] == [30, 60, 120, 200, 200]


@pytest.fixture
def s3(loopback_allowed):
    server = S3Server().start()
    yield server
    server.reset()
    server.stop()


def test_an_s3_bucket_without_write_permission_fails_at_once_with_a_clear_error(run, user, s3, monkeypatch):
    import boto3
    from moto import settings as moto_settings

    s3.client().create_bucket(Bucket="archive")
    iam = boto3.client(
        "iam",
        endpoint_url=s3.url,
        region_name="us-east-1",
        **{
            "aws_access_key_id": S3_USER["access_key_id"],
            "aws_secret_access_key": S3_USER["secret_access_key"],
        },
    )
    iam.create_user(UserName="reader")
    iam.put_user_policy(
        UserName="reader",
        PolicyName="read-only",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": "*"}
                ],
            }
        ),
    )
    key = iam.create_access_key(UserName="reader")["AccessKey"]
    monkeypatch.setattr(
        moto_settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0
    )  # from now on, S3 checks permissions
    space = DataSpace(
        name="archive",
        title="Archive bucket",
        kind="s3",
        owner=user,
        config={"bucket": "archive", "endpoint_url": s3.url},
    )
    space.set_credentials({"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]})
    space.save()
    delivery = delivery_request(run=run, user=user, space=space, folder="runs")

    outcome = delivery_attempt(delivery_id=delivery.pk)

    assert outcome.state == DeliveryState.FAILED and outcome.retry_in is None  # permanent: no retry
    delivery.refresh_from_db()
    assert "AccessDenied" in delivery.error or "denied" in delivery.error.lower(), delivery.error
    assert "archive" in delivery.error
    assert key["SecretAccessKey"] not in delivery.error
    level, message = log_messages(run)[-1]
    assert level == "error" and "failed after 1 attempt:" in message
    assert all(Path(artifact.uri[7:]).is_file() for artifact in run.artifacts.all())
    monkeypatch.setattr(moto_settings, "INITIAL_NO_AUTH_ACTION_COUNT", float("inf"))
    listed = s3.client().list_objects_v2(Bucket="archive").get("Contents", [])
    assert listed == []


def test_a_missing_output_fails_the_delivery_permanently_naming_it(run, user, local_space):
    Path(run.artifacts.get(port="image").uri[7:]).unlink()
    delivery = delivery_request(run=run, user=user, space=local_space)
    assert delivery_attempt(delivery_id=delivery.pk).state == DeliveryState.FAILED
    delivery.refresh_from_db()
    assert delivery.error == "output image of step picture is no longer in the artifact store"


# ---- API and pages ---------------------------------------------------------------------------


@pytest.fixture
def pipeline_run(user, tmp_path):
    from apps.pipelines.models import Pipeline

    pipeline = Pipeline.objects.create(owner=user, name="SST at the site")
    return make_finished_run(user, pipeline=pipeline, tmp_path=tmp_path)


def test_api_requests_a_delivery_and_remembers_the_choice_for_the_pipeline(api, pipeline_run, local_space):
    response = api.post(
        f"/api/runs/{pipeline_run.pk}/delivery/", {"space": "results", "folder": "a/b"}, format="json"
    )
    assert response.status_code == 201, response.json()
    assert response.json()["state"] == "queued" and response.json()["folder"] == "a/b"
    body = api.get(f"/api/runs/{pipeline_run.pk}/delivery/").json()
    assert body["latest"]["id"] == response.json()["id"] and body["may_deliver"] is True
    assert body["report_url"] == f"/runs/{pipeline_run.pk}/report/"
    choice = api.get(f"/api/pipelines/{pipeline_run.pipeline_id}/delivery-choice/").json()
    assert choice["choice"] == {"space": "results", "folder": "a/b"}
    assert {"name": "results", "title": "My results", "kind": "local"} in choice["spaces"]
    changed = api.put(
        f"/api/pipelines/{pipeline_run.pipeline_id}/delivery-choice/",
        {"space": "results", "folder": "c"},
        format="json",
    )
    assert changed.status_code == 200 and changed.json() == {"space": "results", "folder": "c"}


@pytest.mark.parametrize(
    ("body", "field", "text"),
    [
        ({"space": "nowhere"}, "space", "no data space 'nowhere' that you may deliver to"),
        ({"space": "results", "folder": "../escape"}, "folder", "'..'"),
        ({"space": "results", "folder": "/abs"}, "folder", "absolute"),
        ({"space": "results", "folder": 5 * "x" * 300}, "folder", "1000"),
        ({"folder": "x"}, "space", "required"),
        ({"space": "data"}, "space", "no data space 'data'"),  # the portal's read-only data space
    ],
)
def test_api_refuses_bad_delivery_requests_naming_the_field(
    api, pipeline_run, local_space, body, field, text
):
    response = api.post(f"/api/runs/{pipeline_run.pk}/delivery/", body, format="json")
    assert response.status_code == 400
    assert text in " ".join(response.json()["fields"][field])
    assert not Delivery.objects.exists()


def test_api_refuses_another_users_space_and_run(api, pipeline_run, local_space, other_user, tmp_path):
    from rest_framework.test import APIClient

    theirs = DataSpace.objects.create(
        name="theirs", title="Theirs", kind="local", owner=other_user, config={"root": str(tmp_path)}
    )
    response = api.post(f"/api/runs/{pipeline_run.pk}/delivery/", {"space": theirs.name}, format="json")
    assert response.status_code == 400 and "space" in response.json()["fields"]
    other = APIClient()
    other.force_authenticate(other_user)
    assert other.get(f"/api/runs/{pipeline_run.pk}/delivery/").status_code == 404
    assert (
        other.post(f"/api/runs/{pipeline_run.pk}/delivery/", {"space": "theirs"}, format="json").status_code
        == 404
    )
    assert other.post(f"/api/runs/{pipeline_run.pk}/delivery/again/").status_code == 404
    assert APIClient().get(f"/api/runs/{pipeline_run.pk}/delivery/").status_code in (401, 403)


def test_api_deliver_again_requeues_a_failed_delivery_and_refuses_while_one_is_queued(
    api, pipeline_run, local_space
):
    assert api.post(f"/api/runs/{pipeline_run.pk}/delivery/again/").status_code == 409  # nothing to repeat
    delivery = delivery_request(run=pipeline_run, user=pipeline_run.owner, space=local_space)
    refused = api.post(f"/api/runs/{pipeline_run.pk}/delivery/again/")
    assert refused.status_code == 409 and "already queued" in refused.json()["detail"]
    Delivery.objects.filter(pk=delivery.pk).update(state="failed", attempts=6, error="server down")
    again = api.post(f"/api/runs/{pipeline_run.pk}/delivery/again/")
    assert again.status_code == 200
    assert again.json() | {"created_at": None} == again.json() | {"created_at": None}
    assert again.json()["state"] == "queued" and again.json()["attempts"] == 0 and again.json()["error"] == ""


def test_report_pages_are_shown_to_who_may_see_the_run_only(user, other_user, pipeline_run):
    owner = Client()
    owner.force_login(user)
    page = owner.get(f"/runs/{pipeline_run.pk}/report/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Processing report" in html and "<svg" in html and "alice" in html
    pdf = owner.get(f"/runs/{pipeline_run.pk}/report.pdf")
    assert (
        pdf.status_code == 200
        and pdf["Content-Type"] == "application/pdf"
        and pdf.content.startswith(b"%PDF")
    )
    stranger = Client()
    stranger.force_login(other_user)
    assert stranger.get(f"/runs/{pipeline_run.pk}/report/").status_code == 404
    assert stranger.get(f"/runs/{pipeline_run.pk}/report.pdf").status_code == 404
    assert Client().get(f"/runs/{pipeline_run.pk}/report/").status_code == 302  # to sign in


def test_run_page_shows_the_delivery_panel(user, pipeline_run, local_space):
    delivery_request(run=pipeline_run, user=user, space=local_space, folder="x")
    client = Client()
    client.force_login(user)
    html = client.get(f"/runs/{pipeline_run.pk}/").content.decode()
    assert 'id="delivery-panel"' in html and "results:x" in html and 'id="report-link"' in html


def test_deliveries_whose_task_or_worker_was_lost_are_sent_again(run, user, local_space):
    from datetime import timedelta

    from django.utils import timezone

    from apps.delivery.services import deliveries_resume_due

    lost = delivery_request(run=run, user=user, space=local_space)
    stalled = delivery_request(run=run, user=user, space=local_space, folder="b")
    fresh = delivery_request(run=run, user=user, space=local_space, folder="c")
    long_ago = timezone.now() - timedelta(hours=2)
    Delivery.objects.filter(pk=lost.pk).update(next_attempt_at=long_ago)
    Delivery.objects.filter(pk=stalled.pk).update(state="delivering", started_at=long_ago, attempts=1)

    sent = deliveries_resume_due(grace=timedelta(minutes=5), stalled_after=timedelta(hours=1))

    assert sent == 2  # the lost and the stalled one; the fresh one's task is still on its way
    stalled.refresh_from_db()
    assert stalled.state == DeliveryState.RETRYING and "stopped" in stalled.error
    assert delivery_attempt(delivery_id=stalled.pk).state == DeliveryState.DELIVERED
    assert Delivery.objects.get(pk=fresh.pk).state == DeliveryState.QUEUED
