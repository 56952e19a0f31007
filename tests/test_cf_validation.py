"""Units and quantities checked before a run, from what the data-space files really hold.

The data space is a temporary folder with the demo files and small NetCDF files written here with
xarray; validation goes through ``POST /api/pipelines/validate/`` as the editor does.
"""

from __future__ import annotations

import copy
import http.server
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from apps.gallery.selectors import templates_all
from apps.pipelines import sources
from tests.conftest import document, edge, node

UNIT_CODES = {"edge.quantity_mismatch", "edge.units_unconvertible", "edge.units_mismatch",
              "node.unknown_variable", "edge.calendar_mismatch"}


@pytest.fixture(scope="module")
def data_space(tmp_path_factory) -> Path:
    from blocks.library.demo_data import write_demo_data_space

    root = tmp_path_factory.mktemp("data-space")
    write_demo_data_space(root)
    return root


@pytest.fixture
def data_dir(data_space, settings) -> Path:
    settings.ILIAD_DATA_DIR = data_space
    return data_space


def validate(api, doc) -> list[dict]:
    response = api.post("/api/pipelines/validate/", {"document": doc}, format="json")
    assert response.status_code == 200, response.content
    return response.json()["errors"]


def pilot(number: int) -> dict:
    return copy.deepcopy(templates_all()[number - 1].document)


def write_currents(path: Path, units: str, **extra_attrs) -> None:
    """A tiny current field: uo/vo on time, lat, lon with the given units."""
    shape = (3, 4, 5)
    coords = {
        "time": ("time", np.arange(3.0), {"standard_name": "time", "units": "hours since 2022-07-21",
                                         "calendar": "standard"}),
        "lat": ("lat", np.linspace(44, 45.5, 4), {"standard_name": "latitude", "units": "degrees_north"}),
        "lon": ("lon", np.linspace(-5, -3, 5), {"standard_name": "longitude", "units": "degrees_east"}),
    }
    variables = {
        name: (("time", "lat", "lon"), np.full(shape, 10.0),
               {"standard_name": standard_name, "units": units, **extra_attrs})
        for name, standard_name in (("uo", "eastward_sea_water_velocity"),
                                    ("vo", "northward_sea_water_velocity"))
    }
    xr.Dataset(variables, coords=coords).to_netcdf(path)


def model_document(source: str) -> dict:
    """Currents from ``source`` into a model that needs them in m s-1 (tests.support.blocks)."""
    return document([node("currents", "data.open_gridded", source=source),
                     node("model", "testing.si_currents_model")],
                    [edge("currents", "dataset", "model", "currents")])


def test_every_pilot_template_has_no_units_or_quantity_problem(api, catalog, data_dir):
    for template in templates_all():
        assert validate(api, template.document) == [], template.slug
    # The demo files were really described (so the checks above had something to check).
    described = sources.describe_source("demo/biscay_ocean.nc")
    assert described["variables"]["sst"]["standard_name"] == "sea_surface_temperature"
    assert described["variables"]["so"]["units"] == "1e-3"
    assert described["calendar"] == "standard"


def test_salinity_into_the_marine_heatwave_detector_is_caught(api, catalog, data_dir):
    doc = pilot(1)
    doc["nodes"][0]["params"]["variables"] = ["so"]
    doc["nodes"][2]["params"]["variable"] = "so"
    doc["nodes"][3]["params"]["column"] = "so"
    [issue] = validate(api, doc)
    assert issue["code"] == "edge.quantity_mismatch"
    assert (issue["node"], issue["port"], issue["pointer"]) == ("heatwaves", "series", "/edges/2")
    assert issue["message"].startswith("'Detect heatwaves': input 'Daily temperature series' needs a ")
    assert "the column 'so' from 'Site temperature'" in issue["message"]
    assert "sea water salinity" in issue["message"]
    # Saving it is refused with the same problem: it would run and give nonsense.
    response = api.post("/api/pipelines/", {"name": "Salty heatwaves", "document": doc}, format="json")
    assert response.status_code == 400
    assert [error["code"] for error in response.json()["errors"]] == ["edge.quantity_mismatch"]


def test_current_speed_into_the_marine_heatwave_detector_is_caught(api, catalog, data_dir):
    doc = pilot(5)
    doc["nodes"].append(node("heatwaves", "analytics.marine_heatwaves", column="speed"))
    doc["edges"].append(edge("speed_series", "table", "heatwaves", "series"))
    [issue] = validate(api, doc)
    assert issue["code"] == "edge.units_unconvertible"
    assert issue["node"] == "heatwaves"
    assert "m s-1" in issue["message"] and "temperature" in issue["message"]


def test_currents_in_centimetres_per_second_get_a_conversion_fix(api, catalog, data_dir):
    write_currents(data_dir / "radar_cm.nc", "cm s-1")
    found = validate(api, model_document("radar_cm.nc"))
    assert [(issue["code"], issue["node"], issue["port"]) for issue in found] == [
        ("edge.units_mismatch", "model", "currents"), ("edge.units_mismatch", "model", "currents")]
    fixes = [issue["details"]["fix"] for issue in found]
    assert [fix["params"] for fix in fixes] == [{"variable": "uo", "to_units": "m s-1"},
                                                {"variable": "vo", "to_units": "m s-1"}]
    assert all(fix["insert"] == "transform.convert_units" and fix["edge"] == 0 for fix in fixes)

    doc = model_document("radar_cm.nc")
    doc["nodes"] += [node("to_ms_u", "transform.convert_units", **fixes[0]["params"]),
                     node("to_ms_v", "transform.convert_units", **fixes[1]["params"])]
    doc["edges"] = [edge("currents", "dataset", "to_ms_u", "dataset"),
                    edge("to_ms_u", "dataset", "to_ms_v", "dataset"),
                    edge("to_ms_v", "dataset", "model", "currents")]
    assert validate(api, doc) == []

    # The particle drift model converts speeds itself: the same file is fine for it.
    drift = pilot(3)
    drift["nodes"][0]["params"]["source"] = "radar_cm.nc"
    assert validate(api, drift) == []


def test_a_changed_file_is_read_again(api, catalog, data_dir):
    path = data_dir / "changing.nc"
    write_currents(path, "m s-1")
    assert validate(api, model_document("changing.nc")) == []
    hits = sources._described.cache_info().hits
    assert validate(api, model_document("changing.nc")) == []
    assert sources._described.cache_info().hits > hits  # same (path, mtime, size): not opened again
    write_currents(path, "knots", long_name="a longer attribute so that the size changes")
    changed = validate(api, model_document("changing.nc"))
    assert {issue["code"] for issue in changed} == {"edge.units_mismatch"}


def test_a_variable_missing_from_the_file_is_reported(api, catalog, data_dir):
    doc = pilot(4)
    doc["nodes"][0]["params"]["variables"] = ["temperature"]
    [issue] = validate(api, doc)
    assert issue["code"] == "node.unknown_variable"
    assert issue["pointer"] == "/nodes/0/params/variables"
    assert "'temperature'" in issue["message"] and "'sst'" in issue["message"]


def test_urls_are_not_fetched_while_validating(api, catalog, data_dir):
    requests: list[str] = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server API
            requests.append(self.path)
            self.send_error(404)

        do_HEAD = do_GET  # noqa: N815

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/ocean.nc"
        assert validate(api, model_document(url)) == []
    finally:
        server.shutdown()
        server.server_close()
    assert requests == []


def test_sources_outside_the_data_space_or_unreadable_are_unknown(api, catalog, data_dir, tmp_path):
    outside = tmp_path / "outside.nc"
    write_currents(outside, "cm s-1")
    (data_dir / "broken.nc").write_bytes(b"CDF\x01 not really a NetCDF file")
    pd.DataFrame({"a": [1]}).to_csv(data_dir / "table.csv")
    escaping = f"../{outside.parent.name}/outside.nc"
    assert sources.describe_source("nul\x00.nc") is None  # (the API refuses NUL characters earlier)
    for source in (escaping, str(outside), "broken.nc", "table.csv", "missing.nc", "a" * 5000 + ".nc"):
        assert sources.describe_source(source) is None, source[:40]
        codes = {issue["code"] for issue in validate(api, model_document(source))}
        assert not codes & UNIT_CODES, source[:40]  # (a 5000-character source is refused by the schema)


def test_the_new_codes_are_in_the_engine_codes():
    from engine import CODES

    assert UNIT_CODES <= set(CODES)


def test_a_360_day_model_calendar_is_caught_before_heatwave_detection(api, catalog, data_dir):
    days = np.arange(360.0 * 3)
    xr.Dataset(
        {"sst": (("time", "lat", "lon"), np.full((days.size, 2, 2), 15.0),
                 {"standard_name": "sea_surface_temperature", "units": "degC"})},
        coords={"time": ("time", days, {"standard_name": "time", "units": "days since 2000-01-01",
                                        "calendar": "360_day"}),
                "lat": ("lat", [44.5, 45.0], {"standard_name": "latitude", "units": "degrees_north"}),
                "lon": ("lon", [-4.5, -3.5], {"standard_name": "longitude", "units": "degrees_east"})},
    ).to_netcdf(data_dir / "climate_model.nc")
    doc = pilot(1)
    doc["nodes"][0]["params"]["source"] = "climate_model.nc"
    [issue] = validate(api, doc)
    assert issue["code"] == "edge.calendar_mismatch"
    assert (issue["node"], issue["port"]) == ("heatwaves", "series")
    assert "360_day calendar" in issue["message"]


def test_the_validate_api_gives_the_area_and_days_of_the_data_each_step_works_on(api, catalog, data_dir):
    """From the file's coordinates (a 360_day calendar's dates too, packed values unpacked), narrowed by
    the bounds set upstream; ACDD attributes when there are no coordinates to read."""
    days = np.arange(0.0, 90.0)
    xr.Dataset(
        {"sst": (("time", "lat", "lon"), np.full((days.size, 2, 3), 15.0), {"units": "degC"})},
        coords={"time": ("time", days, {"standard_name": "time", "units": "days since 2000-02-01",
                                        "calendar": "360_day"}),
                "lat": ("lat", np.array([4450, 4600], dtype="int16"),
                        {"standard_name": "latitude", "units": "degrees_north", "scale_factor": 0.01}),
                "lon": ("lon", [-6.0, -4.5, -3.0], {"standard_name": "longitude", "units": "degrees_east"})},
    ).to_netcdf(data_dir / "extent_model.nc")
    doc = document(
        [node("open", "data.open_gridded", source="extent_model.nc", lat_max=45.5, end="2000-03-10"),
         node("cut", "ocean.subset")],
        [edge("open", "dataset", "cut", "dataset")],
    )
    response = api.post("/api/pipelines/validate/", {"document": doc}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["errors"] == []
    assert body["extents"]["open"] == {
        "bbox": {"west": -6.0, "south": 44.5, "east": -3.0, "north": 46.0},
        "time": {"start": "2000-02-01", "end": "2000-04-30"},  # day 89 of a 30-day-month calendar
    }
    assert body["extents"]["cut"] == {
        "bbox": {"west": -6.0, "south": 44.5, "east": -3.0, "north": 45.5},
        "time": {"start": "2000-02-01", "end": "2000-03-10"},
    }
    xr.Dataset(
        {"chl": (("obs",), np.ones(3))},
        attrs={"geospatial_lat_min": 40.0, "geospatial_lat_max": 41.0, "geospatial_lon_min": 2.0,
               "geospatial_lon_max": 3.5, "time_coverage_start": "2021-05-01T00:00:00Z",
               "time_coverage_end": "2021-05-03T12:00:00Z"},
    ).to_netcdf(data_dir / "acdd_only.nc")
    assert sources.describe_source("acdd_only.nc")["extent"] == {
        "bbox": {"west": 2.0, "south": 40.0, "east": 3.5, "north": 41.0},
        "time": {"start": "2021-05-01", "end": "2021-05-03"},
    }


def test_coordinates_that_cannot_be_read_lose_the_extent_not_the_variables(api, catalog, data_dir):
    import netCDF4

    with netCDF4.Dataset(data_dir / "odd_coords.nc", "w") as dataset:
        dataset.createDimension("lat", 2)
        lat = dataset.createVariable("lat", "f8", ("lat",))
        lat.standard_name = "latitude"
        lat[:] = [44.0, 45.0]
        lat.scale_factor = "ten"  # nonsense a producer may write
        sst = dataset.createVariable("sst", "f4", ("lat",))
        sst.units = "degC"
    described = sources.describe_source("odd_coords.nc")
    assert described["variables"] == {"sst": {"units": "degC"}}
    assert described["extent"] == {}
