"""The run page's buttons that run a pipeline again (retry a failed run, rerun from a step), and its
"Open in editor at this node" link: the editor opened with ?node=<id> selects that node."""

from __future__ import annotations

import pytest

from tests.browser.conftest import node_locator, open_editor
from tests.conftest import document, edge, node


@pytest.fixture
def saved_pipeline(user, catalog):
    from apps.pipelines.services import pipeline_create

    nodes = [node("demo", "ocean.demo_dataset", days=5), node("mean", "ocean.area_mean", variable="sst")]
    nodes[1]["position"] = {"x": 320, "y": 0}
    return pipeline_create(
        owner=user, name="Linked", document=document(nodes, [edge("demo", "dataset", "mean", "dataset")])
    )


def test_the_node_named_in_the_url_is_selected(portal, page, page_errors, saved_pipeline):
    open_editor(page, f"{portal}/pipelines/{saved_pipeline.pk}/edit/?node=mean")
    page.wait_for_selector('.react-flow__node.selected[data-id="mean"]')
    assert "selected" not in (node_locator(page, "demo").get_attribute("class") or "")
    assert page.locator(".params-form").get_by_label("Variable").count() >= 1

    open_editor(page, f"{portal}/pipelines/{saved_pipeline.pk}/edit/?node=nowhere")
    page.get_by_text('This pipeline has no node "nowhere".').wait_for()
    assert page.locator(".react-flow__node.selected").count() == 0
    assert page_errors == []


def test_the_run_pages_retry_and_rerun_buttons_start_new_runs(
    portal, page, page_errors, worker, user, tmp_path
):
    from apps.pipelines.services import pipeline_create
    from apps.runs.models import Run
    from apps.runs.services import run_submit
    from tests.conftest import wait_for_run

    flag = tmp_path / "fail-now"
    flag.touch()
    doc = document(
        [
            node("a", "testing.record", marker=str(tmp_path / "calls.txt"), name="a"),
            node("b", "testing.record", marker=str(tmp_path / "calls.txt"), name="b", fail_flag=str(flag)),
        ],
        [edge("a", "result", "b", "previous")],
    )
    failed = run_submit(pipeline=pipeline_create(owner=user, name="Flaky", document=doc), user=user)
    wait_for_run(failed.pk, expect="failed")
    flag.unlink()

    page.goto(f"{portal}/runs/{failed.pk}/")
    page.get_by_role("button", name="Retry failed step").click()
    page.wait_for_url(f"{portal}/runs/{failed.pk + 1}/")
    retried = wait_for_run(failed.pk + 1, expect="succeeded")
    assert Run.objects.values_list("snapshot__rerun__run", flat=True).get(pk=retried.pk) == failed.pk

    page.reload()
    page.get_by_role("button", name="Rerun from here: b").click()
    page.wait_for_url(f"{portal}/runs/{retried.pk + 1}/")
    rerun = wait_for_run(retried.pk + 1, expect="succeeded")
    assert [step.cached_from_id is not None for step in rerun.steps.order_by("id")] == [True, False]
    assert page_errors == []
