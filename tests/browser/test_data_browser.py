"""The editor's data browser: browse a data space (a real WebDAV server), see what a file holds,
pick it, and the selected data-access block's source is filled in (and the block upgraded to the
version that opens data-space references)."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from apps.dataspaces.models import DataSpace
from apps.pipelines.models import Pipeline, PipelineVersion
from tests.browser.conftest import editor_document, node_locator, open_editor
from tests.conftest import document as pipeline_document
from tests.conftest import node
from tests.support import dataspace_servers as servers

SHOTS = Path("/tmp/shots-dataspaces")


@pytest.fixture
def drive(tmp_path, monkeypatch):
    monkeypatch.setenv("ILIAD_URL_ALLOWED_HOSTS", "127.0.0.1")
    server = servers.WebDAVServer(tmp_path / "dav").start()
    servers.write_small_netcdf(tmp_path / "dav" / "campaign" / "sst.nc")
    yield server
    server.stop()


def test_pick_a_file_from_a_webdav_space_fills_the_source(
    portal, page, page_errors, user, drive, settings, tmp_path
):
    settings.ILIAD_DATA_DIR = tmp_path / "portal-data"
    servers.write_small_netcdf(settings.ILIAD_DATA_DIR / "demo" / "biscay.nc")
    settings.ILIAD_DATASPACE_CACHE_DIR = tmp_path / "cache"
    space = DataSpace(
        name="alice-drive", title="Alice's drive", kind="webdav", owner=user, config={"url": drive.url}
    )
    space.set_credentials(servers.WEBDAV_USER)
    space.save()
    document = pipeline_document([node("open", "data.open_gridded", source="demo/biscay.nc")], [])
    document["nodes"][0]["position"] = {"x": 80, "y": 120}
    pipeline = Pipeline.objects.create(owner=user, name="Picked input", latest_version=1)
    PipelineVersion.objects.create(pipeline=pipeline, number=1, document=document, created_by=user)

    open_editor(page, f"{portal}/pipelines/{pipeline.pk}/edit/")
    browser = page.locator(".ed-data")
    expect(browser.get_by_label("Data space", exact=True)).to_be_visible()
    expect(browser.locator(".data-entry", has_text="demo")).to_be_visible()  # the default space first
    browser.get_by_label("Data space", exact=True).select_option(label="Alice's drive (webdav)")
    browser.locator(".data-entry", has_text="campaign").click()
    browser.locator(".data-entry", has_text="sst.nc").click()

    described = browser.get_by_test_id("data-describe")
    expect(described.locator(".data-variables")).to_contain_text("sst")
    expect(described.locator(".data-variables")).to_contain_text("degC")
    expect(described.locator(".data-variables")).to_contain_text("sea_surface_temperature")
    expect(described).to_contain_text("43")  # the area's southern edge
    preview = described.locator("img.data-preview")
    expect(preview).to_be_visible()
    page.wait_for_function(
        "() => { const i = document.querySelector('img.data-preview');"
        " return i && i.complete && i.naturalWidth > 0; }"
    )

    node_locator(page, "open").click()
    described.get_by_role("button", name="Use in open").click()
    saved = next(item for item in editor_document(page)["nodes"] if item["id"] == "open")
    assert saved["params"]["source"] == "space:alice-drive/campaign/sst.nc"
    assert saved["version"] == "1.1.0"  # 1.0.0 cannot open data-space references

    SHOTS.mkdir(parents=True, exist_ok=True)
    for width, height in ((1280, 800), (1920, 1080)):
        page.set_viewport_size({"width": width, "height": height})
        page.wait_for_timeout(300)
        page.screenshot(path=str(SHOTS / f"data-browser-{width}x{height}.png"))
    assert page_errors == []


def test_search_a_stac_catalogue_by_area_and_add_a_block_for_an_asset(portal, page, page_errors, user,
                                                                       monkeypatch, settings, tmp_path):
    monkeypatch.setenv("ILIAD_URL_ALLOWED_HOSTS", "127.0.0.1")
    settings.ILIAD_DATASPACE_CACHE_DIR = tmp_path / "cache"
    netcdf = servers.write_small_netcdf(tmp_path / "web" / "data" / "sst.nc")
    server = servers.StaticServer(tmp_path / "web").start()
    try:
        servers.write_stac_catalog(tmp_path / "web" / "stac", f"{server.url}/data", netcdf)
        DataSpace.objects.create(name="catalogue", title="SST catalogue", kind="stac", owner=user,
                                 config={"url": f"{server.url}/stac/catalog.json"})
        pipeline = Pipeline.objects.create(owner=user, name="From STAC", latest_version=1)
        PipelineVersion.objects.create(pipeline=pipeline, number=1, document=pipeline_document([], []),
                                       created_by=user)

        open_editor(page, f"{portal}/pipelines/{pipeline.pk}/edit/")
        browser = page.locator(".ed-data")
        browser.get_by_label("Data space", exact=True).select_option(label="SST catalogue (stac)")
        expect(browser.locator(".data-entry", has_text="biscay-sst")).to_be_visible()
        browser.get_by_label("Area (west,south,east,north)").fill("-12,40,0,50")
        browser.get_by_role("button", name="Search").click()
        results = browser.locator(".data-entries .data-entry")
        expect(results).to_have_count(1)
        expect(results.first).to_contain_text("sst-2024-06-01")
        results.first.click()
        expect(browser.get_by_test_id("data-describe")).to_contain_text("43…48 °N")
        browser.locator(".data-entry", has_text="data").click()
        described = browser.get_by_test_id("data-describe")
        expect(described.locator(".data-variables")).to_contain_text("degC")
        described.get_by_role("button", name="Add a block that opens it").click()
        expect(node_locator(page, "open_gridded")).to_be_visible()
        added = editor_document(page)["nodes"]
        assert [(item["block"], item["version"], item["params"]["source"]) for item in added] == [
            ("data.open_gridded", "1.1.0", "space:catalogue/biscay-sst/sst-2024-06-01/data")]
        page.set_viewport_size({"width": 1280, "height": 800})
        page.screenshot(path=str(SHOTS / "data-browser-stac-1280x800.png"))
    finally:
        server.stop()
    assert page_errors == []
