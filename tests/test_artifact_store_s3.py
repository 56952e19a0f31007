"""End-to-end: the artifact store in S3-compatible object storage (moto's server on loopback), shared by
a real Celery worker and the portal, each with a cache of its own (as on two machines).

The worker's steps write ``store:`` artifacts into its cache and upload them; the portal, whose cache
is another directory, serves downloads and previews by fetching them from the bucket; a rerun whose
worker lost its cache reads its upstream inputs back from the bucket; the delivery (on the worker)
finds what it delivers there too."""

from __future__ import annotations

import shutil

import pytest

from apps.dataspaces.models import DataSpace
from apps.delivery.models import Delivery
from apps.runs.models import Artifact
from tests.conftest import wait_for_run
from tests.support.dataspace_servers import S3_USER, S3Server
from tests.test_delivery_e2e import delivering_document, wait_for_delivery
from tests.test_e2e_runs import create_pipeline

pytestmark = pytest.mark.e2e

BUCKET = "iliad-artifacts"
PREFIX = "portal"


@pytest.fixture(scope="module")
def s3():
    server = S3Server().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def object_store(s3, settings, tmp_path):
    """The bucket, and the portal (this test process) configured to use it with a cache of its own."""
    client = s3.client()
    client.create_bucket(Bucket=BUCKET)
    settings.ILIAD_ARTIFACT_STORE = f"s3://{BUCKET}/{PREFIX}"
    settings.ILIAD_ARTIFACT_STORE_OPTIONS = {
        "endpoint_url": s3.url, "region": "us-east-1", "access_key_id": S3_USER["access_key_id"],
        "secret_access_key": S3_USER["secret_access_key"], "session_token": None,
    }
    settings.ILIAD_ARTIFACT_ROOT = tmp_path / "portal-cache"
    settings.ILIAD_ARTIFACT_ROOT.mkdir()
    yield client
    s3.reset()


def worker_env(s3, cache) -> dict[str, str]:
    return {
        "ILIAD_ARTIFACT_STORE": f"s3://{BUCKET}/{PREFIX}",
        "ILIAD_ARTIFACT_STORE_ENDPOINT_URL": s3.url,
        "ILIAD_ARTIFACT_STORE_ACCESS_KEY_ID": S3_USER["access_key_id"],
        "ILIAD_ARTIFACT_STORE_SECRET_ACCESS_KEY": S3_USER["secret_access_key"],
        "ILIAD_ARTIFACT_ROOT": str(cache),
    }


def bucket_keys(client) -> set[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"{PREFIX}/")
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


def test_a_run_on_a_worker_of_another_machine_shares_its_artifacts_through_s3(
    killable_worker, object_store, s3, api, user, tmp_path, settings
):
    worker_cache = tmp_path / "worker-cache"
    killable_worker("s3-store", **worker_env(s3, worker_cache))
    space_root = tmp_path / "space"
    space_root.mkdir()
    DataSpace.objects.create(name="s3-results", title="Results", kind="local", owner=user,
                             config={"root": str(space_root)})
    pipeline_id = create_pipeline(api, delivering_document(), name="Shared store")
    answer = api.post(f"/api/pipelines/{pipeline_id}/runs/",
                      {"delivery": {"space": "s3-results", "folder": "out"}}, format="json")
    assert answer.status_code == 201, answer.content
    run_id = answer.json()["id"]
    wait_for_run(run_id, expect="succeeded")

    # Every artifact is named in the store (not by a path of the worker) and is in the bucket.
    artifacts = list(Artifact.objects.filter(run_id=run_id).select_related("step"))
    assert artifacts and all(a.uri.startswith(f"store:runs/{run_id}/") for a in artifacts), [
        a.uri for a in artifacts]
    keys = bucket_keys(object_store)
    for artifact in artifacts:
        key = f"{PREFIX}/{artifact.uri.removeprefix('store:')}"
        assert key in keys, (key, sorted(keys))
        head = object_store.head_object(Bucket=BUCKET, Key=key)
        assert (head["ContentLength"], head["Metadata"]["sha256"]) == (artifact.size, artifact.sha256)
    assert f"{PREFIX}/runs/{run_id}/csv/_result.json" in keys
    # The worker wrote into its own cache; the portal's cache has nothing yet.
    assert (worker_cache / "runs" / str(run_id) / "csv" / "table.csv").is_file()
    assert not any(settings.ILIAD_ARTIFACT_ROOT.rglob("*.csv"))

    # Downloads and previews through the portal fetch from the bucket.
    detail = api.get(f"/api/runs/{run_id}/").json()
    csv = next(a for a in detail["artifacts"] if a["node"] == "csv" and a["port"] == "table")
    body = b"".join(api.get(csv["download_url"]).streaming_content)
    key = f"{PREFIX}/runs/{run_id}/csv/table.csv"
    assert body == object_store.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert body.startswith(b"time,sst")
    assert (settings.ILIAD_ARTIFACT_ROOT / "runs" / str(run_id) / "csv" / "table.csv").read_bytes() == body
    figure = next(a for a in detail["artifacts"] if a["node"] == "mean" and a["type"] == "table")
    preview = api.get(figure["download_url"], {"inline": "1"})
    assert preview.status_code == 200
    assert b"".join(preview.streaming_content).startswith(b"time,")

    # The delivery (done by the worker) found the run's outputs.
    [delivery] = Delivery.objects.filter(run_id=run_id)
    wait_for_delivery(delivery.pk, "delivered")
    delivered = space_root / "out" / f"Shared-store-run-{run_id}" / "deliverables" / "csv-table.csv"
    assert delivered.read_bytes() == body

    # The worker's machine loses its cache: a rerun from "mean" reuses the upstream results (checked
    # in the bucket) and its worker downloads them to compute "mean" again.
    shutil.rmtree(worker_cache)
    answer = api.post(f"/api/runs/{run_id}/rerun/", {"from": "mean"}, format="json")
    assert answer.status_code == 201, answer.content
    rerun_id = answer.json()["id"]
    wait_for_run(rerun_id, expect="succeeded")
    steps = {s["node"]: s for s in api.get(f"/api/runs/{rerun_id}/").json()["steps"]}
    subset_uri = Artifact.objects.get(run_id=rerun_id, step__node_id="subset").uri
    assert subset_uri.startswith(f"store:runs/{run_id}/subset/")  # reused, not computed again
    assert (worker_cache / subset_uri.removeprefix("store:")).is_file()  # fetched back from S3
    assert steps["mean"]["state"] == "succeeded"
    assert f"{PREFIX}/runs/{rerun_id}/mean/table.csv" in bucket_keys(object_store)


def test_results_gone_from_the_bucket_are_computed_again_not_reused(
    killable_worker, object_store, s3, api, tmp_path
):
    killable_worker("s3-store-missing", **worker_env(s3, tmp_path / "worker-cache"))
    pipeline_id = create_pipeline(api, delivering_document(), name="Lost store")
    run_id = api.post(f"/api/pipelines/{pipeline_id}/runs/", {}, format="json").json()["id"]
    wait_for_run(run_id, expect="succeeded")
    # The objects of "subset" vanish from the bucket and from every cache: a rerun from "mean" cannot
    # reuse them (the step cache checks the bucket), so it computes them again rather than failing.
    for key in bucket_keys(object_store):
        if f"/runs/{run_id}/subset/" in key:
            object_store.delete_object(Bucket=BUCKET, Key=key)
    shutil.rmtree(tmp_path / "worker-cache")
    rerun_id = api.post(f"/api/runs/{run_id}/rerun/", {"from": "mean"}, format="json").json()["id"]
    wait_for_run(rerun_id, expect="succeeded")
    subset_uri = Artifact.objects.get(run_id=rerun_id, step__node_id="subset").uri
    assert subset_uri.startswith(f"store:runs/{rerun_id}/subset/")
