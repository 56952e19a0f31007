"""Feedback, validation dashboards, notifications and workshops in a real browser: a result of a run a
real worker ran gets feedback on the run page (keyboard only for the rating) and shows up on the
catalog page and the validation dashboard of its block (plotly drawn from the portal's own copy); the
follow-me view follows the facilitator; every page passes axe-core with no serious or critical
violation. Screenshots go to ``$ILIAD_SHOTS_DIR`` (default /tmp/shots-feedback) at 1280×800 and 1920×1080.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import run_axe
from tests.conftest import document, edge, node, wait_for_run

SHOTS = Path(os.environ.get("ILIAD_SHOTS_DIR", "/tmp/shots-feedback"))
SIZES = ((1280, 800), (1920, 1080))


def feedback_section_violations(page) -> list[str]:
    """Serious or critical axe-core violations inside the run page's feedback section (the rest of the
    run page is tests/browser/test_accessibility.py's)."""
    run_axe(page)  # loads axe
    result = page.evaluate("async () => await axe.run('#feedback', {resultTypes: ['violations']})")
    return [v["id"] for v in result["violations"] if v["impact"] in ("serious", "critical")]


def shoot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    for width, height in SIZES:
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(SHOTS / f"{name}-{width}x{height}.png"), full_page=True)


@pytest.mark.e2e  # a real worker runs the pipeline: this test runs again on PostgreSQL + Redis
def test_feedback_on_a_result_shows_on_the_blocks_catalog_page_and_dashboard(
    portal, page, page_errors, worker, user, django_user_model
):
    from apps.pipelines.services import pipeline_create
    from apps.runs.services import run_submit

    django_user_model.objects.create_user("maintainer", is_staff=True)
    doc = document(
        [
            node("demo", "ocean.demo_dataset", days=5, resolution=1.0),
            node("mean", "ocean.area_mean", variable="sst"),
        ],
        [edge("demo", "dataset", "mean", "dataset")],
    )
    pipeline = pipeline_create(owner=user, name="Biscay SST", document=doc)
    run = wait_for_run(run_submit(pipeline=pipeline, user=user, cache=False).pk, expect="succeeded")
    artifact = run.artifacts.get(step__node_id="mean")

    page.goto(f"{portal}/runs/{run.pk}/")
    item = page.locator(f"#feedback-artifact-{artifact.pk}")
    expect(item.get_by_role("heading")).to_have_text(f"On mean · {artifact.port}")
    # The rating by keyboard: the stars are a radio group, arrows move the choice.
    item.get_by_label("1 of 5").focus()
    page.keyboard.press("Space")
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    expect(item.get_by_label("4 of 5")).to_be_checked()
    item.get_by_label("Verdict").select_option("needs_changes")
    item.get_by_label("Comment").fill("The mean is a little warm near the coast.")
    item.get_by_label("Tags").fill("coast, bias")
    assert feedback_section_violations(page) == []
    shoot(page, "run-page-feedback-form")
    item.get_by_role("button", name="Save feedback").click()
    expect(page.get_by_role("status").filter(has_text="your feedback was saved")).to_be_visible()
    item = page.locator(f"#feedback-artifact-{artifact.pk}")
    expect(item.get_by_role("button", name="Update feedback")).to_be_visible()
    expect(item.get_by_label("4 of 5")).to_be_checked()
    expect(item.get_by_label("Comment")).to_have_value("The mean is a little warm near the coast.")

    page.goto(f"{portal}/catalog/ocean.area_mean/")
    panel = page.locator("section#feedback")
    expect(panel).to_contain_text("The mean is a little warm near the coast.")
    expect(panel.locator("tbody tr")).to_have_text(
        ["1.0.0" + "1" + "4.0" + "0" + "1" + "0"], use_inner_text=False
    )
    assert run_axe(page) == []
    shoot(page, "catalog-block-feedback")

    panel.get_by_role("link", name="Validation dashboard").click()
    expect(page.locator("#total-count")).to_have_text("1")
    expect(page.locator("#rating-over-time .main-svg").first).to_be_visible()
    expect(page.locator("#verdicts-per-version .main-svg").first).to_be_visible()
    expect(page.locator("#per-version tbody tr td").first).to_have_text("1.0.0")
    assert run_axe(page) == []
    shoot(page, "validation-dashboard-block")
    page.goto(f"{portal}/validation/pipelines/{pipeline.pk}/")
    expect(page.locator("#total-count")).to_have_text("1")
    shoot(page, "validation-dashboard-pipeline")
    assert page_errors == []


def test_workshop_follow_me_view_follows_the_facilitator_and_pages_are_accessible(
    portal, page, page_errors, user, other_user
):
    from apps.feedback.models import Notification
    from apps.pipelines.services import pipeline_create
    from apps.workshops.services import (
        agenda_item_add,
        agenda_item_start,
        decision_add,
        participant_add,
        pipeline_add,
        workshop_create,
    )

    doc = document(
        [node("demo", "ocean.demo_dataset", days=5), node("mean", "ocean.area_mean", variable="sst")],
        [edge("demo", "dataset", "mean", "dataset")],
    )
    pipeline = pipeline_create(owner=user, name="Heatwave alert", document=doc)
    workshop = workshop_create(
        user=user, title="Aquaculture alert co-design", description="Tune the alert with the farmers."
    )
    pipeline_add(workshop=workshop, by=user, pipeline=pipeline)
    participant_add(workshop=workshop, by=user, username=other_user.username)
    first = agenda_item_add(workshop=workshop, by=user, title="Walk through the pipeline", minutes=15)
    second = agenda_item_add(workshop=workshop, by=user, title="Choose the threshold", minutes=10)
    agenda_item_start(workshop=workshop, by=user, item=first)
    decision_add(workshop=workshop, by=user, text="Use the 90th percentile baseline 1991–2020")
    Notification.objects.create(
        recipient=user,
        message="bob gave feedback on run 7 (Heatwave alert): 4/5, fit for decision",
        url="/runs/7/",
    )

    page.goto(f"{portal}/workshops/{workshop.pk}/")
    expect(page.get_by_role("heading", name="Aquaculture alert co-design")).to_be_visible()
    expect(page.locator("#agenda .current .timer")).to_have_text(re.compile(r"^1[45]:\d\d$"))
    expect(page.get_by_role("link", name="Notifications: 1 unread")).to_be_visible()
    assert run_axe(page) == []
    shoot(page, "workshop-detail")

    page.goto(f"{portal}/workshops/{workshop.pk}/follow/")
    expect(page.locator("#current-title")).to_have_text("Walk through the pipeline")
    assert run_axe(page) == []
    shoot(page, "workshop-follow")
    agenda_item_start(workshop=workshop, by=user, item=second)  # the facilitator moves on
    expect(page.locator("#current-title")).to_have_text("Choose the threshold", timeout=8000)
    expect(page.locator("#follow-agenda .current")).to_contain_text("Choose the threshold")

    page.goto(f"{portal}/workshops/")
    assert run_axe(page) == []
    shoot(page, "workshop-list")
    page.goto(f"{portal}/workshops/{workshop.pk}/summary/")
    expect(page.get_by_text("Use the 90th percentile baseline 1991–2020")).to_be_visible()
    assert run_axe(page) == []
    shoot(page, "workshop-summary")
    page.goto(f"{portal}/notifications/")
    assert run_axe(page) == []
    shoot(page, "notifications")
    page.get_by_role("button", name="Mark all as read").click()
    expect(page.get_by_role("link", name="Notifications", exact=True)).to_be_visible()
    assert page_errors == []
