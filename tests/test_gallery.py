"""Pilot templates: each one validates against the catalog and runs end to end on a real worker."""

import json
from pathlib import Path

import pandas as pd
import pytest

from apps.gallery.selectors import templates_all
from apps.pipelines.models import Pipeline
from apps.runs.models import Artifact
from tests.conftest import wait_for_run

SLUGS = [template.slug for template in templates_all()]


@pytest.fixture(scope="session")
def demo_data_space(django_db_setup):
    """The demo data space in ILIAD_DATA_DIR, as `make run` writes it on first start."""
    from django.conf import settings

    from blocks.library.demo_data import write_demo_data_space

    return write_demo_data_space(settings.ILIAD_DATA_DIR)


def test_there_are_five_pilot_templates():
    assert SLUGS == ["aquaculture-heatwave-alert", "model-validation-buoys", "oil-spill-drift",
                     "sst-site-forecast", "offshore-wind-site-conditions"]


@pytest.mark.parametrize("slug", SLUGS)
def test_each_template_validates_against_the_catalog(api, catalog, slug):
    template = api.get(f"/api/templates/{slug}/").json()
    assert template["title"] and template["summary"] and len(template["description"]) > 200
    result = api.post("/api/pipelines/validate/", {"document": template["document"]}, format="json").json()
    assert (result["valid"], result["errors"]) == (True, [])


def test_gallery_lists_templates_and_makes_pipelines_from_them(api, client, user, catalog):
    listed = api.get("/api/templates/").json()
    assert [template["slug"] for template in listed] == SLUGS
    response = api.post("/api/templates/sst-site-forecast/use/", {"name": "My site"}, format="json")
    assert response.status_code == 201
    pipeline = Pipeline.objects.get(pk=response.json()["id"])
    assert pipeline.name == "My site" and pipeline.owner == user
    assert pipeline.versions.get().document == listed[3]["document"]
    assert api.post("/api/templates/no-such-template/use/", {}, format="json").status_code == 404
    client.force_login(user)
    page = client.get("/templates/").content.decode()
    assert all(f'data-template="{slug}"' in page for slug in SLUGS)
    assert client.post("/templates/oil-spill-drift/use/").status_code == 302


def run_template(api, slug: str):
    pipeline = api.post(f"/api/templates/{slug}/use/", {}, format="json").json()
    run = api.post(f"/api/pipelines/{pipeline['id']}/runs/", {}, format="json").json()
    return wait_for_run(run["id"], timeout=300, expect="succeeded")


def table(run, node_id: str, port: str) -> pd.DataFrame:
    artifact = Artifact.objects.get(run=run, step__node_id=node_id, port=port)
    return pd.read_csv(artifact.uri.removeprefix("file://"))


def payload(run, node_id: str, port: str):
    artifact = Artifact.objects.get(run=run, step__node_id=node_id, port=port)
    return json.loads(Path(artifact.uri.removeprefix("file://")).read_text())


@pytest.mark.e2e
@pytest.mark.science
def test_aquaculture_template_finds_the_planted_2022_heatwave(worker, api, demo_data_space):
    run = run_template(api, "aquaculture-heatwave-alert")
    events = table(run, "events", "table")
    summer_2022 = events[pd.to_datetime(events["start"]).dt.strftime("%Y-%m") == "2022-07"]
    assert len(summer_2022) == 1
    assert summer_2022.iloc[0]["duration_days"] >= 21
    assert payload(run, "calendar", "figure")["data"]


@pytest.mark.e2e
@pytest.mark.science
def test_model_validation_template_scores_each_buoy(worker, api, demo_data_space):
    run = run_template(api, "model-validation-buoys")
    skill = table(run, "report", "table")
    assert "ALL" in set(skill["station"]) and len(skill) >= 6
    overall = skill[skill["station"] == "ALL"].iloc[0]
    assert 0.8 < overall["correlation"] <= 1 and overall["rmse"] < 1.5
    assert payload(run, "taylor", "figure")["data"]


@pytest.mark.e2e
@pytest.mark.science
def test_oil_spill_template_drifts_particles_and_maps_them(worker, api, demo_data_space):
    run = run_template(api, "oil-spill-drift")
    tracks = payload(run, "drift", "tracks")
    assert tracks["type"] == "FeatureCollection" and len(tracks["features"]) > 1
    assert payload(run, "map", "figure")["data"]


@pytest.mark.e2e
@pytest.mark.science
def test_forecast_template_forecasts_two_weeks_with_intervals(worker, api, demo_data_space):
    run = run_template(api, "sst-site-forecast")
    forecast = table(run, "forecast", "forecast")
    ahead = forecast[forecast["observed"].isna()]
    assert len(ahead) == 14
    assert (ahead["lower"] < ahead["forecast"]).all() and (ahead["forecast"] < ahead["upper"]).all()
    assert len(table(run, "backtest", "table")) > 0


@pytest.mark.e2e
@pytest.mark.science
def test_offshore_wind_template_reports_statistics_and_exceedance(worker, api, demo_data_space):
    run = run_template(api, "offshore-wind-site-conditions")
    statistics = table(run, "stats_table", "table")
    exceedance = table(run, "exceedance_table", "table")
    assert len(statistics) == 1 and len(exceedance) == 4
    fractions = list(exceedance["fraction_exceeded"])
    assert fractions == sorted(fractions, reverse=True)
    page = Artifact.objects.get(run=run, step__node_id="speed_chart")
    assert page.media_type == "text/html"
    assert "<html" in Path(page.uri.removeprefix("file://")).read_text()[:500].lower()
