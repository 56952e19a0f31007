"""transform.* blocks on hand-built datasets and tables with known answers, and their error messages."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from blocks.expressions import ExpressionError
from blocks.library import transform
from blocks.library.demo_data import make_demo_dataset
from blocks.library.transform import (
    calculate,
    convert_units,
    interpolate_to_points,
    region_mean,
    resample,
)
from blocks.registry import discover
from blocks.runner import BlockInputError
from blocks.types import known_types
from tests.blocks.sample_blocks import call


def daily(values: np.ndarray, start: str = "2021-01-01", lat: list[float] | None = None,
          lon: list[float] | None = None, units: str = "degree_Celsius") -> xr.Dataset:
    """A dataset whose variable ``sst`` has the same daily series at every grid point."""
    lat, lon = lat or [0.0, 60.0], lon or [0.0, 10.0]
    times = pd.date_range(start, periods=len(values), freq="D")
    field = np.broadcast_to(np.asarray(values, dtype=np.float64)[:, None, None],
                            (len(values), len(lat), len(lon))).copy()
    return xr.Dataset(
        {"sst": (("time", "lat", "lon"), field, {"units": units, "long_name": "sea surface temperature"})},
        coords={"time": times, "lat": ("lat", lat, {"standard_name": "latitude"}),
                "lon": ("lon", lon, {"standard_name": "longitude"})},
        attrs={"title": "test"},
    )


def run(
    target: Any, inputs: dict[str, Any], tmp_path: Path, events: list | None = None, **params: Any
) -> Any:
    result = call(target, inputs, params, tmp_path, emit=None if events is None else events.append)
    return next(iter(result.values()))


def logs(events: list[dict]) -> str:
    return "\n".join(event["message"] for event in events if event["kind"] == "log")


def test_module_blocks_are_discovered_and_valid() -> None:
    registry = discover(extra_modules=["blocks.library.transform"])
    assert registry.errors == []
    ids = {block.spec.id for block in registry if block.spec.id.startswith("transform.")}
    assert ids == {"transform.resample", "transform.region_mean", "transform.interpolate_to_points",
                   "transform.convert_units", "transform.calculate"}
    for block in registry:
        block.spec.check(known_types())
        for name, schema in block.spec.parameters["properties"].items():
            assert schema.get("title") and schema.get("description"), (block.spec.id, name)
        assert block.spec.description.strip()


# ---- transform.resample -------------------------------------------------------------------------

def test_monthly_statistics_of_a_daily_series(tmp_path: Path) -> None:
    dataset = daily(np.arange(59.0))  # January: 0..30, February: 31..58
    mean = run(resample, {"dataset": dataset}, tmp_path, frequency="monthly")
    assert [str(t)[:10] for t in mean.time.values] == ["2021-01-01", "2021-02-01"]
    np.testing.assert_allclose(mean.sst.values[:, 1, 1], [15.0, 44.5])
    assert mean.sst.attrs["cell_methods"] == "time: mean"
    assert mean.sst.attrs["units"] == "degree_Celsius" and mean.attrs["title"] == "test"
    assert "transform.resample 1.0.0 (frequency=monthly, statistic=mean)" in mean.attrs["history"]
    for statistic, expected in (("max", [30, 58]), ("min", [0, 31]), ("sum", [465, sum(range(31, 59))])):
        result = run(resample, {"dataset": dataset}, tmp_path, frequency="monthly", statistic=statistic)
        np.testing.assert_allclose(result.sst.values[:, 0, 0], expected)
        assert result.sst.attrs["cell_methods"] == f"time: {statistic}"


def test_seasons_put_december_with_the_following_winter(tmp_path: Path) -> None:
    times = pd.date_range("2020-12-01", "2021-05-31", freq="D")
    values = times.month.to_numpy().astype(float)  # the month number as the value
    events: list[dict] = []
    result = run(resample, {"dataset": daily(values, start="2020-12-01")}, tmp_path, events,
                 frequency="seasonal")
    assert [str(t)[:10] for t in result.time.values] == ["2020-12-01", "2021-03-01"]
    assert result.season.values.tolist() == ["DJF", "MAM"]
    djf = (31 * 12 + 31 * 1 + 28 * 2) / 90
    mam = (31 * 3 + 30 * 4 + 31 * 5) / 92
    np.testing.assert_allclose(result.sst.values[:, 0, 0], [djf, mam])
    assert "2 seasonal periods of 90 to 92 time steps" in logs(events)


def test_annual_sum_leaves_land_missing_and_skips_gaps(tmp_path: Path) -> None:
    dataset = daily(np.ones(365 * 2))
    dataset["sst"][:, 0, 0] = np.nan  # land
    dataset["sst"][:10, 1, 1] = np.nan  # a gap
    result = run(resample, {"dataset": dataset}, tmp_path, frequency="annual", statistic="sum")
    assert np.isnan(result.sst.values[:, 0, 0]).all()
    np.testing.assert_allclose(result.sst.values[:, 1, 1], [355, 365])
    np.testing.assert_allclose(result.sst.values[:, 0, 1], [365, 365])


def test_daily_mean_of_hourly_data_keeps_untimed_variables(tmp_path: Path) -> None:
    hours = pd.date_range("2021-06-01", periods=48, freq="h")
    dataset = xr.Dataset(
        {"sst": (("time", "lat", "lon"), np.arange(48.0)[:, None, None] * np.ones((1, 1, 2))),
         "so": (("time", "lat", "lon"), np.ones((48, 1, 2))),
         "bathymetry": (("lat", "lon"), np.array([[100.0, 200.0]]))},
        coords={"time": hours, "lat": [45.0], "lon": [0.0, 1.0]},
    )
    result = run(resample, {"dataset": dataset}, tmp_path, frequency="daily", variables=["sst", "bathymetry"])
    assert set(result.data_vars) == {"sst", "bathymetry"}
    np.testing.assert_allclose(result.sst.values[:, 0, 0], [11.5, 35.5])
    assert result.bathymetry.dims == ("lat", "lon")
    np.testing.assert_array_equal(result.bathymetry.values, [[100.0, 200.0]])


def test_resample_stays_lazy_on_files(tmp_path: Path) -> None:
    path = tmp_path / "demo.nc"
    make_demo_dataset(days=62).to_netcdf(path)
    with xr.open_dataset(path) as opened:
        result = run(resample, {"dataset": opened}, tmp_path, frequency="monthly", variables=["sst"])
        assert result.sst.chunks is not None  # a dask graph, computed when saved
        expected = make_demo_dataset(days=62).sst.sel(time="2021-02").mean("time")
        np.testing.assert_allclose(result.sst.isel(time=1).values, expected.values, rtol=1e-6)


@pytest.mark.parametrize(("dataset", "params", "message"), [
    (daily(np.ones(3)).isel(time=0, drop=True), {"frequency": "monthly"},
     "dataset: the dataset has no time dimension; its dimensions are lat, lon"),
    (daily(np.ones(3)), {"frequency": "monthly", "variables": ["temp"]},
     "variables: 'temp' is not in the dataset; available: sst"),
    (daily(np.ones(3)).assign(depth_map=(("lat", "lon"), np.ones((2, 2)))),
     {"frequency": "monthly", "variables": ["depth_map"]},
     "variables: none of depth_map has a time dimension and numbers"),
    (daily(np.ones(2)).assign_coords(time=pd.to_datetime(["2021-01-01", "2021-03-01"])),
     {"frequency": "daily"}, "frequency: daily would give 60 time steps from 2; the data "
                             "(2021-01-01 to 2021-03-01) are already coarser than daily"),
])
def test_resample_errors(tmp_path: Path, dataset: xr.Dataset, params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        run(resample, {"dataset": dataset}, tmp_path, **params)


def test_resample_frequency_is_an_enum(tmp_path: Path) -> None:
    with pytest.raises(BlockInputError, match=r"params/frequency: 'weekly' is not one of"):
        run(resample, {"dataset": daily(np.ones(3))}, tmp_path, frequency="weekly")


# ---- transform.region_mean ----------------------------------------------------------------------

def square(west: float, south: float, east: float, north: float) -> dict[str, Any]:
    return {"type": "Polygon",
            "coordinates": [[[west, south], [east, south], [east, north], [west, north], [west, south]]]}


def field(values: np.ndarray, lat: list[float], lon: list[float], days: int = 2) -> xr.Dataset:
    times = pd.date_range("2021-01-01", periods=days, freq="D")
    data = np.stack([np.asarray(values, dtype=float) + day for day in range(days)])
    return xr.Dataset({"sst": (("time", "lat", "lon"), data), "so": (("time", "lat", "lon"), data * 2)},
                      coords={"time": times, "lat": lat, "lon": lon})


def test_region_mean_over_a_square_is_the_cosine_weighted_mean(tmp_path: Path) -> None:
    lat, lon = [0.0, 30.0, 60.0, 80.0], [0.0, 10.0, 20.0]
    values = np.arange(12.0).reshape(4, 3)
    dataset = field(values, lat, lon)
    # The square covers latitudes 0, 30 and 60 and longitudes 0 and 10.
    table = run(region_mean, {"dataset": dataset}, tmp_path, region=square(-5, -5, 15, 65))
    weights = np.cos(np.deg2rad([0.0, 30.0, 60.0]))[:, None] * np.ones((1, 2))
    expected = (values[:3, :2] * weights).sum() / weights.sum()
    assert list(table.columns) == ["time", "sst", "so"]
    assert table["time"].tolist() == ["2021-01-01", "2021-01-02"]
    np.testing.assert_allclose(table["sst"], [expected, expected + 1], rtol=1e-12)
    np.testing.assert_allclose(table["so"], [2 * expected, 2 * expected + 2], rtol=1e-12)


def test_region_mean_skips_land_and_joins_features(tmp_path: Path) -> None:
    lat, lon = [0.0, 60.0], [0.0, 10.0, 20.0]
    values = np.array([[1.0, 2.0, 3.0], [4.0, np.nan, 6.0]])
    collection = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": square(-1, -1, 1, 61)},
        {"type": "Feature", "properties": {}, "geometry": {
            "type": "MultiPolygon", "coordinates": [square(9, -1, 11, 61)["coordinates"]]}},
    ]}
    table = run(region_mean, {"dataset": field(values, lat, lon)}, tmp_path, region=collection,
                variables=["sst"])
    # Points (0,0)=1, (0,10)=2, (60,0)=4 with weights 1, 1, 1/2; (60,10) is land.
    assert list(table.columns) == ["time", "sst"]
    assert table["sst"].tolist()[0] == pytest.approx((1 + 2 + 4 * 0.5) / 2.5, rel=1e-12)


def test_region_mean_matches_longitude_conventions(tmp_path: Path) -> None:
    lon = [340.0, 350.0, 0.0, 10.0]  # 0-360 dataset, stored across the seam
    values = np.array([[1.0, 2.0, 3.0, 4.0]])
    feature = {"type": "Feature", "properties": {"name": "box"}, "geometry": square(-15, -1, 5, 1)}
    table = run(region_mean, {"dataset": field(values, [0.0], lon)}, tmp_path, region=feature)
    assert table["sst"].tolist()[0] == pytest.approx(2.5)  # 350 (= -10) and 0


def test_region_mean_skips_variables_with_depth_unless_asked(tmp_path: Path) -> None:
    dataset = field(np.ones((2, 2)), [0.0, 1.0], [0.0, 1.0])
    dataset["thetao"] = dataset.sst.expand_dims(depth=[0.0, 10.0], axis=1)
    events: list[dict] = []
    table = run(region_mean, {"dataset": dataset}, tmp_path, events, region=square(-1, -1, 2, 2))
    assert list(table.columns) == ["time", "sst", "so"]
    single_level = dataset.drop_vars(["thetao", "depth"]).assign(thetao=dataset.thetao.isel(depth=[1]))
    narrow = run(region_mean, {"dataset": single_level.isel(lat=[0], time=[0])}, tmp_path,
                 region=square(-1, -1, 2, 0.5), variables=["thetao"])
    assert narrow["thetao"].tolist() == [1.0]
    assert "skipping thetao: its dimensions (time, depth, lat, lon)" in logs(events)
    assert "4 grid points inside the polygon" in logs(events)
    with pytest.raises(ValueError, match=re.escape(
            "variables: 'thetao' has dimensions (time, depth, lat, lon); a region mean needs time, latitude "
            "and longitude only")):
        run(region_mean, {"dataset": dataset}, tmp_path, region=square(-1, -1, 2, 2), variables=["thetao"])


BOWTIE = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}


@pytest.mark.parametrize(("region", "message"), [
    ({"type": "Point", "coordinates": [0, 0]}, "region: GeoJSON type 'Point' is not supported"),
    ({"type": "Feature", "properties": {},
      "geometry": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}},
     "region: the Feature is a 'LineString'; only Polygon and MultiPolygon enclose an area"),
    ({"type": "Feature", "properties": {}, "geometry": None}, "region: the Feature has no geometry"),
    ({"type": "Polygon"}, "region: the Polygon of the geometry has no 'coordinates'"),
    ({"type": "Polygon", "coordinates": [[0, 1], [2, 3]]},
     "region: the coordinates of the Polygon of the geometry are not valid"),
    ({"type": "Polygon", "coordinates": [[["a", 0], [1, 0], [1, 1], ["a", 0]]]},
     "could not convert string to float: 'a'"),
    ({"type": "Polygon", "coordinates": []}, "region: the Polygon of the geometry is empty"),
    (BOWTIE, "region: the Polygon of the geometry is not a valid polygon: Self-intersection[0.5 0.5]"),
    ({"type": "FeatureCollection", "features": []}, "region: the FeatureCollection has no features"),
    ({"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": square(0, 0, 1, 1)}, {}]},
     "region: feature 2 of the FeatureCollection is not a Feature"),
])
def test_region_mean_names_what_is_wrong_with_the_geojson(tmp_path: Path, region: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        run(region_mean, {"dataset": field(np.ones((2, 2)), [0.0, 1.0], [0.0, 1.0])}, tmp_path, region=region)


def test_region_mean_polygon_without_sea_points(tmp_path: Path) -> None:
    dataset = field(np.array([[np.nan, 1.0], [1.0, 1.0]]), [40.0, 41.0], [0.0, 1.0])
    with pytest.raises(ValueError, match=re.escape(
            "region: the polygon (bounding box lon 10 to 12, lat 40 to 42) contains no grid point of the "
            "dataset; the data cover lon 0 to 1, lat 40 to 41")):
        run(region_mean, {"dataset": dataset}, tmp_path, region=square(10, 40, 12, 42))
    with pytest.raises(ValueError, match=re.escape(
            "region: the polygon (bounding box lon -0.5 to 0.5, lat 39.5 to 40.5) covers 1 grid points but "
            "no sea point")):
        run(region_mean, {"dataset": dataset}, tmp_path, region=square(-0.5, 39.5, 0.5, 40.5))


def test_region_mean_dataset_errors(tmp_path: Path) -> None:
    dataset = field(np.ones((2, 2)), [0.0, 1.0], [0.0, 1.0])
    unknown = "variables: 'temp' is not in the dataset; available: sst, so"
    with pytest.raises(ValueError, match=re.escape(unknown)):
        run(region_mean, {"dataset": dataset}, tmp_path, region=square(-1, -1, 2, 2), variables=["temp"])
    with pytest.raises(ValueError, match=re.escape("dataset: the dataset has no time dimension")):
        run(region_mean, {"dataset": dataset.isel(time=0, drop=True)}, tmp_path, region=square(-1, -1, 2, 2))
    with pytest.raises(BlockInputError, match=r"params/region: 'type' is a required property"):
        run(region_mean, {"dataset": dataset}, tmp_path, region={"coordinates": []})


# ---- transform.interpolate_to_points ------------------------------------------------------------

def linear_field() -> xr.Dataset:
    """sst = 100 lat + 10 lon + days since 2021-01-01: linear, so interpolation is exact anywhere."""
    times = pd.date_range("2021-01-01", periods=3, freq="D")
    lat, lon = np.array([40.0, 41.0, 42.0]), np.array([0.0, 1.0, 2.0])
    values = 100 * lat[None, :, None] + 10 * lon[None, None, :] + np.arange(3.0)[:, None, None]
    values[:, 2, 2] = np.nan  # land in the north-east corner
    return xr.Dataset({"sst": (("time", "lat", "lon"), values), "so": (("time", "lat", "lon"), values * 0)},
                      coords={"time": times, "lat": lat, "lon": lon})


def observations(rows: list[tuple]) -> pd.DataFrame:
    """Rows of (station, time, lat, lon, variable, value[, quality_flag])."""
    records = []
    for row in rows:
        station, time, lat, lon, variable, value, *flag = row
        records.append({"station": station, "time": time, "lat": lat, "lon": lon, "depth": 0.5,
                        "variable": variable, "value": value, "quality_flag": flag[0] if flag else 1})
    return pd.DataFrame(records)


def test_interpolation_at_nodes_and_halfway(tmp_path: Path) -> None:
    table = observations([
        ("node", "2021-01-02", 41.0, 1.0, "sst", 4111.0),
        ("half", "2021-01-01T12:00:00Z", 40.5, 0.5, "sst", 0.0),
        ("mixed", "2021-01-02T06:00:00", 40.25, 1.75, "sst", 0.0),
    ])
    events: list[dict] = []
    matched = run(interpolate_to_points, {"dataset": linear_field(), "observations": table}, tmp_path, events)
    assert list(matched.columns) == [
        "station", "time", "lat", "lon", "depth", "variable", "observed", "modelled"]
    assert matched["modelled"].tolist() == pytest.approx([4111.0, 4055.5, 4025 + 17.5 + 1.25])
    # the halfway point is the average of the eight surrounding values
    node_values = linear_field().sst.isel(time=[0, 1], lat=[0, 1], lon=[0, 1]).values
    assert matched["modelled"][1] == pytest.approx(node_values.mean())
    assert matched["time"].tolist() == ["2021-01-02T00:00:00", "2021-01-01T12:00:00", "2021-01-02T06:00:00"]
    assert matched["observed"].tolist() == [4111.0, 0.0, 0.0]
    assert "matched 3 of 3 observations" in logs(events)


def test_interpolation_reports_points_it_cannot_match(tmp_path: Path) -> None:
    table = observations([
        ("ok", "2021-01-02", 41.0, 1.0, "sst", 1.0),
        ("outside", "2021-01-02", 45.0, 1.0, "sst", 1.0),
        ("land", "2021-01-02", 41.5, 1.5, "sst", 1.0),
        ("late", "2021-01-06", 41.0, 1.0, "sst", 1.0),
        ("edge", "2021-01-03T06:00:00", 41.0, 1.0, "sst", 1.0),  # within 24 h of the last step
    ])
    events: list[dict] = []
    matched = run(interpolate_to_points, {"dataset": linear_field(), "observations": table}, tmp_path, events)
    assert matched["modelled"].tolist()[0] == pytest.approx(4111.0)
    assert np.isnan(matched["modelled"].to_numpy()[1:4]).all()
    assert matched["modelled"].tolist()[4] == pytest.approx(4112.0)
    assert ("matched 2 of 5 observations; not matched: 1 outside the grid; 1 more than 24 h from a time "
            "step; 1 on land or next to a missing grid value") in logs(events)


def test_interpolation_maps_names_filters_flags_and_wraps_longitudes(tmp_path: Path) -> None:
    dataset = linear_field().assign_coords(lon=[358.0, 359.0, 360.0 - 1e-9]).rename(lat="latitude",
                                                                                      lon="longitude")
    dataset = dataset.isel(longitude=[0, 1])
    table = observations([
        ("a", "2021-01-01", 41.0, -1.5, "TEMP", 1.0, 1),
        ("b", "2021-01-01", 41.0, -1.5, "TEMP", 1.0, 4),
        ("c", "2021-01-01", 41.0, -1.5, "PSAL", 1.0, 1),
    ])
    events: list[dict] = []
    matched = run(interpolate_to_points, {"dataset": dataset, "observations": table}, tmp_path, events,
                  variable_map={"TEMP": "sst"})
    assert matched["station"].tolist() == ["a"]
    assert matched["variable"].tolist() == ["TEMP"] and matched["lon"].tolist() == [-1.5]
    assert matched["modelled"].tolist() == pytest.approx([4100 + 10 * 0.5])  # halfway between lon 0 and 1
    assert "left out 1 observations whose quality flag is not 1, 2" in logs(events)
    assert "no dataset variable for PSAL" in logs(events)


def test_interpolation_in_depth(tmp_path: Path) -> None:
    base = linear_field().isel(time=[0, 1])
    dataset = xr.concat([base, base + 1000], dim=xr.DataArray([0.0, 10.0], dims="depth", name="depth"))
    dataset = dataset.transpose("time", "depth", "lat", "lon")
    table = observations([("a", "2021-01-01", 41.0, 1.0, "sst", 1.0)] * 3)
    table["depth"] = [2.5, np.nan, 50.0]
    dataset["zos"] = base.sst.isel(time=0, drop=True)  # a surface field: observation depths do not matter
    table = pd.concat([table, table.assign(variable="zos")], ignore_index=True)
    matched = run(interpolate_to_points, {"dataset": dataset, "observations": table}, tmp_path)
    assert matched["modelled"].tolist()[:2] == pytest.approx([4110 + 250, 4110])
    assert np.isnan(matched["modelled"][2])  # below the deepest level
    assert matched["modelled"].tolist()[3:] == pytest.approx([4110] * 3)


@pytest.mark.parametrize(("change", "params", "message"), [
    (lambda t: t.drop(columns=["value", "lat"]), {},
     "observations: the table lacks the columns lat, value; its columns are station, time, lon, depth, "
     "variable, quality_flag; expected station, time, lat, lon, depth, variable, value, quality_flag"),
    (lambda t: t.iloc[0:0], {}, "observations: the table has no rows"),
    (lambda t: t.assign(time="yesterday"), {},
     "observations: the 'time' column holds values that are not ISO"),
    (lambda t: t.assign(variable="TEMP"), {},
     "variable_map: no observed variable (TEMP) matches a dataset variable (sst, so); map them, "
     "e.g. {\"TEMP\": \"...\"}"),
    (lambda t: t, {"variable_map": {"sst": "thetao"}},
     "variable_map: 'sst' maps to 'thetao', which is not in the dataset; available: sst, so"),
    (lambda t: t.assign(quality_flag=4), {},
     "quality_flags: no observation has flag 1, 2 (flags present: 4)"),
    (lambda t: t.assign(lat=60.0), {},
     "observations: no observation could be matched (1 outside the grid); the dataset covers lat 40 to 42, "
     "lon 0 to 2, time 2021-01-01 to 2021-01-03"),
])
def test_interpolation_errors(tmp_path: Path, change: Any, params: dict, message: str) -> None:
    table = change(observations([("a", "2021-01-02", 41.0, 1.0, "sst", 1.0)]))
    with pytest.raises(ValueError, match=re.escape(message)):
        run(interpolate_to_points, {"dataset": linear_field(), "observations": table}, tmp_path, **params)


def test_interpolation_uses_one_vectorised_call_per_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    original = xr.Dataset.interp

    def counting(self: xr.Dataset, *args: Any, **kwargs: Any) -> xr.Dataset:
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(xr.Dataset, "interp", counting)
    rng = np.random.default_rng(1)
    table = observations([(f"s{i}", "2021-01-02", float(lat), float(lon), "sst", 0.0)
                          for i, (lat, lon) in enumerate(rng.uniform([40, 0], [41, 1], size=(500, 2)))])
    matched = run(interpolate_to_points, {"dataset": linear_field(), "observations": table}, tmp_path)
    assert len(calls) == 1
    expected = 100 * matched["lat"] + 10 * matched["lon"] + 1
    np.testing.assert_allclose(matched["modelled"], expected, rtol=1e-12)


# ---- transform.convert_units --------------------------------------------------------------------

def test_convert_celsius_to_kelvin(tmp_path: Path) -> None:
    dataset = daily(np.array([20.0, -1.5]))
    dataset["sst"].attrs.update(valid_min=-2.0, valid_max=40.0)
    result = run(convert_units, {"dataset": dataset}, tmp_path, variable="sst", to_units="degK")
    np.testing.assert_allclose(result.sst.values[:, 0, 0], [293.15, 271.65])
    assert result.sst.attrs["units"] == "degK"
    assert result.sst.attrs["valid_min"] == pytest.approx(271.15)
    assert result.sst.attrs["long_name"] == "sea surface temperature"
    assert "transform.convert_units 1.0.0 (variable=sst, degree_Celsius -> degK)" in result.attrs["history"]
    assert dataset.sst.attrs["units"] == "degree_Celsius"  # the input is not modified


@pytest.mark.parametrize(("source", "target", "value", "expected"), [
    ("m s-1", "knot", 1.0, 3600 / 1852),
    ("m/s", "km h-1", 10.0, 36.0),
    ("1e-3", "1", 35.0, 0.035),
    ("kelvin", "degree_Celsius", 273.15, 0.0),
    ("degC", "degF", 100.0, 212.0),
    ("degrees_C", "K", 10.0, 283.15),  # as written by Copernicus Marine
])
def test_convert_cf_unit_strings(
    tmp_path: Path, source: str, target: str, value: float, expected: float
) -> None:
    result = run(convert_units, {"dataset": daily(np.array([value]), units=source)}, tmp_path,
                 variable="sst", to_units=target)
    assert result.sst.values[0, 0, 0] == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_convert_units_and_calculate_stay_lazy_on_files(tmp_path: Path) -> None:
    path = tmp_path / "demo.nc"
    make_demo_dataset(days=3).to_netcdf(path)
    with xr.open_dataset(path) as opened:
        converted = run(convert_units, {"dataset": opened}, tmp_path, variable="uo", to_units="knot")
        assert converted.uo.chunks is not None and not opened.uo.variable._in_memory
        speed = run(calculate, {"dataset": opened}, tmp_path, expression="sqrt(uo**2 + vo**2)", name="speed")
        assert speed.speed.chunks is not None and not opened.vo.variable._in_memory
        demo = make_demo_dataset(days=3)
        np.testing.assert_allclose(converted.uo.values, demo.uo.values * 3600 / 1852, rtol=1e-6)
        np.testing.assert_allclose(speed.speed.values, np.hypot(demo.uo.values, demo.vo.values), rtol=1e-6)


def test_convert_units_stays_lazy(tmp_path: Path) -> None:
    dataset = daily(np.array([1.0, 2.0]), units="m s-1").chunk({"time": 1})
    result = run(convert_units, {"dataset": dataset}, tmp_path, variable="sst", to_units="cm s-1")
    assert result.sst.chunks is not None
    np.testing.assert_allclose(result.sst.values[:, 0, 0], [100.0, 200.0])


@pytest.mark.parametrize(("units", "params", "message"), [
    ("degree_Celsius", {"to_units": "furlong_per_fortnight"},
     "to_units: unknown unit 'furlong_per_fortnight' in 'furlong_per_fortnight'"),
    ("bananas", {"to_units": "K"}, "variable: the units of 'sst': unknown unit 'bananas' in 'bananas'"),
    ("m s-1", {"to_units": "degC"}, "to_units: 'sst' is in 'm s-1' ([length] / [time]), which cannot be "
                                    "converted to 'degC' ([temperature])"),
    (None, {"to_units": "K"}, "variable: 'sst' has no units attribute, so its values cannot be converted"),
    ("K", {"to_units": "K", "variable": "temp"}, "variable: 'temp' is not in the dataset; available: sst"),
    ("K", {"to_units": "m s-"}, "to_units: cannot read the unit 'm s-'"),
])
def test_convert_units_errors(tmp_path: Path, units: str | None, params: dict, message: str) -> None:
    dataset = daily(np.ones(2), units=units or "")
    if units is None:
        del dataset["sst"].attrs["units"]
    with pytest.raises(ValueError, match=re.escape(message)):
        run(convert_units, {"dataset": dataset}, tmp_path, **{"variable": "sst", **params})


# ---- transform.calculate ------------------------------------------------------------------------

def currents() -> xr.Dataset:
    shape = (2, 1, 2)
    return xr.Dataset(
        {"uo": (("time", "lat", "lon"), np.full(shape, 3.0), {"units": "m s-1"}),
         "vo": (("time", "lat", "lon"), np.full(shape, 4.0), {"units": "m s-1"})},
        coords={"time": pd.date_range("2021-01-01", periods=2), "lat": [45.0], "lon": [0.0, 1.0]},
    )


def test_calculate_speed(tmp_path: Path) -> None:
    result = run(calculate, {"dataset": currents()}, tmp_path, expression="sqrt(uo**2 + vo**2)", name="speed",
                 units="m s-1", long_name="current speed")
    np.testing.assert_allclose(result.speed.values, 5.0)
    assert result.speed.dims == ("time", "lat", "lon")
    assert result.speed.attrs == {"units": "m s-1", "long_name": "current speed",
                                  "comment": "calculated as sqrt(uo**2 + vo**2)"}
    assert set(result.data_vars) == {"uo", "vo", "speed"}
    assert "transform.calculate 1.0.0 (speed = sqrt(uo**2 + vo**2))" in result.attrs["history"]


def test_calculate_conditions_functions_and_coordinates(tmp_path: Path) -> None:
    dataset = currents()
    dataset["uo"][:, 0, 1] = -1.0
    result = run(calculate, {"dataset": dataset}, tmp_path, name="x",
                 expression="where(uo > 0 and vo >= 4, clip(uo * 10, 0, 25), -lat % 7)")
    np.testing.assert_allclose(result.x.values[:, 0, :], [[25.0, 4.0], [25.0, 4.0]])  # -45 % 7 = 4
    direction = run(calculate, {"dataset": dataset}, tmp_path, name="d", expression="arctan2(vo, uo)")
    np.testing.assert_allclose(direction.d.values[0, 0, 0], np.arctan2(4, 3))
    flag = run(calculate, {"dataset": dataset}, tmp_path, name="f", expression="not (uo < 0)")
    assert flag.f.dtype == np.int8 and flag.f.values[0, 0].tolist() == [1, 0]


def test_calculate_stays_lazy(tmp_path: Path) -> None:
    result = run(calculate, {"dataset": currents().chunk({"time": 1})}, tmp_path, name="ke",
                 expression="0.5 * (uo**2 + vo**2)")
    assert result.ke.chunks is not None
    np.testing.assert_allclose(result.ke.values, 12.5)


@pytest.mark.parametrize(("params", "message"), [
    ({"expression": "__import__('os')"}, "expression: function '__import__' at position 1 is not allowed"),
    ({"expression": "uo.values"}, "expression: attribute access '.values' at position 3 is not allowed"),
    ({"expression": "sqrt(temp)"},
     "expression: unknown name 'temp' at position 6; the dataset has: lat, lon, time, uo, vo"),
    ({"expression": "2 + 3"}, "expression: uses no variable of the dataset; available: uo, vo"),
    ({"expression": "uo +"}, "expression: invalid syntax at the end"),
    ({"name": "uo"}, "name: 'uo' already exists in the dataset; choose another name"),
])
def test_calculate_errors(tmp_path: Path, params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        run(calculate, {"dataset": currents()}, tmp_path, **{"expression": "uo", "name": "speed", **params})


def test_calculate_error_is_an_expression_error(tmp_path: Path) -> None:
    with pytest.raises(ExpressionError):
        run(calculate, {"dataset": currents()}, tmp_path, expression="open('x')", name="y")
    with pytest.raises(BlockInputError, match=r"params/name: '2x' does not match"):
        run(calculate, {"dataset": currents()}, tmp_path, expression="uo", name="2x")
    with pytest.raises(BlockInputError, match=r"params/expression: .* is too long"):
        run(calculate, {"dataset": currents()}, tmp_path, expression="uo+" * 3000 + "uo", name="y")


def test_calculate_docstring_lists_every_function() -> None:
    from blocks.expressions import FUNCTIONS

    for name in FUNCTIONS:
        assert f"`{name}" in calculate.spec.description
    assert transform.calculate is calculate
