"""The run page's state badge follows the run's own state events and never goes backwards."""

from __future__ import annotations

from django.db import transaction
from playwright.sync_api import expect

from apps.runs.events import events_append
from tests.browser.test_run_page_live import asgi_portal, make_run  # noqa: F401 - fixture


def test_the_badge_does_not_go_back_when_older_run_states_are_replayed(asgi_portal, page, page_errors, user):  # noqa: F811
    run = make_run(user, "running")
    with transaction.atomic():  # the run's history: queued, running, and queued again from a stray event
        events_append(
            run_id=run.pk,
            events=[("state", "", {"state": "queued"}), ("state", "", {"state": "running"})],
        )
    page.goto(f"{asgi_portal.url}/runs/{run.pk}/")
    badge = page.locator("#run-state")
    log = page.get_by_role("log", name="Run log")
    expect(log).to_contain_text("run → running")
    expect(badge).to_have_text("running")
    with transaction.atomic():
        events_append(run_id=run.pk, events=[("state", "", {"state": "queued"})])
    expect(log).to_contain_text("run → queued")
    expect(badge).to_have_text("running")
    with transaction.atomic():
        events_append(run_id=run.pk, events=[("state", "", {"state": "succeeded"})])
    expect(badge).to_have_text("succeeded")
    with transaction.atomic():
        events_append(
            run_id=run.pk,
            events=[
                ("state", "", {"state": "running"}),
                ("log", "", {"level": "info", "message": "the end"}),
            ],
        )
    expect(log).to_contain_text("[info] the end")
    expect(badge).to_have_text("succeeded")
    assert page_errors == []
