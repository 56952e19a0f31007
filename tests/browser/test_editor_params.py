"""Parameters as a workshop fills them in: a list typed on one line, the variables a file holds (or
the step upstream passes on) offered before anything runs, a wrong variable shown as a problem at once,
and errors in the same words in the form and in Problems."""

from __future__ import annotations

import os
import re
from pathlib import Path

from playwright.sync_api import expect

from apps.pipelines.models import Pipeline, PipelineVersion
from tests.browser.conftest import editor_document, node_locator, open_editor, wait_checked
from tests.browser.test_editor_units import write_radar_currents
from tests.conftest import document as pipeline_document
from tests.conftest import edge, node

SCREENSHOTS = Path(os.environ.get("ILIAD_SCREENSHOTS", "/tmp/iliad-screenshots"))


def test_variables_are_offered_from_the_data_and_lists_typed_on_one_line(
    portal, page, page_errors, user, settings, tmp_path
):
    settings.ILIAD_DATA_DIR = tmp_path
    write_radar_currents(tmp_path / "radar.nc")  # variables uo and vo
    document = pipeline_document(
        [
            node("radar", "data.open_gridded", "1.1.0", source="radar.nc"),
            node("series", "ocean.area_mean", variable="uo"),
        ],
        [edge("radar", "dataset", "series", "dataset")],
    )
    document["nodes"][1]["position"] = {"x": 360, "y": 0}
    pipeline = Pipeline.objects.create(owner=user, name="Radar", latest_version=1)
    PipelineVersion.objects.create(pipeline=pipeline, number=1, document=document, created_by=user)
    page.set_viewport_size({"width": 1280, "height": 800})
    open_editor(page, f"{portal}/pipelines/{pipeline.pk}/edit/")

    # The file's variables are offered for the open step's list, before any run.
    node_locator(page, "radar").click()
    variables = page.get_by_role("textbox", name="Variables")
    expect(variables).to_have_value("")
    offered = page.get_by_role("group", name="In the data")
    expect(offered.get_by_role("button")).to_have_text(["uo", "vo"])
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "editor-variables-offered-1280x800.png"))
    offered.get_by_role("button", name="Use vo").click()
    expect(variables).to_have_value("vo")
    wait_checked(page)
    assert editor_document(page)["nodes"][0]["params"]["variables"] == ["vo"]
    variables.fill("vo, uo")
    wait_checked(page)
    assert editor_document(page)["nodes"][0]["params"]["variables"] == ["vo", "uo"]
    variables.fill("")
    wait_checked(page)
    assert "variables" not in editor_document(page)["nodes"][0]["params"]  # never an invented empty list

    # What the open step keeps is what the next step is offered; a name it lacks is a problem at once.
    variables.fill("vo")
    wait_checked(page)
    node_locator(page, "series").click()
    expect(page.get_by_role("group", name="In the data").get_by_role("button")).to_have_text(["vo"])
    problems = page.get_by_role("region", name=re.compile("^Problems"))
    expect(problems).to_contain_text("'uo'")
    page.get_by_role("group", name="In the data").get_by_role("button", name="Use vo").click()
    wait_checked(page)
    expect(problems).to_contain_text("No problems found.")
    assert editor_document(page)["nodes"][1]["params"]["variable"] == "vo"
    assert page_errors == []


def test_the_form_and_problems_use_the_same_words(portal, page, page_errors, user):
    document = pipeline_document([node("demo", "ocean.demo_dataset", days=5)], [])
    pipeline = Pipeline.objects.create(owner=user, name="Edges", latest_version=1)
    PipelineVersion.objects.create(pipeline=pipeline, number=1, document=document, created_by=user)
    open_editor(page, f"{portal}/pipelines/{pipeline.pk}/edit/")
    node_locator(page, "demo").click()
    page.get_by_label("Northern edge").fill("95")
    wait_checked(page)
    expect(page.locator(".params-form .error-detail")).to_have_text("is greater than the maximum of 90")
    problems = page.get_by_role("region", name=re.compile("^Problems"))
    expect(problems).to_contain_text(
        "Northern edge (lat_max) of node 'demo': 95 is greater than the maximum of 90"
    )
    assert page_errors == []


def test_the_area_is_drawn_on_a_map_and_the_period_taken_from_the_data(
    portal, page, page_errors, user, settings, tmp_path
):
    from tests.browser.conftest import run_axe

    settings.ILIAD_DATA_DIR = tmp_path
    write_radar_currents(tmp_path / "radar.nc")  # 44–45.5°N, 5–3°W, 21 July 2022
    document = pipeline_document(
        [
            node("radar", "data.open_gridded", "1.1.0", source="radar.nc"),
            node("cut", "ocean.subset", "1.1.0"),
        ],
        [edge("radar", "dataset", "cut", "dataset")],
    )
    document["nodes"][1]["position"] = {"x": 360, "y": 0}
    pipeline = Pipeline.objects.create(owner=user, name="Area", latest_version=1)
    PipelineVersion.objects.create(pipeline=pipeline, number=1, document=document, created_by=user)
    page.set_viewport_size({"width": 1280, "height": 800})
    open_editor(page, f"{portal}/pipelines/{pipeline.pk}/edit/")
    node_locator(page, "cut").click()
    area = page.get_by_role("img", name=re.compile("^Map of the area"))
    data_cover = re.compile(r"The data cover 44\.00°N–45\.50°N, 5\.00°W–3\.00°W\.")
    expect(area).to_have_attribute("aria-label", data_cover)
    expect(area).to_have_attribute("aria-label", re.compile("No area chosen"))
    expect(area.locator(".extent-land")).to_have_attribute("d", re.compile("^M"))  # coastlines drawn

    # A box dragged on the map becomes the four edges, in the form and in the document.
    area.scroll_into_view_if_needed()
    box = area.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.35, box["y"] + box["height"] * 0.35)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5, steps=4)
    expect(area.locator(".extent-draft")).to_have_count(1)
    page.mouse.move(box["x"] + box["width"] * 0.65, box["y"] + box["height"] * 0.65, steps=4)
    page.mouse.up()
    wait_checked(page)
    params = editor_document(page)["nodes"][1]["params"]
    assert -5.6 < params["lon_min"] < -5.0 and -3.0 < params["lon_max"] < -2.4, params
    assert 43.7 < params["lat_min"] < 44.2 and 45.3 < params["lat_max"] < 45.8, params
    expect(page.get_by_label("Western edge")).to_have_value(str(params["lon_min"]))
    expect(area).to_have_attribute("aria-label", re.compile(r"Chosen area: \d+\.\d\d°N–"))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "editor-area-map-1280x800.png"))

    # The data's period in one click; days outside it, and an area outside the data, are told at once.
    panel = page.get_by_role("region", name="Area and period")
    expect(panel).to_contain_text("The data cover 2022-07-21 to 2022-07-21.")
    panel.get_by_role("button", name="Use the whole period").click()
    wait_checked(page)
    params = editor_document(page)["nodes"][1]["params"]
    assert (params["start"], params["end"]) == ("2022-07-21", "2022-07-21")
    expect(page.get_by_label("First day")).to_have_value("2022-07-21")
    page.get_by_label("First day").fill("2023-01-01")
    expect(panel.get_by_role("alert")).to_have_text(
        "The first day is after the data end: the data cover 2022-07-21 to 2022-07-21."
    )
    page.get_by_label("Northern edge").fill("35")
    page.get_by_label("Southern edge").fill("30")
    expect(panel.get_by_role("alert").filter(has_text="area")).to_have_text(
        "The area lies outside the data: they cover 44.00°N–45.50°N, 5.00°W–3.00°W."
    )
    panel.get_by_role("button", name="Use the data's whole area").click()
    wait_checked(page)
    params = editor_document(page)["nodes"][1]["params"]
    assert [params[k] for k in ("lat_min", "lat_max", "lon_min", "lon_max")] == [44, 45.5, -5, -3]
    panel.get_by_role("button", name="Clear the area").click()
    wait_checked(page)
    assert not {"lat_min", "lat_max", "lon_min", "lon_max"} & set(editor_document(page)["nodes"][1]["params"])
    assert run_axe(page) == []
    for width, height in ((1280, 800), (1920, 1080)):
        page.set_viewport_size({"width": width, "height": height})
        overflow = page.evaluate("() => document.documentElement.scrollHeight - window.innerHeight")
        assert overflow <= 0, f"the page is {overflow} px taller than a {width}×{height} window"
        page.screenshot(path=str(SCREENSHOTS / f"editor-area-{width}x{height}.png"))
    assert page_errors == []
