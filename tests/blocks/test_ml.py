"""ml.forecast and ml.anomaly_detection on synthetic series with known structure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from blocks.library.ml import anomaly_detection, forecast
from blocks.registry import discover
from blocks.runner import BlockInputError
from blocks.types import known_types
from tests.blocks.sample_blocks import call


def seasonal_ar_series(
    days: int = 1000, seed: int = 1, phi: float = 0.7, noise: float = 0.25
) -> pd.DataFrame:
    """A yearly cycle (two harmonics) plus AR(1) noise: the structure both methods are built for."""
    rng = np.random.default_rng(seed)
    times = pd.date_range("2021-01-01", periods=days, freq="D")
    day = np.arange(days)
    ar = np.zeros(days)
    shocks = rng.normal(0.0, noise, days)
    for i in range(1, days):
        ar[i] = phi * ar[i - 1] + shocks[i]
    values = 17 + 4 * np.sin(2 * np.pi * day / 365.25) + np.cos(4 * np.pi * day / 365.25) + ar
    return pd.DataFrame({"time": times.strftime("%Y-%m-%d"), "sst": values})


def run_forecast(tmp_path: Path, table: pd.DataFrame, **params: Any) -> dict[str, pd.DataFrame]:
    return call(forecast, {"series": table}, params, tmp_path)


def test_blocks_are_discovered_and_their_specs_are_valid() -> None:
    registry = discover(extra_modules=["blocks.library.ml"])
    assert registry.errors == []
    for block_id in ("ml.forecast", "ml.anomaly_detection"):
        registry.get(block_id, "1.0.0").spec.check(known_types())


# ---- ml.forecast --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sarimax_result(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pd.DataFrame]:
    return run_forecast(tmp_path_factory.mktemp("sarimax"), seasonal_ar_series(), method="sarimax",
                        horizon_days=14, backtest_folds=8, interval=0.9, history_days=30)


def test_sarimax_beats_persistence_with_near_nominal_coverage(
    sarimax_result: dict[str, pd.DataFrame],
) -> None:
    backtest = sarimax_result["backtest"]
    assert backtest["fold"].tolist() == list(range(1, 9))
    assert (backtest["horizon_days"] == 14).all()
    assert backtest["mae"].mean() < 0.6 * backtest["persistence_mae"].mean()
    assert (backtest["rmse"] >= backtest["mae"]).all()
    # 8 folds x 14 days = 112 strongly autocorrelated days: allow +-0.15 around the nominal 0.9.
    assert abs(backtest["coverage"].mean() - 0.9) <= 0.15
    # Consecutive folds: each origin is 14 days after the previous one, the last one 14 days before the end.
    origins = pd.to_datetime(backtest["origin"])
    assert (origins.diff().dropna() == pd.Timedelta(days=14)).all()
    assert origins.iloc[-1] == pd.Timestamp("2021-01-01") + pd.Timedelta(days=1000 - 1 - 14)


def test_sarimax_interval_widens_with_lead_time(sarimax_result: dict[str, pd.DataFrame]) -> None:
    future = sarimax_result["forecast"].dropna(subset=["forecast"])
    width = (future["upper"] - future["lower"]).to_numpy()
    assert len(width) == 14
    assert (np.diff(width) > 0).all()
    assert ((future["lower"] < future["forecast"]) & (future["forecast"] < future["upper"])).all()


def test_forecast_table_has_recent_history_then_forecast(sarimax_result: dict[str, pd.DataFrame]) -> None:
    table = sarimax_result["forecast"]
    source = seasonal_ar_series()
    assert table.columns.tolist() == ["time", "observed", "forecast", "lower", "upper"]
    assert len(table) == 30 + 14
    history, future = table.iloc[:30], table.iloc[30:]
    assert history["time"].tolist() == source["time"].iloc[-30:].tolist()
    np.testing.assert_allclose(history["observed"], source["sst"].iloc[-30:])
    assert history[["forecast", "lower", "upper"]].isna().all().all()
    assert future["observed"].isna().all()
    assert future["time"].tolist() == pd.date_range("2023-09-28", periods=14).strftime("%Y-%m-%d").tolist()


def test_gradient_boosting_beats_persistence_with_calibrated_coverage(tmp_path: Path) -> None:
    result = run_forecast(tmp_path, seasonal_ar_series(), method="gradient_boosting", backtest_folds=12,
                          interval=0.9)
    backtest = result["backtest"]
    assert backtest["mae"].mean() < 0.8 * backtest["persistence_mae"].mean()
    # 12 folds x 14 days: the conformal calibration gives 0.92 here, the bare quantile models 0.71
    # (0.87-0.98 and 0.55-0.81 over twelve seeds of this series).
    assert abs(backtest["coverage"].mean() - 0.9) <= 0.1
    future = result["forecast"].dropna(subset=["forecast"])
    assert len(future) == 14
    assert ((future["lower"] <= future["forecast"]) & (future["forecast"] <= future["upper"])).all()


def test_gradient_boosting_needs_enough_days_to_calibrate_every_lead_time(tmp_path: Path) -> None:
    # 90 training origins + 28 lag days + 7 target days, then 7 - 1 + 9 calibration origins so that
    # the 7-day lead gets the 9 scores a 90 % conformal quantile needs, plus one 7-day backtest fold.
    params = {"method": "gradient_boosting", "horizon_days": 7, "interval": 0.9, "backtest_folds": 1}
    with pytest.raises(ValueError, match=r"series: 146 days .* at least 147 days are needed \(140 to fit"):
        run_forecast(tmp_path, seasonal_ar_series(days=146), **params)
    result = run_forecast(tmp_path, seasonal_ar_series(days=147), **params)
    assert result["forecast"][["lower", "upper"]].iloc[-7:].notna().all().all()


def test_forecast_fills_interior_missing_values_and_uses_the_named_column(tmp_path: Path) -> None:
    table = seasonal_ar_series(days=200).assign(other=1.0)
    table.loc[50:52, "sst"] = np.nan
    table.loc[199, "sst"] = np.nan  # a missing last value is dropped: the forecast starts after day 199
    result = run_forecast(tmp_path, table[["time", "other", "sst"]], column="sst", backtest_folds=1,
                          horizon_days=7, history_days=5)
    assert result["forecast"]["time"].iloc[5] == "2021-07-19"
    assert result["forecast"]["observed"].iloc[:5].notna().all()
    assert len(result["backtest"]) == 1


def test_forecast_rejects_too_short_a_series_naming_the_minimum(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"series: 100 days .* at least 146 days .*backtest_folds=4 x "
                                         r"horizon_days=14"):
        run_forecast(tmp_path, seasonal_ar_series(days=100))


def test_forecast_rejects_a_gap_naming_it(tmp_path: Path) -> None:
    table = seasonal_ar_series(days=300).drop(index=[100, 101, 102])
    with pytest.raises(ValueError, match="gap between 2021-04-10 and 2021-04-14 \\(3 missing days\\)"):
        run_forecast(tmp_path, table)


def test_forecast_rejects_sub_daily_times(tmp_path: Path) -> None:
    table = pd.DataFrame({"time": pd.date_range("2021-01-01", periods=300, freq="6h").strftime(
        "%Y-%m-%dT%H:%M:%S"), "sst": 1.0})
    with pytest.raises(ValueError, match="2021-01-01T06:00:00 is not at midnight"):
        run_forecast(tmp_path, table)


def test_forecast_rejects_nan_only(tmp_path: Path) -> None:
    table = seasonal_ar_series(days=300).assign(sst=np.nan)
    with pytest.raises(ValueError, match="column: 'sst' has no valid values"):
        run_forecast(tmp_path, table)


def test_forecast_rejects_unknown_column(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="column: 'temp' is not in the table; available: time, sst"):
        run_forecast(tmp_path, seasonal_ar_series(days=300), column="temp")


def test_forecast_rejects_unknown_method(tmp_path: Path) -> None:
    with pytest.raises(BlockInputError, match="params/method"):
        run_forecast(tmp_path, seasonal_ar_series(days=300), method="prophet")


# ---- ml.anomaly_detection -----------------------------------------------------------------------

def spiky_series(days: int = 1000, spikes: int = 10, seed: int = 3) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    times = pd.date_range("2021-01-01", periods=days, freq="D")
    values = 15 + 3 * np.sin(2 * np.pi * np.arange(days) / 365.25) + rng.normal(0.0, 0.2, days)
    where = rng.choice(np.arange(20, days - 20), spikes, replace=False)
    values[where] += rng.choice([-1.0, 1.0], spikes) * rng.uniform(1.5, 3.0, spikes)
    planted = np.zeros(days, dtype=bool)
    planted[where] = True
    return pd.DataFrame({"time": times.strftime("%Y-%m-%d"), "sst": values}), planted


def detect(tmp_path: Path, table: pd.DataFrame, **params: Any) -> pd.DataFrame:
    return call(anomaly_detection, {"series": table}, params, tmp_path)["flagged"]


def test_planted_spikes_are_flagged_with_few_false_positives(tmp_path: Path) -> None:
    table, planted = spiky_series()
    flagged = detect(tmp_path, table)
    assert flagged.columns.tolist() == ["time", "sst", "anomaly", "score"]
    pd.testing.assert_frame_equal(flagged[["time", "sst"]], table)
    anomaly = flagged["anomaly"].to_numpy(dtype=bool)
    assert anomaly[planted].mean() >= 0.9
    assert anomaly[~planted].mean() <= 0.02
    # The score ranks the planted spikes above the bulk of the series.
    assert flagged["score"][planted].min() > flagged["score"][~planted].quantile(0.9)


def test_detection_is_deterministic(tmp_path: Path) -> None:
    table, _ = spiky_series(days=300, spikes=3)
    first, second = detect(tmp_path, table, random_state=7), detect(tmp_path, table, random_state=7)
    pd.testing.assert_frame_equal(first, second)


def test_observation_table_is_checked_per_station_and_variable(tmp_path: Path) -> None:
    spiky, planted = spiky_series(days=400, spikes=4)
    calm, _ = spiky_series(days=400, spikes=0, seed=5)
    rows = []
    for station, series in (("A", spiky), ("B", calm)):
        rows.append(pd.DataFrame({
            "station": station, "time": series["time"], "lat": 44.0, "lon": -3.0, "depth": 1.0,
            "variable": "sst", "value": series["sst"], "quality_flag": 1,
        }))
    salinity = calm.assign(sst=35.0 + 0.01 * np.arange(400) % 0.1)
    rows.append(pd.DataFrame({"station": "A", "time": salinity["time"], "lat": 44.0, "lon": -3.0,
                              "depth": 1.0, "variable": "so", "value": salinity["sst"], "quality_flag": 1}))
    observations = pd.concat(rows, ignore_index=True).sample(frac=1.0, random_state=0)  # shuffled rows
    observations.loc[observations.index[:3], "value"] = np.nan
    flagged = detect(tmp_path, observations, column="sst", contamination=0.005)
    assert flagged.index.tolist() == observations.index.tolist()
    assert flagged["anomaly"].sum() == 4
    hits = flagged[flagged["anomaly"]]
    assert (hits["station"] == "A").all() and (hits["variable"] == "sst").all()
    assert sorted(pd.to_datetime(hits["time"])) == sorted(pd.to_datetime(spiky["time"][planted]))
    assert not flagged.loc[flagged["variable"] == "so", "anomaly"].any()
    assert flagged.loc[flagged["value"].isna(), "score"].isna().all()


def test_anomaly_rejects_nan_only(tmp_path: Path) -> None:
    table = spiky_series(days=50)[0].assign(sst=np.nan)
    with pytest.raises(ValueError, match="column: 'sst' has no valid values"):
        detect(tmp_path, table)


def test_anomaly_rejects_unknown_variable(tmp_path: Path) -> None:
    observations = pd.DataFrame({"station": "A", "time": ["2021-01-01"], "variable": "sst", "value": [1.0]})
    with pytest.raises(ValueError, match="column: variable 'chl' is not in the observations; available: sst"):
        detect(tmp_path, observations, column="chl")


def test_anomaly_rejects_bad_contamination(tmp_path: Path) -> None:
    with pytest.raises(BlockInputError, match="params/contamination"):
        detect(tmp_path, spiky_series(days=50)[0], contamination=0.9)


def test_anomaly_rejects_table_without_time(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="series: the table has no 'time' column; columns: sst"):
        detect(tmp_path, pd.DataFrame({"sst": [1.0, 2.0]}))


def test_seasonal_naive_baseline_uses_the_same_date_a_year_before_across_29_february(tmp_path: Path) -> None:
    # Every calendar date has its own value, repeated each year: the same date a year before is a
    # perfect forecast, while 365 rows back is one day off from 1 March 2024 onwards.
    times = pd.date_range("2023-01-01", "2024-04-30", freq="D")
    values = 0.3 * times.month.to_numpy() + 0.01 * times.day.to_numpy() ** 1.5
    table = pd.DataFrame({"time": times.strftime("%Y-%m-%d"), "sst": values})
    backtest = run_forecast(tmp_path, table, method="sarimax", horizon_days=14, backtest_folds=4)["backtest"]
    assert backtest["first_day"].iloc[0] >= "2024-03-01"
    # Hand-computed: same date a year before (2023 has no 29 February, none is in these folds).
    assert backtest["seasonal_naive_mae"].tolist() == pytest.approx([0.0] * 4, abs=1e-12)
