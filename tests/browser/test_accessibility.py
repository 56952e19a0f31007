"""axe-core on the catalog, editor and run pages: no serious or critical violations."""

from __future__ import annotations

import pytest

from tests.browser.conftest import node_locator, open_editor, run_axe
from tests.conftest import document, edge, node


@pytest.fixture
def saved_pipeline(user, catalog):
    from apps.pipelines.services import pipeline_create

    nodes = [node("demo", "ocean.demo_dataset", days=5), node("mean", "ocean.area_mean", variable="sst")]
    nodes[1]["position"] = {"x": 320, "y": 0}
    return pipeline_create(
        owner=user, name="Accessible", document=document(nodes, [edge("demo", "dataset", "mean", "dataset")])
    )


def test_catalog_page(portal, page):
    page.goto(f"{portal}/catalog/")
    assert run_axe(page) == []


def test_editor_page_with_a_node_selected_and_a_problem_shown(portal, page, saved_pipeline):
    open_editor(page, f"{portal}/pipelines/{saved_pipeline.pk}/edit/")
    node_locator(page, "demo").locator(".block-title").click()
    page.locator(".params-form").get_by_label("Number of days").fill("0")  # an inline error
    page.wait_for_selector(".params-form .error-detail")
    assert run_axe(page) == []


def test_empty_editor_and_run_dialog(portal, page, saved_pipeline):
    open_editor(page, f"{portal}/pipelines/new/")
    assert run_axe(page) == []
    open_editor(page, f"{portal}/pipelines/{saved_pipeline.pk}/edit/")
    page.get_by_role("button", name="Run…").click()
    page.wait_for_selector("dialog[open]")
    assert run_axe(page) == []


def test_run_page(portal, page, saved_pipeline, user):
    from apps.runs.services import run_submit

    run = run_submit(pipeline=saved_pipeline, user=user)
    page.goto(f"{portal}/runs/{run.pk}/")
    assert run_axe(page) == []
