"""deliver.netcdf, deliver.csv, deliver.geojson and deliver.png."""

from __future__ import annotations

import io
import json
import re
import struct
from pathlib import Path
from typing import Any

import cf_xarray  # noqa: F401  (registers the .cf accessor)
import netCDF4
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from blocks.library.deliver import deliver_csv, deliver_geojson, deliver_netcdf, deliver_png
from blocks.library.demo_data import make_demo_dataset
from blocks.registry import discover
from blocks.runner import BlockInputError
from blocks.types import PORT_TYPES, known_types
from tests.blocks.sample_blocks import call


def small(days: int = 3) -> xr.Dataset:
    return make_demo_dataset(days=days, lat_min=44, lat_max=45, lon_min=-5, lon_max=-3, resolution=0.5)


def test_blocks_are_discoverable() -> None:
    registry = discover(extra_modules=["blocks.library.deliver"])
    assert registry.errors == []
    for target in (deliver_netcdf, deliver_csv, deliver_geojson, deliver_png):
        target.spec.check(known_types())
        assert target.spec.category == "deliver"
        schema = target.spec.parameters
        assert schema["additionalProperties"] is False
        for prop in schema["properties"].values():
            assert prop["title"] and prop["description"]


# ---- deliver.netcdf ------------------------------------------------------------------------------

def saved(dataset: xr.Dataset, tmp_path: Path, name: str = "out.nc") -> Path:
    path = tmp_path / name
    PORT_TYPES["dataset"].save(dataset, path)  # as the runner saves the output port
    return path


def test_netcdf_is_cf_with_provenance_and_history(tmp_path: Path) -> None:
    source = small().assign_attrs(Conventions="CF-1.6, ACDD-1.3", history="2021-01-01 created")
    provenance = "ocean.demo_dataset 1.0.0 {days: 3}\n-> deliver.netcdf 1.0.0"
    result = call(deliver_netcdf, {"dataset": source}, {"provenance": provenance, "title": "Biscay SST"},
                  tmp_path)["dataset"]
    path = saved(result, tmp_path)
    with xr.open_dataset(path) as reopened:
        attrs = reopened.attrs
        assert attrs["Conventions"] == "CF-1.8, ACDD-1.3"
        assert attrs["title"] == "Biscay SST"
        assert attrs["source"].startswith("synthetic")  # the dataset's own source is kept
        assert attrs["provenance"] == provenance
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", attrs["date_created"])
        first, second = attrs["history"].split("\n")
        assert first == "2021-01-01 created"
        assert re.fullmatch(r"\S+Z deliver\.netcdf 1\.0\.0 \(compression=4\) provenance: ocean\.demo_dataset "
                            r"1\.0\.0 \{days: 3\} -> deliver\.netcdf 1\.0\.0", second)
        # cf-xarray finds every axis and coordinate through the CF attributes
        assert reopened.cf.axes == {"X": ["lon"], "Y": ["lat"], "T": ["time"]}
        assert reopened.cf.coordinates == {"longitude": ["lon"], "latitude": ["lat"], "time": ["time"]}
        assert reopened.cf["sea_surface_temperature"].attrs["units"] == "degree_Celsius"
        for name in ("sst", "so", "uo", "vo"):
            np.testing.assert_array_equal(reopened[name].values, source[name].values)
        assert reopened.indexes["time"].equals(source.indexes["time"])
    assert source.attrs["history"] == "2021-01-01 created"  # the input is not modified


def test_netcdf_compression_level(tmp_path: Path) -> None:
    source = make_demo_dataset(days=30)
    sizes = {}
    for level in (0, 1, 9):
        result = call(deliver_netcdf, {"dataset": source}, {"compression": level}, tmp_path)["dataset"]
        path = saved(result, tmp_path, f"level{level}.nc")
        sizes[level] = path.stat().st_size
        with netCDF4.Dataset(path) as raw:
            filters = raw["sst"].filters()
            assert bool(filters["zlib"]) == (level > 0)
            if level:
                assert filters["complevel"] == level
            assert not hasattr(raw["lat"], "_FillValue")
            assert raw["lat"].axis == "Y" and raw["lon"].units == "degrees_east"
            assert raw["time"].standard_name == "time"
    assert sizes[9] <= sizes[1] < sizes[0]


def test_netcdf_from_a_lazily_opened_subset_and_missing_metadata(tmp_path: Path) -> None:
    path = tmp_path / "source.nc"
    raw = xr.Dataset(
        {"chl": (("t", "latitude", "longitude"), np.arange(12, dtype=np.float64).reshape(2, 2, 3))},
        coords={"t": pd.date_range("2022-01-01", periods=2), "latitude": [10.0, 11.0],
                "longitude": [1.0, 2.0, 3.0]},
    )
    raw.to_netcdf(path, encoding={"chl": {"chunksizes": (1, 2, 3), "zlib": True}})
    events: list[dict] = []
    with xr.open_dataset(path, chunks={}) as opened:
        subset = opened.isel(longitude=slice(0, 2))
        result = call(deliver_netcdf, {"dataset": subset}, {}, tmp_path, emit=events.append)["dataset"]
        out = saved(result, tmp_path)
    with xr.open_dataset(out) as reopened:
        assert reopened.attrs["Conventions"] == "CF-1.8"
        assert reopened.attrs["source"] == "Iliad Portal pipeline"
        assert "provenance" not in reopened.attrs
        assert reopened.latitude.attrs["standard_name"] == "latitude"
        np.testing.assert_array_equal(reopened.chl.values, raw.chl.values[:, :, :2])
    assert any("variable 'chl' has no units attribute" in e["message"] for e in events if e["kind"] == "log")


def test_netcdf_rejects_empty_dataset_and_bad_level(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="dataset: the dataset has no data variables to deliver"):
        call(deliver_netcdf, {"dataset": xr.Dataset()}, {}, tmp_path)
    with pytest.raises(BlockInputError, match="params/compression"):
        call(deliver_netcdf, {"dataset": small()}, {"compression": 12}, tmp_path)


# ---- deliver.csv ---------------------------------------------------------------------------------

TABLE = pd.DataFrame({
    "time": ["2022-07-18", "2022-07-19"], "sst": [21.123456, 22.987654], "count": [3, 4],
    "station": ["A", "B"],
})


def test_csv_selects_orders_and_rounds(tmp_path: Path) -> None:
    result = call(deliver_csv, {"table": TABLE}, {"columns": ["sst", "time", "count"], "decimals": 2},
                  tmp_path)["table"]
    path = tmp_path / "out.csv"
    PORT_TYPES["table"].save(result, path)
    assert path.read_text().splitlines() == ["sst,time,count", "21.12,2022-07-18,3", "22.99,2022-07-19,4"]
    assert TABLE["sst"].tolist() == [21.123456, 22.987654]


def test_csv_round_trip_without_settings(tmp_path: Path) -> None:
    result = call(deliver_csv, {"table": TABLE}, {}, tmp_path)["table"]
    path = tmp_path / "out.csv"
    PORT_TYPES["table"].save(result, path)
    pd.testing.assert_frame_equal(pd.read_csv(path), TABLE, check_dtype=False)


def test_csv_unknown_column(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="columns: 'temp' is not in the table; available: time, sst, count, "
                                         "station"):
        call(deliver_csv, {"table": TABLE}, {"columns": ["sst", "temp"]}, tmp_path)


# ---- deliver.geojson -----------------------------------------------------------------------------

POINTS = pd.DataFrame({
    "station": ["A", "B", "C"], "time": ["2022-07-18", "2022-07-18", "2022-07-19"],
    "lat": [44.5, -12.25, 0.0], "lon": [-3.0, 350.0, 179.5], "value": [20.5, np.nan, 3.0],
})


def test_geojson_points_are_longitude_first(tmp_path: Path) -> None:
    features = call(deliver_geojson, {"table": POINTS}, {}, tmp_path)["features"]
    assert features["type"] == "FeatureCollection"
    coordinates = [feature["geometry"]["coordinates"] for feature in features["features"]]
    assert coordinates == [[-3.0, 44.5], [-10.0, -12.25], [179.5, 0.0]]
    assert all(feature["geometry"]["type"] == "Point" for feature in features["features"])
    assert features["features"][1]["properties"] == {"station": "B", "time": "2022-07-18", "value": None}
    path = tmp_path / "points.geojson"
    PORT_TYPES["geojson"].save(features, path)
    assert json.loads(path.read_text()) == features  # strict JSON, no NaN


def test_geojson_named_columns_and_chosen_properties(tmp_path: Path) -> None:
    table = POINTS.rename(columns={"lat": "y", "lon": "x"})
    features = call(deliver_geojson, {"table": table},
                    {"lat_column": "y", "lon_column": "x", "properties": ["value"]}, tmp_path)["features"]
    assert features["features"][0]["properties"] == {"time": "2022-07-18", "value": 20.5}
    assert features["features"][0]["geometry"]["coordinates"] == [-3.0, 44.5]
    latitude = POINTS.rename(columns={"lat": "Latitude", "lon": "longitude"})
    assert len(call(deliver_geojson, {"table": latitude}, {}, tmp_path)["features"]["features"]) == 3


@pytest.mark.parametrize(("table", "params", "message"), [
    (POINTS.assign(lat=[44.5, 95.0, 0.0]), {},
     "lat_column: 1 rows of 'lat' are missing or outside -90 to 90; the first is row 2 with 95.0"),
    (POINTS.assign(lon=[np.nan, 1.0, 2.0]), {}, "lon_column: 1 rows of 'lon' are missing or outside -180 to "
                                                "360; the first is row 1 with no value"),
    (POINTS.drop(columns="lat"), {}, "lat_column: the table has no lat or latitude column; available: "
                                     "station, time, lon, value (set lat_column to name it)"),
    (POINTS, {"lon_column": "x"}, "lon_column: 'x' is not in the table"),
    (POINTS, {"properties": ["depth"]}, "properties: 'depth' is not in the table"),
    (POINTS.iloc[:0], {}, "table: the table has no rows"),
])
def test_geojson_errors(tmp_path: Path, table: pd.DataFrame, params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        call(deliver_geojson, {"table": table}, params, tmp_path)


# ---- deliver.png ---------------------------------------------------------------------------------

def png_size(image: bytes) -> tuple[int, int]:
    assert image[:8] == b"\x89PNG\r\n\x1a\n"
    assert image[12:16] == b"IHDR"
    return struct.unpack(">II", image[16:24])


def test_png_map_of_a_variable_at_a_time(tmp_path: Path) -> None:
    image = call(deliver_png, {"data": make_demo_dataset(days=5)}, {"variable": "sst", "time": "2021-01-03"},
                 tmp_path)["image"]
    assert png_size(image) == (1000, 600)
    assert len(image) > 10_000
    import matplotlib.image

    pixels = (matplotlib.image.imread(io.BytesIO(image)) * 255).astype(np.uint32)
    assert pixels.shape[:2] == (600, 1000)
    packed = (pixels[..., 0] << 16) | (pixels[..., 1] << 8) | pixels[..., 2]
    assert len(np.unique(packed)) > 50  # a colourful map


def test_png_map_title_and_colorbar_label(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from matplotlib.figure import Figure

    seen: dict[str, Any] = {}
    original = Figure.savefig

    def spy(self: Figure, *args: Any, **kwargs: Any) -> None:
        axes = self.axes
        seen["title"] = axes[0].get_title()
        seen["colorbar"] = axes[1].get_ylabel()
        original(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", spy)
    call(deliver_png, {"data": make_demo_dataset(days=5)}, {"variable": "uo", "time": "2021-01-04T10:00"},
         tmp_path)
    assert seen == {"title": "Eastward surface current — 2021-01-04",
                    "colorbar": "Eastward surface current (m/s)"}


def test_png_chart_of_a_table(tmp_path: Path) -> None:
    table = pd.DataFrame({"time": pd.date_range("2022-01-01", periods=50).strftime("%Y-%m-%d"),
                          "sst": np.sin(np.arange(50) / 5.0) + 15})
    image = call(deliver_png, {"data": table}, {"title": "SST"}, tmp_path)["image"]
    assert png_size(image) == (1000, 600)


@pytest.mark.parametrize(("data", "params", "message"), [
    (small(days=2), {"variable": "temp"}, "variable: 'temp' is not in the dataset; available: "
                                                      "sst, so, uo, vo"),
    (make_demo_dataset(days=2), {"time": "2030-01-01"}, "time: 2030-01-01 is outside the data, which covers "
                                                        "2021-01-01T00:00:00 to 2021-01-02T00:00:00"),
    (make_demo_dataset(days=2), {"time": "soon"}, "time: 'soon' is not a date or time"),
    (make_demo_dataset(days=2).sst.mean(("lat", "lon")).to_dataset(), {},
     "variable: no variable has latitude and longitude dimensions; variables: sst"),
    (make_demo_dataset(days=1, lat_min=40, lat_max=41, lon_min=-4, lon_max=-3), {},
     "variable: 'sst' has no valid values at 2021-01-01"),
    (TABLE, {"column": "station"}, "column: 'station' holds"),
    (TABLE, {"column": "depth"}, "column: 'depth' is not in the table; available: time, sst, count, station"),
    (TABLE.drop(columns="time"), {}, "table: the table has no 'time' column"),
    ({"a": 1}, {}, "data: expected a gridded dataset or a table, got dict"),
])
def test_png_errors(tmp_path: Path, data: Any, params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        call(deliver_png, {"data": data}, params, tmp_path)
