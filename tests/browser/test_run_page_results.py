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
    # A node of the graph leads to its step's row.
    graph.locator('.graph-node[data-node="mean"]').click()
    assert page.url.endswith("#step-mean")
    assert run_axe(page) == []
    for width, height in ((1280, 800), (1920, 1080)):
        page.set_viewport_size({"width": width, "height": height})
        overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the page is {overflow} px wider than a {width} px window"
        page.screenshot(path=str(SCREENSHOTS / f"run-page-{width}x{height}.png"), full_page=True)
    assert page_errors == []
