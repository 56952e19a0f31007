"""Units on the canvas: a units problem shows on the node it concerns and one click inserts the fix."""

from __future__ import annotations

import numpy as np
import xarray as xr
from playwright.sync_api import expect

from apps.pipelines.models import Pipeline, PipelineVersion
from tests.browser.conftest import editor_document, node_locator, open_editor, wait_checked
from tests.conftest import document as pipeline_document
from tests.conftest import edge, node


def write_radar_currents(path) -> None:
    """Surface currents in cm s-1, as HF radar products often give them."""
    coords = {
        "time": ("time", np.arange(3.0), {"standard_name": "time", "units": "hours since 2022-07-21"}),
        "lat": ("lat", np.linspace(44, 45.5, 4), {"standard_name": "latitude", "units": "degrees_north"}),
        "lon": ("lon", np.linspace(-5, -3, 5), {"standard_name": "longitude", "units": "degrees_east"}),
    }
    xr.Dataset(
        {
            "uo": (("time", "lat", "lon"), np.full((3, 4, 5), 20.0),
                   {"standard_name": "eastward_sea_water_velocity", "units": "cm s-1"}),
            "vo": (("time", "lat", "lon"), np.full((3, 4, 5), 5.0),
                   {"standard_name": "northward_sea_water_velocity", "units": "cm s-1"}),
        },
        coords=coords,
    ).to_netcdf(path)


def test_units_problem_is_shown_on_the_node_and_fixed_in_one_click(portal, page, page_errors, user,
                                                                    settings, tmp_path):
    settings.ILIAD_DATA_DIR = tmp_path
    write_radar_currents(tmp_path / "radar.nc")
    # A model with a fixed unit contract (tests.support.blocks) fed the radar currents.
    document = pipeline_document(
        [node("radar", "data.open_gridded", source="radar.nc"), node("drift", "testing.si_currents_model")],
        [edge("radar", "dataset", "drift", "currents")],
    )
    document["nodes"][0]["position"] = {"x": 40, "y": 120}
    document["nodes"][1]["position"] = {"x": 700, "y": 120}
    # Saved before the data changed (the API would refuse it now), so written directly.
    pipeline = Pipeline.objects.create(owner=user, name="Radar drift", latest_version=1)
    PipelineVersion.objects.create(pipeline=pipeline, number=1, document=document, created_by=user)

    open_editor(page, f"{portal}/pipelines/{pipeline.pk}/edit/")
    drift = node_locator(page, "drift")
    problems = drift.locator('.node-issues li[data-code="edge.units_mismatch"]')
    expect(problems).to_have_count(2)
    expect(problems.first).to_contain_text("cm s-1")
    expect(drift.locator(".ed-port.port-error[data-port=currents]")).to_have_count(1)
    expect(page.locator('.problem-list li[data-code="edge.units_mismatch"]')).to_have_count(2)

    fix = problems.first.get_by_role("button", name="Insert unit conversion")
    expect(fix).to_be_visible()
    fix.click()
    expect(node_locator(page, "convert_units")).to_be_visible()
    wait_checked(page)
    expect(problems).to_have_count(1)
    problems.first.get_by_role("button", name="Insert unit conversion").click()
    expect(node_locator(page, "convert_units_2")).to_be_visible()
    wait_checked(page)

    expect(drift.locator(".node-issues")).to_have_count(0)
    expect(page.locator(".problems .ok")).to_have_text("No problems found.")
    saved = editor_document(page)
    conversions = {n["id"]: n["params"] for n in saved["nodes"] if n["block"] == "transform.convert_units"}
    assert conversions == {"convert_units": {"variable": "uo", "to_units": "m s-1"},
                           "convert_units_2": {"variable": "vo", "to_units": "m s-1"}}
    assert {"source": "convert_units_2", "source_port": "dataset", "target": "drift",
            "target_port": "currents"} in saved["edges"]

    page.get_by_role("button", name="Undo").click()
    wait_checked(page)
    expect(problems).to_have_count(1)
    assert page_errors == []
