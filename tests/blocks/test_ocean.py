"""ocean.subset and ocean.area_mean on hand-built datasets with known answers."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from blocks.library import ocean
from blocks.library.demo_data import make_demo_dataset
from blocks.library.ocean import area_mean, subset, subset_with_depth
from blocks.registry import Registry
from blocks.runner import BlockInputError
from blocks.spec import Block
from blocks.types import known_types
from tests.blocks.sample_blocks import call


def grid(
    lat: list[float], lon: list[float], times: pd.DatetimeIndex, values: np.ndarray | float = 1.0,
    history: str | None = None,
) -> xr.Dataset:
    """A CF-ish dataset with one variable ``sst`` and a second one ``so``."""
    shape = (len(times), len(lat), len(lon))
    sst = np.broadcast_to(np.asarray(values, dtype=np.float32), shape).copy()
    attrs = {"Conventions": "CF-1.8", "title": "test grid"} | ({"history": history} if history else {})
    return xr.Dataset(
        {"sst": (("time", "lat", "lon"), sst, {"units": "degree_Celsius"}),
         "so": (("time", "lat", "lon"), np.full(shape, 35.0, dtype=np.float32))},
        coords={"time": times, "lat": ("lat", lat, {"standard_name": "latitude"}),
                "lon": ("lon", lon, {"standard_name": "longitude"})},
        attrs=attrs,
    )


DAYS = pd.date_range("2021-01-01", periods=5, freq="D")


def run_subset(tmp_path: Path, dataset: xr.Dataset, **params: Any) -> xr.Dataset:
    return call(subset, {"dataset": dataset}, params, tmp_path)["dataset"]


def run_mean(tmp_path: Path, dataset: xr.Dataset, variable: str = "sst") -> pd.DataFrame:
    return call(area_mean, {"dataset": dataset}, {"variable": variable}, tmp_path)["table"]


# ---- ocean.subset -------------------------------------------------------------------------------

def test_subset_returns_exactly_the_expected_coordinates(tmp_path: Path) -> None:
    dataset = grid([40.0, 40.5, 41.0, 41.5, 42.0], [-2.0, -1.0, 0.0, 1.0], DAYS)
    result = run_subset(tmp_path, dataset, lat_min=40.2, lat_max=41.5, lon_min=-1, lon_max=0.5,
                        start="2021-01-02", end="2021-01-04")
    assert result.lat.values.tolist() == [40.5, 41.0, 41.5]
    assert result.lon.values.tolist() == [-1.0, 0.0]
    days = [t.strftime("%Y-%m-%d") for t in result.indexes["time"]]
    assert days == ["2021-01-02", "2021-01-03", "2021-01-04"]
    assert set(result.data_vars) == {"sst", "so"}


def test_subset_without_settings_keeps_everything(tmp_path: Path) -> None:
    dataset = grid([40.0, 41.0], [0.0, 1.0], DAYS)
    result = run_subset(tmp_path, dataset)
    xr.testing.assert_identical(result.drop_attrs(), dataset.drop_attrs())


def test_subset_handles_descending_latitude(tmp_path: Path) -> None:
    lat = [40.0, 41.0, 42.0, 43.0]
    values = np.arange(4, dtype=np.float32)[None, :, None]
    ascending = grid(lat, [0.0], DAYS, values)
    descending = ascending.isel(lat=slice(None, None, -1))
    result = run_subset(tmp_path, descending, lat_min=40.5, lat_max=42.0)
    assert result.lat.values.tolist() == [42.0, 41.0]
    assert result.sst.isel(time=0, lon=0).values.tolist() == [2.0, 1.0]
    only_max = run_subset(tmp_path, descending, lat_max=41.0)
    assert only_max.lat.values.tolist() == [41.0, 40.0]


def test_subset_end_day_is_included_for_sub_daily_data(tmp_path: Path) -> None:
    hours = pd.date_range("2021-01-01", periods=48, freq="6h")
    result = run_subset(tmp_path, grid([40.0], [0.0], hours), start="2021-01-02", end="2021-01-02")
    assert [t.isoformat() for t in result.indexes["time"]] == [
        "2021-01-02T00:00:00", "2021-01-02T06:00:00", "2021-01-02T12:00:00", "2021-01-02T18:00:00"]


def test_subset_keeps_variables_and_attributes_and_appends_history(tmp_path: Path) -> None:
    dataset = grid([40.0, 41.0], [0.0], DAYS, history="2021-01-01 created")
    result = run_subset(tmp_path, dataset, variables=["sst"], lat_max=40.0)
    assert list(result.data_vars) == ["sst"]
    assert result.attrs["Conventions"] == "CF-1.8" and result.attrs["title"] == "test grid"
    assert result.sst.attrs == {"units": "degree_Celsius"}
    first, second = result.attrs["history"].split("\n")
    assert first == "2021-01-01 created"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ocean\.subset 1\.0\.0 \(lat_max=40\.0, "
                        r"variables=\['sst'\]\)", second)
    assert "history" not in grid([40.0], [0.0], DAYS).attrs
    assert "ocean.subset" in run_subset(tmp_path, grid([40.0], [0.0], DAYS)).attrs["history"]
    assert dataset.attrs["history"] == "2021-01-01 created"  # the input is not modified


def test_subset_stays_lazy_on_files(tmp_path: Path) -> None:
    path = tmp_path / "demo.nc"
    make_demo_dataset(days=20).to_netcdf(path)
    with xr.open_dataset(path) as opened:
        result = run_subset(tmp_path, opened, lat_min=44, lat_max=45, start="2021-01-05")
        assert not result.sst.variable._in_memory
        assert dict(result.sizes) == {"time": 16, "lat": 5, "lon": 41}
        expected = make_demo_dataset(days=20).sst.sel(lat=slice(44, 45), time=slice("2021-01-05", None))
        np.testing.assert_array_equal(result.sst.values, expected.values)


@pytest.mark.parametrize(("params", "message"), [
    ({"variables": ["sst", "temp"]}, "variables: unknown variable 'temp'; the dataset has: sst, so"),
    ({"lat_min": 42.0, "lat_max": 41.0}, "lat_min (42.0) must not be greater than lat_max (41.0)"),
    ({"lon_min": 1.0, "lon_max": -1.0}, "lon_min (1.0) must not be greater than lon_max (-1.0)"),
    ({"start": "2022-01-01"}, "start (2022-01-01) is after the end of the data; "
                              "the data covers 2021-01-01 to 2021-01-05"),
    ({"end": "2020-12-31"}, "end (2020-12-31) is before the beginning of the data; "
                            "the data covers 2021-01-01 to 2021-01-05"),
    ({"start": "2021-01-04", "end": "2021-01-02"}, "start (2021-01-04) must not be after end (2021-01-02)"),
    ({"start": "01/02/2021"}, "params/start: '01/02/2021' is not a 'date'"),
    ({"end": "2021-02-30"}, "params/end: '2021-02-30' is not a 'date'"),
    ({"lat_min": 50.0, "lat_max": 60.0}, "empty selection: lat_min=50.0, lat_max=60.0 keeps no lat values; "
                                         "the data covers 40 to 41"),
    ({"lon_min": 0.2, "lon_max": 0.8}, "empty selection: lon_min=0.2, lon_max=0.8 keeps no lon values; "
                                       "the data covers 0 to 1"),
])
def test_subset_errors_name_the_parameter_and_value(tmp_path: Path, params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        run_subset(tmp_path, grid([40.0, 41.0], [0.0, 1.0], DAYS), **params)


def test_subset_time_gap_is_an_empty_selection(tmp_path: Path) -> None:
    months = pd.date_range("2021-01-01", periods=3, freq="MS")
    with pytest.raises(ValueError, match=re.escape(
            "empty selection: start=2021-01-10, end=2021-01-20 keeps no time values; "
            "the data covers 2021-01-01 to 2021-03-01")):
        run_subset(tmp_path, grid([40.0], [0.0], months), start="2021-01-10", end="2021-01-20")


def test_subset_without_time_coordinate(tmp_path: Path) -> None:
    static = grid([40.0], [0.0], DAYS).isel(time=0, drop=True)
    with pytest.raises(ValueError, match="start/end: the dataset has no time coordinate"):
        run_subset(tmp_path, static, start="2021-01-01")


def test_subset_schema_names_bad_parameters(tmp_path: Path) -> None:
    with pytest.raises(BlockInputError, match=r"params/variables/0: 3 is not of type 'string'"):
        run_subset(tmp_path, grid([40.0], [0.0], DAYS), variables=[3])
    with pytest.raises(BlockInputError, match=r"params/\(root\): Additional properties.*'bbox'"):
        run_subset(tmp_path, grid([40.0], [0.0], DAYS), bbox=[1, 2, 3, 4])


# ---- ocean.area_mean ----------------------------------------------------------------------------

def test_area_mean_of_a_constant_field_is_the_constant(tmp_path: Path) -> None:
    values = np.full((5, 3, 4), 7.25, dtype=np.float32)
    values[:, 0, 0] = np.nan  # land
    table = run_mean(tmp_path, grid([10.0, 30.0, 70.0], [0.0, 1.0, 2.0, 3.0], DAYS, values))
    assert list(table.columns) == ["time", "sst"]
    assert table["time"].tolist() == [f"2021-01-0{day}" for day in range(1, 6)]
    assert table["sst"].tolist() == pytest.approx([7.25] * 5, abs=1e-6)


def test_area_mean_weights_by_cosine_of_latitude(tmp_path: Path) -> None:
    # cos(0) = 1 and cos(60 deg) = 1/2, so the mean of 1 (equator) and 4 (60 N) is (1 + 2) / 1.5 = 2.
    values = np.array([[[1.0, 1.0], [4.0, 4.0]]] * 2)
    table = run_mean(tmp_path, grid([0.0, 60.0], [10.0, 20.0], DAYS[:2], values))
    assert table["sst"].tolist() == pytest.approx([2.0, 2.0], abs=1e-12)


def test_area_mean_ignores_missing_values_in_sum_and_weights(tmp_path: Path) -> None:
    # Day 1: only the 60 N cell at 20 E is missing, so the weights are 1, 1, 1/2:
    # (1 + 1 + 4 / 2) / 2.5 = 1.6. Day 2: the whole equator row is missing, leaving 4.
    values = np.array([[[1.0, 1.0], [4.0, np.nan]], [[np.nan, np.nan], [4.0, 4.0]]])
    table = run_mean(tmp_path, grid([0.0, 60.0], [10.0, 20.0], DAYS[:2], values))
    assert table["sst"].tolist() == pytest.approx([1.6, 4.0], abs=1e-12)


def test_area_mean_gives_full_timestamps_for_sub_daily_data(tmp_path: Path) -> None:
    hours = pd.date_range("2021-06-01T06:00", periods=2, freq="12h")
    table = run_mean(tmp_path, grid([0.0], [0.0], hours))
    assert table["time"].tolist() == ["2021-06-01T06:00:00", "2021-06-01T18:00:00"]


def test_area_mean_of_demo_matches_a_hand_computation(tmp_path: Path) -> None:
    dataset = make_demo_dataset(days=130)  # more than one chunk of time steps
    events: list[dict] = []
    table = call(area_mean, {"dataset": dataset}, {"variable": "so"}, tmp_path, emit=events.append)["table"]
    values = dataset.so.values.astype(np.float64)
    weights = np.cos(np.deg2rad(dataset.lat.values))[None, :, None] * ~np.isnan(values)
    expected = np.nansum(values * weights, axis=(1, 2)) / weights.sum(axis=(1, 2))
    np.testing.assert_allclose(table["so"].to_numpy(), expected, rtol=1e-12)
    assert len(table) == 130
    assert events[-1] == {"kind": "progress", "fraction": 1.0, "message": "averaging"}


def test_area_mean_errors(tmp_path: Path) -> None:
    dataset = grid([0.0, 1.0], [0.0], DAYS)
    missing = "variable: 'temp' is not in the dataset; available: sst, so"
    with pytest.raises(ValueError, match=re.escape(missing)):
        run_mean(tmp_path, dataset, "temp")
    profile = dataset.assign(depth_mean=dataset.sst.mean("lon"))
    with pytest.raises(ValueError, match=re.escape(
            "variable: 'depth_mean' has dimensions (time, lat); an area mean needs latitude and longitude")):
        run_mean(tmp_path, profile, "depth_mean")
    layered = dataset.expand_dims(depth=[0.0, 10.0])
    with pytest.raises(ValueError, match=re.escape("variable: 'sst' has dimensions (depth, time, lat, lon)")):
        run_mean(tmp_path, layered)
    empty = grid([0.0, 1.0], [0.0], DAYS, np.nan)
    with pytest.raises(ValueError, match=re.escape("variable: 'sst' has no valid values (all missing)")):
        run_mean(tmp_path, empty)


def test_area_mean_requires_the_variable_parameter(tmp_path: Path) -> None:
    with pytest.raises(BlockInputError, match=r"params/\(root\): 'variable' is a required property"):
        call(area_mean, {"dataset": grid([0.0], [0.0], DAYS)}, {}, tmp_path)


# ---- ocean.subset 1.1.0 -------------------------------------------------------------------------

LEVELS = [0.5, 5.0, 10.0, 50.0]


def layered(levels: list[float] = LEVELS, depth_attrs: dict | None = None) -> xr.Dataset:
    """grid() with a depth dimension; sst equals the level's depth, so selections are easy to check."""
    dataset = grid([40.0, 41.0], [0.0, 1.0], DAYS[:2])
    depth = xr.DataArray(levels, dims="depth", attrs=depth_attrs or {"positive": "down", "units": "m"})
    dataset = dataset.expand_dims(depth=depth).transpose("time", "depth", "lat", "lon")
    dataset["depth"].attrs.update(depth.attrs)
    return dataset.assign(sst=dataset.sst * 0 + dataset.depth)


def run_subset_11(
    tmp_path: Path, dataset: xr.Dataset, events: list | None = None, **params: Any
) -> xr.Dataset:
    emit = None if events is None else events.append
    return call(subset_with_depth, {"dataset": dataset}, params, tmp_path, emit=emit)["dataset"]


def test_both_subset_versions_are_registered() -> None:
    registry = Registry()
    for value in vars(ocean).values():
        if isinstance(value, Block):
            registry.add(value, source="blocks.library.ocean")
    assert registry.errors == []
    assert {"1.0.0", "1.1.0"} <= set(registry.versions("ocean.subset"))
    assert registry.get("ocean.subset", "1.0.0") is subset
    assert registry.get("ocean.subset", "1.1.0") is subset_with_depth
    subset_with_depth.spec.check(known_types())
    assert "depth_min" not in subset.spec.parameters["properties"]


def test_subset_depth_range(tmp_path: Path) -> None:
    result = run_subset_11(tmp_path, layered(), depth_min=1, depth_max=20, lat_min=41)
    assert result.depth.values.tolist() == [5.0, 10.0]
    assert result.lat.values.tolist() == [41.0]
    np.testing.assert_array_equal(result.sst.values[0, :, 0, 0], [5.0, 10.0])
    assert result.depth.attrs["positive"] == "down"
    history = result.attrs["history"]
    assert re.search(r"ocean\.subset 1\.1\.0 \(depth_max=20, depth_min=1, lat_min=41\)", history)
    assert run_subset_11(tmp_path, layered(), depth_min=10).depth.values.tolist() == [10.0, 50.0]
    assert run_subset_11(tmp_path, layered(), depth_max=10).depth.values.tolist() == [0.5, 5.0, 10.0]


def test_subset_same_depths_take_the_nearest_level(tmp_path: Path) -> None:
    events: list[dict] = []
    result = run_subset_11(tmp_path, layered(), events, depth_min=7, depth_max=7)
    assert result.depth.values.tolist() == [5.0]
    assert {"kind": "log", "level": "info", "message": "depth 7 m: nearest level 5 m"} in events
    assert run_subset_11(tmp_path, layered(), depth_min=0, depth_max=0).depth.values.tolist() == [0.5]


def test_subset_depth_counted_upwards(tmp_path: Path) -> None:
    heights = layered([-0.5, -5.0, -10.0, -50.0], {"positive": "up"})
    assert run_subset_11(tmp_path, heights, depth_min=1, depth_max=20).depth.values.tolist() == [-5.0, -10.0]
    assert run_subset_11(tmp_path, heights, depth_min=40, depth_max=40).depth.values.tolist() == [-50.0]


@pytest.mark.parametrize(("dataset", "params", "message"), [
    (grid([40.0], [0.0], DAYS), {"depth_min": 5},
     "depth_min/depth_max: the dataset has no depth dimension; its dimensions are time, lat, lon"),
    (layered(), {"depth_min": 20, "depth_max": 10}, "depth_min (20) must not be greater than depth_max (10)"),
    (layered(), {"depth_min": 1, "depth_max": 2},
     "empty selection: depth_min=1, depth_max=2 keeps no depth levels; the levels are 0.5, 5, 10, 50 (give "
     "the same depth_min and depth_max to take the nearest level)"),
    (layered(list(np.arange(1.0, 30.0))), {"depth_min": 100},
     "empty selection: depth_min=100 keeps no depth levels; the levels cover 1 to 29"),
])
def test_subset_depth_errors(tmp_path: Path, dataset: xr.Dataset, params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        run_subset_11(tmp_path, dataset, **params)


def test_subset_depth_schema(tmp_path: Path) -> None:
    with pytest.raises(BlockInputError, match=r"params/depth_min: -5 is less than the minimum of 0"):
        run_subset_11(tmp_path, layered(), depth_min=-5)
    with pytest.raises(BlockInputError, match=r"Additional properties.*'depth_min'"):
        run_subset(tmp_path, layered(), depth_min=5)  # 1.0.0 is unchanged


def test_subset_accepts_latitude_longitude_names(tmp_path: Path) -> None:
    dataset = grid([40.0, 41.0, 42.0], [0.0, 1.0], DAYS).rename(lat="latitude", lon="longitude")
    result = run_subset_11(tmp_path, dataset, lat_min=41, lon_max=0.5)
    assert result.latitude.values.tolist() == [41.0, 42.0] and result.longitude.values.tolist() == [0.0]


def test_subset_converts_longitudes_to_the_dataset_convention(tmp_path: Path) -> None:
    lon = [float(value) for value in range(0, 360, 10)]
    dataset = grid([40.0], lon, DAYS[:1], np.array(lon)[None, None, :])  # sst equals the 0-360 longitude
    inside = run_subset_11(tmp_path, dataset, lon_min=10, lon_max=40)
    assert inside.lon.values.tolist() == [10.0, 20.0, 30.0, 40.0]
    west = run_subset_11(tmp_path, dataset, lon_min=-40, lon_max=-20)
    assert west.lon.values.tolist() == [-40.0, -30.0, -20.0]
    assert west.sst.values[0, 0].tolist() == [320.0, 330.0, 340.0]
    across = run_subset_11(tmp_path, dataset, lon_min=-20, lon_max=20)
    assert across.lon.values.tolist() == [-20.0, -10.0, 0.0, 10.0, 20.0]
    assert across.sst.values[0, 0].tolist() == [340.0, 350.0, 0.0, 10.0, 20.0]
    assert across.lon.attrs == {"standard_name": "longitude"}
    assert run_subset_11(tmp_path, dataset, lon_min=-20).lon.values.tolist() == [340.0, 350.0]


def test_subset_crosses_the_date_line_of_a_180_dataset(tmp_path: Path) -> None:
    lon = [float(value) for value in range(-180, 180, 10)]
    dataset = grid([40.0], lon, DAYS[:1], np.array(lon)[None, None, :])
    result = run_subset_11(tmp_path, dataset, lon_min=160, lon_max=200)
    assert result.lon.values.tolist() == [160.0, 170.0, 180.0, 190.0, 200.0]
    assert result.sst.values[0, 0].tolist() == [160.0, 170.0, -180.0, -170.0, -160.0]
    east = run_subset_11(tmp_path, dataset, lon_min=190, lon_max=210)
    assert east.lon.values.tolist() == [190.0, 200.0, 210.0]
    one_sided = run_subset_11(tmp_path, dataset, lon_min=340)  # 340 is -20 in this dataset
    assert one_sided.lon.values.tolist() == [float(value) for value in range(-20, 180, 10)]
    assert run_subset_11(tmp_path, dataset, lon_min=-180, lon_max=180).sizes["lon"] == 36
    with pytest.raises(ValueError, match=re.escape(
            "empty selection: lon_min=181, lon_max=182 keeps no lon values; the data covers -180 to 170")):
        run_subset_11(tmp_path, dataset, lon_min=181, lon_max=182)


def test_subset_11_keeps_the_10_behaviour_elsewhere(tmp_path: Path) -> None:
    dataset = grid([40.0, 40.5, 41.0, 41.5, 42.0], [-2.0, -1.0, 0.0, 1.0], DAYS)
    params = {"lat_min": 40.2, "lat_max": 41.5, "lon_min": -1, "lon_max": 0.5, "start": "2021-01-02",
              "end": "2021-01-04", "variables": ["sst"]}
    old, new = run_subset(tmp_path, dataset, **params), run_subset_11(tmp_path, dataset, **params)
    xr.testing.assert_identical(old.drop_attrs(), new.drop_attrs())
    with pytest.raises(ValueError, match=re.escape("lon_min (1.0) must not be greater than lon_max (-1.0)")):
        run_subset_11(tmp_path, dataset, lon_min=1.0, lon_max=-1.0)


def test_subset_11_stays_lazy_on_files(tmp_path: Path) -> None:
    path = tmp_path / "layered.nc"
    layered().to_netcdf(path)
    with xr.open_dataset(path) as opened:
        result = run_subset_11(tmp_path, opened, depth_min=5, depth_max=5, lon_min=-10, lon_max=0.5)
        assert not result.sst.variable._in_memory
        assert result.sst.values[:, 0].tolist() == [[[5.0], [5.0]]] * 2
