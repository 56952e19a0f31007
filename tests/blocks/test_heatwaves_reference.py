"""analytics.marine_heatwaves against the published reference implementation, event for event.

The reference is Hobday/Oliver's ``marineHeatWaves.detect`` as shipped (numba-optimised) in Mercator
Ocean's mhw-detect 0.2.3, run in its own interpreter (tests/reference/). Its kernel works on float32
temperatures, so both sides get the same float32-representable values; dates, durations and
categories must be identical, intensities equal to float32 precision.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from blocks.library.demo_data import make_demo_dataset
from blocks.library.heatwaves import marine_heatwaves
from blocks.library.ocean import area_mean
from tests.blocks.mhw_series import coldify, plant, synthetic
from tests.blocks.sample_blocks import call
from tests.reference.mhw import detect_options, reference_events

# Block column → reference field, compared within TOLERANCE (°C, °C·days, °C/day).
FLOAT_FIELDS = {
    "intensity_max": "intensity_max", "intensity_mean": "intensity_mean", "intensity_var": "intensity_var",
    "intensity_cumulative": "intensity_cumulative", "intensity_max_rel_thresh": "intensity_max_relThresh",
    "intensity_mean_rel_thresh": "intensity_mean_relThresh",
    "intensity_cumulative_rel_thresh": "intensity_cumulative_relThresh",
    "intensity_max_abs": "intensity_max_abs", "intensity_mean_abs": "intensity_mean_abs",
    "rate_onset": "rate_onset", "rate_decline": "rate_decline",
}
EXACT_FIELDS = {
    "duration_days": "duration", "category_number": "category", "days_moderate": "duration_moderate",
    "days_strong": "duration_strong", "days_severe": "duration_severe", "days_extreme": "duration_extreme",
}
# float32 temperatures (~1e-6 relative at 20 °C) summed over an event of up to ~30 days.
TOLERANCE = 2e-4


def float32_series(table: pd.DataFrame, column: str = "sst") -> pd.DataFrame:
    table = table.copy()
    table[column] = table[column].astype(np.float32).astype(float)
    return table


def natural_series(seed: int, years: int = 12) -> pd.DataFrame:
    """A long series with red (AR(1)) noise: many natural events of every length, no planting."""
    times = pd.date_range("2010-01-01", periods=int(365.25 * years), freq="D")
    rng = np.random.default_rng(seed)
    noise = np.zeros(times.size)
    for k in range(1, times.size):
        noise[k] = 0.85 * noise[k - 1] + 0.3 * rng.standard_normal()
    phase = 2 * np.pi * (times.day_of_year.to_numpy() - 60) / 365.25
    values = 18.0 - 4.0 * np.cos(phase) + 0.02 * np.arange(times.size) / 365.25 + noise
    return pd.DataFrame({"time": times.strftime("%Y-%m-%d"), "sst": values})


def edge_case_series() -> pd.DataFrame:
    table = synthetic()
    coldify(table)
    for first, days in (("2019-01-01", 7), ("2019-06-01", 5), ("2019-07-01", 4), ("2020-02-26", 6),
                        ("2020-05-01", 5), ("2020-05-08", 5), ("2021-05-01", 5), ("2021-05-09", 5),
                        ("2021-08-01", 6), ("2021-08-09", 3), ("2021-08-14", 6), ("2022-12-25", 7)):
        plant(table, first, days)
    plant(table, "2021-06-10", 8, warm=12.0)  # strong enough for category III/IV
    return table


def gappy_series() -> pd.DataFrame:
    table = synthetic(seed=5)
    coldify(table)
    plant(table, "2020-07-01", 12)
    table.loc[table["time"] == "2020-07-06", "sst"] = np.nan
    plant(table, "2021-07-01", 5)
    plant(table, "2021-07-08", 5)
    table.loc[table["time"] == "2021-07-06", "sst"] = np.nan
    table.loc[table["time"].between("2019-03-01", "2019-03-20"), "sst"] = np.nan
    return table


@pytest.fixture(scope="module")
def demo_series(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    scratch = tmp_path_factory.mktemp("demo")
    return call(area_mean, {"dataset": make_demo_dataset()}, {"variable": "sst"}, scratch)["table"]


def cases(demo: pd.DataFrame) -> list[tuple[str, pd.DataFrame, dict[str, Any]]]:
    """(name, series, block parameters) for every comparison; one reference process runs them all."""
    options = {"percentile": 80.0, "window_half_width": 3, "smooth_width": 15, "min_duration": 3,
               "join_gaps": False, "max_gap": 2}
    return [
        ("demo", demo.rename(columns={demo.columns[1]: "sst"}), {}),
        ("edge cases", edge_case_series(), {}),
        ("missing values", gappy_series(), {}),
        ("natural, defaults", natural_series(seed=1), {}),
        ("natural, 2 baseline years, options", natural_series(seed=2),
         {**options, "baseline_start": "2012-01-01", "baseline_end": "2013-12-31"}),
        ("natural, unsmoothed, gaps of 4 joined", natural_series(seed=3), {"smooth_width": 0, "max_gap": 4}),
    ]


def reference_options(params: dict[str, Any]) -> dict[str, Any]:
    params = dict(params)
    start, end = params.pop("baseline_start", None), params.pop("baseline_end", None)
    years = (int(start[:4]), int(end[:4])) if start and end else None
    return detect_options(**params, baseline_years=years)


def assert_same_events(name: str, events: pd.DataFrame, expected: list[dict]) -> None:
    got_spans = list(zip(events["start"], events["end"], strict=True))
    want_spans = [(date.fromordinal(int(e["time_start"])).isoformat(),
                   date.fromordinal(int(e["time_end"])).isoformat()) for e in expected]
    assert got_spans == want_spans, name
    for (_, got), want in zip(events.iterrows(), expected, strict=True):
        where = f"{name}, event {got['start']}"
        assert got["peak"] == date.fromordinal(int(want["time_peak"])).isoformat(), where
        for column, field in EXACT_FIELDS.items():
            assert got[column] == want[field], (where, column, got[column], want[field])
        for column, field in FLOAT_FIELDS.items():
            assert got[column] == pytest.approx(want[field], abs=TOLERANCE), (where, column)


def test_events_agree_with_the_published_reference(tmp_path: Path, demo_series: pd.DataFrame) -> None:
    runs = []
    for name, table, params in cases(demo_series):
        table = float32_series(table)
        result = call(marine_heatwaves, {"series": table}, params, tmp_path)
        days = [date.fromisoformat(day) for day in table["time"]]
        runs.append((name, result["events"], (days, table["sst"].tolist(), reference_options(params))))
    expected = reference_events([case for _, _, case in runs])
    total = 0
    for (name, events, _), want in zip(runs, expected, strict=True):
        assert_same_events(name, events, want)
        total += len(want)
    # The comparison covers many events, including joined ones and every category up to III.
    assert total >= 60
    assert any(event["category"] >= 3 for case in expected for event in case)
