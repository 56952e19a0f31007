"""The run page as a workshop sees it on a projector: the pipeline drawn with each step's state and
progress, results shown as soon as their step has made them (figures drawn, tables' first rows) while
the run goes on, deliverables first and intermediates folded."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import run_axe
from tests.conftest import document, edge, node, wait_for_run

SCREENSHOTS = Path(os.environ.get("ILIAD_SCREENSHOTS", "/tmp/iliad-screenshots"))


def labelled(node_dict: dict, label: str) -> dict:
    return {**node_dict, "label": label}


@pytest.mark.e2e  # a real worker runs it: this test runs again on PostgreSQL + Redis
def test_results_and_step_states_show_while_the_run_goes_on(portal, page, page_errors, worker, user):
    from apps.pipelines.services import pipeline_create
    from apps.runs.services import run_submit

    doc = document(
        [
            labelled(node("demo", "ocean.demo_dataset", days=3), "Demo SST"),
            labelled(node("map", "plot.map", variable="sst"), "SST map"),
            labelled(node("mean", "ocean.area_mean", variable="sst"), "Area mean"),
            labelled(node("model", "testing.stages", stages=6, stage_s=1.5), "Slow model"),
        ],
        [
            edge("demo", "dataset", "map", "dataset"),
            edge("demo", "dataset", "mean", "dataset"),
            edge("demo", "dataset", "model", "previous"),
        ],
    )
    run = run_submit(pipeline=pipeline_create(owner=user, name="Workshop", document=doc), user=user)
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(f"{portal}/runs/{run.pk}/")

    graph = page.get_by_role(
        "group", name="Steps of the pipeline and their states; choose one for its details"
    )
    expect(graph.locator('.graph-node[data-node="demo"] .graph-label')).to_have_text("Demo SST")
    # The map's figure and the mean's first rows appear while the slow model is still running.
    previews = page.locator("#result-previews")
    map_card = previews.locator("figure.result-preview", has_text="SST map · figure")
    expect(map_card.locator(".main-svg").first).to_be_visible(timeout=60_000)
    table = previews.get_by_role("table", name="Area mean · table (3 rows)")
    expect(table.get_by_role("columnheader").first).to_be_visible()
    model = graph.locator('.graph-node[data-node="model"]')
    expect(model).to_have_class("graph-node state-running", timeout=30_000)
    expect(model.locator(".graph-status")).to_contain_text("stage", timeout=10_000)
    row = page.locator('#steps tr[data-node="model"]')
    expect(row.locator(".progress-message")).to_contain_text(" of 6")
    expect(row.locator(".elapsed")).to_contain_text("elapsed")
    expect(page.locator("#run-state")).to_have_text("running")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "run-page-during-1280x800.png"), full_page=True)

    expect(page.locator("#run-state")).to_have_text("succeeded", timeout=60_000)
    assert wait_for_run(run.pk).state == "succeeded"
    expect(model).to_have_class("graph-node state-succeeded")
    expect(row.locator(".elapsed")).to_contain_text("took ")
    # Deliverables first, by label and with human sizes; what steps passed on is folded.
    deliverables = page.locator("#artifacts")
    expect(deliverables.get_by_role("link", name="SST map · figure")).to_be_visible()
    expect(deliverables.get_by_role("link", name="Slow model · result")).to_be_visible()
    expect(deliverables).not_to_contain_text("Demo SST")
    expect(deliverables.locator("li").first).to_have_text(
        re.compile(r"SST map · figure \(Figure \(plotly\), \d+\.\d\xa0KB\)")
    )
    folded = page.locator("#intermediates")
    expect(folded.locator("summary")).to_contain_text("Intermediate results (1)")
    expect(folded.get_by_role("link", name="Demo SST · dataset")).to_be_hidden()
    folded.locator("summary").click()
    expect(folded.get_by_role("link", name="Demo SST · dataset")).to_be_visible()
    # A node of the graph opens its step's details: its outputs previewed, only its own log.
    graph.locator('.graph-node[data-node="mean"]').click()
    details = page.get_by_role("region", name=re.compile(r"^Area mean \(ocean\.area_mean@"))
    expect(details).to_be_visible()
    expect(details.locator(".step-panel-state")).to_contain_text("succeeded · took ")
    expect(details.get_by_role("table", name="Area mean · table (3 rows)")).to_be_visible()
    expect(details.get_by_role("log", name="Log of this step")).to_contain_text("Area mean → succeeded")
    expect(details.get_by_role("log", name="Log of this step")).not_to_contain_text("Demo SST")
    assert run_axe(page) == []
    for width, height in ((1280, 800), (1920, 1080)):
        page.set_viewport_size({"width": width, "height": height})
        overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the page is {overflow} px wider than a {width} px window"
        page.screenshot(path=str(SCREENSHOTS / f"run-page-{width}x{height}.png"), full_page=True)
    assert page_errors == []


@pytest.mark.e2e
def test_a_graph_node_opens_its_steps_details_live(portal, page, page_errors, worker, user):
    """Clicking a node while its step runs shows its progress, its log only, and its outputs as soon
    as it makes them, an HTML explorer among them drawn in a sandboxed frame; Escape closes it."""
    from apps.pipelines.services import pipeline_create
    from apps.runs.services import run_submit

    doc = document(
        [
            labelled(node("demo", "ocean.demo_dataset", days=3), "Demo SST"),
            labelled(node("mean", "ocean.area_mean", variable="sst"), "Area mean"),
            labelled(node("explore", "plot.explorer"), "Explorer"),
            labelled(node("model", "testing.stages", stages=5, stage_s=1.5), "Slow model"),
        ],
        [
            edge("demo", "dataset", "mean", "dataset"),
            edge("mean", "table", "explore", "series"),
            edge("demo", "dataset", "model", "previous"),
        ],
    )
    run = run_submit(pipeline=pipeline_create(owner=user, name="Details", document=doc), user=user)
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(f"{portal}/runs/{run.pk}/")
    graph = page.locator("#run-graph")
    model = graph.locator('.graph-node[data-node="model"]')
    expect(model).to_have_class("graph-node state-running", timeout=60_000)
    model.click()
    details = page.get_by_role("region", name=re.compile(r"^Slow model \(testing\.stages@1\.0\.0"))
    expect(details).to_be_visible()
    expect(model).to_have_attribute("aria-current", "true")
    state = details.locator(".step-panel-state")
    expect(state).to_contain_text(re.compile(r"running · \d+ % · stage \d of 5"))
    expect(details.locator(".step-panel-outputs")).to_have_text("No outputs yet.")
    rerun = details.get_by_role("button", name="Rerun from here: Slow model")
    expect(rerun).to_have_count(0)  # not while the run goes on
    # Its output appears in the open panel when the step ends; the log is this step's alone.
    expect(details.locator(".step-panel-outputs")).to_contain_text("Slow model · result", timeout=30_000)
    expect(details.locator(".step-panel-state")).to_contain_text("succeeded · took ")
    log = details.get_by_role("log", name="Log of this step")
    expect(log).to_contain_text("Slow model → running")
    expect(log).to_contain_text("Slow model → succeeded")
    expect(log).not_to_contain_text("Explorer")
    expect(page.locator("#run-state")).to_have_text("succeeded", timeout=30_000)
    expect(rerun).to_be_visible()
    expect(details.get_by_role("link", name="Open in editor at this node")).to_have_attribute(
        "href", re.compile(r"\?node=model$")
    )
    # The explorer's page is drawn among the results without a click, sandboxed.
    frame = page.locator("#result-previews iframe[title='Explorer · page']")
    expect(frame).to_have_attribute("sandbox", "allow-scripts")
    drawn = page.frame_locator("#result-previews iframe[title='Explorer · page']").locator("canvas")
    expect(drawn.first).to_be_visible(timeout=20_000)
    # Another node replaces the details; Escape closes them and gives the focus back to the node.
    graph.locator('.graph-node[data-node="explore"]').click()
    details = page.get_by_role("region", name=re.compile(r"^Explorer \(plot\.explorer@"))
    expect(details.locator("iframe[title='Explorer · page']")).to_be_attached()
    page.keyboard.press("Escape")
    expect(details).to_be_hidden()
    expect(graph.locator('.graph-node[data-node="explore"]')).to_be_focused()
    graph.locator('.graph-node[data-node="model"]').click()
    assert run_axe(page) == []
    for width, height in ((1280, 800), (1920, 1080)):
        page.set_viewport_size({"width": width, "height": height})
        overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the page is {overflow} px wider than a {width} px window"
        page.screenshot(path=str(SCREENSHOTS / f"run-page-step-details-{width}x{height}.png"), full_page=True)
    assert page_errors == []
