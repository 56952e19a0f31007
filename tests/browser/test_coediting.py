"""Two people edit one pipeline at the same time in two browsers, against the real ASGI server
(uvicorn, Channels, the shared document stored in the database): each change reaches the other
within a second, concurrent edits on different nodes both survive, presence shows the other person,
the shared document survives a server restart, and a stale save is refused and merged, never lost."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from django.test import Client
from playwright.sync_api import expect

from apps.pipelines.models import Pipeline
from apps.pipelines.services import pipeline_create, pipeline_update
from apps.projects.services import membership_add, project_create
from tests.browser.conftest import editor_document, node_locator
from tests.conftest import _database_url_for_worker, document, edge, node
from tests.support.asgi_server import AsgiServer

SHOTS = Path("/tmp/shots-collab")


def start_document() -> dict:
    demo = node("demo", "ocean.demo_dataset", days=5, resolution=1.0)
    demo["position"] = {"x": 40, "y": 60}
    mean = node("mean", "ocean.area_mean", variable="sst")
    mean["position"] = {"x": 420, "y": 60}
    return document([demo, mean], [edge("demo", "dataset", "mean", "dataset")])


@pytest.fixture
def workshop(transactional_db, catalog, user, other_user, browser):
    """alice (owner) and bob (editor) of a project pipeline, each in their own browser context, and
    the portal served by uvicorn on the test database."""
    project = project_create(user=user, slug="team", name="Team")
    membership_add(project=project, by=user, username=other_user.username, role="editor")
    pipeline = pipeline_create(
        owner=user, name="Biscay SST", document=start_document(), project=project, visibility="project"
    )
    server = AsgiServer(_database_url_for_worker()).start()
    contexts = []

    def open_as(person, viewport=(1280, 800)):
        client = Client()
        client.force_login(person)
        context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
        session = client.cookies["sessionid"].value
        context.add_cookies([{"name": "sessionid", "value": session, "url": server.url}])
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.errors = errors
        page.goto(f"{server.url}/pipelines/{pipeline.pk}/edit/")
        page.wait_for_selector("#editor-root[data-ready=true]")
        expect(page.get_by_test_id("collab-status")).to_have_attribute("data-status", "live")
        return page

    yield server, pipeline, open_as, user, other_user
    for context in contexts:
        context.close()
    server.stop()


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / name))


def select_node(page, node_id: str) -> None:
    node_locator(page, node_id).click()


@pytest.mark.e2e
def test_two_people_co_edit_live_with_presence_and_the_document_survives_a_restart(workshop):
    server, pipeline, open_as, alice, bob = workshop
    page_a = open_as(alice)
    page_b = open_as(bob)

    # Presence: each sees the other.
    expect(page_a.locator('.collab-avatar[data-user="bob"]')).to_be_visible()
    expect(page_b.locator('.collab-avatar[data-user="alice"]')).to_be_visible()

    # A node added by alice appears for bob within a second.
    item = page_a.locator('button.palette-item[data-block="ocean.demo_dataset"]')
    item.focus()
    started = time.monotonic()
    item.press("Enter")
    expect(node_locator(page_b, "demo_dataset")).to_be_visible(timeout=1000)
    assert time.monotonic() - started < 1.0

    # Concurrent parameter edits on different nodes both survive, in both views.
    select_node(page_a, "demo")
    select_node(page_b, "mean")
    page_a.locator(".params-form").get_by_label("Number of days").fill("9")
    page_b.locator(".params-form").get_by_label("Variable").fill("sss")
    for page in (page_a, page_b):
        page.wait_for_function(
            "() => { const d = window.iliadEditor.document();"
            " const p = Object.fromEntries(d.nodes.map((n) => [n.id, n.params]));"
            " return p.demo.days === 9 && p.mean.variable === 'sss' && p.demo_dataset !== undefined; }",
            timeout=2000,
        )
    assert editor_document(page_a) == editor_document(page_b)

    # Each sees where the other is: a cursor and the selected node, in the other's colour.
    box = node_locator(page_b, "mean").bounding_box()
    page_b.mouse.move(box["x"] + 20, box["y"] + 20)
    page_b.mouse.move(box["x"] + 40, box["y"] + 30)
    expect(page_a.locator('[data-testid="collab-cursor"][data-user="bob"]')).to_be_visible()
    expect(page_a.locator('[data-testid="collab-selection"][data-user="bob"]')).to_be_visible()
    shot(page_a, "coediting-alice-1280x800.png")
    shot(page_b, "coediting-bob-1280x800.png")

    # The shared state, unsaved, survives a server restart; a save snapshots it as a version.
    server.kill()
    expect(page_a.get_by_test_id("collab-status")).to_have_attribute("data-status", "offline")
    select_node(page_a, "demo")
    page_a.locator(".params-form").get_by_label("Number of days").fill("11")  # offline edit
    shot(page_a, "coediting-offline-1280x800.png")
    server.start()
    expect(page_a.get_by_test_id("collab-status")).to_have_attribute("data-status", "live", timeout=15_000)
    page_b.wait_for_function(
        "() => window.iliadEditor.document().nodes.find((n) => n.id === 'demo').params.days === 11",
        timeout=15_000,
    )
    page_b.reload()
    page_b.wait_for_selector("#editor-root[data-ready=true]")
    page_b.wait_for_function(
        "() => { const d = window.iliadEditor.document();"
        " const p = Object.fromEntries(d.nodes.map((n) => [n.id, n.params]));"
        " return p.demo.days === 11 && p.mean.variable === 'sss' && p.demo_dataset !== undefined; }"
    )
    page_b.get_by_role("button", name="Save", exact=True).click()
    expect(page_b.get_by_test_id("editor-status")).to_contain_text("Saved as version 2")
    expect(page_a.locator(".ed-toolbar .badge")).to_have_text("v2")  # alice takes it as her base
    saved = Pipeline.objects.get(pk=pipeline.pk).versions.get(number=2).document
    assert {n["id"]: n["params"] for n in saved["nodes"]}["demo"]["days"] == 11
    assert page_a.errors == [] and page_b.errors == []


@pytest.mark.e2e
def test_a_stale_save_is_refused_in_the_editor_and_merged_after_review(workshop):
    server, pipeline, open_as, alice, bob = workshop
    page = open_as(alice, viewport=(1920, 1080))
    select_node(page, "mean")
    page.locator(".params-form").get_by_label("Variable").fill("sss")
    # Meanwhile bob saves version 2 through the API, with another change.
    theirs = start_document()
    theirs["nodes"][0]["params"]["days"] = 7
    pipeline_update(pipeline=pipeline, user=bob, document=theirs, message="a week", base_version=1)

    page.get_by_role("button", name="Save", exact=True).click()
    dialog = page.get_by_test_id("conflict-dialog")
    expect(dialog).to_contain_text("version 2 was saved meanwhile")
    expect(dialog).to_contain_text("bob")
    expect(dialog).to_contain_text("a week")
    theirs_region = dialog.get_by_role("region", name="Their changes in version 2")
    expect(theirs_region).to_contain_text("changed params of demo")
    expect(dialog.get_by_role("region", name="Your changes")).to_contain_text("changed params of mean")
    shot(page, "conflict-1920x1080.png")
    assert Pipeline.objects.get(pk=pipeline.pk).latest_version == 2  # nothing overwritten

    dialog.get_by_role("button", name="Merge: take version 2 and re-apply my changes").click()
    expect(page.get_by_test_id("editor-status")).to_contain_text("Review, then save")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_test_id("editor-status")).to_contain_text("Saved as version 3")
    merged = Pipeline.objects.get(pk=pipeline.pk).versions.get(number=3).document
    params = {n["id"]: n["params"] for n in merged["nodes"]}
    assert params["demo"]["days"] == 7 and params["mean"]["variable"] == "sss"
    assert page.errors == []


@pytest.mark.e2e
def test_comments_pinned_to_a_node_show_as_a_badge_and_resolve(workshop):
    server, pipeline, open_as, alice, bob = workshop
    page_a = open_as(alice, viewport=(1920, 1080))
    page_b = open_as(bob, viewport=(1920, 1080))

    select_node(page_b, "mean")
    page_b.get_by_role("button", name="Comments (0)").click()
    panel = page_b.get_by_test_id("comments-panel")
    panel.get_by_label("New comment on node mean").fill("@alice should this be sss?")
    panel.get_by_role("button", name="Comment", exact=True).click()
    expect(panel.get_by_test_id("comment-thread")).to_contain_text("should this be sss?")
    expect(panel.locator(".mention")).to_have_text("@alice")

    badge = page_a.locator('[data-testid="comment-badge"][data-node="mean"]')
    expect(badge).to_have_text("1", timeout=8000)  # polled every 5 s
    badge.click()
    thread = page_a.get_by_test_id("comments-panel").get_by_test_id("comment-thread")
    expect(thread).to_contain_text("bob on mean")
    thread.get_by_label("Reply to bob").fill("Yes, salinity.")
    thread.get_by_role("button", name="Reply").click()
    expect(thread).to_contain_text("Yes, salinity.")
    shot(page_a, "comments-1920x1080.png")
    thread.get_by_role("button", name="Resolve").click()
    expect(badge).to_have_count(0)
    expect(page_a.get_by_role("button", name="Comments (0)")).to_be_visible()
    assert page_a.errors == [] and page_b.errors == []
