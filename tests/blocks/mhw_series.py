"""Synthetic daily SST series with planted warm runs, shared by the marine-heatwave tests."""

import math

import numpy as np
import pandas as pd


def synthetic(start: str = "2019-01-01", end: str = "2022-12-31", seed: int = 3) -> pd.DataFrame:
    times = pd.date_range(start, end, freq="D")
    rng = np.random.default_rng(seed)
    phase = 2 * np.pi * (times.day_of_year.to_numpy() - 60) / 365.25
    values = 15.0 - 5.0 * np.cos(phase) + 0.5 * rng.standard_normal(times.size)
    return pd.DataFrame({"time": times.strftime("%Y-%m-%d"), "sst": values})


def seasonal(table: pd.DataFrame, day: str) -> float:
    d = pd.Timestamp(day)
    return 15.0 - 5.0 * math.cos(2 * math.pi * (d.day_of_year - 60) / 365.25)


def plant(table: pd.DataFrame, first: str, days: int, warm: float = 4.0) -> None:
    """Make ``days`` days from ``first`` very warm and the day before and after cold, so the run is exact."""
    times = pd.DatetimeIndex(table["time"])
    start = times.get_loc(pd.Timestamp(first))
    for k in range(start - 1, start + days + 1):
        if 0 <= k < len(table):
            inside = start <= k < start + days
            table.loc[k, "sst"] = seasonal(table, table.loc[k, "time"]) + (warm if inside else -3.0)


def coldify(table: pd.DataFrame) -> None:
    """Remove accidental warm runs: clip noise so nothing but planted runs can exceed the threshold."""
    base = np.array([seasonal(table, day) for day in table["time"]])
    table["sst"] = np.minimum(table["sst"], base + 0.3)
