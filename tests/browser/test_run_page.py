"""The run page in a real browser: it follows a run run by a real worker to its end, without reload."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.conftest import document, edge, node, wait_for_run


@pytest.mark.e2e  # a real worker runs it: this test runs again on PostgreSQL + Redis
def test_the_run_page_follows_a_failing_run_to_its_end(portal, page, page_errors, worker, user):
    from apps.pipelines.services import pipeline_create
    from apps.runs.services import run_submit

    doc = document(
        [
            node("demo", "ocean.demo_dataset", days=5),
            node("broken", "testing.fail", message="sensor file is corrupt"),
            node("after_broken", "ocean.area_mean", variable="sst"),
            node("mean", "ocean.area_mean", variable="sst"),
        ],
        [
            edge("demo", "dataset", "broken", "dataset"),
            edge("broken", "dataset", "after_broken", "dataset"),
            edge("demo", "dataset", "mean", "dataset"),
        ],
    )
    pipeline = pipeline_create(owner=user, name="Corrupt sensor", document=doc)
    run = run_submit(pipeline=pipeline, user=user)
    page.goto(f"{portal}/runs/{run.pk}/")

    # Everything below arrives while the page stays open (live events, or polling without them).
    expect(page.locator("#run-state")).to_have_text("failed", timeout=60_000)
    assert wait_for_run(run.pk, expect="failed").state == "failed"
    row = page.locator('#steps tr[data-node="broken"]')
    expect(row.locator(".state")).to_have_text("failed")
    expect(row.locator(".error")).to_have_text("RuntimeError: sensor file is corrupt")
    expect(page.locator('#steps tr[data-node="after_broken"] .state')).to_have_text("skipped")
    expect(page.locator('#steps tr[data-node="mean"] .state')).to_have_text("succeeded")
    log = page.get_by_role("log", name="Run log")
    expect(log).to_contain_text("broken [info] about to fail")
    expect(log).to_contain_text("broken → failed — RuntimeError: sensor file is corrupt")
    expect(log).to_contain_text("after_broken → skipped (broken failed)")
    expect(log).to_contain_text("run → failed")
    results = page.locator("#artifacts")
    expect(results.get_by_role("link", name="mean · table")).to_be_visible()
    expect(page.locator("#cancel-run")).to_have_count(0)
    assert page_errors == []
