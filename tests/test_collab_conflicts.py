"""Two people save the same pipeline: the later save, based on an older version, is refused (409)
with who saved what — never a silent overwrite — and goes through once it is based on the latest."""

import copy

import pytest
from rest_framework.test import APIClient

from apps.pipelines.diff import document_diff
from apps.pipelines.models import Pipeline
from apps.projects.services import membership_add, project_create
from tests.conftest import document, edge, node


def base_document() -> dict:
    return document(
        [
            node("demo", "ocean.demo_dataset", days=5, resolution=1.0),
            node("mean", "ocean.area_mean", variable="sst"),
        ],
        [edge("demo", "dataset", "mean", "dataset")],
    )


@pytest.fixture
def two_editors(catalog, user, other_user):
    """alice owns a project pipeline at version 1; bob is an editor of the project. Their clients."""
    project = project_create(user=user, slug="team", name="Team")
    membership_add(project=project, by=user, username=other_user.username, role="editor")
    alice, bob = APIClient(), APIClient()
    alice.force_authenticate(user)
    bob.force_authenticate(other_user)
    created = alice.post(
        "/api/pipelines/",
        {"name": "SST", "document": base_document(), "project": "team", "visibility": "project"},
        format="json",
    )
    assert created.status_code == 201, created.json()
    return created.json()["id"], alice, bob


def with_days(days: int) -> dict:
    changed = copy.deepcopy(base_document())
    changed["nodes"][0]["params"]["days"] = days
    return changed


def test_a_save_over_a_newer_version_is_refused_with_who_saved_what(two_editors):
    pipeline_id, alice, bob = two_editors
    url = f"/api/pipelines/{pipeline_id}/"
    saved = {"document": with_days(7), "base_version": 1, "message": "a week"}
    first = alice.patch(url, saved, format="json")
    assert first.status_code == 200, first.json()
    assert first.json()["version"] == 2

    bobs = base_document()
    bobs["nodes"][1]["params"]["variable"] = "sss"
    stale = bob.patch(url, {"document": bobs, "base_version": 1}, format="json")

    assert stale.status_code == 409
    body = stale.json()
    assert body["code"] == "version_conflict"
    assert body["base_version"] == 1
    assert body["latest"]["number"] == 2
    assert body["latest"]["created_by"] == "alice"
    assert body["latest"]["message"] == "a week"
    assert body["latest"]["created_at"]
    assert body["changes"]["nodes_changed"] == [{"id": "demo", "fields": ["params"]}]
    assert body["changes"]["summary"] == "changed params of demo"
    assert body["yours"]["summary"] == "changed params of demo; changed params of mean"
    assert "alice" in body["detail"] and "version 2" in body["detail"]
    pipeline = Pipeline.objects.get(pk=pipeline_id)
    assert pipeline.latest_version == 2  # nothing written
    assert pipeline.versions.get(number=2).document["nodes"][0]["params"]["days"] == 7

    merged = with_days(7)
    merged["nodes"][1]["params"]["variable"] = "sss"
    again = bob.patch(url, {"document": merged, "base_version": 2}, format="json")
    assert again.status_code == 200, again.json()
    assert again.json()["version"] == 3
    latest = Pipeline.objects.get(pk=pipeline_id).versions.get(number=3).document
    assert latest["nodes"][0]["params"]["days"] == 7 and latest["nodes"][1]["params"]["variable"] == "sss"


def test_a_stale_save_of_the_same_document_is_no_conflict(two_editors):
    pipeline_id, alice, bob = two_editors
    url = f"/api/pipelines/{pipeline_id}/"
    assert alice.patch(url, {"document": with_days(7), "base_version": 1}, format="json").status_code == 200
    same = bob.patch(url, {"document": with_days(7), "base_version": 1}, format="json")
    assert same.status_code == 200
    assert same.json()["version"] == 2


def test_renaming_without_a_document_needs_no_base_version(two_editors):
    pipeline_id, alice, bob = two_editors
    url = f"/api/pipelines/{pipeline_id}/"
    assert alice.patch(url, {"document": with_days(7), "base_version": 1}, format="json").status_code == 200
    renamed = bob.patch(url, {"name": "Sea surface temperature", "base_version": 1}, format="json")
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "Sea surface temperature"


@pytest.mark.parametrize(
    ("value", "message"),
    [(0, "greater than or equal to 1"), ("two", "valid integer"), (5, "has no version 5")],
)
def test_a_bad_base_version_is_a_400_naming_the_field(two_editors, value, message):
    pipeline_id, alice, _ = two_editors
    response = alice.patch(
        f"/api/pipelines/{pipeline_id}/", {"document": with_days(9), "base_version": value}, format="json"
    )
    assert response.status_code == 400, response.json()
    assert message in " ".join(response.json()["fields"]["base_version"]), response.json()


def test_document_diff_names_added_removed_and_changed_nodes_and_edges():
    old = base_document()
    new = copy.deepcopy(old)
    new["nodes"][1]["position"] = {"x": 5, "y": 5}
    new["nodes"].append(node("plot", "ocean.line_plot"))
    new["edges"] = [edge("mean", "table", "plot", "table")]
    diff = document_diff(old, new)
    assert diff["nodes_added"] == ["plot"]
    assert diff["nodes_removed"] == []
    assert diff["nodes_changed"] == [{"id": "mean", "fields": ["position"]}]
    assert diff["edges_added"] == ["mean.table->plot.table"]
    assert diff["edges_removed"] == ["demo.dataset->mean.dataset"]
    assert document_diff(old, old)["summary"] == "no differences"
