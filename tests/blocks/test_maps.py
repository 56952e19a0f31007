"""plot.map: the heatmap holds exactly the selected field, with CF units, colours and size limits."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.colors
import plotly.graph_objects as go
import pytest
import xarray as xr

from blocks.library.demo_data import make_demo_dataset
from blocks.library.maps import LAND_COLOUR, MAX_CELLS, _pretty_units, map_plot
from blocks.registry import discover
from blocks.types import PORT_TYPES, known_types
from tests.blocks.sample_blocks import call

LAT = [40.0, 41.0, 42.0]
LON = [-3.0, -2.0, -1.0, 0.0]
DAYS = pd.date_range("2021-01-01", periods=3, freq="D")


def field(days: pd.DatetimeIndex = DAYS) -> np.ndarray:
    """Value = 10 * day index + 1 * lat index + 0.1 * lon index, with one land cell."""
    t, y, x = np.meshgrid(np.arange(len(days)), np.arange(len(LAT)), np.arange(len(LON)), indexing="ij")
    values = (10.0 * t + y + 0.1 * x).astype(np.float32)
    values[:, 0, 0] = np.nan
    return values


def grid(days: pd.DatetimeIndex = DAYS, **names: str) -> xr.Dataset:
    lat, lon = names.get("lat", "lat"), names.get("lon", "lon")
    dims = ("time", lat, lon)
    values = field(days)
    return xr.Dataset(
        {"sst": (dims, values, {"standard_name": "sea_surface_temperature", "units": "degree_Celsius",
                                "long_name": "Sea surface temperature"}),
         "so": (dims, 35 + values / 100, {"standard_name": "sea_water_salinity", "units": "1e-3"}),
         "uo": (dims, values - 1, {"standard_name": "eastward_sea_water_velocity", "units": "m s-1"}),
         "mask": ((lat,), np.ones(len(LAT)))},
        coords={"time": days, lat: (lat, LAT, {"standard_name": "latitude"}),
                lon: (lon, LON, {"standard_name": "longitude"})},
        attrs={"title": "test grid"},
    )


def draw(tmp_path: Path, dataset: xr.Dataset, **params: Any) -> go.Figure:
    return call(map_plot, {"dataset": dataset}, {"variable": "sst", **params}, tmp_path)["figure"]


def test_map_holds_exactly_the_field_of_the_requested_day(tmp_path: Path) -> None:
    figure = draw(tmp_path, grid(), time="2021-01-02")
    (trace,) = figure.data
    assert trace.type == "heatmap"
    assert list(trace.x) == LON and list(trace.y) == LAT
    np.testing.assert_array_equal(np.asarray(trace.z), field()[1])
    assert np.isnan(np.asarray(trace.z)[0, 0])
    assert trace.colorbar.title.text == "°C"
    assert "°C" in trace.hovertemplate and "%{z" in trace.hovertemplate
    assert trace.colorscale[0][1] == plotly.colors.cmocean.thermal[0]
    assert (trace.zmin, trace.zmax) == (pytest.approx(10.1), pytest.approx(12.3))
    assert figure.layout.title.text == "Sea surface temperature (°C) · 2021-01-02"
    assert "test grid" in figure.layout.title.subtitle.text
    assert figure.layout.xaxis.title.text == "Longitude (°E)"
    assert figure.layout.yaxis.title.text == "Latitude (°N)"
    assert figure.layout.plot_bgcolor == LAND_COLOUR
    assert figure.layout.yaxis.scaleanchor == "x"
    assert figure.layout.yaxis.scaleratio == pytest.approx(1 / math.cos(math.radians(41.0)))
    assert list(figure.layout.xaxis.range) == [-3.5, 0.5]


def test_default_time_is_the_last_and_latitude_longitude_names_work(tmp_path: Path) -> None:
    dataset = grid(lat="latitude", lon="longitude").isel(latitude=slice(None, None, -1))
    figure = draw(tmp_path, dataset)
    trace = figure.data[0]
    assert list(trace.y) == LAT[::-1]
    np.testing.assert_array_equal(np.asarray(trace.z), field()[2][::-1])
    assert figure.layout.title.text.endswith("2021-01-03")
    assert list(figure.layout.yaxis.range) == [39.5, 42.5]


def test_a_day_between_time_steps_takes_the_nearest_one(tmp_path: Path) -> None:
    months = pd.DatetimeIndex(["2021-01-16", "2021-02-15", "2021-03-16"])
    figure = draw(tmp_path, grid(months), time="2021-02-28")
    np.testing.assert_array_equal(np.asarray(figure.data[0].z), field(months)[1])
    assert "nearest time step to 2021-02-28" in figure.layout.title.subtitle.text


def test_depth_defaults_to_the_surface_and_picks_the_nearest_level(tmp_path: Path) -> None:
    dataset = grid().expand_dims(depth=[0.5, 10.0, 50.0], axis=1)
    dataset["depth"].attrs.update(units="m", positive="down")
    dataset["sst"] = dataset["sst"] + xr.DataArray([0.0, 100.0, 200.0], dims="depth")
    surface = draw(tmp_path, dataset, time="2021-01-01")
    np.testing.assert_array_equal(np.asarray(surface.data[0].z), field()[0])
    assert "depth 0.5 m" in surface.layout.title.text
    deeper = draw(tmp_path, dataset, time="2021-01-01", depth=12)
    np.testing.assert_array_equal(np.asarray(deeper.data[0].z), field()[0] + 100)
    assert "depth 10 m" in deeper.layout.title.text


def test_colour_scales_follow_the_standard_name(tmp_path: Path) -> None:
    salinity = draw(tmp_path, grid(), variable="so").data[0]
    assert salinity.colorscale[0][1] == plotly.colors.cmocean.haline[0]
    assert salinity.colorbar.title.text == "PSU"
    current = draw(tmp_path, grid(), variable="uo", time="2021-01-01").data[0]
    assert current.colorscale[0][1] == plotly.colors.cmocean.balance[0]
    assert current.zmin == pytest.approx(-current.zmax) and current.zmax == pytest.approx(1.3)
    one_signed = draw(tmp_path, grid(), variable="uo").data[0]  # 19.1 to 21.3: still centred on zero
    assert (one_signed.zmin, one_signed.zmax) == (pytest.approx(-21.3), pytest.approx(21.3))
    assert current.colorbar.title.text == "m/s"
    chosen = draw(tmp_path, grid(), colour_scale="viridis", colour_min=0, colour_max=30).data[0]
    assert (chosen.zmin, chosen.zmax) == (0, 30)
    assert chosen.colorscale[0][1] == plotly.colors.sequential.Viridis[0]


def test_large_grids_are_block_averaged_and_the_figure_stays_small(tmp_path: Path) -> None:
    lat, lon = np.linspace(-60, 60, 600), np.linspace(0, 359.5, 720)
    values = np.random.default_rng(0).random((600, 720)).astype(np.float32)
    dataset = xr.Dataset({"sst": (("lat", "lon"), values, {"units": "K"})},
                         coords={"lat": lat, "lon": lon})
    figure = draw(tmp_path, dataset)
    z = np.asarray(figure.data[0].z)
    assert z.shape == (300, 360) and z.size <= MAX_CELLS
    assert z[0, 0] == pytest.approx(values[:2, :2].mean(), rel=1e-6)
    assert figure.data[0].x[0] == pytest.approx(lon[:2].mean())
    assert "averaged over blocks of 2×2 cells" in figure.layout.title.subtitle.text
    assert "600×720" in figure.layout.title.subtitle.text
    path = tmp_path / "map.plotly.json"
    PORT_TYPES["figure"].save(figure, path)
    assert path.stat().st_size < 1_000_000
    assert json.loads(path.read_text())["data"][0]["type"] == "heatmap"


def test_demo_dataset_map_of_the_planted_heatwave(tmp_path: Path) -> None:
    dataset = make_demo_dataset(start="2022-07-20", days=5)
    figure = draw(tmp_path, dataset, time="2022-07-22")
    z = np.asarray(figure.data[0].z)
    np.testing.assert_array_equal(z, dataset["sst"].sel(time="2022-07-22").values)
    assert figure.layout.title.text == "Sea surface temperature (°C) · 2022-07-22"
    path = tmp_path / "demo.plotly.json"
    PORT_TYPES["figure"].save(figure, path)
    assert path.stat().st_size < 100_000


@pytest.mark.parametrize(("units", "standard_name", "expected"), [
    ("degree_Celsius", "", "°C"), ("degrees_C", "", "°C"), ("K", "", "K"), ("m s-1", "", "m/s"),
    ("1e-3", "sea_water_salinity", "PSU"), ("mg m-3", "", "mg m⁻³"), ("W m-2", "", "W m⁻²"), ("", "", ""),
])
def test_units_are_written_for_people(units: str, standard_name: str, expected: str) -> None:
    assert _pretty_units(units, standard_name) == expected


def without_coordinates() -> xr.Dataset:
    return xr.Dataset({"sst": (("y", "x"), np.ones((2, 2)))})


def with_depth() -> xr.Dataset:
    return grid().expand_dims(depth=[0.0, 10.0], axis=1)


def all_missing() -> xr.Dataset:
    return grid().assign(sst=lambda d: d["sst"] * np.nan)


@pytest.mark.parametrize(("dataset", "params", "message"), [
    (grid, {"variable": "temp"}, "variable: 'temp' is not in the dataset; available: sst, so, uo, mask"),
    (grid, {"time": "2020-12-31"}, "time: 2020-12-31 is outside the data; the data covers 2021-01-01 to "
                                   "2021-01-03"),
    (grid, {"variable": "mask"}, "variable: 'mask' has dimensions (lat); a map needs latitude and longitude"),
    (without_coordinates, {}, "variable: 'sst' has dimensions (y, x); a map needs latitude and longitude"),
    (lambda: grid().isel(time=0, drop=True), {"time": "2021-01-01"},
     "time: variable 'sst' has no time dimension; leave the day empty"),
    (grid, {"depth": 5}, "depth: variable 'sst' has no depth dimension"),
    (with_depth, {"depth": 20}, "depth: 20 is outside the data's levels; they cover 0 to 10"),
    (all_missing, {}, "variable: 'sst' has no valid values (all missing) at 2021-01-03"),
    (grid, {"colour_min": 5, "colour_max": 5}, "colour_min (5) must be less than colour_max (5)"),
])
def test_errors_name_the_parameter(tmp_path: Path, dataset: Any, params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        draw(tmp_path, dataset(), **params)


def test_block_is_discoverable_with_a_valid_spec() -> None:
    registry = discover(extra_modules=["blocks.library.maps"])
    assert registry.errors == []
    block = registry.get("plot.map", "1.0.0")
    block.spec.check(known_types())
    assert block.spec.category == "visualise"
