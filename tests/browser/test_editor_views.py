"""The editor's Django views, without a browser: what the page embeds, who may open it."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import document, node


@pytest.fixture
def signed_in(client, user, catalog):
    client.force_login(user)
    return client


def embedded(response, element_id: str):
    pattern = rf'<script id="{element_id}" type="application/json">(.*?)</script>'
    match = re.search(pattern, response.content.decode())
    assert match, f"no json_script #{element_id}"
    return json.loads(match.group(1))


def test_the_new_editor_embeds_the_catalog_targets_and_api_urls(signed_in):
    from apps.runs.services import TARGETS

    response = signed_in.get("/pipelines/new/?template=some-slug")
    assert response.status_code == 200
    assert "csrftoken" in response.cookies
    config = embedded(response, "editor-config")
    assert config["pipeline"] is None
    assert config["template"] == "some-slug"
    assert config["targets"] == list(TARGETS)
    assert config["urls"]["validate"] == "/api/pipelines/validate/"
    assert config["urls"]["run_page"] == "/runs/{id}/"
    specs = embedded(response, "editor-catalog")
    demo = specs["ocean.demo_dataset"]["1.0.0"]
    assert demo["parameters"]["properties"]["days"]["default"] == 1096
    assert "<strong>synthetic</strong>" in demo["description_html"]  # markdown rendered and sanitised
    assert embedded(response, "editor-document") is None
    assert 'src="/static/editor/editor.js"' in response.content.decode()


def test_the_edit_page_embeds_the_latest_version(signed_in, user):
    from apps.pipelines.services import pipeline_create, pipeline_update

    pipeline = pipeline_create(owner=user, name="P", document=document([node("a", "ocean.demo_dataset")], []))
    latest = document([node("b", "ocean.demo_dataset", days=3)], [])
    pipeline_update(pipeline=pipeline, user=user, document=latest)
    response = signed_in.get(f"/pipelines/{pipeline.pk}/edit/")
    assert response.status_code == 200
    assert embedded(response, "editor-document") == latest
    assert embedded(response, "editor-config")["pipeline"] == {
        "id": pipeline.pk, "name": "P", "description": "", "version": 2,
    }


def test_the_editor_needs_a_sign_in_and_hides_other_peoples_pipelines(client, signed_in, other_user):
    from apps.pipelines.services import pipeline_create

    one_node = document([node("a", "ocean.demo_dataset")], [])
    theirs = pipeline_create(owner=other_user, name="T", document=one_node)
    assert signed_in.get(f"/pipelines/{theirs.pk}/edit/").status_code == 404
    signed_in.logout()
    assert signed_in.get("/pipelines/new/").status_code == 302


def test_list_and_detail_pages_link_to_the_editor(signed_in, user):
    from apps.pipelines.services import pipeline_create

    pipeline = pipeline_create(owner=user, name="P", document=document([node("a", "ocean.demo_dataset")], []))
    assert 'href="/pipelines/new/"' in signed_in.get("/pipelines/").content.decode()
    detail = signed_in.get(f"/pipelines/{pipeline.pk}/").content.decode()
    assert f'href="/pipelines/{pipeline.pk}/edit/"' in detail
