"""Shared CF coordinate and time series helpers."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from blocks.library.geo import (
    column_list,
    coord_kind,
    cos_lat_weights,
    coverage,
    depth_is_height,
    find_coord,
    iso_times,
    longitude_convention,
    numeric_column,
    numeric_columns,
    parse_day,
    read_time_series,
    require_coord,
    require_variables,
    table_times,
    time_series_table,
    with_history,
    wrap_longitudes,
)


def dataset_with(coords: dict) -> xr.Dataset:
    dims = tuple(name for name, value in coords.items() if isinstance(value, tuple) and value[0] == name)
    shape = tuple(len(coords[name][1]) for name in dims)
    return xr.Dataset({"v": (dims, np.zeros(shape))}, coords=coords)


def test_find_coord_by_name() -> None:
    ds = dataset_with({"time": ("time", pd.date_range("2021-01-01", periods=2)),
                       "depth": ("depth", [0.0, 5.0]), "latitude": ("latitude", [1.0, 2.0]),
                       "longitude": ("longitude", [3.0, 4.0])})
    assert [find_coord(ds, kind) for kind in ("lat", "lon", "time", "depth")] == [
        "latitude", "longitude", "time", "depth"]
    assert find_coord(ds["v"], "lat") == "latitude"


def test_find_coord_by_standard_name_axis_and_units() -> None:
    ds = dataset_with({
        "y": ("y", [1.0, 2.0], {"standard_name": "latitude"}),
        "x": ("x", [3.0, 4.0], {"axis": "X"}),
        "t": ("t", [0, 1], {"units": "days since 2000-01-01"}),
        "lev": ("lev", [0.0, 10.0]),
    })
    assert find_coord(ds, "lat") == "y" and find_coord(ds, "lon") == "x"
    assert find_coord(ds, "time") == "t" and find_coord(ds, "depth") == "lev"
    by_units = dataset_with({"nav_y": ("nav_y", [1.0], {"units": "degrees_north"}),
                             "nav_x": ("nav_x", [1.0], {"units": "degree_east"}),
                             "when": ("when", pd.date_range("2021-01-01", periods=1)),
                             "k": ("k", [-1.0], {"positive": "up"})})
    assert [find_coord(by_units, kind) for kind in ("lat", "lon", "time", "depth")] == [
        "nav_y", "nav_x", "when", "k"]


def test_find_coord_prefers_names_and_skips_non_dimension_coordinates() -> None:
    ds = dataset_with({"lat": ("lat", [1.0]), "y": ("y", [5.0], {"standard_name": "latitude"})})
    assert find_coord(ds, "lat") == "lat"
    curvilinear = xr.Dataset({"v": (("j", "i"), np.zeros((2, 2)))},
                             coords={"nav_lat": (("j", "i"), np.ones((2, 2)))})
    assert find_coord(curvilinear, "lat") is None
    assert find_coord(curvilinear, "lat", dimension=False) == "nav_lat"
    with pytest.raises(KeyError, match="unknown coordinate kind 'height'"):
        find_coord(ds, "height")  # type: ignore[arg-type]


def test_require_coord_names_the_parameter_and_dimensions() -> None:
    ds = dataset_with({"lat": ("lat", [1.0]), "lon": ("lon", [1.0])})
    assert require_coord(ds, "lat", "lat_min") == "lat"
    with pytest.raises(ValueError, match=re.escape(
            "depth_min: the dataset has no depth dimension; its dimensions are lat, lon")):
        require_coord(ds, "depth", "depth_min")


def test_depth_is_height() -> None:
    assert depth_is_height(xr.DataArray([0.0, -10.0], dims="z", attrs={"positive": "up"}))
    assert not depth_is_height(xr.DataArray([0.0, 10.0], dims="z", attrs={"positive": "down"}))
    assert depth_is_height(xr.DataArray([-0.5, -10.0], dims="z"))
    assert not depth_is_height(xr.DataArray([0.5, 10.0], dims="z"))


def test_longitudes() -> None:
    assert longitude_convention([0.0, 359.5]) == 360 and longitude_convention([-10.0, 20.0]) == 180
    assert longitude_convention(np.array([10.0, 20.0])) == 180
    assert wrap_longitudes(350.0, 180) == -10.0 and wrap_longitudes(-10.0, 360) == 350.0
    assert wrap_longitudes(180.0, 180) == -180.0
    np.testing.assert_array_equal(wrap_longitudes(np.array([-180.0, 0.0, 190.0]), 360), [180.0, 0.0, 190.0])
    with pytest.raises(ValueError, match="convention must be 180 or 360"):
        wrap_longitudes(1.0, 90)


def test_cos_lat_weights() -> None:
    np.testing.assert_allclose(cos_lat_weights(xr.DataArray([0.0, 60.0], dims="lat")).values, [1.0, 0.5])


def test_iso_times_and_coverage() -> None:
    days = pd.date_range("2021-01-01", periods=2)
    assert iso_times(days) == ["2021-01-01", "2021-01-02"]
    assert iso_times(days.to_numpy()) == ["2021-01-01", "2021-01-02"]
    assert iso_times([pd.Timestamp("2021-01-01T06:30")]) == ["2021-01-01T06:30:00"]
    assert coverage(days) == "2021-01-01 to 2021-01-02"
    assert coverage(pd.Index([40.0, 45.5])) == "40 to 45.5"
    assert coverage([3.0, 1.0]) == "1 to 3" and coverage([]) == "nothing"


def test_with_history_appends_a_stamped_line() -> None:
    ds = xr.Dataset(attrs={"history": "created"})
    result = with_history(ds, "step one")
    first, second = result.attrs["history"].split("\n")
    assert first == "created" and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ step one", second)
    assert ds.attrs["history"] == "created"


def test_time_series_table_round_trip() -> None:
    table = time_series_table(pd.date_range("2021-01-01", periods=3), {"sst": [1, 2, 3], "so": np.ones(3)})
    assert list(table.columns) == ["time", "sst", "so"] and table["time"][0] == "2021-01-01"
    assert table["sst"].dtype == np.float64
    frame = read_time_series(table.iloc[::-1])
    assert list(frame.columns) == ["sst", "so"] and frame.index.is_monotonic_increasing
    assert frame["sst"].tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match="column 'sst' has 2 values for 3 times"):
        time_series_table(pd.date_range("2021-01-01", periods=3), {"sst": [1, 2]})


def test_read_time_series_handles_time_zones_and_picks_columns() -> None:
    table = pd.DataFrame({"time": ["2021-01-01T00:00:00+01:00"], "a": [1.0], "b": [2.0], "name": ["x"]})
    frame = read_time_series(table, ["b"])
    assert frame.index[0] == pd.Timestamp("2020-12-31T23:00") and list(frame.columns) == ["b"]


@pytest.mark.parametrize(("table", "columns", "message"), [
    (pd.DataFrame({"date": ["2021-01-01"], "a": [1.0]}), None,
     "series: the table has no 'time' column; columns: date, a"),
    (pd.DataFrame({"time": [], "a": []}), None, "series: the table has no rows"),
    (pd.DataFrame({"time": ["soon"], "a": [1.0]}), None,
     "series: the 'time' column holds values that are not"),
    (pd.DataFrame({"time": ["2021-01-01"], "a": ["x"]}), None, "series: the table has no numeric column"),
    (pd.DataFrame({"time": ["2021-01-01"], "a": [1.0]}), ["b"],
     "series: 'b' is not in the table; available: time, a"),
    (pd.DataFrame({"time": ["2021-01-01"], "a": ["x"]}), ["a"],
     "series: 'a' holds str values, not numbers"),
])
def test_read_time_series_errors(table: pd.DataFrame, columns: list | None, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        read_time_series(table, columns)


def test_coord_kind() -> None:
    ds = dataset_with({"y_lat": ("y_lat", [1.0, 2.0]), "x": ("x", [3.0, 4.0]),
                       "when": ("when", pd.date_range("2021-01-01", periods=2))})
    ds["x"].attrs["units"] = "degrees_east"
    assert [coord_kind(name, ds[name]) for name in ("y_lat", "x", "when")] == ["lat", "lon", "time"]
    assert coord_kind("v", ds["v"]) is None


def test_with_history_uses_a_given_stamp() -> None:
    ds = with_history(xr.Dataset(), "step", stamp="2021-01-01T00:00:00Z")
    assert ds.attrs["history"] == "2021-01-01T00:00:00Z step"


def test_parse_day() -> None:
    assert parse_day("start", "2021-07-18") == pd.Timestamp("2021-07-18")
    with pytest.raises(ValueError, match="start: '18/07/2021' is not a date"):
        parse_day("start", "18/07/2021")


def test_variables_and_columns() -> None:
    ds = xr.Dataset({"sst": ("x", [1.0])})
    require_variables(ds, ["sst"])
    with pytest.raises(ValueError, match=re.escape("variable: 'sss' is not in the dataset; available: sst")):
        require_variables(ds, ["sss"], "variable")
    table = pd.DataFrame({"time": ["2021-01-01"], "flag": [True], "a": [1], "b": [2.0]})
    assert column_list(table) == "time, flag, a, b"
    assert column_list(pd.DataFrame()) == "none"
    assert numeric_column(table, None) == "flag"
    assert numeric_column(table, None, booleans=False) == "a"
    assert numeric_column(table, "b") == "b"
    assert numeric_columns(table, None, booleans=False) == ["a", "b"]
    assert numeric_columns(table, ["flag"]) == ["flag"]
    with pytest.raises(ValueError, match=re.escape("column: 'time' holds")):
        numeric_column(table, "time")
    with pytest.raises(ValueError, match=re.escape("column: 'flag' holds bool values, not numbers")):
        numeric_column(table, "flag", booleans=False)
    with pytest.raises(ValueError, match="columns: 'c' is not in the table; available: time, flag"):
        numeric_columns(table, ["c"])
    with pytest.raises(ValueError, match="columns: the table has no numeric column; columns: time"):
        numeric_columns(table[["time"]], None)


def test_table_times() -> None:
    table = pd.DataFrame({"time": ["2021-01-01T01:00+01:00", "2021-01-02T00:00+02:00"]})
    times = table_times(table, iso_only=True)
    assert list(times) == [pd.Timestamp("2021-01-01"), pd.Timestamp("2021-01-01T22:00")]
    with pytest.raises(ValueError, match=re.escape("series: the 'time' column is empty in row 2")):
        table_times(pd.DataFrame({"time": ["2021-01-01", None]}))
    with pytest.raises(ValueError, match="trend: the 'time' column holds values that are not dates, e.g. "
                                         "'someday' in row 2"):
        table_times(pd.DataFrame({"time": ["2021-01-01", "someday"]}), "trend")
    with pytest.raises(ValueError, match=re.escape("series: the table has no 'time' column; columns: a")):
        table_times(pd.DataFrame({"a": [1]}))
