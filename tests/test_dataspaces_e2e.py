"""``space:<name>/<path>`` sources end to end: a real worker process opens a file of a data space the
run's owner may use, and refuses one of another user's private space."""

from __future__ import annotations

import pytest

from apps.dataspaces.models import DataSpace
from tests.conftest import document, edge, node, wait_for_run
from tests.support.dataspace_servers import write_small_netcdf

pytestmark = pytest.mark.e2e


def run_pipeline(api, source: str) -> int:
    doc = document(
        [
            node("open", "data.open_gridded", version="1.1.0", source=source),
            node("mean", "ocean.area_mean", variable="sst"),
        ],
        [edge("open", "dataset", "mean", "dataset")],
    )
    created = api.post("/api/pipelines/", {"name": "From a space", "document": doc}, format="json")
    assert created.status_code == 201, created.json()
    run = api.post(f"/api/pipelines/{created.json()['id']}/runs/", {}, format="json")
    assert run.status_code == 201, run.json()
    return run.json()["id"]


def test_a_worker_opens_a_space_reference_only_for_a_run_whose_owner_may_use_the_space(
    worker, api, user, other_user, tmp_path
):
    for name, owner in (("alice-folder", user), ("bob-folder", other_user)):
        write_small_netcdf(tmp_path / name / "sst.nc")
        DataSpace.objects.create(
            name=name, title=name, kind="local", owner=owner, config={"root": str(tmp_path / name)}
        )

    mine = wait_for_run(run_pipeline(api, "space:alice-folder/sst.nc"), expect="succeeded")
    mean = mine.steps.get(node_id="mean").artifacts.get()
    assert mean.media_type == "text/csv" and mean.size > 0

    theirs = wait_for_run(run_pipeline(api, "space:bob-folder/sst.nc"), expect="failed")
    opened = theirs.steps.get(node_id="open")
    assert "no data space 'bob-folder' that this run may read" in str(opened.error)
    assert theirs.steps.get(node_id="mean").state == "skipped"
