"""Marine heatwave detection after Hobday et al. (2016), with categories after Hobday et al. (2018).

References:

* Hobday, A. J., et al. (2016). A hierarchical approach to defining marine heatwaves. Progress in
  Oceanography 141, 227-238. doi:10.1016/j.pocean.2015.12.014
* Hobday, A. J., et al. (2018). Categorizing and naming marine heatwaves. Oceanography 31(2), 162-173.
  doi:10.5670/oceanog.2018.205
* The published reference implementation, ``detect()`` in ecjoliver/marineHeatWaves (E. Oliver), whose
  conventions (366-day climatological year, index-based pooling window, circular running mean,
  missing days set to the climatology, metrics at the peak day) are followed here. This module is an
  independent vectorised re-implementation; ``tests/blocks/reference_mhw.py`` is a loop-based test
  oracle written from the same definition, and the tests check that both agree event for event.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from blocks.context import StepContext
from blocks.library.cf import column_attrs, difference_attrs, on_scale_attrs, pretty_units, with_columns
from blocks.library.geo import numeric_column, parse_day, table_times
from blocks.spec import TEMPERATURE_NAMES, Port, Quantity, block

FEB29 = 60
"""Day of year of 29 February in the 366-day climatological year (1 March is always day 61)."""
CLIMATOLOGICAL_YEAR = 366
CUMULATIVE_DAYS_LEAP = np.array([0, 31, 60, 91, 121, 152, 182, 213, 244, 274, 305, 335])
"""Days before each month in a leap year: day of a 366-day year = this[month - 1] + day of month."""
CATEGORY_NAMES = ("Moderate", "Strong", "Severe", "Extreme")
"""Hobday et al. (2018) categories I to IV."""
CATEGORY_NUMERALS = ("I", "II", "III", "IV")
RECOMMENDED_BASELINE_YEARS = 3


# ---- input checking ------------------------------------------------------------------------------

def _daily_series(table: pd.DataFrame, column: str | None) -> tuple[pd.Series, str, int]:
    """The chosen column as a float series on a gap-free daily DatetimeIndex, its name, and how many
    dates had to be added (as missing values) to close gaps in the calendar."""
    times = table_times(table, "series")
    name = numeric_column(table, column)
    if not (times == times.normalize()).all():
        raise ValueError("series: the series must be daily (one value per day at 00:00); "
                         "resample it to daily means first (transform.resample)")
    if times.has_duplicates:
        first = times[times.duplicated()][0].strftime("%Y-%m-%d")
        raise ValueError(f"series: the date {first} appears more than once; the series must be daily")
    values = pd.Series(table[name].to_numpy(dtype=np.float64), index=times).sort_index()
    if values.isna().all():
        raise ValueError(f"column: {name!r} has no valid values (all missing)")
    full = pd.date_range(values.index[0], values.index[-1], freq="D")
    added = len(full) - len(values)
    return values.reindex(full), name, added


def _baseline(index: pd.DatetimeIndex, params: dict[str, Any]) -> tuple[int, int]:
    """First and last position of the baseline period, or ValueError naming the data's range."""
    first, last = index[0], index[-1]
    covers = f"the series covers {first:%Y-%m-%d} to {last:%Y-%m-%d}"
    start, end = params.get("baseline_start"), params.get("baseline_end")
    start = first if start is None else parse_day("baseline_start", start)
    end = last if end is None else parse_day("baseline_end", end)
    if start > end:
        raise ValueError(f"baseline_start ({start:%Y-%m-%d}) must not be after baseline_end ({end:%Y-%m-%d})")
    if start < first or start > last:
        raise ValueError(f"baseline_start ({start:%Y-%m-%d}) is outside the data; {covers}")
    if end < first or end > last:
        raise ValueError(f"baseline_end ({end:%Y-%m-%d}) is outside the data; {covers}")
    return index.get_loc(start), index.get_loc(end)


# ---- the method ----------------------------------------------------------------------------------

def day_of_366_year(month: Any, day: Any) -> np.ndarray:
    """Day of the 366-day year from month and day numbers (so it works for any calendar): 1 January = 1,
    29 February = 60, 1 March = 61 in every year, 31 December = 366."""
    return CUMULATIVE_DAYS_LEAP[np.asarray(month) - 1] + np.asarray(day)


def day_of_climatological_year(index: pd.DatetimeIndex) -> np.ndarray:
    """Day of a 366-day year for each date: 1 January = 1, 29 February = 60, 1 March = 61 in every year,
    31 December = 366 (so non-leap years skip 60), as in the reference implementation."""
    return day_of_366_year(index.month, index.day)


def circular_running_mean(values: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average of odd ``width`` over a periodic sequence (the climatological year)."""
    if width <= 1:
        return values.copy()
    half = width // 2
    positions = (np.arange(values.size)[:, None] + np.arange(-half, half + 1)[None, :]) % values.size
    return values[positions].mean(axis=1)


def climatology_and_threshold(
    temp: np.ndarray, doy: np.ndarray, baseline: tuple[int, int], *, percentile: float = 90.0,
    window_half_width: int = 5, smooth_width: int = 31,
) -> tuple[np.ndarray, np.ndarray]:
    """Seasonal climatology and threshold on the 366-day climatological year (index 0 = 1 January).

    Hobday et al. (2016), section 3: for each day of year, all values within ``window_half_width``
    days of that day in every year of the baseline are pooled; the climatology is their mean and the
    threshold their ``percentile`` (linear interpolation between order statistics). The window is
    counted in days of the series around each baseline occurrence of the day, so it may reach a few
    days beyond the baseline's edges when the series has data there (as in the reference). Missing
    values are left out. 29 February is not pooled itself but set to the mean of 28 February and
    1 March; both curves are then smoothed with a circular ``smooth_width``-day running mean.
    Raises ValueError when a day of year has no valid value to pool.
    """
    first, last = baseline
    centres = np.arange(first, last + 1)
    centres = centres[doy[centres] != FEB29]
    offsets = np.arange(-window_half_width, window_half_width + 1)
    window = centres[:, None] + offsets[None, :]
    inside = (window >= 0) & (window < temp.size)
    pooled = np.where(inside, temp[np.clip(window, 0, temp.size - 1)], np.nan)
    # One row per day of year: the windows of all its baseline occurrences side by side.
    day = doy[centres] - 1
    order = np.argsort(day, kind="stable")
    counts = np.bincount(day, minlength=CLIMATOLOGICAL_YEAR)
    rank = np.arange(order.size) - np.repeat(np.cumsum(counts) - counts, counts)
    table = np.full((CLIMATOLOGICAL_YEAR, max(int(counts.max()), 1), offsets.size), np.nan)
    table[day[order], rank] = pooled[order]
    table = table.reshape(CLIMATOLOGICAL_YEAR, -1)
    valid = (~np.isnan(table)).any(axis=1)
    valid[FEB29 - 1] = True
    if not valid.all():
        missing = np.flatnonzero(~valid) + 1
        example = pd.Timestamp("2000-01-01") + pd.Timedelta(days=int(missing[0]) - 1)
        raise ValueError(
            f"baseline: no valid values for {missing.size} day(s) of the year (e.g. {example:%d %B}); "
            f"the baseline must cover every day of the year with data, at least "
            f"{RECOMMENDED_BASELINE_YEARS} years are recommended"
        )
    table[FEB29 - 1] = 0.0  # placeholder, replaced by the 28 Feb / 1 Mar mean below
    seas = np.nanmean(table, axis=1)
    thresh = np.nanpercentile(table, percentile, axis=1)
    for curve in (seas, thresh):
        curve[FEB29 - 1] = 0.5 * (curve[FEB29 - 2] + curve[FEB29])
    return circular_running_mean(seas, smooth_width), circular_running_mean(thresh, smooth_width)


def detect(
    times: pd.DatetimeIndex, temp: np.ndarray, *, baseline: tuple[int, int] | None = None,
    percentile: float = 90.0, window_half_width: int = 5, smooth_width: int = 31, min_duration: int = 5,
    join_gaps: bool = True, max_gap: int = 2,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Marine heatwaves in a gap-free daily series (NaN = missing): ``(events, daily)`` tables.

    A marine heatwave (Hobday et al. 2016) is a period of at least ``min_duration`` days with the
    temperature above the seasonally varying threshold; two heatwaves separated by at most
    ``max_gap`` days are joined into one (the gap belongs to the event). Missing days are set to the
    climatology before detection, so they interrupt events. Intensities are anomalies from the
    climatology; the peak is the first day of largest intensity; ``_rel_thresh`` metrics are relative
    to the threshold and ``_abs`` ones the temperature itself, all taken on the days of the event
    (including joined gap days). Onset and decline rates assume the event starts half a day before
    its first day and ends half a day after its last (one day less, but at least one day, when the
    event touches an end of the series; where the reference divides 0 by 0 for an event whose peak is
    the last day of the series, the decline rate here is 0). Categories (Hobday et al. 2018) count a
    day's anomaly in multiples of (threshold - climatology): 1 to < 2 Moderate (I), 2 to < 3 Strong
    (II), 3 to < 4 Severe (III), 4 or more Extreme (IV); an event's category is that of its most
    intense day in these multiples.
    """
    temp = np.asarray(temp, dtype=np.float64)
    size = temp.size
    doy = day_of_climatological_year(times)
    seas_year, thresh_year = climatology_and_threshold(
        temp, doy, baseline if baseline is not None else (0, size - 1), percentile=percentile,
        window_half_width=window_half_width, smooth_width=smooth_width)
    seas, thresh = seas_year[doy - 1], thresh_year[doy - 1]
    missing = np.isnan(temp)
    filled = np.where(missing, seas, temp)

    # Runs of days above the threshold, kept when long enough, then joined across short gaps.
    above = filled > thresh
    edges = np.diff(np.concatenate(([0], above.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    long_enough = ends - starts + 1 >= min_duration
    starts, ends = starts[long_enough], ends[long_enough]
    if join_gaps and starts.size > 1:
        new_event = np.concatenate(([True], starts[1:] - ends[:-1] - 1 > max_gap))
        last_of_event = np.concatenate((new_event[1:], [True]))
        starts, ends = starts[new_event], ends[last_of_event]

    number = np.zeros(size, dtype=np.int64)
    lengths = ends - starts + 1
    event_days = np.concatenate([np.arange(s, e + 1) for s, e in zip(starts, ends, strict=True)]) \
        if starts.size else np.array([], dtype=np.int64)
    number[event_days] = np.repeat(np.arange(1, starts.size + 1), lengths)

    spread = thresh - seas
    with np.errstate(divide="ignore", invalid="ignore"):
        multiple = (filled - seas) / spread  # anomaly in multiples of (threshold - climatology)
    day_category = np.clip(np.floor(multiple), 1, 4)
    day_category = np.where((number > 0) & above, day_category, np.nan)

    days = pd.DataFrame({
        "event": number[event_days], "position": event_days, "rel_seas": (filled - seas)[event_days],
        "rel_thresh": (filled - thresh)[event_days], "abs": filled[event_days],
        "multiple": multiple[event_days], "category": day_category[event_days],
    })
    grouped = days.groupby("event", sort=True)
    peak = grouped["rel_seas"].idxmax().to_numpy()
    peak_position = days["position"].to_numpy()[peak] if peak.size else np.array([], dtype=np.int64)
    rel_seas = filled - seas
    intensity_max = rel_seas[peak_position]

    # Onset and decline rates (the reference's half-day convention).
    peak_offset = peak_position - starts
    before = np.where(starts > 0, rel_seas[np.maximum(starts - 1, 0)], np.nan)
    onset_from = np.where(starts > 0, 0.5 * (rel_seas[starts] + before), rel_seas[starts])
    onset_time = np.where(starts > 0, peak_offset + 0.5, np.maximum(peak_offset, 1))
    after = np.where(ends < size - 1, rel_seas[np.minimum(ends + 1, size - 1)], np.nan)
    decline_to = np.where(ends < size - 1, 0.5 * (rel_seas[ends] + after), rel_seas[ends])
    decline_time = np.where(ends < size - 1, ends - peak_position + 0.5,
                            np.maximum(ends - peak_position, 1))

    best = grouped["multiple"].max().to_numpy()
    category_number = np.clip(np.floor(best), 1, 4).astype(np.int64) if best.size \
        else np.array([], dtype=np.int64)
    iso = times.strftime("%Y-%m-%d").to_numpy(dtype=object)
    days["missing"] = missing[event_days]
    counts = {f"days_{name.lower()}": (days["category"] == level).groupby(days["event"]).sum()
              .to_numpy(dtype=np.int64) for level, name in enumerate(CATEGORY_NAMES, start=1)}

    events = pd.DataFrame({
        "event": np.arange(1, starts.size + 1, dtype=np.int64),
        "start": iso[starts] if starts.size else np.array([], dtype=object),
        "end": iso[ends] if starts.size else np.array([], dtype=object),
        "peak": iso[peak_position] if starts.size else np.array([], dtype=object),
        "duration_days": lengths.astype(np.int64),
        "intensity_max": intensity_max,
        "intensity_mean": grouped["rel_seas"].mean().to_numpy(),
        "intensity_var": grouped["rel_seas"].std(ddof=0).to_numpy(),
        "intensity_cumulative": grouped["rel_seas"].sum().to_numpy(),
        "intensity_max_rel_thresh": (filled - thresh)[peak_position],
        "intensity_mean_rel_thresh": grouped["rel_thresh"].mean().to_numpy(),
        "intensity_cumulative_rel_thresh": grouped["rel_thresh"].sum().to_numpy(),
        "intensity_max_abs": filled[peak_position],
        "intensity_mean_abs": grouped["abs"].mean().to_numpy(),
        "intensity_max_norm": multiple[peak_position],
        "rate_onset": (intensity_max - onset_from) / onset_time,
        "rate_decline": (intensity_max - decline_to) / decline_time,
        "category": [f"{CATEGORY_NUMERALS[n - 1]} {CATEGORY_NAMES[n - 1]}" for n in category_number],
        "category_number": category_number,
        **counts,
        "missing_days": days["missing"].groupby(days["event"]).sum().to_numpy(dtype=np.int64),
    })

    labels = np.array([""] + [f"{numeral} {name}" for numeral, name in
                              zip(CATEGORY_NUMERALS, CATEGORY_NAMES, strict=True)], dtype=object)
    level = np.nan_to_num(day_category, nan=0).astype(np.int64)
    daily = pd.DataFrame({
        "time": iso,
        "temperature": temp,
        "climatology": seas,
        "threshold": thresh,
        "event": pd.array(np.where(number > 0, number, None), dtype="Int64"),
        "category": labels[level],
        "category_number": pd.array(np.where(level > 0, level, None), dtype="Int64"),
    })
    return events, daily


# ---- the block -----------------------------------------------------------------------------------

def heatwave_columns(events: pd.DataFrame, daily: pd.DataFrame, source: dict[str, str]
                     ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The heatwave tables with CF attributes per column, in the units of the temperature ``source``
    (its column attributes): temperatures on the scale, intensities and rates as differences."""
    units = source.get("units", "")

    def scaled(suffix: str) -> str | None:
        return f"{units} {suffix}" if units else None

    on_scale = {
        "temperature": on_scale_attrs(source),
        "climatology": on_scale_attrs({k: v for k, v in source.items() if k != "long_name"},
                                      "climatological mean temperature for the day of the year"),
        "threshold": on_scale_attrs({k: v for k, v in source.items() if k != "long_name"},
                                    "percentile threshold temperature for the day of the year"),
        "intensity_max_abs": on_scale_attrs(source, "temperature at the peak of the event"),
        "intensity_mean_abs": on_scale_attrs(source, "mean temperature over the event"),
    }
    differences = {
        "intensity_max": difference_attrs(source, "peak temperature above the climatology"),
        "intensity_mean": difference_attrs(source, "mean temperature above the climatology"),
        "intensity_var": difference_attrs(source, "standard deviation of the temperature above the "
                                                  "climatology"),
        "intensity_cumulative": difference_attrs(source, "temperature above the climatology summed over "
                                                         "the event", scaled("day")),
        "intensity_max_rel_thresh": difference_attrs(source, "peak temperature above the threshold"),
        "intensity_mean_rel_thresh": difference_attrs(source, "mean temperature above the threshold"),
        "intensity_cumulative_rel_thresh": difference_attrs(
            source, "temperature above the threshold summed over the event", scaled("day")),
        "rate_onset": difference_attrs(source, "rate of warming to the peak", scaled("day-1")),
        "rate_decline": difference_attrs(source, "rate of cooling after the peak", scaled("day-1")),
    }
    counts = {"duration_days": {"units": "day", "long_name": "duration of the event"},
              "intensity_max_norm": {"units": "1", "long_name": "peak intensity in multiples of "
                                                               "(threshold - climatology)"}}
    return (with_columns(events, {**on_scale, **differences, **counts}),
            with_columns(daily, {name: on_scale[name] for name in ("temperature", "climatology",
                                                                     "threshold")}))


@block(
    id="analytics.marine_heatwaves",
    version="1.0.0",
    title="Marine heatwaves (Hobday et al.)",
    category="analytics",
    inputs=(Port("series", "table", "Daily temperature series",
                 "A table with a 'time' column (one row per day) and a temperature column, e.g. sst.",
                 quantity=Quantity(kind="temperature", standard_names=TEMPERATURE_NAMES, difference_ok=True,
                                   params=("column",), real_dates=True)),),
    outputs=(
        Port("events", "table", "Heatwave events",
             "One row per marine heatwave: dates, duration, intensities and category."),
        Port("daily", "table", "Daily detection",
             "One row per day: temperature, climatology, threshold, event number and category."),
    ),
    parameters={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "column": {"type": "string", "minLength": 1, "title": "Temperature column",
                       "description": "Column holding the temperature (°C). Empty: the first numeric "
                                      "column."},
            "baseline_start": {"type": "string", "format": "date", "title": "Baseline start",
                               "description": "First day of the baseline (reference) period, YYYY-MM-DD. "
                                              "Empty: the start of the series."},
            "baseline_end": {"type": "string", "format": "date", "title": "Baseline end",
                             "description": "Last day of the baseline period, YYYY-MM-DD. Empty: the end "
                                            "of the series. Hobday et al. recommend 30 years; at least "
                                            "3 are advised."},
            "percentile": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 100,
                           "default": 90, "title": "Threshold percentile",
                           "description": "A day is unusually warm when its temperature exceeds this "
                                          "percentile of the baseline values for that time of year."},
            "window_half_width": {"type": "integer", "minimum": 0, "maximum": 60, "default": 5,
                                  "title": "Window half-width (days)",
                                  "description": "Values within this many days either side of a day of "
                                                 "the year are pooled (5 gives an 11-day window)."},
            "smooth_width": {"type": "integer", "minimum": 0, "maximum": 365, "default": 31,
                             "title": "Smoothing window (days)",
                             "description": "Width of the running mean that smooths climatology and "
                                            "threshold over the year; an odd number, 0 for none."},
            "min_duration": {"type": "integer", "minimum": 1, "maximum": 365, "default": 5,
                             "title": "Minimum duration (days)",
                             "description": "Shortest run of warm days that counts as a heatwave."},
            "join_gaps": {"type": "boolean", "default": True, "title": "Join across short gaps",
                          "description": "Join two heatwaves separated by a short cooler gap into one."},
            "max_gap": {"type": "integer", "minimum": 0, "maximum": 60, "default": 2,
                        "title": "Longest gap joined (days)",
                        "description": "Heatwaves separated by at most this many days are joined."},
        },
    },
)
def marine_heatwaves(ctx: StepContext, inputs: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """Find marine heatwaves in a daily temperature series, with the standard definition of
    Hobday et al. (2016) and the categories of Hobday et al. (2018).

    **What goes in:** a table with a `time` column (one row per day, e.g. the output of
    *Area mean time series*) and a temperature column (`column`, default the first numeric column),
    in °C or any other temperature units: the results are in the units recorded for that column (a
    series in °F gives intensities in °F), and say so in their column metadata. Missing days are
    allowed: they are treated as ordinary (climatological) days and so never belong to a heatwave,
    except inside a joined gap.

    **Method:** over a baseline period (default the whole series; at least 3 years advised, 30 in the
    paper) the block computes, for each day of the year, the normal temperature (*climatology*: the mean
    of all baseline values within ±5 days of that date) and an unusually warm level (*threshold*: the
    90th percentile of the same values); both are smoothed with a 31-day running mean over the year.
    29 February gets the average of 28 February and 1 March. A **marine heatwave** is a run of at least
    5 days warmer than the threshold; two heatwaves with a gap of 2 days or less between them count as
    one. This follows the published reference implementation of the definition (E. Oliver,
    *marineHeatWaves*), checked event by event in the tests.

    **What comes out:**

    * `events`: one row per heatwave: `start`, `end` and `peak` dates, `duration_days`; intensities
      relative to the climatology in the series' units (e.g. °C): `intensity_max` (at the peak),
      `intensity_mean`, `intensity_var` (standard deviation) and `intensity_cumulative` (e.g.
      °C·days); the same relative to the threshold (`_rel_thresh`) and as temperatures (`_abs`);
      `intensity_max_norm`, the peak intensity in multiples of (threshold − climatology); `rate_onset`
      and `rate_decline` (e.g. °C/day);
      `category` after Hobday et al. (2018): **I Moderate** (1-2 times the threshold's distance above
      normal), **II Strong** (2-3), **III Severe** (3-4), **IV Extreme** (4 or more), taken on the event's
      most intense day in those multiples, with `category_number` 1-4 and the number of days in each
      category (`days_moderate` ...); `missing_days` inside the event.
    * `daily`: one row per day: `temperature`, `climatology`, `threshold`, `event` (number, empty
      outside heatwaves) and the day's `category` (empty on days that are not heatwave days above the
      threshold).

    **References:** Hobday et al. (2016), *Progress in Oceanography* 141, 227-238,
    doi:10.1016/j.pocean.2015.12.014; Hobday et al. (2018), *Oceanography* 31(2), 162-173,
    doi:10.5670/oceanog.2018.205.
    """
    smooth = int(params["smooth_width"])
    if smooth > 1 and smooth % 2 == 0:
        raise ValueError(f"smooth_width: {smooth} is even; use an odd number of days (e.g. 31), or 0 for "
                         "no smoothing")
    series, name, added = _daily_series(inputs["series"], params.get("column"))
    if added:
        ctx.log(f"{added} missing date(s) were added to the calendar as missing values")
    first, last = _baseline(series.index, params)
    years = (last - first + 1) / 365.25
    if years < RECOMMENDED_BASELINE_YEARS:
        ctx.log(f"the baseline covers only {years:.1f} years; at least {RECOMMENDED_BASELINE_YEARS} years "
                "(30 in Hobday et al. 2016) are recommended for a robust threshold", level="warning")
    ctx.progress(0.2, f"computing the climatology of {name!r}")
    events, daily = detect(
        series.index, series.to_numpy(), baseline=(first, last), percentile=float(params["percentile"]),
        window_half_width=int(params["window_half_width"]), smooth_width=smooth,
        min_duration=int(params["min_duration"]), join_gaps=bool(params["join_gaps"]),
        max_gap=int(params["max_gap"]),
    )
    source = column_attrs(inputs["series"], name)
    if not source.get("units"):
        ctx.log(f"column {name!r} has no recorded units; intensities are in the units of its values",
                level="warning")
    events, daily = heatwave_columns(events, daily, source)
    shown = pretty_units(source.get("units", ""))
    ctx.log(f"{len(events)} marine heatwave(s) found in {name!r}{f' ({shown})' if shown else ''}, "
            f"{daily['time'].iloc[0]} to {daily['time'].iloc[-1]}")
    ctx.progress(1.0, f"{len(events)} heatwave(s)")
    return {"events": events, "daily": daily}
