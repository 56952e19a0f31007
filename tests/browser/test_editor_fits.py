"""The editor fits the screen a workshop uses (1280×800 laptop, 1920×1080 projector): no page scroll in
either direction, the toolbar on one line, the status line in view, and a template's pipeline shown
at a readable zoom."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import open_editor

SCREENSHOTS = Path(os.environ.get("ILIAD_SCREENSHOTS", "/tmp/iliad-screenshots"))
SIZES = ((1280, 800), (1920, 1080))


def measure(page) -> dict:
    return page.evaluate(
        """() => {
          const root = document.documentElement;
          const box = (selector) => {
            const element = document.querySelector(selector);
            return element ? element.getBoundingClientRect() : null;
          };
          const toolbar = box('.ed-toolbar');
          const status = box('[data-testid=editor-status]');
          const viewport = document.querySelector('.react-flow__viewport');
          const zoom = viewport ? new DOMMatrixReadOnly(getComputedStyle(viewport).transform).a : null;
          return {
            overflowY: root.scrollHeight - window.innerHeight,
            overflowX: root.scrollWidth - window.innerWidth,
            toolbarHeight: toolbar && toolbar.height,
            statusBottom: status && status.bottom,
            zoom,
          };
        }"""
    )


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_the_editor_fits_the_window_and_shows_a_template_readably(portal, page, page_errors, width, height):
    page.set_viewport_size({"width": width, "height": height})
    open_editor(page, f"{portal}/pipelines/new/?template=aquaculture-heatwave-alert")
    expect(page.locator(".react-flow__node")).to_have_count(6)
    page.get_by_role("button", name="Fit", exact=True).click()
    page.wait_for_timeout(400)  # the fit animates for 200 ms
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"editor-{width}x{height}.png"))
    sizes = measure(page)
    assert sizes["overflowY"] <= 0 and sizes["overflowX"] <= 0, sizes
    assert sizes["toolbarHeight"] < 60, f"the toolbar wraps onto a second line: {sizes}"
    assert sizes["statusBottom"] <= height, f"the status line is below the fold: {sizes}"
    assert sizes["zoom"] >= 0.7, f"fit shows the pipeline at {sizes['zoom']:.0%}: unreadable on a projector"
    assert page_errors == []


def test_the_palette_and_panel_fold_away_and_a_keyboard_delete_is_announced(portal, page, page_errors):
    page.set_viewport_size({"width": 1280, "height": 800})
    open_editor(page, f"{portal}/pipelines/new/?template=aquaculture-heatwave-alert")
    canvas = page.get_by_role("region", name="Pipeline canvas")
    narrow = canvas.bounding_box()["width"]
    page.get_by_role("button", name="« Hide blocks").click()
    page.get_by_role("button", name="Hide details »").click()
    expect(page.get_by_role("complementary", name="Details")).to_have_count(0)
    wide = canvas.bounding_box()["width"]
    assert wide > narrow + 550, (narrow, wide)
    page.get_by_role("button", name="Fit", exact=True).click()
    page.wait_for_timeout(400)
    page.screenshot(path=str(SCREENSHOTS / "editor-folded-1280x800.png"))
    assert measure(page)["overflowY"] <= 0
    page.get_by_role("button", name="» Show blocks").click()
    expect(page.get_by_role("searchbox", name="Search blocks")).to_be_visible()

    page.locator('.react-flow__node[data-id="calendar"]').click()
    page.keyboard.press("Delete")
    expect(page.get_by_role("status").and_(page.locator(".status-info"))).to_have_text(
        re.compile(r"^Deleted Heatwave calendar and 1 connection\(s\)\.$")
    )
    expect(page.locator(".react-flow__node")).to_have_count(5)
    assert page_errors == []


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_the_file_menu_and_its_dialogs_fit_and_pass_axe(portal, page, page_errors, width, height):
    from tests.browser.conftest import run_axe

    page.set_viewport_size({"width": width, "height": height})
    open_editor(page, f"{portal}/pipelines/new/?template=aquaculture-heatwave-alert")
    page.get_by_role("button", name="File").click()
    menu = page.get_by_role("group", name="File")
    expect(menu.get_by_role("button", name="Export JSON")).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / f"editor-file-menu-{width}x{height}.png"))
    assert run_axe(page) == []
    page.keyboard.press("Escape")
    expect(menu).to_be_hidden()
    page.get_by_role("button", name="File").click()
    page.get_by_role("button", name="New from template").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("button", name=re.compile("^Use template ")).first).to_have_text("Use template")
    page.screenshot(path=str(SCREENSHOTS / f"editor-templates-dialog-{width}x{height}.png"))
    assert run_axe(page) == []
    assert measure(page)["overflowY"] <= 0
    dialog.get_by_role("button", name="Cancel").or_(dialog.get_by_role("button", name="Close")).first.click()
    page.get_by_role("button", name="Run…").click()
    expect(page.get_by_role("dialog")).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / f"editor-run-dialog-{width}x{height}.png"))
    assert run_axe(page) == []
    assert page_errors == []
