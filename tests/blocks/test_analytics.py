"""analytics.climatology, analytics.trend, analytics.skill and analytics.current_statistics:
known answers (hand-computed or computed independently with numpy/scipy) and bad input."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

from blocks.library import analytics
from blocks.library.analytics import climatology, current_statistics, skill, trend
from blocks.library.demo_data import make_demo_dataset
from blocks.registry import discover
from blocks.types import known_types
from tests.blocks.sample_blocks import call

# ---- analytics.climatology -----------------------------------------------------------------------

YEAR_OFFSETS = {2019: 0.0, 2020: 1.0, 2021: 2.0, 2022: 4.0}
"""Every value of a year is shifted by this; the climatology is the day's base plus the mean offset."""


def doy366(times: pd.DatetimeIndex) -> np.ndarray:
    before = np.array([0, 31, 60, 91, 121, 152, 182, 213, 244, 274, 305, 335])
    return before[times.month.to_numpy() - 1] + times.day.to_numpy()


def seasonal_grid(lat: str = "lat", lon: str = "lon") -> xr.Dataset:
    """sst = 0.01 * day of 366-day year + cell offset + year offset, on 2 x 3 cells, 2019-2022."""
    times = pd.date_range("2019-01-01", "2022-12-31", freq="D")
    base = 0.01 * doy366(times)
    offsets = np.array([YEAR_OFFSETS[year] for year in times.year])
    cells = np.array([[0.0, 10.0, 20.0], [30.0, 40.0, 50.0]])
    sst = (base + offsets)[:, None, None] + cells[None]
    sst[:, 1, 2] = np.nan  # a land cell
    return xr.Dataset(
        {"sst": (("time", lat, lon), sst,
                 {"units": "degree_Celsius", "standard_name": "sea_surface_temperature"}),
         "label": (("time",), np.full(times.size, "x"))},
        coords={"time": times, lat: (lat, [40.0, 41.0], {"standard_name": "latitude"}),
                lon: (lon, [0.0, 1.0, 2.0], {"standard_name": "longitude"})},
        attrs={"title": "test", "history": "made by a test"},
    )


def run_climatology(tmp_path: Path, dataset: xr.Dataset, **params: Any) -> tuple[xr.Dataset, xr.Dataset]:
    out = call(climatology, {"dataset": dataset}, params, tmp_path)
    return out["climatology"], out["anomalies"]


def test_day_of_year_climatology_without_smoothing_is_the_mean_over_years(tmp_path: Path) -> None:
    clim, anomalies = run_climatology(tmp_path, seasonal_grid(), smooth_days=0)
    assert list(clim.data_vars) == ["sst"]  # the text variable is skipped
    assert clim.sst.dims == ("dayofyear", "lat", "lon") and clim.sizes["dayofyear"] == 366
    mean_offset = np.mean(list(YEAR_OFFSETS.values()))
    expected = 0.01 * np.arange(1, 367) + mean_offset
    np.testing.assert_allclose(clim.sst.isel(lat=0, lon=0), expected, atol=1e-12)
    np.testing.assert_allclose(clim.sst.isel(lat=1, lon=1), expected + 40.0, atol=1e-12)
    assert clim.sst.isel(lat=1, lon=2).isnull().all()
    # 29 February (day 60) is the mean of 28 February and 1 March, not the 2020 value alone.
    assert float(clim.sst.sel(dayofyear=60).isel(lat=0, lon=0)) == pytest.approx(0.60 + mean_offset)
    # Anomalies: the year's offset minus the mean offset, over the whole period.
    anomalies = anomalies.compute()
    assert anomalies.sizes["time"] == 4 * 365 + 1
    years = anomalies.indexes["time"].year
    expected_anomaly = np.array([YEAR_OFFSETS[y] for y in years]) - mean_offset
    np.testing.assert_allclose(anomalies.sst.isel(lat=0, lon=1), expected_anomaly, atol=1e-9)
    assert anomalies.sst.attrs["units"] == "degree_Celsius"
    assert "anomaly" in anomalies.sst.attrs["long_name"]
    assert "analytics.climatology" in clim.attrs["history"] and clim.attrs["history"].startswith("made by")


def test_smoothing_is_a_circular_running_mean(tmp_path: Path) -> None:
    raw, _ = run_climatology(tmp_path, seasonal_grid(), smooth_days=0)
    smooth, _ = run_climatology(tmp_path, seasonal_grid(), smooth_days=31)
    values = raw.sst.isel(lat=0, lon=0).values
    tripled = np.concatenate([values, values, values])
    expected = np.convolve(tripled, np.ones(31) / 31, mode="same")[366:732]
    np.testing.assert_allclose(smooth.sst.isel(lat=0, lon=0), expected, atol=1e-9)
    # Across the new year the ramp 3.66 -> 0.01 is averaged, so 1 January is far above its raw value.
    first_day = {"dayofyear": 0, "lat": 0, "lon": 0}
    assert float(smooth.sst.isel(first_day)) > float(raw.sst.isel(first_day)) + 1


def test_baseline_and_monthly_period(tmp_path: Path) -> None:
    dataset = seasonal_grid()
    clim, anomalies = run_climatology(tmp_path, dataset, period="month", baseline_start="2020-01-01",
                                      baseline_end="2021-12-31", variable="sst")
    frame = dataset.sst.isel(lat=0, lon=0).to_series()
    frame = frame["2020-01-01":"2021-12-31"]
    expected = frame.groupby(frame.index.month).mean()
    assert clim.sizes["month"] == 12
    np.testing.assert_allclose(clim.sst.isel(lat=0, lon=0), expected.to_numpy(), atol=1e-9)
    assert clim.attrs["climatology_baseline"] == "2020-01-01 to 2021-12-31"
    first_january = anomalies.sst.sel(time="2019-01-01").isel(lat=0, lon=0)
    assert float(first_january) == pytest.approx(0.01 + 0.0 - expected[1])


def test_climatology_accepts_latitude_longitude_names_and_stays_lazy(tmp_path: Path) -> None:
    path = tmp_path / "grid.nc"
    seasonal_grid("latitude", "longitude").drop_vars("label").to_netcdf(path)
    with xr.open_dataset(path) as dataset:
        clim, anomalies = run_climatology(tmp_path, dataset, smooth_days=0)
        assert anomalies.sst.chunks is not None  # dask-backed: written piece by piece
        assert clim.sst.dims == ("dayofyear", "latitude", "longitude")
        anomalies.to_netcdf(tmp_path / "anomalies.nc")
        clim.to_netcdf(tmp_path / "climatology.nc")
    with xr.open_dataset(path, chunks={"time": 500, "latitude": 1}) as dataset:  # chunked in space too
        _, chunked = run_climatology(tmp_path, dataset, smooth_days=0)
        xr.testing.assert_allclose(chunked.compute(), xr.open_dataset(tmp_path / "anomalies.nc"))
    with xr.open_dataset(tmp_path / "anomalies.nc") as saved:
        assert float(saved.sst.isel(time=0, latitude=0, longitude=0)) == pytest.approx(-1.75)


@pytest.mark.parametrize(("params", "message"), [
    ({"variable": "temp"}, "variable: 'temp' is not in the dataset; available: sst, label"),
    ({"variable": "label"}, "variable: 'label' holds"),
    ({"baseline_start": "2018-01-01"},
     "baseline_start (2018-01-01) is outside the data; the data covers 2019-01-01 to 2022-12-31"),
    ({"baseline_end": "2023-01-01"},
     "baseline_end (2023-01-01) is outside the data; the data covers 2019-01-01 to 2022-12-31"),
    ({"baseline_start": "2021-01-01", "baseline_end": "2020-01-01"},
     "baseline_start (2021-01-01) must not be after baseline_end (2020-01-01)"),
    ({"baseline_start": "2020-01-01", "baseline_end": "2020-06-30"},
     "baseline: 184 days of the year have no data in the baseline period"),
    ({"baseline_start": "2020-01-01", "baseline_end": "2020-06-30", "period": "month"},
     "baseline: 6 months have no data in the baseline period"),
    ({"smooth_days": 10}, "smooth_days: 10 is even"),
])
def test_climatology_bad_input(tmp_path: Path, params: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        run_climatology(tmp_path, seasonal_grid(), **params)


def test_climatology_nan_only_and_no_time(tmp_path: Path) -> None:
    dataset = seasonal_grid()
    with pytest.raises(ValueError, match=re.escape("variable: 'sst' has no valid values (all missing)")):
        run_climatology(tmp_path, dataset.assign(sst=dataset.sst * np.nan))
    with pytest.raises(ValueError, match=re.escape("dataset: no time coordinate found")):
        run_climatology(tmp_path, dataset.isel(time=0, drop=True))
    with pytest.raises(ValueError, match=re.escape("variable: the dataset has no numeric variable")):
        run_climatology(tmp_path, dataset[["label"]])


# ---- analytics.trend -----------------------------------------------------------------------------

def monthly(slope_per_year: float, years: int = 30, noise: float = 0.1, seed: int = 1,
            seasonal: float = 0.0, start: str = "1990-01-01") -> pd.DataFrame:
    times = pd.date_range(start, periods=12 * years, freq="MS")
    rng = np.random.default_rng(seed)
    t = ((times - times[0]) / pd.Timedelta(days=1)).to_numpy() / 365.2425
    values = (slope_per_year * t + noise * rng.standard_normal(t.size)
              + seasonal * np.cos(2 * np.pi * (times.month.to_numpy() - 1) / 12))
    return pd.DataFrame({"time": times.strftime("%Y-%m-%d"), "sst": values})


def run_trend(tmp_path: Path, table: pd.DataFrame, log: list[dict[str, Any]] | None = None,
              **params: Any) -> pd.DataFrame:
    emit = None if log is None else log.append
    return call(trend, {"series": table}, params, tmp_path, emit=emit)["trend"]


@pytest.mark.parametrize("method", ["theil_sen_mann_kendall", "ols"])
def test_planted_trend_is_recovered(tmp_path: Path, method: str) -> None:
    table = monthly(0.05)
    (row,) = run_trend(tmp_path, table, method=method).to_dict("records")
    assert row["ci_low"] < 0.05 < row["ci_high"]
    assert row["slope_per_decade"] == pytest.approx(10 * row["slope_per_year"])
    assert row["significant"] and row["p_value"] < 1e-6
    assert (row["n"], row["start"], row["end"], row["method"]) == (360, "1990-01-01", "2019-12-01", method)
    years = ((pd.to_datetime(table["time"]) - pd.Timestamp("1990-01-01")).dt.days / 365.2425).to_numpy()
    if method == "ols":
        assert row["slope_per_year"] == pytest.approx(np.polyfit(years, table["sst"], 1)[0], rel=1e-9)
    else:
        independent = stats.theilslopes(table["sst"], years)
        assert row["slope_per_year"] == pytest.approx(independent.slope, rel=1e-12)
        assert row["ci_low"] == pytest.approx(independent.low_slope, rel=1e-12)


@pytest.mark.parametrize("method", ["theil_sen_mann_kendall", "ols"])
def test_no_trend_is_not_significant(tmp_path: Path, method: str) -> None:
    (row,) = run_trend(tmp_path, monthly(0.0, noise=1.0, seed=4), method=method).to_dict("records")
    assert row["p_value"] > 0.05 and not row["significant"]
    assert row["ci_low"] < 0.0 < row["ci_high"]


def test_mann_kendall_p_value_matches_kendall_tau(tmp_path: Path) -> None:
    table = monthly(0.003, noise=0.3, seed=9, years=10)
    (row,) = run_trend(tmp_path, table).to_dict("records")
    tau = stats.kendalltau(np.arange(len(table)), table["sst"])  # no ties: same statistic
    assert row["p_value"] == pytest.approx(tau.pvalue, rel=0.05)


def test_deseasonalize_removes_the_seasonal_bias(tmp_path: Path) -> None:
    table = monthly(0.02, years=6, noise=0.05, seasonal=5.0, start="2000-07-01").iloc[:-6]  # 5.5 years
    (raw,) = run_trend(tmp_path, table, method="ols").to_dict("records")
    (clean,) = run_trend(tmp_path, table, method="ols", deseasonalize=True).to_dict("records")
    assert clean["ci_low"] < 0.02 < clean["ci_high"]
    assert abs(clean["slope_per_year"] - 0.02) < 0.5 * abs(raw["slope_per_year"] - 0.02)


def test_one_row_per_column_and_long_series_use_monthly_means(tmp_path: Path) -> None:
    times = pd.date_range("2000-01-01", periods=6000, freq="D")
    table = pd.DataFrame({"time": times.strftime("%Y-%m-%d"),
                          "a": np.arange(6000) / 365.2425, "b": np.full(6000, 3.0)})
    log: list[dict[str, Any]] = []
    result = run_trend(tmp_path, table, log)
    assert result["column"].tolist() == ["a", "b"]
    assert result.loc[0, "slope_per_year"] == pytest.approx(1.0, rel=1e-3)
    assert result.loc[0, "n"] == 198  # monthly means
    assert result.loc[1, "slope_per_year"] == 0.0 and not result.loc[1, "significant"]
    assert any("monthly means" in event.get("message", "") for event in log)


@pytest.mark.parametrize(("table", "params", "message"), [
    (monthly(0.1).rename(columns={"time": "date"}), {}, "series: the table has no 'time' column"),
    (monthly(0.1), {"columns": ["temp"]}, "columns: 'temp' is not in the table; available: time, sst"),
    (monthly(0.1).assign(name="x"), {"columns": ["name"]}, "columns: 'name' holds"),
    (monthly(0.1).assign(sst=np.nan), {}, "columns: 'sst' has no valid values (all missing)"),
    (monthly(0.1).iloc[:2], {}, "columns: 'sst' has only 2 valid value(s)"),
    (monthly(0.1).assign(sst="x"), {}, "columns: the table has no numeric column"),
])
def test_trend_bad_input(tmp_path: Path, table: pd.DataFrame, params: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        run_trend(tmp_path, table, **params)


# ---- analytics.skill -----------------------------------------------------------------------------

MATCHED = pd.DataFrame({
    "station": ["A"] * 4 + ["B"] * 3,
    "observed": [1.0, 2.0, 3.0, 4.0, 0.0, 1.0, 2.0],
    "modelled": [2.0, 2.0, 4.0, 5.0, 0.0, 2.0, 1.0],
})


def run_skill(tmp_path: Path, table: pd.DataFrame, **params: Any) -> pd.DataFrame:
    return call(skill, {"matched": table}, params, tmp_path)["skill"]


def test_skill_hand_computed_values(tmp_path: Path) -> None:
    result = run_skill(tmp_path, MATCHED).set_index("station")
    assert result.index.tolist() == ["A", "B", "ALL"]
    a = result.loc["A"]
    # Worked by hand: O = 1,2,3,4 (mean 2.5); M = 2,2,4,5 (mean 3.25); M - O = 1,0,1,1.
    assert a["n"] == 4
    assert a["bias"] == pytest.approx(0.75)
    assert a["rmse"] == pytest.approx(math.sqrt(3 / 4))
    assert a["std_observed"] == pytest.approx(math.sqrt(5 / 4))          # deviations +-1.5, +-0.5
    assert a["std_modelled"] == pytest.approx(math.sqrt(6.75 / 4))
    assert a["correlation"] == pytest.approx((5.5 / 4) / math.sqrt(5 / 4 * 6.75 / 4))
    assert a["crmsd"] == pytest.approx(math.sqrt(0.75 / 4))             # centred differences .25 -.75 .25 .25
    assert a["willmott_d"] == pytest.approx(1 - 3 / 25)                  # sum (|M-2.5| + |O-2.5|)^2 = 25
    assert a["normalised_std"] == pytest.approx(math.sqrt(6.75 / 5))
    assert a["normalised_crmsd"] == pytest.approx(math.sqrt(0.75 / 4) / math.sqrt(5 / 4))
    assert a["taylor_angle_deg"] == pytest.approx(math.degrees(math.acos(a["correlation"])))
    b = result.loc["B"]
    # O = 0,1,2; M = 0,2,1: same means, bias 0, R = 0.5, RMSE = sqrt(2/3).
    assert b["bias"] == 0.0 and b["correlation"] == pytest.approx(0.5)
    assert b["rmse"] == pytest.approx(math.sqrt(2 / 3))
    assert result.loc["ALL", "n"] == 7
    assert result.loc["ALL", "bias"] == pytest.approx(3 / 7)


def test_skill_identities_and_numpy_agreement(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    observed = rng.normal(15, 2, 500)
    table = pd.DataFrame({"observed": observed, "modelled": 0.8 * observed + rng.normal(3.5, 0.7, 500)})
    table.loc[[3, 10], "modelled"] = np.nan
    (row,) = run_skill(tmp_path, table).to_dict("records")
    assert row["station"] == "ALL" and row["n"] == 498
    assert row["rmse"] ** 2 == pytest.approx(row["bias"] ** 2 + row["crmsd"] ** 2, rel=1e-12)
    so, sm, r = row["std_observed"], row["std_modelled"], row["correlation"]
    assert row["crmsd"] ** 2 == pytest.approx(so**2 + sm**2 - 2 * so * sm * r, rel=1e-10)
    pairs = table.dropna()
    assert r == pytest.approx(np.corrcoef(pairs["observed"], pairs["modelled"])[0, 1], rel=1e-12)
    assert so == pytest.approx(np.std(pairs["observed"]), rel=1e-12)


def test_skill_per_variable(tmp_path: Path) -> None:
    perfect_salinity = MATCHED.assign(variable="so", modelled=MATCHED["observed"])
    table = pd.concat([MATCHED.assign(variable="sst"), perfect_salinity])
    result = run_skill(tmp_path, table)
    assert list(zip(result["variable"], result["station"], strict=True)) == [
        ("so", "A"), ("so", "B"), ("so", "ALL"), ("sst", "A"), ("sst", "B"), ("sst", "ALL")]
    perfect = result[result["variable"] == "so"]
    assert (perfect["rmse"] == 0).all() and (perfect["willmott_d"] == 1).all()


@pytest.mark.parametrize(("table", "params", "message"), [
    (MATCHED.drop(columns="modelled"), {}, "modelled: column 'modelled' is not in the table; available: "),
    (MATCHED, {"observed": "obs"}, "observed: column 'obs' is not in the table"),
    (MATCHED.assign(observed="x"), {}, "observed: column 'observed' holds"),
    (MATCHED.assign(modelled=np.nan), {}, "matched: no row has both an observed and a modelled value"),
])
def test_skill_bad_input(tmp_path: Path, table: pd.DataFrame, params: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        run_skill(tmp_path, table, **params)


# ---- analytics.current_statistics ----------------------------------------------------------------

def point_currents(u: list[float], v: list[float], units: str = "m s-1") -> xr.Dataset:
    times = pd.date_range("2022-01-01", periods=len(u), freq="h")
    shape = (len(u), 1, 1)
    return xr.Dataset(
        {"east": (("time", "lat", "lon"), np.reshape(u, shape),
                  {"standard_name": "eastward_sea_water_velocity", "units": units}),
         "north": (("time", "lat", "lon"), np.reshape(v, shape),
                   {"standard_name": "northward_sea_water_velocity", "units": units})},
        coords={"time": times, "lat": [44.0], "lon": [-3.0]},
    )


def run_currents(tmp_path: Path, dataset: xr.Dataset, **params: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    out = call(current_statistics, {"dataset": dataset}, params, tmp_path)
    return out["statistics"], out["exceedance"]


SPEEDS = [0.05, 0.2, 0.3, 0.3, 0.6, 0.0, 0.3, 0.3, 0.3, np.nan]


def test_point_statistics_and_exceedance_known_answer(tmp_path: Path) -> None:
    stats_table, exceedance = run_currents(tmp_path, point_currents([0.0] * 10, SPEEDS))
    (row,) = stats_table.to_dict("records")
    valid = np.array([s for s in SPEEDS if not np.isnan(s)])
    assert row["n_valid"] == 9 and row["coverage"] == pytest.approx(0.9)
    assert row["mean_speed"] == pytest.approx(valid.mean())
    assert row["median_speed"] == pytest.approx(0.3)
    assert row["p90"] == pytest.approx(np.percentile(valid, 90))
    assert row["max_speed"] == pytest.approx(0.6)
    assert row["mean_direction_deg"] == pytest.approx(0.0)  # flowing north
    assert (row["start"], row["end"]) == ("2022-01-01T00:00:00", "2022-01-01T09:00:00")
    table = exceedance.set_index("threshold_m_s")
    assert table.index.tolist() == [0.1, 0.25, 0.5, 0.75, 1.0]
    assert table.loc[0.1, "fraction_exceeded"] == pytest.approx(7 / 9)
    assert table.loc[0.1, "longest_steps"] == 4 and table.loc[0.1, "longest_start"] == "2022-01-01T01:00:00"
    assert table.loc[0.25, "fraction_exceeded"] == pytest.approx(6 / 9)
    assert table.loc[0.25, "longest_steps"] == 3 and table.loc[0.25, "longest_hours"] == 3.0
    assert table.loc[0.25, "longest_start"] == "2022-01-01T02:00:00"  # first of the two 3-hour spells
    assert table.loc[0.5, "longest_steps"] == 1
    assert table.loc[1.0, "fraction_exceeded"] == 0 and table.loc[1.0, "longest_start"] == ""


@pytest.mark.parametrize(("u", "v", "direction"), [
    (0.3, 0.0, 90.0), (-0.2, 0.0, 270.0), (0.1, -0.1, 135.0), (0.0, -0.5, 180.0), (-0.1, 0.1, 315.0)])
def test_direction_is_towards_clockwise_from_north(tmp_path: Path, u: float, v: float,
                                                   direction: float) -> None:
    stats_table, _ = run_currents(tmp_path, point_currents([u] * 3, [v] * 3))
    assert stats_table.loc[0, "mean_direction_deg"] == pytest.approx(direction)


def test_centimetres_per_second_are_converted(tmp_path: Path) -> None:
    metres, _ = run_currents(tmp_path, point_currents([0.0] * 10, SPEEDS))
    centimetres, _ = run_currents(tmp_path, point_currents([0.0] * 10, [s * 100 for s in SPEEDS], "cm s-1"))
    assert centimetres.loc[0, "mean_speed"] == pytest.approx(metres.loc[0, "mean_speed"])


@pytest.fixture(scope="module")
def demo_currents() -> xr.Dataset:
    return make_demo_dataset(days=60, lat_min=42.5, lat_max=44.5, lon_min=-5.0, lon_max=-2.0)


def test_area_statistics_match_numpy(tmp_path: Path, demo_currents: xr.Dataset,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    stats_table, exceedance = run_currents(tmp_path, demo_currents, thresholds=[0.2])
    speed = np.hypot(demo_currents.uo.values.astype(np.float64), demo_currents.vo.values.astype(np.float64))
    valid = speed[~np.isnan(speed)]
    row = stats_table.iloc[0]
    assert row["site"] == "area" and row["n_valid"] == valid.size
    sea_cells = int((~np.isnan(speed)).any(axis=0).sum())
    assert row["coverage"] == pytest.approx(valid.size / (60 * sea_cells))
    assert row["mean_speed"] == pytest.approx(valid.mean(), rel=1e-9)
    assert row["p95"] == pytest.approx(np.percentile(valid, 95), rel=1e-9)
    assert row["max_speed"] == pytest.approx(valid.max())
    assert exceedance.loc[0, "fraction_exceeded"] == pytest.approx((valid > 0.2).mean())
    # Longest spell at any point, by brute force.
    above = np.nan_to_num(speed, nan=0) > 0.2
    longest = 0
    for i, j in np.ndindex(above.shape[1:]):
        run = 0
        for flag in above[:, i, j]:
            run = run + 1 if flag else 0
            longest = max(longest, run)
    assert exceedance.loc[0, "longest_steps"] == longest
    assert exceedance.loc[0, "longest_hours"] == 24 * longest
    # Very large areas use a 1 mm/s histogram for percentiles.
    monkeypatch.setattr(analytics, "EXACT_LIMIT", 1000)
    approximate, _ = run_currents(tmp_path, demo_currents, thresholds=[0.2])
    assert approximate.loc[0, "p95"] == pytest.approx(row["p95"], abs=1.5e-3)
    assert approximate.loc[0, "median_speed"] == pytest.approx(row["median_speed"], abs=1.5e-3)


def test_site_uses_nearest_sea_point(tmp_path: Path, demo_currents: xr.Dataset) -> None:
    stats_table, _ = run_currents(tmp_path, demo_currents, lat=44.1, lon=-3.9)
    row = stats_table.iloc[0]
    assert (row["lat"], row["lon"], row["site"]) == (44.0, -4.0, "44N -4E")
    speed = np.hypot(demo_currents.uo.sel(lat=44.0, lon=-4.0).values.astype(np.float64),
                     demo_currents.vo.sel(lat=44.0, lon=-4.0).values.astype(np.float64))
    assert row["mean_speed"] == pytest.approx(speed.mean(), rel=1e-9)
    assert row["coverage"] == 1.0


@pytest.mark.parametrize(("params", "message"), [
    ({"lat": 43.0, "lon": -4.0},
     "lat/lon: the nearest grid point to (43, -4), at (43, -4), is on land (no data); "
     "the nearest sea point is"),
    ({"lat": 30.0, "lon": -4.0}, "lat/lon: (30, -4) is outside the grid"),
    ({"lat": 44.0}, "lat/lon: give both"),
    ({"u": "speed"}, "u: 'speed' is not in the dataset; available: sst, so, uo, vo"),
])
def test_current_statistics_bad_params(tmp_path: Path, demo_currents: xr.Dataset, params: dict[str, Any],
                                       message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        run_currents(tmp_path, demo_currents, **params)


def test_current_statistics_bad_datasets(tmp_path: Path) -> None:
    good = point_currents([0.1] * 4, [0.1] * 4)
    without = good.assign(east=good.east.assign_attrs(standard_name="x"))
    message = "u: no variable has standard_name 'eastward_sea_water_velocity'; name it with the 'u' parameter"
    with pytest.raises(ValueError, match=re.escape(message)):
        run_currents(tmp_path, without)
    with pytest.raises(ValueError, match=re.escape("u: 'east' has units 'degC', which is not a speed")):
        run_currents(tmp_path, point_currents([0.1] * 4, [0.1] * 4, units="degC"))
    with pytest.raises(ValueError, match=re.escape("u: 'east' has no units attribute")):
        run_currents(tmp_path, point_currents([0.1] * 4, [0.1] * 4, units=""))
    with pytest.raises(ValueError, match=re.escape("have no valid values (all missing)")):
        run_currents(tmp_path, point_currents([np.nan] * 4, [np.nan] * 4))
    deep = xr.concat([good, good], dim="depth").transpose("time", "depth", "lat", "lon")
    with pytest.raises(ValueError, match=re.escape("u: 'east' has 2 levels along 'depth'; select one level")):
        run_currents(tmp_path, deep)
    single = xr.concat([good], dim="depth")
    stats_table, _ = run_currents(tmp_path, single)
    assert stats_table.loc[0, "n_valid"] == 4


def test_blocks_are_discoverable() -> None:
    registry = discover(extra_modules=["blocks.library.analytics"])
    assert not registry.errors
    for block_id in ("analytics.climatology", "analytics.trend", "analytics.skill",
                     "analytics.current_statistics"):
        registry.get(block_id, "1.0.0").spec.check(known_types())
