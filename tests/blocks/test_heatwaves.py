"""analytics.marine_heatwaves: event-for-event agreement with the loop-based oracle
(tests/blocks/reference_mhw.py), known dates of planted events, and bad input."""

from __future__ import annotations

import math
import re
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from blocks.library.demo_data import HEATWAVE_DAYS, HEATWAVE_START, make_demo_dataset
from blocks.library.heatwaves import day_of_climatological_year, marine_heatwaves
from blocks.library.ocean import area_mean
from blocks.registry import discover
from blocks.runner import BlockInputError
from blocks.types import PORT_TYPES, known_types
from tests.blocks.mhw_series import coldify, plant, synthetic
from tests.blocks.reference_mhw import oracle_detect
from tests.blocks.sample_blocks import call

FLOAT_METRICS = (
    "intensity_max", "intensity_mean", "intensity_var", "intensity_cumulative", "intensity_max_rel_thresh",
    "intensity_mean_rel_thresh", "intensity_cumulative_rel_thresh", "intensity_max_abs",
    "intensity_mean_abs", "intensity_max_norm", "rate_onset", "rate_decline",
)
EXACT_FIELDS = ("start", "end", "peak", "duration_days", "category_number", "days_moderate", "days_strong",
                "days_severe", "days_extreme", "missing_days")
TOLERANCE = 1e-6


def run(tmp_path: Path, table: pd.DataFrame, events: list[dict[str, Any]] | None = None,
        **params: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    emit = None if events is None else events.append
    result = call(marine_heatwaves, {"series": table}, params, tmp_path, emit=emit)
    return result["events"], result["daily"]


def assert_agrees_with_oracle(table: pd.DataFrame, events: pd.DataFrame, daily: pd.DataFrame,
                              **options: Any) -> list[dict[str, Any]]:
    """Identical dates, durations, categories; intensities within 1e-6; same climatology/threshold."""
    days = [date.fromisoformat(day) for day in table["time"]]
    column = [name for name in table.columns if name != "time"][0]
    expected, seas, thresh = oracle_detect(days, table[column].astype(float).tolist(), **options)
    spans = [(event["start"], event["end"]) for event in expected]
    assert len(events) == len(expected), (events[["start", "end"]], spans)
    for (_, got), want in zip(events.iterrows(), expected, strict=True):
        for name in EXACT_FIELDS:
            assert got[name] == want[name], (name, got[name], want[name])
        for name in FLOAT_METRICS:
            assert abs(got[name] - want[name]) <= TOLERANCE, (name, got[name], want[name])
        names = ("Moderate", "Strong", "Severe", "Extreme")
        assert got["category"].endswith(names[want["category_number"] - 1])
    np.testing.assert_allclose(daily["climatology"], seas, rtol=0, atol=1e-9)
    np.testing.assert_allclose(daily["threshold"], thresh, rtol=0, atol=1e-9)
    return expected


# ---- (a) the demo dataset ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def demo_series(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """Area-mean SST of the default demo dataset (3 years, 2021-2023), through ocean.area_mean."""
    scratch = tmp_path_factory.mktemp("demo")
    return call(area_mean, {"dataset": make_demo_dataset()}, {"variable": "sst"}, scratch)["table"]


def test_demo_planted_heatwave_is_found_with_its_dates(tmp_path: Path, demo_series: pd.DataFrame) -> None:
    events, daily = run(tmp_path, demo_series)
    assert_agrees_with_oracle(demo_series, events, daily)
    planted = events[events["start"].str.startswith("2022-07")]
    assert len(planted) == 1
    (row,) = planted.to_dict("records")
    # Full strength 2022-07-18 .. 2022-08-07 (21 days); the ramp days either side still carry 3/4 of the
    # +3 degC warming, so the detected event is one day longer at each end.
    full_start = HEATWAVE_START
    full_end = date.fromordinal(HEATWAVE_START.toordinal() + HEATWAVE_DAYS - 1)
    assert (row["start"], row["end"]) == ("2022-07-17", "2022-08-08")
    assert row["start"] < full_start.isoformat() and row["end"] > full_end.isoformat()
    assert row["duration_days"] == 23
    assert row["intensity_max"] == events["intensity_max"].max()  # the strongest event of the record
    # The daily table marks exactly those days with the event number.
    marked = daily[daily["event"] == row["event"]]["time"]
    assert marked.iloc[0] == "2022-07-17" and marked.iloc[-1] == "2022-08-08" and len(marked) == 23


def test_demo_outputs_survive_csv(tmp_path: Path, demo_series: pd.DataFrame) -> None:
    events, daily = run(tmp_path, demo_series)
    for name, table in (("events", events), ("daily", daily)):
        PORT_TYPES["table"].save(table, tmp_path / f"{name}.csv")
    back = PORT_TYPES["table"].open(tmp_path / "daily.csv")
    assert list(back.columns) == ["time", "temperature", "climatology", "threshold", "event", "category",
                                  "category_number"]
    assert back["event"].isna().sum() == (daily["event"].isna()).sum()
    # The block reads its own CSV input back the same way.
    series = PORT_TYPES["table"].open(_saved(tmp_path, demo_series))
    again, _ = run(tmp_path, series)
    pd.testing.assert_frame_equal(again, events, check_exact=False, atol=1e-9, rtol=0)


def _saved(tmp_path: Path, table: pd.DataFrame) -> Path:
    path = tmp_path / "series.csv"
    PORT_TYPES["table"].save(table, path)
    return path


# ---- (b) synthetic series with edge cases --------------------------------------------------------

def test_edge_cases_match_oracle_and_expected_dates(tmp_path: Path) -> None:
    table = synthetic()
    coldify(table)
    plant(table, "2019-01-01", 7)                   # at the very start of the series
    plant(table, "2019-06-01", 5)                   # exactly the minimum duration
    plant(table, "2019-07-01", 4)                   # one day too short: not an event
    plant(table, "2020-02-26", 6)                   # across 29 February of a leap year
    plant(table, "2020-05-01", 5)                   # + gap of exactly 2 days + 5 days: joined
    plant(table, "2020-05-08", 5)
    plant(table, "2021-05-01", 5)                   # + gap of 3 days + 5 days: two events
    plant(table, "2021-05-09", 5)
    plant(table, "2021-08-01", 6)                   # a 3-day run 2 days after an event and 2 days
    plant(table, "2021-08-09", 3)                   # before the next does not bridge them: runs
    plant(table, "2021-08-14", 6)                   # shorter than 5 days are dropped before joining
    plant(table, "2022-12-25", 7)                   # at the very end of the series
    events, daily = run(tmp_path, table)
    assert_agrees_with_oracle(table, events, daily)
    spans = list(zip(events["start"], events["end"], strict=True))
    assert spans == [
        ("2019-01-01", "2019-01-07"), ("2019-06-01", "2019-06-05"), ("2020-02-26", "2020-03-02"),
        ("2020-05-01", "2020-05-12"), ("2021-05-01", "2021-05-05"), ("2021-05-09", "2021-05-13"),
        ("2021-08-01", "2021-08-06"), ("2021-08-14", "2021-08-19"), ("2022-12-25", "2022-12-31"),
    ]
    assert events["duration_days"].tolist() == [7, 5, 6, 12, 5, 5, 6, 6, 7]
    joined = events.iloc[3]
    gap = daily[daily["time"].isin(["2020-05-06", "2020-05-07"])]
    assert gap["event"].tolist() == [joined["event"]] * 2 and gap["category"].tolist() == ["", ""]
    # Rates at the ends of the series follow the one-day convention (finite, no division by zero).
    assert np.isfinite(events[["rate_onset", "rate_decline"]].to_numpy()).all()


def test_missing_values_break_events_and_match_oracle(tmp_path: Path) -> None:
    table = synthetic(seed=5)
    coldify(table)
    plant(table, "2020-07-01", 12)
    table.loc[table["time"] == "2020-07-06", "sst"] = np.nan       # splits 12 days into 5 + 6
    plant(table, "2021-07-01", 5)
    plant(table, "2021-07-08", 5)
    table.loc[table["time"] == "2021-07-06", "sst"] = np.nan       # a missing day inside a joined gap
    table.loc[table["time"].between("2019-03-01", "2019-03-20"), "sst"] = np.nan  # a baseline hole
    events, daily = run(tmp_path, table)
    expected = assert_agrees_with_oracle(table, events, daily)
    spans = [(e["start"], e["end"]) for e in expected]
    assert ("2020-07-01", "2020-07-12") in spans          # 5 + missing + 6 are joined (gap of 1 day)
    assert ("2021-07-01", "2021-07-12") in spans
    assert events.loc[events["start"] == "2021-07-01", "missing_days"].item() == 1
    assert math.isnan(daily.loc[daily["time"] == "2019-03-10", "temperature"].item())


def test_options_match_oracle(tmp_path: Path) -> None:
    table = synthetic(seed=11)  # unclipped noise: many short natural events
    options = {"percentile": 80.0, "window_half_width": 3, "smooth_width": 15, "min_duration": 3,
               "join_gaps": False, "max_gap": 2}
    events, daily = run(tmp_path, table, **options, baseline_start="2020-01-01", baseline_end="2021-12-31")
    assert len(events) > 10
    assert_agrees_with_oracle(table, events, daily, **options,
                              baseline=(date(2020, 1, 1), date(2021, 12, 31)))
    events, daily = run(tmp_path, table, smooth_width=0, max_gap=4)
    assert_agrees_with_oracle(table, events, daily, smooth_width=0, max_gap=4)


def test_categories_follow_multiples_of_threshold_minus_climatology(tmp_path: Path) -> None:
    table = synthetic(seed=7)
    coldify(table)
    plant(table, "2021-06-10", 8, warm=12.0)
    events, daily = run(tmp_path, table)
    assert_agrees_with_oracle(table, events, daily)
    row = events[events["start"] == "2021-06-10"].iloc[0]
    days = daily[daily["event"] == row["event"]]
    multiple = (days["temperature"] - days["climatology"]) / (days["threshold"] - days["climatology"])
    expected = min(int(np.floor(multiple.max())), 4)
    assert row["category_number"] == expected >= 2
    assert row["category"] == ["I Moderate", "II Strong", "III Severe", "IV Extreme"][expected - 1]
    assert row["intensity_max_norm"] == pytest.approx(multiple.max())


def test_day_of_year_puts_1_march_on_61_in_every_year() -> None:
    days = pd.DatetimeIndex(["2019-02-28", "2019-03-01", "2020-02-28", "2020-02-29", "2020-03-01",
                             "2021-12-31", "2020-12-31"])
    assert day_of_climatological_year(days).tolist() == [59, 61, 59, 60, 61, 366, 366]


def test_missing_dates_are_added_and_logged(tmp_path: Path) -> None:
    table = synthetic()
    gappy = table.drop(index=range(100, 110)).reset_index(drop=True)
    log: list[dict[str, Any]] = []
    _, daily = run(tmp_path, gappy, log)
    assert len(daily) == len(table)
    assert any("10 missing date(s)" in event.get("message", "") for event in log)


def test_short_baseline_is_warned_about(tmp_path: Path) -> None:
    table = synthetic("2021-01-01", "2022-12-31")
    log: list[dict[str, Any]] = []
    run(tmp_path, table, log)
    warnings = [event["message"] for event in log if event.get("level") == "warning"]
    assert warnings and "2.0 years" in warnings[0]


def test_block_is_discoverable() -> None:
    registry = discover(extra_modules=["blocks.library.heatwaves"])
    assert not registry.errors
    found = registry.get("analytics.marine_heatwaves", "1.0.0")
    found.spec.check(known_types())


# ---- bad input -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("table", "params", "message"), [
    (synthetic().rename(columns={"time": "date"}), {}, "series: the table has no 'time' column"),
    (synthetic(), {"column": "temp"}, "column: 'temp' is not in the table; available: time, sst"),
    (synthetic().assign(sst="warm"), {}, "column: the table has no numeric column"),
    (synthetic().assign(sst=np.nan), {}, "column: 'sst' has no valid values (all missing)"),
    (synthetic().iloc[:0], {}, "series: the table has no rows"),
    (synthetic("2021-01-01", "2021-06-30"), {},
     "baseline: no valid values for 184 day(s) of the year (e.g. 01 July)"),
    (synthetic(), {"baseline_start": "2019-01-01", "baseline_end": "2019-10-31"},
     "baseline: no valid values for"),
    (synthetic(), {"baseline_start": "2018-01-01"},
     "baseline_start (2018-01-01) is outside the data; the series covers 2019-01-01 to 2022-12-31"),
    (synthetic(), {"baseline_end": "2023-06-30"},
     "baseline_end (2023-06-30) is outside the data; the series covers 2019-01-01 to 2022-12-31"),
    (synthetic(), {"baseline_start": "2021-01-01", "baseline_end": "2020-01-01"},
     "baseline_start (2021-01-01) must not be after baseline_end (2020-01-01)"),
    (synthetic(), {"smooth_width": 30}, "smooth_width: 30 is even"),
    (synthetic().assign(time=lambda t: t["time"] + "T12:00:00"), {}, "series: the series must be daily"),
    (pd.concat([synthetic(), synthetic().iloc[[5]]]), {},
     "series: the date 2019-01-06 appears more than once"),
    (synthetic().assign(time="someday"), {}, "series: the 'time' column holds values that are not dates"),
])
def test_bad_input_is_explained(tmp_path: Path, table: pd.DataFrame, params: dict[str, Any],
                                message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        run(tmp_path, table, **params)


def test_invalid_parameters_are_rejected_before_running(tmp_path: Path) -> None:
    with pytest.raises(BlockInputError, match="percentile"):
        run(tmp_path, synthetic(), percentile=100)
    with pytest.raises(BlockInputError, match="baseline_start"):
        run(tmp_path, synthetic(), baseline_start="2020-02-30")
