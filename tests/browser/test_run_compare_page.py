"""Comparing two runs in the browser: chosen from the run page, figures drawn side by side, the table
diff readable, no page overflow, and no serious accessibility violation."""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings
from playwright.sync_api import expect

from tests.browser.conftest import run_axe
from tests.test_run_compare import make_run

SCREENSHOTS = Path(os.environ.get("ILIAD_SCREENSHOTS", "/tmp/iliad-screenshots"))


def test_compare_two_runs_from_the_run_page(portal, page, page_errors, user):
    from apps.pipelines.models import Pipeline

    settings.ILIAD_ARTIFACT_ROOT.mkdir(parents=True, exist_ok=True)
    pipeline = Pipeline.objects.create(owner=user, name="P", latest_version=1)
    a = make_run(user, days=5, sst=["15.1", "15.2"], pipeline=pipeline)
    b = make_run(user, days=9, sst=["15.1", "15.9"], pipeline=pipeline)
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(f"{portal}/runs/{b.pk}/")
    page.get_by_label("Compare with").select_option(str(a.pk))
    page.get_by_role("button", name="Compare", exact=True).click()
    page.wait_for_url(f"**/runs/compare/?a={b.pk}&b={a.pk}")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Run #{b.pk} and run #{a.pk} compared")
    differences = page.locator("#differences")
    expect(differences.get_by_role("row", name="demo days 9 5")).to_be_visible()
    table = page.get_by_role("table", name="1 cell differs in the first 20 rows")
    expect(table.locator("td.changed")).to_have_text("15.9 15.2")
    for run in (b, a):
        figure = page.get_by_role("figure", name=f"map · figure of run #{run.pk}")
        expect(figure.locator(".main-svg").first).to_be_visible(timeout=20_000)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for width, height in ((1280, 800), (1920, 1080)):
        page.set_viewport_size({"width": width, "height": height})
        assert page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth") <= 0
        page.screenshot(path=str(SCREENSHOTS / f"run-compare-{width}x{height}.png"), full_page=True)
    assert run_axe(page) == []
    assert page_errors == []
