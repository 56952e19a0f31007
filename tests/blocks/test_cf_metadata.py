"""CF metadata through the block library: anomalies, temperature differences, calendars, climatological
time, table column units (CSVW), units of velocities, and the correctness fixes they exposed. Every
expected value comes from an independent computation (hand-written numpy, pint, scipy, pymannkendall,
statsmodels), never from the block's own code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cftime
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from blocks.library.analytics import climatology
from blocks.library.transform import convert_units
from blocks.types import PORT_TYPES, table_metadata_path
from tests.blocks.sample_blocks import call


def sst_grid(times: Any, values: np.ndarray, **attrs: Any) -> xr.Dataset:
    """A 1 x 2 grid holding ``values`` (one per time) in both cells."""
    return xr.Dataset(
        {"sst": (("time", "lat", "lon"), np.repeat(values[:, None, None], 2, axis=2),
                 {"units": "degree_Celsius", "standard_name": "sea_surface_temperature",
                  "long_name": "sea surface temperature", **attrs})},
        coords={"time": times, "lat": ("lat", [40.0], {"standard_name": "latitude"}),
                "lon": ("lon", [0.0, 1.0], {"standard_name": "longitude"})})


def daily_sst(years: tuple[int, int] = (2019, 2021)) -> xr.Dataset:
    times = pd.date_range(f"{years[0]}-01-01", f"{years[1]}-12-31", freq="D")
    values = (15.0 + 5.0 * np.sin(2 * np.pi * times.day_of_year.to_numpy() / 365.0)
              + (times.year.to_numpy() - years[0]))
    return sst_grid(times, values.astype(np.float64))


def run_climatology(tmp_path: Path, dataset: xr.Dataset, **params: Any) -> tuple[xr.Dataset, xr.Dataset]:
    out = call(climatology, {"dataset": dataset}, params, tmp_path)
    return out["climatology"], out["anomalies"]


def saved_and_opened(tmp_path: Path, dataset: xr.Dataset, name: str) -> xr.Dataset:
    path = tmp_path / f"{name}.nc"
    PORT_TYPES["dataset"].save(dataset, path)
    return PORT_TYPES["dataset"].open(path)


# ---- anomalies: attributes ---------------------------------------------------------------------

def test_anomalies_lose_the_standard_name_and_are_temperature_differences(tmp_path: Path) -> None:
    clim, anomalies = run_climatology(tmp_path, daily_sst(), smooth_days=0)
    attrs = saved_and_opened(tmp_path, anomalies, "anomalies").sst.attrs
    assert "standard_name" not in attrs
    assert attrs["long_name"] == "sea surface temperature anomaly"
    assert attrs["units"] == "degree_Celsius"
    assert attrs["units_metadata"] == "temperature: difference"
    assert clim.sst.attrs["standard_name"] == "sea_surface_temperature"
    assert clim.sst.attrs["units_metadata"] == "temperature: on_scale"


# ---- climatologies in every calendar, as CF climatologies --------------------------------------

def test_360_day_calendar_climatology_matches_a_hand_computed_one(tmp_path: Path) -> None:
    times = xr.date_range("2001-01-01", periods=3 * 360, freq="D", calendar="360_day", use_cftime=True)
    rng = np.random.default_rng(3)
    values = rng.normal(15.0, 2.0, times.size)
    clim, anomalies = run_climatology(tmp_path, sst_grid(times, values), smooth_days=0)
    # Independent: day d of the 360-day year is position d of each year; mean over the 3 years.
    expected = values.reshape(3, 360).mean(axis=0)
    assert clim.sizes["dayofyear"] == 360
    np.testing.assert_allclose(clim.sst.isel(lat=0, lon=1), expected, rtol=1e-12)
    np.testing.assert_allclose(anomalies.sst.isel(lat=0, lon=0).compute(),
                               values - np.tile(expected, 3), atol=1e-9)
    opened = saved_and_opened(tmp_path, clim, "climatology")
    bounds = opened["climatology_bounds"].values
    assert bounds[0, 0] == cftime.datetime(2001, 1, 1, calendar="360_day")
    assert bounds[-1, 1] == cftime.datetime(2004, 1, 1, calendar="360_day")
    assert bounds[59, 0] == cftime.datetime(2001, 2, 30, calendar="360_day")


def test_360_day_baseline_dates_that_do_not_exist_are_named(tmp_path: Path) -> None:
    times = xr.date_range("2001-01-01", periods=2 * 360, freq="D", calendar="360_day", use_cftime=True)
    with pytest.raises(ValueError, match="baseline_end: 2001-12-31 does not exist in the 360_day calendar"):
        run_climatology(tmp_path, sst_grid(times, np.ones(times.size)), baseline_end="2001-12-31")


@pytest.mark.parametrize("calendar", ["noleap", "all_leap", "julian", "standard"])
def test_climatology_in_other_cftime_calendars(tmp_path: Path, calendar: str) -> None:
    times = xr.date_range("2001-01-01", "2004-12-31", freq="D", calendar=calendar, use_cftime=True)
    day = np.array([t.timetuple().tm_yday for t in times], dtype=np.float64)
    values = 10.0 + 0.01 * day
    clim, anomalies = run_climatology(tmp_path, sst_grid(times, values), smooth_days=0,
                                      baseline_start="2001-01-01", baseline_end="2003-12-31")
    assert clim.sizes["dayofyear"] == 366
    # 1 March is day 61 of the 366-day year in every calendar.
    march_first = np.array([values[i] for i, t in enumerate(times) if (t.month, t.day) == (3, 1)
                            and t.year <= 2003])
    assert float(clim.sst.sel(dayofyear=61).isel(lat=0, lon=0)) == pytest.approx(march_first.mean())
    if calendar == "all_leap":  # every year has a 29 February: its own mean, not an interpolation
        feb29 = [values[i] for i, t in enumerate(times) if (t.month, t.day) == (2, 29) and t.year <= 2003]
        assert float(clim.sst.sel(dayofyear=60).isel(lat=0, lon=0)) == pytest.approx(np.mean(feb29))
    assert np.isfinite(anomalies.sst.compute()).all()
    assert clim["time"].attrs["climatology"] == "climatology_bounds"


def test_climatology_is_a_cf_climatology(tmp_path: Path) -> None:
    clim, _ = run_climatology(tmp_path, daily_sst((2019, 2021)), smooth_days=0)
    opened = saved_and_opened(tmp_path, clim, "climatology")
    assert opened.sst.attrs["cell_methods"] == "time: mean within days time: mean over years"
    assert opened["time"].attrs["climatology"] == "climatology_bounds"
    assert opened["time"].dims == ("dayofyear",)
    bounds = opened["climatology_bounds"].values
    # CF §7.4: from the start of the day in the first year to its end in the last year.
    assert bounds[0, 0] == cftime.datetime(2019, 1, 1, calendar="all_leap")
    assert bounds[0, 1] == cftime.datetime(2021, 1, 2, calendar="all_leap")
    assert bounds[-1, 1] == cftime.datetime(2022, 1, 1, calendar="all_leap")
    assert opened["time"].values[0] == cftime.datetime(2019, 1, 1, 12, calendar="all_leap")
    monthly, _ = run_climatology(tmp_path, daily_sst((2019, 2021)), period="month")
    opened = saved_and_opened(tmp_path, monthly, "monthly")
    assert opened.sst.attrs["cell_methods"] == "time: mean within months time: mean over years"
    assert pd.Timestamp(opened["climatology_bounds"].values[11, 1]) == pd.Timestamp("2022-01-01")


# ---- convert_units honours temperature differences ---------------------------------------------

def run_convert(tmp_path: Path, dataset: xr.Dataset, to_units: str, log: list | None = None) -> xr.Dataset:
    return call(convert_units, {"dataset": dataset}, {"variable": "sst", "to_units": to_units}, tmp_path,
                emit=None if log is None else log.append)["dataset"]


def test_climatology_anomalies_converted_to_kelvin_stay_small(tmp_path: Path) -> None:
    dataset = daily_sst((2019, 2020))
    dataset["sst"] = dataset.sst + xr.where(dataset.time.dt.year == 2020, 0.5, -0.5)
    _, anomalies = run_climatology(tmp_path, dataset, smooth_days=0)
    kelvin = run_convert(tmp_path, anomalies, "K").sst.compute()
    assert float(np.abs(kelvin).max()) < 2.0  # not ~273 K
    np.testing.assert_allclose(kelvin, anomalies.sst.compute(), atol=1e-9)  # 1 K of difference = 1 °C
    assert kelvin.attrs["units"] == "K" and kelvin.attrs["units_metadata"] == "temperature: difference"


@pytest.mark.parametrize(("source", "target"), [("degC", "K"), ("degF", "K"), ("K", "degF"),
                                                ("degree_Celsius", "degree_Fahrenheit")])
def test_temperature_differences_convert_as_deltas(tmp_path: Path, source: str, target: str) -> None:
    import pint

    ureg = pint.UnitRegistry()
    delta = {"degC": "delta_degC", "degree_Celsius": "delta_degC", "degF": "delta_degF",
             "degree_Fahrenheit": "delta_degF", "K": "kelvin"}
    values = np.array([0.5, -1.25, 3.0])
    times = pd.date_range("2020-01-01", periods=3, freq="D")
    dataset = sst_grid(times, values, units_metadata="temperature: difference")
    dataset["sst"].attrs["units"] = source
    converted = run_convert(tmp_path, dataset, target).sst.isel(lat=0, lon=0).values
    expected = ureg.Quantity(values, delta[source]).to(delta[target]).magnitude
    np.testing.assert_allclose(converted, expected, rtol=1e-12)
    on_scale = sst_grid(times, values, units_metadata="temperature: on_scale")
    on_scale["sst"].attrs["units"] = source
    absolute = run_convert(tmp_path, on_scale, target).sst.isel(lat=0, lon=0).values
    scale = {"degC": "degC", "degree_Celsius": "degC", "degF": "degF", "degree_Fahrenheit": "degF", "K": "K"}
    np.testing.assert_allclose(absolute, ureg.Quantity(values, scale[source]).to(scale[target]).magnitude,
                               rtol=1e-12)


def test_temperature_without_units_metadata_is_on_scale_with_a_warning(tmp_path: Path) -> None:
    dataset = sst_grid(pd.date_range("2020-01-01", periods=2, freq="D"), np.array([20.0, 21.0]))
    log: list[dict[str, Any]] = []
    converted = run_convert(tmp_path, dataset, "K", log).sst
    np.testing.assert_allclose(converted.isel(lat=0, lon=0), [293.15, 294.15])
    assert converted.attrs["units_metadata"] == "temperature: on_scale"
    warnings = [e["message"] for e in log if e.get("kind") == "log" and e.get("level") == "warning"]
    assert any("'sst'" in message and "units_metadata" in message for message in warnings)
    # A conversion without an offset (K to mK) needs no assumption and logs no warning.
    dataset["sst"].attrs["units"] = "K"
    log.clear()
    run_convert(tmp_path, dataset, "mK", log)
    assert not [e for e in log if e.get("level") == "warning"]


def test_c_is_the_coulomb_as_in_udunits(tmp_path: Path) -> None:
    dataset = sst_grid(pd.date_range("2020-01-01", periods=2, freq="D"), np.array([20.0, 21.0]))
    dataset["sst"].attrs["units"] = "C"
    with pytest.raises(ValueError, match="'C' is the coulomb"):
        run_convert(tmp_path, dataset, "K")


# ---- tables carry CF column metadata (CSVW) ----------------------------------------------------

def test_table_units_round_trip_through_csvw_metadata(tmp_path: Path) -> None:
    table = pd.DataFrame({"time": ["2020-01-01", "2020-01-02"], "sst anomaly": [0.5, 0.25], "n": [1, 2]})
    table.attrs["columns"] = {"sst anomaly": {"units": "degF", "long_name": "SST anomaly",
                                              "units_metadata": "temperature: difference"}}
    path = tmp_path / "table.csv"
    PORT_TYPES["table"].save(table, path)
    document = json.loads(table_metadata_path(path).read_text(encoding="utf-8"))
    assert table_metadata_path(path).name == "table.csv-metadata.json"
    assert document["url"] == "table.csv"
    assert "http://www.w3.org/ns/csvw" in document["@context"]
    columns = document["tableSchema"]["columns"]
    assert [c["titles"] for c in columns] == ["time", "sst anomaly", "n"]
    assert columns[1]["name"] == "sst%20anomaly" and columns[1]["cf:units"] == "degF"
    assert [c["datatype"] for c in columns] == ["string", "double", "integer"]
    opened = PORT_TYPES["table"].open(path)
    assert opened.attrs["columns"] == table.attrs["columns"]
    # A table without metadata leaves no stale sidecar behind.
    PORT_TYPES["table"].save(pd.DataFrame({"a": [1]}), path)
    assert not table_metadata_path(path).exists()
    assert "columns" not in PORT_TYPES["table"].open(path).attrs


# ---- interpolation across the longitude seam ---------------------------------------------------

def global_field(lons: np.ndarray) -> xr.Dataset:
    lats = np.array([-1.0, 0.0, 1.0])
    values = np.cos(np.deg2rad(lons))[None, :] * 10.0 + lats[:, None] + np.sin(np.deg2rad(2 * lons))[None, :]
    return xr.Dataset({"sst": (("lat", "lon"), values)}, coords={"lat": lats, "lon": lons})


def numpy_bilinear(dataset: xr.Dataset, lat: float, lon: float) -> float:
    """Direct bilinear interpolation on a periodic grid of step 1°: the written-out formula."""
    lons = dataset["lon"].values
    lats = dataset["lat"].values
    grid = dataset["sst"].values
    position = (lon - lons[0]) % 360.0
    west = int(np.floor(position))
    fraction = position - west
    east = (west + 1) % lons.size
    row = int(np.floor(lat - lats[0]))
    row = min(row, lats.size - 2)
    up = lat - lats[row]
    bottom = grid[row, west] * (1 - fraction) + grid[row, east] * fraction
    top = grid[row + 1, west] * (1 - fraction) + grid[row + 1, east] * fraction
    return float(bottom * (1 - up) + top * up)


@pytest.mark.parametrize("lons", [np.arange(0.0, 360.0, 1.0), np.arange(-180.0, 180.0, 1.0),
                                  np.arange(0.5, 360.0, 1.0)])
def test_interpolation_wraps_at_the_longitude_seam_of_global_grids(tmp_path: Path, lons: np.ndarray) -> None:
    from blocks.library.transform import interpolate_to_points

    dataset = global_field(lons)
    points = [(0.5, 359.5), (-0.25, -0.5), (0.0, 179.75), (0.75, -179.6), (0.2, 0.3), (-1.0, 359.99)]
    table = pd.DataFrame([{"station": f"s{k}", "time": "2021-01-01", "lat": lat, "lon": lon, "depth": 0.0,
                           "variable": "sst", "value": 0.0, "quality_flag": 1}
                          for k, (lat, lon) in enumerate(points)])
    inputs = {"dataset": dataset, "observations": table}
    matched = call(interpolate_to_points, inputs, {}, tmp_path)["matched"]
    expected = [numpy_bilinear(dataset, lat, lon) for lat, lon in points]
    np.testing.assert_allclose(matched["modelled"], expected, rtol=1e-12)


def test_regional_grids_do_not_wrap(tmp_path: Path) -> None:
    from blocks.library.transform import interpolate_to_points

    dataset = global_field(np.arange(0.0, 350.0, 1.0))
    table = pd.DataFrame([{"station": "a", "time": "2021-01-01", "lat": 0.0, "lon": 355.0, "depth": 0.0,
                           "variable": "sst", "value": 0.0, "quality_flag": 1},
                          {"station": "b", "time": "2021-01-01", "lat": 0.0, "lon": 10.0, "depth": 0.0,
                           "variable": "sst", "value": 0.0, "quality_flag": 1}])
    inputs = {"dataset": dataset, "observations": table}
    matched = call(interpolate_to_points, inputs, {}, tmp_path)["matched"]
    assert np.isnan(matched["modelled"][0]) and np.isfinite(matched["modelled"][1])


# ---- trends: exact Mann-Kendall p-values, modified tests, Student t, units ---------------------

def run_trend_block(tmp_path: Path, table: pd.DataFrame, version: str = "1.1.0",
                    **params: Any) -> pd.DataFrame:
    from blocks.library import analytics

    target = analytics.trend if version == "1.0.0" else analytics.trend_with_options
    assert target.spec.version == version
    return call(target, {"series": table}, params, tmp_path)["trend"]


def monthly_table(values: np.ndarray, units: str | None = None) -> pd.DataFrame:
    times = pd.date_range("1990-01-01", periods=values.size, freq="MS")
    table = pd.DataFrame({"time": times.strftime("%Y-%m-%d"), "sst": values})
    if units:
        table.attrs["columns"] = {"sst": {"units": units, "standard_name": "sea_surface_temperature"}}
    return table


def mann_kendall_p(values: np.ndarray) -> float:
    """Mann-Kendall two-sided p-value written out (no ties): S, its variance, continuity correction."""
    from scipy.stats import norm

    n = values.size
    s = sum(np.sign(values[j] - values[i]) for i in range(n - 1) for j in range(i + 1, n))
    variance = n * (n - 1) * (2 * n + 5) / 18.0
    z = (s - np.sign(s)) / np.sqrt(variance)
    return float(2.0 * norm.sf(abs(z)))


@pytest.mark.parametrize("version", ["1.0.0", "1.1.0"])
def test_mann_kendall_p_values_below_1e_16_are_exact(tmp_path: Path, version: str) -> None:
    values = np.arange(100.0) + np.random.default_rng(5).uniform(0, 0.01, 100)
    (row,) = run_trend_block(tmp_path, monthly_table(values), version).to_dict("records")
    expected = mann_kendall_p(values)
    assert expected < 1e-40
    assert row["p_value"] > 0.0
    assert row["p_value"] == pytest.approx(expected, rel=1e-9, abs=0.0)


@pytest.mark.parametrize("variant", ["hamed_rao", "yue_wang"])
def test_modified_mann_kendall_matches_pymannkendall(tmp_path: Path, variant: str) -> None:
    import pymannkendall
    from scipy.stats import norm

    rng = np.random.default_rng(11)
    noise = np.zeros(240)
    for k in range(1, noise.size):  # AR(1), strongly autocorrelated
        noise[k] = 0.8 * noise[k - 1] + rng.normal(0, 0.3)
    values = 0.002 * np.arange(noise.size) + noise
    (original,) = run_trend_block(tmp_path, monthly_table(values)).to_dict("records")
    (row,) = run_trend_block(tmp_path, monthly_table(values), mann_kendall=variant).to_dict("records")
    test = getattr(pymannkendall, f"{variant}_modification_test")(values)
    assert row["p_value"] == pytest.approx(2 * norm.sf(abs(test.z)), rel=1e-9)
    assert row["p_value"] == pytest.approx(test.p, rel=1e-6)
    assert row["p_value"] > original["p_value"]  # autocorrelation widens the test
    assert variant in row["method"]


def test_ols_student_t_for_short_series_matches_a_hand_computed_newey_west(tmp_path: Path) -> None:
    from scipy import stats

    rng = np.random.default_rng(2)
    values = 0.8 * np.arange(12) / 12.0 + rng.normal(0, 0.3, 12)
    table = monthly_table(values)
    (normal,) = run_trend_block(tmp_path, table, method="ols").to_dict("records")
    (row,) = run_trend_block(tmp_path, table, method="ols", student_t=True).to_dict("records")
    years = ((pd.to_datetime(table["time"]) - pd.Timestamp("1990-01-01")).dt.days / 365.2425).to_numpy()
    x = np.column_stack([np.ones(12), years - years.mean()])
    beta = np.linalg.solve(x.T @ x, x.T @ values)
    residual = values - x @ beta
    lags = 2  # floor(4 (12/100)^(2/9))
    meat = sum(residual[i] ** 2 * np.outer(x[i], x[i]) for i in range(12))
    for lag in range(1, lags + 1):
        cross = sum(residual[i] * residual[i - lag] * np.outer(x[i], x[i - lag]) for i in range(lag, 12))
        meat = meat + (1 - lag / (lags + 1)) * (cross + cross.T)
    bread = np.linalg.inv(x.T @ x)
    error = np.sqrt((bread @ meat @ bread)[1, 1])
    quantile = stats.t.ppf(0.975, 12 - 2)
    assert row["slope_per_year"] == pytest.approx(beta[1], rel=1e-9)
    assert row["ci_low"] == pytest.approx(beta[1] - quantile * error, rel=1e-9)
    assert row["ci_high"] == pytest.approx(beta[1] + quantile * error, rel=1e-9)
    assert row["p_value"] == pytest.approx(2 * stats.t.sf(abs(beta[1] / error), 12 - 2), rel=1e-9)
    assert normal["ci_high"] - normal["ci_low"] < row["ci_high"] - row["ci_low"]
    assert row["method"] == "ols (Student t quantiles)"


def test_trend_1_0_0_keeps_its_spec_and_1_1_0_adds_the_options() -> None:
    from blocks.library import analytics

    assert set(analytics.trend.spec.parameters["properties"]) == {"columns", "method", "alpha",
                                                                  "deseasonalize"}
    added = set(analytics.trend_with_options.spec.parameters["properties"]) - set(
        analytics.trend.spec.parameters["properties"])
    assert added == {"mann_kendall", "student_t"}
    assert analytics.trend_with_options.spec.id == "analytics.trend"


def test_temperature_trends_are_differences_per_year(tmp_path: Path) -> None:
    values = 15.0 + 0.02 * np.arange(120) + np.random.default_rng(1).normal(0, 0.1, 120)
    result = run_trend_block(tmp_path, monthly_table(values, units="degC"))
    columns = result.attrs["columns"]
    assert columns["slope_per_year"]["units"] == "degC year-1"
    assert columns["slope_per_year"]["units_metadata"] == "temperature: difference"
    assert "standard_name" not in columns["slope_per_year"]
    assert columns["slope_per_decade"]["units"] == "0.1 degC year-1"
    assert result["units"].tolist() == ["degC year-1"]
    path = tmp_path / "trend.csv"
    PORT_TYPES["table"].save(result, path)
    assert PORT_TYPES["table"].open(path).attrs["columns"]["ci_low"]["units"] == "degC year-1"


# ---- table producers and consumers carry the units ---------------------------------------------

def fahrenheit_series() -> pd.DataFrame:
    from tests.blocks.mhw_series import coldify, plant, synthetic

    table = synthetic()
    coldify(table)
    plant(table, "2021-07-10", 8, warm=4.0)
    table["sst"] = table["sst"] * 9.0 / 5.0 + 32.0  # the same series in °F
    table.attrs["columns"] = {"sst": {"units": "degree_Fahrenheit",
                                      "standard_name": "sea_surface_temperature"}}
    return table


def test_heatwaves_in_fahrenheit_are_reported_in_fahrenheit(tmp_path: Path) -> None:
    from blocks.library.heatwaves import marine_heatwaves
    from blocks.library.plots import heatwave_calendar

    log: list[dict[str, Any]] = []
    out = call(marine_heatwaves, {"series": fahrenheit_series()}, {}, tmp_path, emit=log.append)
    events, daily = out["events"], out["daily"]
    assert len(events) == 1
    # Independent: the planted warming is 4 °C = 7.2 °F above normal; the intensity is in °F.
    assert 6.0 < events["intensity_max"].iloc[0] < 8.5
    path = tmp_path / "events.csv"
    PORT_TYPES["table"].save(events, path)
    columns = PORT_TYPES["table"].open(path).attrs["columns"]
    assert columns["intensity_max"] == {"units": "degree_Fahrenheit",
                                        "units_metadata": "temperature: difference",
                                        "long_name": "peak temperature above the climatology"}
    assert columns["intensity_max_abs"]["units_metadata"] == "temperature: on_scale"
    assert columns["intensity_cumulative"]["units"] == "degree_Fahrenheit day"
    assert columns["rate_onset"]["units"] == "degree_Fahrenheit day-1"
    assert any("(°F)" in event["message"] for event in log if event.get("kind") == "log")
    daily_path = tmp_path / "daily.csv"
    PORT_TYPES["table"].save(daily, daily_path)
    figure = call(heatwave_calendar, {"daily": PORT_TYPES["table"].open(daily_path)}, {}, tmp_path)["figure"]
    assert figure.layout.yaxis2.title.text == "Temperature (°F)"
    assert "°C" not in json.dumps(figure.to_plotly_json(), default=str, ensure_ascii=False)


def grid(units: str = "degree_Celsius") -> xr.Dataset:
    times = pd.date_range("2021-01-01", periods=3, freq="D")
    lat, lon = np.array([40.0, 41.0, 42.0]), np.array([0.0, 1.0, 2.0])
    values = 10 + lat[None, :, None] * 0 + lon[None, None, :] + np.arange(3.0)[:, None, None]
    return xr.Dataset({"sst": (("time", "lat", "lon"), values,
                               {"units": units, "standard_name": "sea_surface_temperature",
                                "long_name": "sea surface temperature"})},
                      coords={"time": times, "lat": ("lat", lat, {"standard_name": "latitude"}),
                              "lon": ("lon", lon, {"standard_name": "longitude"})})


def test_area_and_region_means_and_matched_points_carry_the_variables_units(tmp_path: Path) -> None:
    from blocks.library.analytics import skill
    from blocks.library.deliver import deliver_csv
    from blocks.library.ocean import area_mean
    from blocks.library.plots import timeseries
    from blocks.library.transform import interpolate_to_points, region_mean

    expected = {"units": "degF", "standard_name": "sea_surface_temperature",
                "long_name": "sea surface temperature", "units_metadata": "temperature: on_scale"}
    mean = call(area_mean, {"dataset": grid("degF")}, {"variable": "sst"}, tmp_path)["table"]
    assert mean.attrs["columns"]["sst"] == expected
    square = {"type": "Polygon", "coordinates": [[[-0.5, 39.5], [1.5, 39.5], [1.5, 41.5], [-0.5, 41.5],
                                                 [-0.5, 39.5]]]}
    region = call(region_mean, {"dataset": grid("degF")}, {"region": square}, tmp_path)["table"]
    assert region.attrs["columns"]["sst"] == expected
    delivered = call(deliver_csv, {"table": region}, {"columns": ["time", "sst"], "decimals": 2},
                     tmp_path)["table"]
    path = tmp_path / "delivered.csv"
    PORT_TYPES["table"].save(delivered, path)
    assert PORT_TYPES["table"].open(path).attrs["columns"]["sst"]["units"] == "degF"
    figure = call(timeseries, {"table": PORT_TYPES["table"].open(path)}, {}, tmp_path)["figure"]
    assert figure.layout.yaxis.title.text == "sst (°F)"

    observations = pd.DataFrame([{"station": "a", "time": "2021-01-02", "lat": 41.0, "lon": 1.5, "depth": 0.0,
                                  "variable": "sst", "value": 12.0, "quality_flag": 1}])
    matched = call(interpolate_to_points, {"dataset": grid("degF"), "observations": observations}, {},
                   tmp_path)["matched"]
    assert matched.attrs["columns"]["modelled"]["units"] == "degF"
    assert matched.attrs["columns"]["observed"]["long_name"] == "observed sea surface temperature"
    scores = call(skill, {"matched": matched}, {}, tmp_path)["skill"]
    assert scores.attrs["columns"]["rmse"] == {"units": "degF", "units_metadata": "temperature: difference",
                                               "long_name": "root-mean-square difference"}
    assert scores.attrs["columns"]["mean_observed"]["units_metadata"] == "temperature: on_scale"


def test_deliver_csv_1_1_gives_the_column_units_as_a_download_of_their_own(tmp_path: Path) -> None:
    """1.0.0 keeps the CSVW metadata only beside the CSV in the artifact store (the runner records one
    file per port); 1.1.0 returns it as an output port, so it is an artifact a user can download."""
    from blocks.manifest import InputRef, StepManifest, path_from_uri, uri_from_path
    from blocks.registry import default_registry
    from blocks.runner import run_step

    table = pd.DataFrame({"time": ["2021-01-01", "2021-01-02"], "sst": [61.25, 62.5], "count": [3, 4]})
    table.attrs["columns"] = {"sst": {"units": "degF", "standard_name": "sea_surface_temperature",
                                      "units_metadata": "temperature: on_scale"}}
    source = tmp_path / "in" / "table.csv"
    source.parent.mkdir()
    PORT_TYPES["table"].save(table, source)
    manifest = StepManifest(
        run_id="1", step_id="deliver", block_id="deliver.csv", block_version="1.1.0",
        params={"columns": ["time", "sst"]},
        inputs={"table": InputRef(uri=uri_from_path(source), type="table")},
        output_dir=uri_from_path(tmp_path / "out"),
    )
    result = run_step(manifest, registry=default_registry(), data_dir=tmp_path)
    assert result.ok, result.error
    records = {record.port: record for record in result.artifacts}
    assert set(records) == {"table", "units"}
    assert records["units"].media_type == "application/json"
    document = json.loads(path_from_uri(records["units"].uri).read_text())
    columns = {column["titles"]: column for column in document["tableSchema"]["columns"]}
    assert list(columns) == ["time", "sst"]
    assert columns["sst"]["cf:units"] == "degF"
    assert columns["sst"]["cf:standard_name"] == "sea_surface_temperature"
    assert "cf:units" not in columns["time"]

    unitless = tmp_path / "in" / "plain.csv"
    PORT_TYPES["table"].save(pd.DataFrame({"a": [1.0]}), unitless)
    manifest = StepManifest(
        run_id="1", step_id="plain", block_id="deliver.csv", block_version="1.1.0", params={},
        inputs={"table": InputRef(uri=uri_from_path(unitless), type="table")},
        output_dir=uri_from_path(tmp_path / "out-plain"),
    )
    result = run_step(manifest, registry=default_registry(), data_dir=tmp_path)
    assert result.ok, result.error
    assert [record.port for record in result.artifacts] == ["table"]
