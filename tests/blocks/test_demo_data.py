"""The synthetic demo dataset and the block that serves it."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from blocks.library import demo_data
from blocks.library.demo import demo_dataset
from blocks.library.demo_data import (
    DEMO_STATIONS,
    OBSERVATION_COLUMNS,
    make_demo_currents_hourly,
    make_demo_dataset,
    make_demo_observations,
    make_demo_winds,
    write_demo_data_space,
)
from blocks.runner import BlockInputError
from tests.blocks.sample_blocks import call

VARIABLES = {
    "sst": ("sea_surface_temperature", "degree_Celsius"),
    "so": ("sea_water_salinity", "1e-3"),
    "uo": ("eastward_sea_water_velocity", "m s-1"),
    "vo": ("northward_sea_water_velocity", "m s-1"),
}


@pytest.fixture(scope="module")
def default() -> xr.Dataset:
    return make_demo_dataset()


def test_default_is_fast_and_identical_across_calls(default: xr.Dataset) -> None:
    started = time.perf_counter()
    again = make_demo_dataset()
    assert time.perf_counter() - started < 2.0
    assert again.identical(default)
    for name in VARIABLES:
        assert again[name].values.tobytes() == default[name].values.tobytes()


def test_seed_changes_only_the_noise(default: xr.Dataset) -> None:
    other = make_demo_dataset(seed=1, days=30)
    difference = np.abs(other.sst - default.sst.isel(time=slice(0, 30)))
    assert 0 < float(difference.max()) < 1.0


def test_grid_shape_dtype_and_daily_midnight_times(default: xr.Dataset) -> None:
    assert dict(default.sizes) == {"time": 1096, "lat": 25, "lon": 41}
    assert default.lat.values[[0, -1]].tolist() == [40.0, 46.0]
    assert default.lon.values[[0, -1]].tolist() == [-6.0, 4.0]
    times = default.indexes["time"]
    assert times[0].isoformat() == "2021-01-01T00:00:00"
    assert (times == times.normalize()).all()
    assert set(np.diff(times.values).astype("timedelta64[h]").astype(int)) == {24}
    for name in VARIABLES:
        assert default[name].dims == ("time", "lat", "lon")
        assert default[name].dtype == np.float32


def test_custom_grid_coordinates() -> None:
    dataset = make_demo_dataset(start="2020-02-28", days=3, lat_min=10, lat_max=11, lon_min=-1,
                                lon_max=0.2, resolution=0.5)
    assert dataset.lat.values.tolist() == [10.0, 10.5, 11.0]
    assert dataset.lon.values.tolist() == [-1.0, -0.5, 0.0]
    days = [t.strftime("%Y-%m-%d") for t in dataset.indexes["time"]]
    assert days == ["2020-02-28", "2020-02-29", "2020-03-01"]


def test_cf_metadata(default: xr.Dataset) -> None:
    assert default.attrs["Conventions"] == "CF-1.8"
    assert default.attrs["institution"] == "Iliad Portal demo generator"
    for key in ("title", "source", "history"):
        assert default.attrs[key]
    for name, (standard_name, axis, units) in {
        "lat": ("latitude", "Y", "degrees_north"), "lon": ("longitude", "X", "degrees_east"),
    }.items():
        assert default[name].attrs == default[name].attrs | {"standard_name": standard_name, "axis": axis,
                                                             "units": units}
    assert default.time.attrs["standard_name"] == "time" and default.time.attrs["axis"] == "T"
    for name, (standard_name, units) in VARIABLES.items():
        assert default[name].attrs["standard_name"] == standard_name
        assert default[name].attrs["units"] == units


def test_time_is_stored_as_days_since_start(tmp_path: Path) -> None:
    path = tmp_path / "demo.nc"
    make_demo_dataset(start="2022-03-01", days=5).to_netcdf(path)
    with netCDF4.Dataset(path) as raw:
        assert raw["time"].units == "days since 2022-03-01"
        assert raw["time"][:].tolist() == [0, 1, 2, 3, 4]
        assert raw.Conventions == "CF-1.8"
        assert not hasattr(raw["lat"], "_FillValue")


def test_values_are_in_realistic_ranges(default: xr.Dataset) -> None:
    quiet = default.sel(time=slice("2021-01-01", "2021-12-31"))
    monthly = quiet.sst.mean(("lat", "lon")).groupby("time.month").mean()
    assert 12.5 < float(monthly.min()) < 15.0 and float(monthly.idxmin()) in (2, 3)
    assert 20.0 < float(monthly.max()) < 23.0 and float(monthly.idxmax()) in (8, 9)
    salinity = np.nanpercentile(default.so.values, [1, 99])
    assert salinity[0] > 35.0
    assert salinity[1] < 36.5
    speed = np.hypot(default.uo.values, default.vo.values)
    assert 0.1 < np.nanmedian(speed) < 0.5
    assert np.nanmax(speed) < 1.0


def test_land_is_missing_in_every_variable_and_day(default: xr.Dataset) -> None:
    land = np.isnan(default.sst.values)
    assert 0.2 < land.mean() < 0.8
    assert (land == land[0]).all()
    for name in VARIABLES:
        assert (np.isnan(default[name].values) == land).all()
    assert bool(default.sst.sel(lat=45.0, lon=-4.0).notnull().all())  # Bay of Biscay
    assert bool(default.sst.sel(lat=41.0, lon=-4.0).isnull().all())  # Castile


def test_currents_circle_warm_eddies_clockwise(default: xr.Dataset) -> None:
    """Geostrophy in the northern hemisphere: warm cores have negative relative vorticity."""
    day = default.sel(time="2021-03-01", lat=slice(43.75, 46), lon=slice(-6, -1.75))
    metres_per_degree = 111_195.0
    dx = metres_per_degree * np.cos(np.deg2rad(day.lat.values))[:, None] * 0.25
    vorticity = np.gradient(day.vo.values, axis=1) / dx - np.gradient(day.uo.values, axis=0) / (
        metres_per_degree * 0.25
    )
    warm = day.sst.values - day.sst.mean("lon").values[:, None]
    assert np.corrcoef(vorticity.ravel(), warm.ravel())[0, 1] < -0.5


OTHER_YEARS = (2021, 2023)


def _box_mean(dataset: xr.Dataset, first: str, last: str) -> float:
    box = dataset.sst.sel(lat=slice(*demo_data.HEATWAVE_LAT), lon=slice(*demo_data.HEATWAVE_LON))
    return float(box.sel(time=slice(first, last)).mean())


def test_planted_heatwave_is_three_degrees_above_climatology(default: xr.Dataset) -> None:
    start = demo_data.HEATWAVE_START
    end = start + timedelta(days=demo_data.HEATWAVE_DAYS - 1)
    assert end.isoformat() == "2022-08-07"
    event = _box_mean(default, start.isoformat(), end.isoformat())
    climatology = np.mean([_box_mean(default, f"{year}-07-18", f"{year}-08-07") for year in OTHER_YEARS])
    assert event - climatology == pytest.approx(demo_data.HEATWAVE_AMPLITUDE_C, abs=0.4)
    june = _box_mean(default, "2022-06-01", "2022-06-30")
    june_climatology = np.mean([_box_mean(default, f"{year}-06-01", f"{year}-06-30") for year in OTHER_YEARS])
    assert june - june_climatology == pytest.approx(0.0, abs=0.4)


def test_block_generates_with_progress(tmp_path: Path) -> None:
    events: list[dict] = []
    params = {"start": "2022-07-01", "days": 10, "lat_min": 44, "lat_max": 45, "lon_min": -5, "lon_max": -4,
              "resolution": 0.5}
    dataset = call(demo_dataset, {}, params, tmp_path, emit=events.append)["dataset"]
    assert dict(dataset.sizes) == {"time": 10, "lat": 3, "lon": 3}
    assert dataset.identical(make_demo_dataset(**params))
    fractions = [event["fraction"] for event in events if event["kind"] == "progress"]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0


def test_block_defaults_match_the_generator(tmp_path: Path) -> None:
    dataset = call(demo_dataset, {}, {"days": 2}, tmp_path)["dataset"]
    assert dataset.identical(make_demo_dataset(days=2))


@pytest.mark.parametrize(("params", "message"), [
    ({"lat_min": 46.0, "lat_max": 40.0}, "lat_min (46.0) must be less than lat_max (40.0)"),
    ({"lon_min": 3.0, "lon_max": 3.0}, "lon_min (3.0) must be less than lon_max (3.0)"),
    ({"start": "2021-02-30"}, "params/start: '2021-02-30' is not a 'date'"),
    ({"days": 3660, "resolution": 0.05}, "days=3660"),
])
def test_block_rejects_bad_settings(tmp_path: Path, params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call(demo_dataset, {}, params, tmp_path)


def test_block_schema_rejects_out_of_range_values(tmp_path: Path) -> None:
    with pytest.raises(BlockInputError, match="params/resolution"):
        call(demo_dataset, {}, {"resolution": 5}, tmp_path)


def test_every_parameter_has_title_description_and_default() -> None:
    schema = demo_dataset.spec.parameters
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == {
        "start", "days", "lat_min", "lat_max", "lon_min", "lon_max", "resolution"}
    for prop in schema["properties"].values():
        assert prop["title"] and prop["description"] and "default" in prop


# ---- hourly currents, winds, buoy observations and the demo data space ---------------------------

@pytest.fixture(scope="module")
def buoys(default: xr.Dataset) -> pd.DataFrame:
    return make_demo_observations(default)


def test_observations_table_format_and_determinism(default: xr.Dataset, buoys: pd.DataFrame) -> None:
    assert tuple(buoys.columns) == OBSERVATION_COLUMNS
    assert sorted(buoys.station.unique()) == sorted(name for name, _, _ in DEMO_STATIONS)
    assert set(buoys.variable) == {"sst", "so"}
    assert set(buoys.quality_flag) == {1, 2, 3, 4}
    assert buoys.time.str.fullmatch(r"\d{4}-\d\d-\d\d").all()
    assert (buoys.depth == 1.0).all()
    pd.testing.assert_frame_equal(buoys, make_demo_observations(default))
    assert not buoys.equals(make_demo_observations(default, seed=7))


def test_observations_follow_the_truth_with_bias_noise_gaps_and_spikes(
    default: xr.Dataset, buoys: pd.DataFrame,
) -> None:
    days = default.sizes["time"]
    for name, lat, lon in DEMO_STATIONS:
        truth = default.sst.interp(lat=lat, lon=lon).to_series()
        truth.index = truth.index.strftime("%Y-%m-%d")
        rows = buoys[(buoys.station == name) & (buoys.variable == "sst")]
        assert days - 60 < len(rows) < days  # one or two gaps, each of 3 to 25 days
        error = rows.value.to_numpy() - truth.loc[rows.time].to_numpy()
        good = rows.quality_flag.to_numpy() <= 2
        assert abs(error[good].mean()) < 0.3  # the station's bias
        assert 0.08 < error[good].std() < 0.2  # the noise
        assert (np.abs(error[~good]) > 2.9).all()  # flagged values are clearly wrong
        assert (rows.quality_flag == 4).sum() == 3 and (rows.quality_flag == 3).sum() == 2


def test_hourly_currents_add_a_semidiurnal_tide() -> None:
    currents = make_demo_currents_hourly(hours=72)
    assert dict(currents.sizes) == {"time": 72, "lat": 25, "lon": 41}
    steps = np.diff(currents.indexes["time"].values).astype("timedelta64[m]").astype(int)
    assert set(steps) == {60}
    assert currents.uo.attrs["standard_name"] == "eastward_sea_water_velocity"
    assert currents.vo.attrs["units"] == "m s-1"
    u = currents.uo.sel(lat=45.0, lon=-4.0).values
    half_period = np.sqrt(np.mean((u[6:] - u[:-6]) ** 2))
    full_period = np.sqrt(np.mean((u[12:] - u[:-12]) ** 2))
    assert full_period < 0.5 * half_period
    assert currents.identical(make_demo_currents_hourly(hours=72))


def test_winds_are_cf_and_carry_a_storm() -> None:
    winds = make_demo_winds()
    assert dict(winds.sizes) == {"time": 240, "lat": 13, "lon": 21}
    for name in ("eastward_wind", "northward_wind"):
        assert winds[name].attrs["standard_name"] == name and winds[name].attrs["units"] == "m s-1"
    assert float(winds.height) == 10.0 and winds.height.attrs["units"] == "m"
    speed = np.hypot(winds.eastward_wind, winds.northward_wind)
    daily_max = speed.max(("lat", "lon")).resample(time="1D").max().values
    assert daily_max[:3].max() < 12.0 and daily_max[4:7].max() > 15.0
    assert 3.0 < float(speed.isel(time=slice(0, 48)).mean()) < 8.0
    assert winds.identical(make_demo_winds())
    assert dict(make_demo_winds(hours=24, step_hours=3).sizes)["time"] == 8


@pytest.fixture(scope="module")
def data_space(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path], float]:
    root = tmp_path_factory.mktemp("data")
    started = time.perf_counter()
    paths = write_demo_data_space(root)
    return root, paths, time.perf_counter() - started


def test_data_space_files_sizes_and_time(data_space: tuple[Path, list[Path], float]) -> None:
    root, paths, elapsed = data_space
    names = sorted(path.relative_to(root).as_posix() for path in paths)
    assert names == ["demo/README.md", "demo/biscay_buoys.csv", "demo/biscay_buoys.parquet",
                     "demo/biscay_currents_hourly.nc", "demo/biscay_ocean.nc", "demo/biscay_winds.nc"]
    assert (root / "demo" / "VERSION").read_text().strip() == demo_data.DATA_SPACE_VERSION
    total = sum(path.stat().st_size for path in paths)
    assert total < 30_000_000
    assert elapsed < 10.0
    assert not [path for path in (root / "demo").iterdir() if path.name.endswith(".tmp")]


def test_data_space_contents(data_space: tuple[Path, list[Path], float]) -> None:
    root = data_space[0] / "demo"
    with xr.open_dataset(root / "biscay_ocean.nc") as ocean:
        times = ocean.indexes["time"]
        assert times[0].isoformat() == "2020-01-01T00:00:00"
        assert times[-1].isoformat() == "2023-12-31T00:00:00"
        assert set(ocean.data_vars) == set(VARIABLES)
        event = _box_mean(ocean, "2022-07-18", "2022-08-07")
        normal = np.mean([_box_mean(ocean, f"{year}-07-18", f"{year}-08-07") for year in (2020, 2021, 2023)])
        assert event - normal == pytest.approx(demo_data.HEATWAVE_AMPLITUDE_C, abs=0.5)
    csv = pd.read_csv(root / "biscay_buoys.csv")
    parquet = pd.read_parquet(root / "biscay_buoys.parquet")
    assert pd.api.types.is_datetime64_any_dtype(parquet.time)
    assert parquet.time.dt.strftime("%Y-%m-%d").tolist() == csv.time.tolist()
    pd.testing.assert_frame_equal(parquet.drop(columns="time"), csv.drop(columns="time"),
                                  check_dtype=False)
    with xr.open_dataset(root / "biscay_currents_hourly.nc") as currents:
        assert currents.sizes["time"] == demo_data.DRIFT_PERIOD_HOURS
    with xr.open_dataset(root / "biscay_winds.nc") as winds:
        assert winds.indexes["time"][0] == currents.indexes["time"][0]
    readme = (root / "README.md").read_text()
    for name in ("biscay_ocean.nc", "biscay_currents_hourly.nc", "biscay_winds.nc", "biscay_buoys.csv",
                 "eastward_wind", "quality_flag", "2022-07-18", "2022-08-07", "GASCOGNE"):
        assert name in readme


def test_data_space_is_idempotent_and_versioned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = write_demo_data_space(tmp_path)
    stamps = {path: path.stat().st_mtime_ns for path in paths}
    started = time.perf_counter()
    assert write_demo_data_space(tmp_path) == paths
    assert time.perf_counter() - started < 0.1
    assert {path: path.stat().st_mtime_ns for path in paths} == stamps
    winds = tmp_path / "demo" / "biscay_winds.nc"
    winds.unlink()
    write_demo_data_space(tmp_path)
    assert winds.exists()
    assert all(path.stat().st_mtime_ns == stamps[path] for path in paths if path != winds)
    monkeypatch.setattr(demo_data, "DATA_SPACE_VERSION", "999")
    write_demo_data_space(tmp_path)
    assert all(path.stat().st_mtime_ns != stamps[path] for path in paths)
    assert (tmp_path / "demo" / "VERSION").read_text().strip() == "999"
