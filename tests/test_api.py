"""The REST API as a client sees it: authentication, who sees what, validation errors, the catalog."""

import json

import pytest
from django.core.management import call_command
from django.http import HttpRequest
from rest_framework.test import APIClient

from apps.pipelines.models import Pipeline
from apps.runs.models import Run
from tests.conftest import document, edge, node, openapi_operations

DEMO = {"days": 5, "resolution": 1.0}


def valid_document() -> dict:
    return document(
        [node("demo", "ocean.demo_dataset", **DEMO), node("mean", "ocean.area_mean", variable="sst")],
        [edge("demo", "dataset", "mean", "dataset")],
    )


@pytest.fixture
def pipeline(api, catalog) -> dict:
    response = api.post("/api/pipelines/", {"name": "SST", "document": valid_document()}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


# --- authentication -------------------------------------------------------------------------------


def _sample_url(path: str, operation: dict) -> str:
    values = {
        parameter["name"]: "1" if parameter["schema"].get("type") == "integer" else "x"
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "path"
    }
    return path.format(**values)


@pytest.mark.parametrize(
    ("method", "path", "operation"),
    [
        pytest.param(method, path, operation, id=f"{method.upper()} {path}")
        for method, path, operation in openapi_operations()
    ],
)
def test_anonymous_requests_are_refused_unless_the_schema_says_the_operation_is_public(
    db, method, path, operation
):
    url = _sample_url(path, operation)
    response = APIClient().generic(method, url, "{}", content_type="application/json")
    if {} in operation.get("security", []):  # OpenAPI's "no credentials needed"
        assert response.status_code == 200
    else:
        assert response.status_code in (401, 403)
        assert response.json()["detail"] == "Authentication credentials were not provided."


def test_an_api_token_printed_by_the_command_authenticates_and_a_wrong_one_is_refused(user, capsys):
    call_command("create_api_token", "alice")
    key = capsys.readouterr().out.strip()
    assert key.startswith("ilp_")
    client = APIClient()
    assert client.get("/api/pipelines/", HTTP_AUTHORIZATION=f"Token {key}").status_code == 200
    bad = client.get("/api/pipelines/", HTTP_AUTHORIZATION="Token ilp_not-a-real-key")
    assert bad.status_code == 401
    assert bad.json()["detail"] == "Invalid or revoked token."
    assert user.api_tokens.get().digest != key  # only a digest is stored


def test_create_api_token_names_an_unknown_user(db):
    with pytest.raises(Exception, match="no user named 'nobody'"):
        call_command("create_api_token", "nobody")


def test_session_login_gives_access_to_the_api(client, user):
    # django-axes checks every sign-in against its address: authenticate() needs a request
    assert client.login(request=HttpRequest(), username="alice", password="alice-password-1")
    assert client.get("/api/pipelines/").status_code == 200


# --- who sees what ----------------------------------------------------------------------------------


def test_a_user_cannot_read_change_or_run_another_users_pipeline(pipeline, other_user):
    intruder = APIClient()
    intruder.force_authenticate(other_user)
    pipeline_url = f"/api/pipelines/{pipeline['id']}/"
    assert intruder.get(pipeline_url).status_code == 404
    assert (
        intruder.put(pipeline_url, {"name": "mine", "document": valid_document()}, format="json").status_code
        == 404
    )
    assert intruder.delete(pipeline_url).status_code == 404
    assert intruder.post(f"{pipeline_url}runs/", {}, format="json").status_code == 404
    assert intruder.get("/api/pipelines/").json()["results"] == []
    assert Pipeline.objects.get(pk=pipeline["id"]).name == "SST"


def test_a_user_cannot_see_or_cancel_another_users_run(
    pipeline, user, other_user, django_capture_on_commit_callbacks
):
    from apps.runs.services import run_submit

    with django_capture_on_commit_callbacks(execute=False):  # keep it queued: no worker in this test
        run = run_submit(pipeline=Pipeline.objects.get(pk=pipeline["id"]), user=user)
    intruder = APIClient()
    intruder.force_authenticate(other_user)
    assert intruder.get(f"/api/runs/{run.pk}/").status_code == 404
    assert intruder.get(f"/api/runs/{run.pk}/events/").status_code == 404
    assert intruder.post(f"/api/runs/{run.pk}/cancel/").status_code == 404
    assert intruder.get("/api/runs/").json()["results"] == []
    assert Run.objects.get(pk=run.pk).state == "queued"


# --- pipelines and validation -----------------------------------------------------------------------


def test_create_returns_every_validation_error_with_code_pointer_and_node(api, catalog):
    doc = valid_document()
    doc["nodes"][1]["params"] = {}
    doc["nodes"].append(node("demo", "ocean.demo_dataset"))
    doc["nodes"].append(node("plot", "plot.timeseries"))
    doc["edges"].append(edge("demo", "dataset", "plot", "table"))
    response = api.post("/api/pipelines/", {"name": "broken", "document": doc}, format="json")
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert {(e["code"], e["node"]) for e in errors} == {
        ("node.invalid_params", "mean"),
        ("node.duplicate_id", "demo"),
        ("edge.type_mismatch", "plot"),
    }
    missing_variable = next(e for e in errors if e["code"] == "node.invalid_params")
    assert missing_variable["pointer"] == "/nodes/1/params"
    assert "variable" in missing_variable["message"]
    assert Pipeline.objects.count() == 0


def test_validate_endpoint_reports_without_saving(api, catalog):
    ok = api.post("/api/pipelines/validate/", {"document": valid_document()}, format="json")
    assert ok.status_code == 200 and ok.json() == {"valid": True, "errors": [], "choices": {}, "extents": {}}
    cyclic = document(
        [node("a", "ocean.subset"), node("b", "ocean.subset")],
        [edge("a", "dataset", "b", "dataset"), edge("b", "dataset", "a", "dataset")],
    )
    result = api.post("/api/pipelines/validate/", {"document": cyclic}, format="json").json()
    assert result["valid"] is False
    assert [e["code"] for e in result["errors"]] == ["graph.cycle"]
    assert "a → b → a" in result["errors"][0]["message"]
    assert (
        api.post("/api/pipelines/validate/", {"document": [1, 2]}, format="json").json()["errors"][0]["code"]
        == "document.not_object"
    )
    assert Pipeline.objects.count() == 0


def test_unknown_block_version_is_refused_naming_the_known_versions(api, catalog):
    doc = valid_document()
    doc["nodes"][1]["version"] = "9.9.9"
    errors = api.post("/api/pipelines/", {"name": "x", "document": doc}, format="json").json()["errors"]
    assert [e["code"] for e in errors] == ["node.unknown_version"]
    assert "1.0.0" in errors[0]["message"]


def test_updating_the_document_creates_a_new_version_and_keeps_the_old_one(api, pipeline):
    url = f"/api/pipelines/{pipeline['id']}/"
    changed = valid_document()
    changed["nodes"][0]["params"]["days"] = 7
    response = api.put(url, {"name": "SST", "document": changed, "message": "a week"}, format="json")
    assert response.status_code == 200 and response.json()["version"] == 2
    same = api.put(url, {"name": "SST renamed", "document": changed}, format="json").json()
    assert same["version"] == 2 and same["name"] == "SST renamed"
    versions = api.get(f"{url}versions/").json()
    assert [v["number"] for v in versions] == [2, 1]
    assert versions[1]["document"] == valid_document()
    assert api.get(f"{url}versions/2/").json()["message"] == "a week"


def test_an_invalid_update_changes_nothing(api, pipeline):
    url = f"/api/pipelines/{pipeline['id']}/"
    broken = valid_document()
    broken["edges"][0]["target_port"] = "nope"
    response = api.patch(url, {"document": broken}, format="json")
    assert response.status_code == 400
    assert [e["code"] for e in response.json()["errors"]] == ["edge.unknown_port"]
    assert api.get(url).json()["version"] == 1


def test_a_document_above_the_size_limit_is_refused_with_a_clear_error(api, catalog, settings):
    doc = valid_document()
    doc["metadata"] = {"notes": "x" * (settings.ILIAD_MAX_PIPELINE_BYTES + 1000)}
    response = api.post("/api/pipelines/validate/", {"document": doc}, format="json")
    assert [e["code"] for e in response.json()["errors"]] == ["document.too_large"]
    huge = json.dumps({"name": "x", "document": {"notes": "x" * (2 * settings.ILIAD_MAX_PIPELINE_BYTES)}})
    response = api.post("/api/pipelines/", huge, content_type="application/json")
    assert response.status_code == 413
    assert "too large" in response.json()["detail"]


def test_malformed_json_is_a_400_naming_the_problem(api, catalog):
    response = api.post("/api/pipelines/", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]


def test_run_submission_names_an_unknown_target_and_version(api, pipeline):
    url = f"/api/pipelines/{pipeline['id']}/runs/"
    response = api.post(url, {"target": "mars"}, format="json")
    assert response.status_code == 400 and "unknown compute target 'mars'" in response.json()["detail"]
    response = api.post(url, {"version": 5}, format="json")
    assert response.status_code == 400 and "has no version 5" in response.json()["detail"]


# --- catalog ----------------------------------------------------------------------------------------


def test_catalog_lists_blocks_with_versions_ports_and_parameter_schema(api, catalog):
    blocks = {b["id"]: b for b in api.get("/api/blocks/").json()}
    assert {"ocean.demo_dataset", "ocean.subset", "ocean.area_mean", "plot.timeseries"} <= set(blocks)
    assert blocks["ocean.subset"]["versions"] == ["1.0.0", "1.1.0"]
    assert blocks["ocean.subset"]["version"] == "1.1.0"
    detail = api.get("/api/blocks/ocean.area_mean/").json()
    assert detail["latest"] == "1.0.0"
    version = detail["versions"][0]
    assert [p["name"] for p in version["inputs"]] == ["dataset"]
    assert version["outputs"][0]["type"] == "table"
    assert version["parameters"]["required"] == ["variable"]
    assert api.get("/api/blocks/no.such_block/").status_code == 404
    visualise = api.get("/api/blocks/?category=visualise").json()
    assert "plot.timeseries" in {b["id"] for b in visualise}
    assert {b["category"] for b in visualise} == {"visualise"}


def test_openapi_schema_and_docs_are_served(client):
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/pipelines/{pipeline_id}/runs/" in schema.content
    assert client.get("/api/docs/").status_code == 200
