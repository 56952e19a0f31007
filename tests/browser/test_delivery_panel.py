"""The run page's delivery panel in a real browser: a run on a real worker whose WebDAV space is
down fails to deliver (the panel says why, the results stay downloadable), "Deliver again" once the
drive is back delivers it; the processing report opens from the panel. Screenshots of each state at
1280×800 and 1920×1080 go to /tmp/shots-delivery/."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.conftest import wait_for_run
from tests.support.dataspace_servers import WEBDAV_USER
from tests.test_delivery import start_webdav
from tests.test_delivery_e2e import delivering_document

SHOTS = Path("/tmp/shots-delivery")
SIZES = ((1280, 800), (1920, 1080))


def shoot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    for width, height in SIZES:
        page.set_viewport_size({"width": width, "height": height})
        page.locator("#delivery-panel").scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / f"{name}-{width}x{height}.png"))


@pytest.mark.e2e
def test_the_delivery_panel_shows_a_failed_delivery_and_delivers_again(
    portal, page, page_errors, killable_worker, user, tmp_path
):
    from apps.dataspaces.models import DataSpace
    from apps.delivery.services import delivery_request
    from apps.pipelines.services import pipeline_create
    from apps.runs.services import run_submit

    killable_worker("delivery-ui", ILIAD_DELIVERY_ATTEMPTS="1", ILIAD_URL_ALLOWED_HOSTS="127.0.0.1")
    server = start_webdav(tmp_path / "dav")
    server.stop()
    space = DataSpace(
        name="drive", title="Research drive", kind="webdav", owner=user, config={"url": server.url}
    )
    space.set_credentials(dict(WEBDAV_USER))
    space.save()
    pipeline = pipeline_create(owner=user, name="Biscay SST", document=delivering_document())
    run = run_submit(pipeline=pipeline, user=user)
    delivery_request(run=run, user=user, space=space, folder="campaign")

    page.goto(f"{portal}/runs/{run.pk}/")
    panel = page.locator("#delivery-panel")
    expect(panel.get_by_role("heading", name="Delivery and report")).to_be_visible()
    expect(page.locator("#run-state")).to_have_text("succeeded", timeout=60_000)
    wait_for_run(run.pk, expect="succeeded")
    expect(page.locator("#delivery-state")).to_have_text("failed", timeout=60_000)
    expect(page.locator("#delivery-error")).to_contain_text("cannot reach the WebDAV server")
    expect(page.locator("#delivery-where")).to_contain_text("drive:campaign")
    expect(page.get_by_role("link", name="csv · table")).to_be_visible()  # results are kept
    again = page.get_by_role("button", name="Deliver again")
    expect(again).to_be_visible()
    shoot(page, "1-failed")

    restarted = start_webdav(server.root, server.port)
    try:
        again.click()
        expect(page.locator("#delivery-state")).to_have_text("delivered", timeout=60_000)
    finally:
        restarted.stop()
    expect(page.locator("#delivery-error")).to_be_hidden()
    expect(page.locator("#delivery-where")).to_contain_text(f"drive:campaign/Biscay-SST-run-{run.pk}")
    expect(page.locator("#delivery-files")).to_have_text("10")
    assert (server.root / "campaign" / f"Biscay-SST-run-{run.pk}" / "report" / "report.pdf").is_file()
    shoot(page, "2-delivered")

    page.get_by_role("link", name="Processing report").click()
    expect(page.get_by_role("heading", name="Processing report")).to_be_visible()
    expect(page.locator("svg.pipeline-diagram g.node")).to_have_count(4)
    expect(page.locator("#report-owner")).to_contain_text("alice")
    for width, height in SIZES:
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(SHOTS / f"3-report-{width}x{height}.png"), full_page=True)
    assert page_errors == []


@pytest.mark.e2e
def test_the_delivery_panel_sends_a_run_to_a_chosen_space(portal, page, page_errors, worker, user, tmp_path):
    from apps.dataspaces.models import DataSpace
    from apps.delivery.models import Delivery
    from apps.pipelines.models import Pipeline
    from tests.support.delivery_runs import make_finished_run

    root = tmp_path / "space"
    root.mkdir()
    DataSpace.objects.create(
        name="results", title="My results", kind="local", owner=user, config={"root": str(root)}
    )
    pipeline = Pipeline.objects.create(owner=user, name="SST at the site")
    run = make_finished_run(user, pipeline=pipeline, tmp_path=tmp_path)

    page.goto(f"{portal}/runs/{run.pk}/")
    expect(page.locator("#delivery-state")).to_have_text("not delivered")
    page.get_by_label("folder").fill("../outside")
    page.get_by_role("button", name="Deliver", exact=True).click()
    expect(page.locator("#delivery-status")).to_contain_text("folder: path '../outside'")
    page.get_by_label("folder").fill("2026/june")
    page.get_by_role("button", name="Deliver", exact=True).click()
    expect(page.locator("#delivery-state")).to_have_text("delivered", timeout=60_000)
    expect(page.locator("#delivery-where")).to_contain_text(f"results:2026/june/SST-at-the-site-run-{run.pk}")
    expect(page.locator("#delivery-status")).to_have_text("")
    assert Delivery.objects.get(run=run).folder == "2026/june"
    assert (root / "2026/june" / f"SST-at-the-site-run-{run.pk}" / "ro-crate-metadata.json").is_file()
    shoot(page, "0-delivered-from-the-panel")
    assert page_errors == []


@pytest.mark.e2e
def test_the_run_dialog_picks_the_delivery_space_and_remembers_it_for_the_pipeline(
    portal, page, page_errors, worker, user, tmp_path
):
    from apps.dataspaces.models import DataSpace
    from apps.delivery.models import Delivery
    from apps.pipelines.services import pipeline_create
    from apps.runs.models import Run
    from tests.browser.conftest import open_editor

    root = tmp_path / "space"
    root.mkdir()
    DataSpace.objects.create(
        name="results", title="My results", kind="local", owner=user, config={"root": str(root)}
    )
    pipeline = pipeline_create(owner=user, name="Biscay SST", document=delivering_document())

    open_editor(page, f"{portal}/pipelines/{pipeline.pk}/edit/")
    page.get_by_role("button", name="Run…").click()
    page.get_by_label("Deliver results to data space").select_option("results")
    page.get_by_label("Folder in the space").fill("june")
    shoot_dialog = SHOTS / "4-run-dialog-1280x800.png"
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 1280, "height": 800})
    page.screenshot(path=str(shoot_dialog))
    page.get_by_role("button", name="Submit run").click()
    page.wait_for_url(f"{portal}/runs/*/")
    run = Run.objects.get(pipeline=pipeline)
    expect(page.locator("#delivery-state")).to_have_text("delivered", timeout=90_000)
    expect(page.locator("#delivery-where")).to_contain_text(f"results:june/Biscay-SST-run-{run.pk}")
    assert Delivery.objects.get(run=run).folder == "june"

    open_editor(page, f"{portal}/pipelines/{pipeline.pk}/edit/")
    page.get_by_role("button", name="Run…").click()
    expect(page.get_by_label("Deliver results to data space")).to_have_value("results")
    expect(page.get_by_label("Folder in the space")).to_have_value("june")
    assert page_errors == []
