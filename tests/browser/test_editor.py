"""The visual pipeline editor in a real browser: build, connect, validate, save, reload, run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from apps.pipelines.models import Pipeline
from apps.runs.models import Run
from tests.browser.conftest import (
    drag_connect,
    editor_document,
    handle,
    node_locator,
    open_editor,
    wait_checked,
    write_json,
)
from tests.conftest import document, edge, node, wait_for_run


def param(page, label: str):
    """A field of the parameter form (generated from the block's JSON Schema)."""
    return page.locator(".params-form").get_by_label(label)


def port_button(page, name: str):
    """The keyboard handle of a port, e.g. "Output dataset (dataset) of demo"."""
    return page.get_by_role("button", name=name, exact=True)


def drop_block(page, block_id: str, x: int, y: int):
    page.drag_and_drop(
        f'button.palette-item[data-block="{block_id}"]',
        ".ed-canvas .react-flow__pane",
        target_position={"x": x, "y": y},
    )


@pytest.mark.e2e  # a real worker runs it: this test runs again on PostgreSQL + Redis
def test_build_a_pipeline_by_drag_and_drop_save_reload_and_run(portal, page, page_errors, worker):
    open_editor(page, f"{portal}/pipelines/new/")
    expect(page.locator(".ed-empty")).to_be_visible()

    drop_block(page, "ocean.demo_dataset", 140, 120)
    drop_block(page, "ocean.subset", 140, 460)
    drop_block(page, "ocean.area_mean", 560, 300)
    expect(page.locator(".react-flow__node")).to_have_count(3)
    for node_id in ("demo_dataset", "subset", "area_mean"):
        expect(node_locator(page, node_id)).to_be_visible()
    # Title, version and typed ports are shown on the node.
    subset = node_locator(page, "subset")
    expect(subset.locator(".block-title")).to_contain_text("Subset")
    expect(subset.locator(".block-version")).to_have_text(re.compile(r"v\d+\.\d+\.\d+"))
    expect(subset.locator(".react-flow__handle.t-dataset")).to_have_count(2)

    drag_connect(
        page, handle(page, "demo_dataset", "out", "dataset"), handle(page, "subset", "in", "dataset")
    )
    expect(page.locator(".react-flow__edge")).to_have_count(1)

    # A table output cannot feed a dataset input: refused, with the reason in words.
    drag_connect(page, handle(page, "area_mean", "out", "table"), handle(page, "subset", "in", "dataset"))
    expect(page.get_by_role("alert")).to_contain_text("Incompatible types")
    expect(page.locator(".react-flow__edge")).to_have_count(1)
    drag_connect(page, handle(page, "subset", "out", "dataset"), handle(page, "area_mean", "in", "dataset"))
    expect(page.locator(".react-flow__edge")).to_have_count(2)

    # Parameters: the form is generated from the block's JSON Schema, with defaults and help text.
    node_locator(page, "demo_dataset").locator(".block-title").click()
    expect(page.locator("#inspector-title")).to_have_text("Demo ocean dataset")
    days = param(page, "Number of days")
    expect(days).to_have_value("1096")  # the spec's default
    expect(page.locator(".block-description")).to_contain_text("synthetic")
    days.fill("0")
    expect(page.locator(".params-form .error-detail").first).to_be_visible()  # inline error (minimum 1)
    days.fill("5")
    param(page, "Grid spacing").fill("1")
    node_locator(page, "area_mean").locator(".block-title").click()
    param(page, "Variable").fill("sst")
    page.get_by_role("button", name="Auto-layout").click()
    expect(page.get_by_role("status")).to_contain_text("Arranged")
    page.get_by_label("Pipeline name").fill("Biscay mean SST")
    wait_checked(page)
    expect(page.locator("#problems-title")).to_contain_text("(0)")

    page.keyboard.press("Control+s")
    expect(page.get_by_role("status")).to_contain_text("Saved as version 1")
    page.wait_for_url(re.compile(r"/pipelines/\d+/edit/$"))
    pipeline = Pipeline.objects.get(name="Biscay mean SST")
    saved = pipeline.versions.get(number=1).document
    assert editor_document(page) == saved
    assert {n["id"]: n["params"] for n in saved["nodes"]}["demo_dataset"]["days"] == 5
    assert len(saved["edges"]) == 2

    page.reload()
    open_editor(page, page.url)
    assert editor_document(page) == saved
    expect(page.locator(".react-flow__node")).to_have_count(3)
    expect(page.locator(".react-flow__edge")).to_have_count(2)
    expect(page.locator(".ed-toolbar .badge")).to_have_text("v1")
    node_locator(page, "demo_dataset").locator(".block-title").click()
    expect(param(page, "Number of days")).to_have_value("5")
    assert editor_document(page) == saved  # selecting a node changes nothing

    page.get_by_role("button", name="Run…").click()
    expect(page.get_by_role("dialog").get_by_label("Compute target")).to_have_value("celery")
    # Shown by its title, not its internal name.
    expect(page.get_by_role("dialog").get_by_label("Compute target").locator("option:checked")).to_have_text(
        "Cloud workers"
    )
    page.get_by_role("button", name="Submit run").click()
    page.wait_for_url(re.compile(r"/runs/\d+/$"))
    run = Run.objects.get(pipeline=pipeline)
    assert page.url.endswith(f"/runs/{run.pk}/")
    wait_for_run(run.pk, expect="succeeded")
    assert run.cache is True

    # The same again reuses the first run's results unless "Reuse results" is unticked.
    for reuse in (False, True):
        page.goto(f"{portal}/pipelines/{pipeline.pk}/edit/")
        open_editor(page, page.url)
        page.get_by_role("button", name="Run…").click()
        reuse_box = page.get_by_role("dialog").get_by_label("Reuse results of identical earlier steps")
        expect(reuse_box).to_be_checked()
        reuse_box.set_checked(reuse)
        page.get_by_role("button", name="Submit run").click()
        page.wait_for_url(re.compile(r"/runs/\d+/$"))
        again = wait_for_run(int(page.url.rstrip("/").rsplit("/", 1)[1]), expect="succeeded")
        assert again.cache is reuse
        cached = [step.cached_from_id is not None for step in again.steps.all()]
        assert cached == [reuse] * 3, cached
    assert page_errors == []


def test_an_imported_document_shows_each_error_on_its_node(portal, page, page_errors, tmp_path):
    from apps.pipelines.services import pipeline_document_issues

    bad = document(
        [
            node("demo", "ocean.demo_dataset", days=-3),  # node.invalid_params
            node("mystery", "ocean.no_such_block"),  # node.unknown_block
            node("mean", "ocean.area_mean", variable="sst"),  # input.missing
            node("sub", "ocean.subset"),
            node("plot", "plot.timeseries"),
        ],
        [
            edge("demo", "dataset", "plot", "table"),  # edge.type_mismatch on plot.table
            edge("demo", "dataset", "sub", "nope"),  # edge.unknown_port on sub
        ],
    )
    for index, item in enumerate(bad["nodes"]):
        item["position"] = {"x": 40 + 300 * (index % 3), "y": 40 + 260 * (index // 3)}
    expected = pipeline_document_issues(document=bad)
    codes = {issue["code"] for issue in expected}
    assert {"node.invalid_params", "node.unknown_block", "input.missing", "edge.type_mismatch"} <= codes

    open_editor(page, f"{portal}/pipelines/new/")
    page.locator("#import-file").set_input_files(write_json(tmp_path, "bad.json", bad))
    expect(page.locator(".react-flow__node")).to_have_count(5)
    wait_checked(page)
    expect(page.locator(".problem-list li")).to_have_count(len(expected))
    for issue in expected:
        on_node = node_locator(page, issue["node"]).locator(f'.node-issues li[data-code="{issue["code"]}"]')
        expect(on_node.first).to_be_visible()
        expect(on_node.first).to_contain_text(issue["message"][:40])
        if issue["port"] and issue["code"] != "edge.unknown_port":
            port = node_locator(page, issue["node"]).locator(f'.port-error[data-port="{issue["port"]}"]')
            expect(port).to_have_count(1)
    # The problems list focuses the node it concerns.
    page.locator('.problem-list li[data-code="node.unknown_block"] button').click()
    expect(page.locator("#inspector-title")).to_contain_text("ocean.no_such_block")
    expect(node_locator(page, "mystery")).to_be_focused()
    # Saving is refused by the server with the same problems.
    page.get_by_label("Pipeline name").fill("Broken")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text(f"{len(expected)} problem(s)")
    assert not Pipeline.objects.filter(name="Broken").exists()
    assert page_errors == []


SAME_DOCUMENT = "expected => JSON.stringify(window.iliadEditor.document()) === JSON.stringify(expected)"


def test_undo_and_redo_restore_the_exact_previous_documents(portal, page, page_errors):
    open_editor(page, f"{portal}/pipelines/new/")
    states = [editor_document(page)]

    def step(action):
        action()
        page.wait_for_function(
            "previous => JSON.stringify(window.iliadEditor.document()) !== JSON.stringify(previous)",
            arg=states[-1],
        )
        states.append(editor_document(page))

    step(lambda: page.get_by_role("button", name=re.compile("^Add Demo ocean dataset")).press("Enter"))
    step(lambda: page.get_by_role("button", name=re.compile("^Add Area mean")).press("Enter"))
    step(lambda: (port_button(page, "Output dataset (dataset) of demo_dataset").press("Enter"),
                  port_button(page, "Input dataset (dataset) of area_mean").press("Enter")))
    node_locator(page, "demo_dataset").locator(".block-title").click()
    assert editor_document(page) == states[-1]
    step(lambda: param(page, "Number of days").fill("12"))
    step(lambda: page.get_by_label("Label (optional)").fill("Demo"))
    assert len(states) == 6 and len({json.dumps(state) for state in states}) == 6

    page.locator(".ed-canvas .react-flow__pane").click(position={"x": 5, "y": 5})
    for expected in reversed(states[:-1]):
        page.keyboard.press("Control+z")
        page.wait_for_function(SAME_DOCUMENT, arg=expected)
    assert editor_document(page) == states[0]
    for index, expected in enumerate(states[1:]):
        page.keyboard.press("Control+Shift+z" if index % 2 else "Control+y")
        page.wait_for_function(SAME_DOCUMENT, arg=expected)
    assert editor_document(page) == states[-1]
    assert page_errors == []


def test_the_editor_is_usable_with_the_keyboard(portal, page, page_errors):
    open_editor(page, f"{portal}/pipelines/new/")

    def tab_to(label: str, limit: int = 80):
        for _ in range(limit):
            page.keyboard.press("Tab")
            name = page.evaluate("() => document.activeElement && document.activeElement.textContent")
            if " ".join((name or "").split()).startswith(label):
                return
        raise AssertionError(f"Tab never reached {label!r}")

    page.get_by_label("Search blocks").focus()
    tab_to("Add Demo ocean dataset")
    page.keyboard.press("Enter")
    expect(node_locator(page, "demo_dataset")).to_be_focused()
    page.get_by_label("Search blocks").focus()
    page.keyboard.type("area mean")
    tab_to("Add Area mean")
    page.keyboard.press("Enter")
    expect(page.locator(".react-flow__node")).to_have_count(2)

    # Connect: an output port, then an input port, each with Enter.
    page.get_by_label("Search blocks").focus()
    tab_to("Output dataset (dataset) of demo_dataset", limit=200)
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_contain_text("Now choose an input")
    tab_to("Input dataset (dataset) of area_mean", limit=200)
    page.keyboard.press("Enter")
    expect(page.locator(".react-flow__edge")).to_have_count(1)
    # Escape abandons a half-made connection.
    tab_to("Output table (table) of area_mean", limit=200)
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_contain_text("Chosen output table of area_mean")
    page.keyboard.press("Escape")
    expect(page.get_by_role("status")).to_contain_text("cancelled")

    # Delete: focus the node, select it with Enter, press Delete.
    node_locator(page, "area_mean").focus()
    expect(node_locator(page, "area_mean")).to_be_focused()  # seen once under load: Enter went elsewhere
    page.keyboard.press("Enter")
    expect(page.locator("#inspector-title")).to_contain_text("Area mean")
    page.keyboard.press("Delete")
    expect(page.locator(".react-flow__node")).to_have_count(1)
    expect(page.locator(".react-flow__edge")).to_have_count(0)

    # Copy and paste, then undo the paste.
    node_locator(page, "demo_dataset").focus()
    page.keyboard.press("Enter")
    page.keyboard.press("Control+c")
    page.keyboard.press("Control+v")
    expect(page.locator(".react-flow__node")).to_have_count(2)
    expect(node_locator(page, "demo_dataset_2")).to_be_visible()
    page.keyboard.press("Control+z")
    expect(page.locator(".react-flow__node")).to_have_count(1)
    assert page_errors == []


def test_version_history_restore_and_the_unsaved_changes_warning(portal, page, page_errors, user):
    from apps.pipelines.services import pipeline_create, pipeline_update

    first = document([node("demo", "ocean.demo_dataset", days=5)], [])
    second = document([node("demo", "ocean.demo_dataset", days=9)], [])
    pipeline = pipeline_create(owner=user, name="Versions", document=first)
    pipeline_update(pipeline=pipeline, user=user, document=second, message="nine days")

    open_editor(page, f"{portal}/pipelines/{pipeline.pk}/edit/")
    assert editor_document(page)["nodes"][0]["params"] == {"days": 9}
    page.get_by_text("Version history (2)").click()
    page.get_by_role("button", name="Restore version 1").click()
    page.wait_for_function("() => window.iliadEditor.document().nodes[0].params.days === 5")
    expect(page.locator(".ed-toolbar .badge")).to_contain_text("unsaved changes")

    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.type), dialog.dismiss()))
    page.get_by_role("link", name="Pipelines").click()  # leaving with unsaved changes asks first
    page.wait_for_timeout(300)
    assert dialogs == ["beforeunload"]
    assert "/edit/" in page.url

    page.get_by_label("Version message").fill("back to five days")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("Saved as version 3")
    pipeline.refresh_from_db()
    assert pipeline.latest_version == 3
    latest = pipeline.versions.get(number=3)
    assert latest.message == "back to five days"
    assert latest.document["nodes"][0]["params"] == {"days": 5}
    page.get_by_role("link", name="Pipelines").click()
    page.wait_for_url(re.compile(r"/pipelines/$"))
    assert dialogs == ["beforeunload"]
    assert page_errors == []


def test_the_edit_page_of_another_users_pipeline_is_not_found(portal, page, other_user):
    from apps.pipelines.services import pipeline_create

    theirs = pipeline_create(
        owner=other_user, name="Theirs", document=document([node("demo", "ocean.demo_dataset")], [])
    )
    response = page.goto(f"{portal}/pipelines/{theirs.pk}/edit/")
    assert response.status == 404


STUB_TEMPLATE = {
    "slug": "stub-sst",
    "title": "Stub SST mean",
    "summary": "A template served by the test when the gallery has none yet.",
    "sector": "testing",
    "description": "Demo data, then its area mean.",
    "document": document(
        [node("demo", "ocean.demo_dataset", days=5), node("mean", "ocean.area_mean", variable="sst")],
        [edge("demo", "dataset", "mean", "dataset")],
    ),
}
STUB_TEMPLATE["document"]["nodes"][1]["position"] = {"x": 320, "y": 0}


def test_new_from_template(portal, page, page_errors, api):
    response = api.get("/api/templates/")
    assert response.status_code == 200, "the template gallery API answers"
    templates = response.json()
    if templates:  # the real gallery: its page links to the editor
        template = templates[0]
        page.goto(f"{portal}/templates/")
        page.locator(f'a[href="/pipelines/new/?template={template["slug"]}"]').first.click()
    else:  # no pilot templates yet: serve one with the API's shape
        template = STUB_TEMPLATE
        page.route("**/api/templates/", lambda route: route.fulfill(json=[STUB_TEMPLATE]))
        page.goto(f"{portal}/pipelines/new/?template={template['slug']}")
    page.wait_for_url(re.compile(r"/pipelines/new/\?template="))
    page.wait_for_selector("#editor-root[data-ready=true]")
    expect(page.get_by_role("status")).to_contain_text("loaded")
    expect(page.locator(".react-flow__node")).to_have_count(len(template["document"]["nodes"]))
    expect(page.get_by_label("Pipeline name")).to_have_value(template["title"])
    wait_checked(page)
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("Saved as version 1")
    assert Pipeline.objects.get(name=template["title"]).versions.get().document == editor_document(page)
    # The editor's own "New from template" dialog lists the same templates.
    page.get_by_role("button", name="File").click()
    page.get_by_role("button", name="New from template").click()
    expect(page.get_by_role("button", name=f"Use template {template['title']}")).to_be_visible()
    assert page_errors == []


def test_export_and_the_local_draft_of_unsaved_work(portal, page, page_errors):
    open_editor(page, f"{portal}/pipelines/new/")
    page.get_by_role("button", name=re.compile("^Add Demo ocean dataset")).press("Enter")
    page.get_by_label("Pipeline name").fill("Draft")
    page.get_by_role("button", name="File").click()
    with page.expect_download() as download:
        page.get_by_role("button", name="Export JSON").click()
    exported = json.loads(Path(download.value.path()).read_text())
    assert exported == editor_document(page)
    assert [n["block"] for n in exported["nodes"]] == ["ocean.demo_dataset"]

    page.wait_for_timeout(700)  # the draft is written half a second after the last change
    page.on("dialog", lambda dialog: dialog.accept())  # leave despite the unsaved-changes warning
    page.reload()
    page.wait_for_selector("#editor-root[data-ready=true]")
    expect(page.locator(".react-flow__node")).to_have_count(0)
    banner = page.get_by_role("region", name="Unsaved draft")
    expect(banner).to_contain_text("Unsaved changes")
    banner.get_by_role("button", name="Restore them").click()
    page.wait_for_function(SAME_DOCUMENT, arg=exported)
    expect(page.get_by_label("Pipeline name")).to_have_value("Draft")
    assert page_errors == []


def test_a_connection_that_would_make_a_cycle_is_refused(portal, page, page_errors):
    open_editor(page, f"{portal}/pipelines/new/")
    add = page.get_by_role("button", name=re.compile("^Add No-op"))
    add.press("Enter")
    add.press("Enter")
    expect(page.locator(".react-flow__node")).to_have_count(2)
    port_button(page, "Output result (json) of noop").click()
    port_button(page, "Input trigger (json) of noop_2, optional").click()
    expect(page.locator(".react-flow__edge")).to_have_count(1)
    drag_connect(page, handle(page, "noop_2", "out", "result"), handle(page, "noop", "in", "trigger"))
    expect(page.get_by_role("alert")).to_contain_text("This would make a cycle: noop → noop_2 → noop.")
    expect(page.locator(".react-flow__edge")).to_have_count(1)
    assert page_errors == []
