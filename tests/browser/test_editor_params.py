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
