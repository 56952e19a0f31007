"""Analytics blocks: climatology and anomalies, trends, model skill and current statistics."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from blocks.context import StepContext
from blocks.library.cf import column_attrs, difference_attrs, on_scale_attrs, speed_factor, with_columns
from blocks.library.geo import (
    column_list,
    find_coord,
    iso_times,
    numeric_columns,
    parse_day,
    require_variables,
    table_times,
    with_history,
)
from blocks.library.heatwaves import CLIMATOLOGICAL_YEAR, FEB29, day_of_366_year
from blocks.spec import SEA_WATER_VELOCITY_NAMES, Derived, Port, Quantity, block

DAYS_PER_YEAR = 365.2425
TIME_STEPS_PER_CHUNK = 120
"""Gridded data are read this many time steps at a time, to bound memory and report progress."""
MAX_THEIL_SEN_POINTS = 5000
"""Longer series are averaged to monthly means before the Theil-Sen / Mann-Kendall trend (the pairwise
method needs memory growing with the square of the length)."""
SPEED_BIN_M_S = 0.001
"""Histogram bin for percentiles of speed over large areas (exact values are used up to EXACT_LIMIT)."""
EXACT_LIMIT = 20_000_000


# ---- shared helpers ------------------------------------------------------------------------------

def _grouped_mean(variable: xr.DataArray, time: str, positions: np.ndarray, key: np.ndarray,
                  size: int) -> np.ndarray:
    """Mean over time of ``variable`` (time first) at ``positions``, per group ``key`` (0..size-1),
    ignoring NaN; read TIME_STEPS_PER_CHUNK steps at a time. Groups without data are NaN."""
    shape = (size, *variable.shape[1:])
    sums, counts = np.zeros(shape), np.zeros(shape)
    for first in range(0, positions.size, TIME_STEPS_PER_CHUNK):
        chosen = positions[first:first + TIME_STEPS_PER_CHUNK]
        values = variable.isel({time: chosen}).values.astype(np.float64)
        valid = ~np.isnan(values)
        np.add.at(sums, key[chosen], np.where(valid, values, 0.0))
        np.add.at(counts, key[chosen], valid)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def _circular_running_mean(values: np.ndarray, width: int) -> np.ndarray:
    """Centred running mean of odd ``width`` along axis 0, which is periodic (the climatological year)."""
    if width <= 1:
        return values
    half = width // 2
    wrapped = np.concatenate([values[-half:], values, values[:half]], axis=0)
    total = np.cumsum(np.concatenate([np.zeros((1, *values.shape[1:])), wrapped], axis=0), axis=0)
    return (total[width:] - total[:-width]) / width


# ---- analytics.climatology -----------------------------------------------------------------------

GREGORIAN_LIKE = ("standard", "gregorian", "proleptic_gregorian", "julian", "noleap", "365_day")
"""Calendars whose years have 365 days and, in some, a 29 February: days are placed in a 366-day year."""
ALL_LEAP = ("all_leap", "366_day")
"""Calendars where every year has a 29 February, so it has its own normal value."""
THIRTY_DAY_MONTHS = ("360_day",)
CALENDARS = (*GREGORIAN_LIKE, *ALL_LEAP, *THIRTY_DAY_MONTHS)


def _calendar(dataset: xr.Dataset, time: str) -> str:
    """The CF calendar of the time axis (lower case); ValueError naming it when it is not supported."""
    if np.issubdtype(dataset[time].dtype, np.datetime64):
        return "proleptic_gregorian"
    calendar = str(dataset[time].dt.calendar).lower()
    if calendar not in CALENDARS:
        raise ValueError(f"dataset: the time axis uses the calendar {calendar!r}, for which climatologies "
                         f"are not supported; supported calendars: {', '.join(CALENDARS)}")
    return calendar


def _calendar_day(parameter: str, value: str | None, calendar: str, index: pd.Index) -> Any:
    """The date ``value`` (YYYY-MM-DD) as a time comparable with ``index`` (numpy or cftime), or None."""
    if not value:
        return None
    day = parse_day(parameter, value)
    if isinstance(index, pd.DatetimeIndex):
        return day
    import cftime

    try:
        return cftime.datetime(day.year, day.month, day.day, calendar=calendar)
    except ValueError:
        raise ValueError(f"{parameter}: {value} does not exist in the {calendar} calendar of the "
                         "dataset") from None


def _day_of_year_key(calendar: str, month: np.ndarray, day: np.ndarray) -> tuple[int, np.ndarray]:
    """Size of the climatological year and the 0-based day of each time in it, for ``calendar``.

    A 360-day year (twelve 30-day months) has its own 360 days; every other calendar uses the 366-day
    year in which 1 March is always day 61, so a day keeps its date whether the year is leap or not.
    """
    if calendar in THIRTY_DAY_MONTHS:
        return 360, (np.asarray(month) - 1) * 30 + np.asarray(day) - 1
    return CLIMATOLOGICAL_YEAR, day_of_366_year(month, day) - 1


def _climatological_time(dim: str, size: int, calendar: str, base_times: pd.Index, time: str,
                         time_attrs: dict[str, Any]) -> dict[str, Any]:
    """CF 1.11 §7.4 climatological time along ``dim``: the middle of each day (or month) in the first
    baseline year, with ``climatology`` bounds from its start in the first year to its end in the last.

    The 366-day climatological year is an ``all_leap`` year (every day, 29 February included, has a
    date); a 360-day one stays ``360_day``; monthly climatologies keep the data's calendar.
    """
    import cftime

    first_year, last_year = int(base_times.min().year), int(base_times.max().year)
    if dim == "month":
        reference = calendar
        slots = [(month, 1) for month in range(1, 13)]
    elif size == 360:
        reference = "360_day"
        slots = [(k // 30 + 1, k % 30 + 1) for k in range(360)]
    else:
        reference = "all_leap"
        slots = [(day.month, day.day) for day in pd.date_range("2000-01-01", "2000-12-31", freq="D")]

    def at(year: int, slot: int) -> Any:
        """Start of climatological slot number ``slot`` in ``year`` (slot len(slots): next 1 January)."""
        if slot == len(slots):
            return cftime.datetime(year + 1, 1, 1, calendar=reference)
        return cftime.datetime(year, *slots[slot], calendar=reference)

    lower = [at(first_year, k) for k in range(len(slots))]
    upper = [at(last_year, k + 1) for k in range(len(slots))]
    middle = [at(first_year, k) + (at(first_year, k + 1) - at(first_year, k)) / 2 for k in range(len(slots))]
    encoding = {"units": f"days since {first_year:04d}-01-01", "calendar": reference}
    attrs = {"standard_name": "time", "long_name": "climatological time", "climatology": "climatology_bounds",
             **{key: value for key, value in time_attrs.items() if key == "axis"}}
    return {time: xr.Variable(dim, np.array(middle, dtype=object), attrs, encoding),
            "climatology_bounds": xr.Variable((dim, "nv"), np.array([lower, upper], dtype=object).T,
                                              {}, dict(encoding))}


def anomaly_attrs(attrs: dict[str, Any], name: str, period: str, base: str) -> dict[str, Any]:
    """Attributes of the anomaly of a variable with ``attrs``: the same units, a long name saying
    'anomaly', no standard name (the field's name does not describe its departures) and, for a
    temperature, CF 1.11 ``units_metadata: temperature: difference``."""
    kept = {key: value for key, value in attrs.items()
            if key not in ("standard_name", "long_name", "units_metadata", "valid_min", "valid_max",
                           "valid_range", "actual_range", "cell_methods", "comment")}
    long_name = f"{attrs.get('long_name', name)} anomaly"
    return {**kept, **difference_attrs(attrs, long_name),
            "comment": f"departure from the {period.replace('_', ' ')} climatology of {base}"}

def _climatology_variables(dataset: xr.Dataset, time: str, variable: str | None) -> list[str]:
    known = [str(name) for name in dataset.data_vars]
    if variable:
        require_variables(dataset, [variable], "variable")
        if time not in dataset[variable].dims:
            raise ValueError(f"variable: {variable!r} has no time dimension; dimensions: "
                             f"{', '.join(map(str, dataset[variable].dims))}")
        if not np.issubdtype(dataset[variable].dtype, np.number):
            raise ValueError(f"variable: {variable!r} holds {dataset[variable].dtype} values, not numbers")
        return [variable]
    chosen = [name for name in known
              if time in dataset[name].dims and np.issubdtype(dataset[name].dtype, np.number)]
    if not chosen:
        raise ValueError(f"variable: the dataset has no numeric variable with a time dimension; "
                         f"variables: {', '.join(known) or 'none'}")
    return chosen


@block(
    id="analytics.climatology",
    version="1.0.0",
    title="Climatology and anomalies",
    category="analytics",
    inputs=(Port("dataset", "dataset", "Dataset", "A dataset with a time dimension (gridded or not)."),),
    outputs=(
        Port("climatology", "dataset", "Climatology",
             "The normal value for each day of the year (or month) over the baseline period.",
             quantity=Derived(from_port="dataset", keep="variable")),
        Port("anomalies", "dataset", "Anomalies",
             "The data minus the climatology of its day of the year (or month), at every time.",
             quantity=Derived(from_port="dataset", keep="variable", op="anomaly")),
    ),
    parameters={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "variable": {"type": "string", "minLength": 1, "title": "Variable",
                         "description": "Variable to analyse, e.g. sst. Empty: every numeric variable "
                                        "with a time dimension."},
            "baseline_start": {"type": "string", "format": "date", "title": "Baseline start",
                               "description": "First day of the reference period, YYYY-MM-DD. Empty: the "
                                              "start of the data."},
            "baseline_end": {"type": "string", "format": "date", "title": "Baseline end",
                             "description": "Last day of the reference period, YYYY-MM-DD. Empty: the end "
                                            "of the data."},
            "period": {"type": "string", "enum": ["day_of_year", "month"], "default": "day_of_year",
                       "title": "Climatology per",
                       "description": "A normal value for each day of the year or for each calendar "
                                      "month."},
            "smooth_days": {"type": "integer", "minimum": 0, "maximum": 365, "default": 31,
                            "title": "Smoothing window (days)",
                            "description": "Day-of-year climatologies are smoothed with a running mean "
                                           "of this many days (odd), wrapping around the new year; "
                                           "0: no smoothing. Not used for monthly climatologies."},
        },
    },
)
def climatology(ctx: StepContext, inputs: dict[str, Any], params: dict[str, Any]) -> dict[str, xr.Dataset]:
    """Compute the normal seasonal cycle of a variable over a reference period, and the departure from
    normal (anomaly) at every time.

    **What goes in:** a dataset with a time dimension (gridded, or a time series at points), the
    variable (default: every numeric variable with a time dimension), the baseline period (default:
    all the data) and whether the climatology is per day of the year or per calendar month.

    **What comes out:**

    * `climatology`: for each day of the year (dimension `dayofyear`, 1-366, or 1-360 in a 360-day
      calendar) or month (`month`, 1-12), the mean over all baseline years, with the same grid, units
      and descriptions as the input.
    * `anomalies`: the input minus the climatology of the corresponding day or month, over the
      **whole** period of the input (not only the baseline), in the same units.

    **Method:** the mean of all baseline values falling on each calendar day (or month), ignoring
    missing values. Day-of-year climatologies use a 366-day calendar in which 1 March is always day
    61; **29 February** gets the average of the 28 February and 1 March climatologies (so leap days
    neither lack a normal value nor rest on a quarter of the samples), as in the reference marine
    heatwave code of Hobday et al. (2016). Daily values are noisy with few years, so the day-of-year
    climatology is then smoothed with a 31-day running mean that wraps around the new year
    (`smooth_days`, 0 to switch off). Large datasets are processed in pieces and not held in memory.

    **Calendars:** model output in any CF calendar works: `standard`/`gregorian`,
    `proleptic_gregorian`, `julian` and `noleap`/`365_day` use the 366-day year above; in
    `all_leap`/`366_day` every year has a 29 February, which then gets its own mean; `360_day` (twelve
    30-day months) gets a 360-day climatology. Baseline dates must exist in the dataset's calendar.

    **CF metadata:** the climatology is a CF climatology (CF 1.11 §7.4): a climatological `time`
    coordinate along `dayofyear` (or `month`) with `climatology_bounds` from the first to the last
    baseline year, and `cell_methods` such as `time: mean within days time: mean over years`.
    Anomalies keep the units, drop the `standard_name` (it names the field, not its departures), have
    a `long_name` ending in "anomaly" and, for temperatures, `units_metadata: temperature:
    difference`, so converting them to kelvin keeps 0.5 °C as 0.5 K.
    """
    source = inputs["dataset"]
    time = find_coord(source, "time")
    if time is None:
        raise ValueError("dataset: no time coordinate found (looked for 'time' or standard_name 'time')")
    names = _climatology_variables(source, time, params.get("variable"))
    period, smooth = params["period"], int(params["smooth_days"])
    if period == "day_of_year" and smooth > 1 and smooth % 2 == 0:
        raise ValueError(f"smooth_days: {smooth} is even; use an odd number of days (e.g. 31), or 0")
    if source.sizes[time] == 0:
        raise ValueError("dataset: the time dimension is empty")
    calendar = _calendar(source, time)
    index = source.indexes[time]
    first, last = index.min(), index.max()
    covers = f"the data covers {iso_times([first])[0][:10]} to {iso_times([last])[0][:10]}"
    start = _calendar_day("baseline_start", params.get("baseline_start"), calendar, index)
    end = _calendar_day("baseline_end", params.get("baseline_end"), calendar, index)
    if start is not None and end is not None and start > end:
        raise ValueError(f"baseline_start ({params['baseline_start']}) must not be after baseline_end "
                         f"({params['baseline_end']})")
    day_of_first = first.replace(hour=0, minute=0, second=0, microsecond=0)
    if start is not None and not (day_of_first <= start <= last):
        raise ValueError(f"baseline_start ({params['baseline_start']}) is outside the data; {covers}")
    if end is not None and not (day_of_first <= end <= last):
        raise ValueError(f"baseline_end ({params['baseline_end']}) is outside the data; {covers}")

    month = source[time].dt.month.values
    if period == "day_of_year":
        dim = "dayofyear"
        size, key = _day_of_year_key(calendar, month, source[time].dt.day.values)
    else:
        dim, size, key = "month", 12, np.asarray(month) - 1
    chosen_times = np.ones(index.size, dtype=bool)
    if start is not None:
        chosen_times &= np.asarray(index >= start)
    if end is not None:
        chosen_times &= np.asarray(index < end + timedelta(days=1))
    positions = np.flatnonzero(chosen_times)
    base_times = index[positions]
    base = f"{iso_times([base_times.min()])[0][:10]} to {iso_times([base_times.max()])[0][:10]}"
    present = set(np.unique(key[positions]).tolist())
    interpolated_feb29 = dim == "dayofyear" and size == CLIMATOLOGICAL_YEAR and calendar not in ALL_LEAP
    expected = set(range(size)) - ({FEB29 - 1} if interpolated_feb29 else set())
    if not expected <= present:
        lacking = sorted(expected - present)
        what = "days of the year" if dim == "dayofyear" else "months"
        raise ValueError(
            f"baseline: {len(lacking)} {what} have no data in the baseline period (e.g. {lacking[0] + 1}); "
            f"the baseline must cover at least one full year; {covers}")

    means = {}
    for number, name in enumerate(names):
        variable = source[name].transpose(time, ...)
        means[name] = _grouped_mean(variable, time, positions, key, size)
        if np.isnan(means[name]).all():
            raise ValueError(f"variable: {name!r} has no valid values (all missing) in the baseline period")
        if interpolated_feb29:
            means[name][FEB29 - 1] = 0.5 * (means[name][FEB29 - 2] + means[name][FEB29])
        if dim == "dayofyear":
            means[name] = _circular_running_mean(means[name], smooth)
        ctx.progress(0.1 + 0.5 * (number + 1) / len(names), f"climatology of {name}")
    chosen = ", ".join(f"{k}={params[k]}" for k in sorted(params) if params.get(k) is not None)
    if dim == "month":
        label = "calendar month"
    elif size == CLIMATOLOGICAL_YEAR:
        label = "day of year (366-day calendar, 1 March = 61)"
    else:
        label = "day of year (360-day calendar, 30 days a month)"
    clim = xr.Dataset(coords={dim: (dim, np.arange(1, size + 1), {"long_name": label})})
    clim = clim.assign_coords(_climatological_time(dim, size, calendar, base_times, time,
                                                   source[time].attrs))
    within = "days" if dim == "dayofyear" else "months"
    anomalies = xr.Dataset()
    for name in names:
        variable = source[name].transpose(time, ...)
        others = variable.dims[1:]
        coords = {c: value for c, value in source[name].coords.items() if time not in value.dims}
        clim_attrs = {**dict(source[name].attrs),
                      **on_scale_attrs(source[name].attrs),
                      "cell_methods": f"{time}: mean within {within} {time}: mean over years"}
        if dim == "dayofyear" and smooth > 1:
            clim_attrs["comment"] = f"smoothed with a {smooth}-day running mean over the climatological year"
        clim[name] = xr.DataArray(means[name].astype(np.result_type(variable.dtype, np.float32)),
                                  dims=(dim, *others), coords=coords, attrs=clim_attrs)
        # Whole grid per piece (the climatology table is indexed per time step), time in pieces.
        lazy = variable.chunk({time: variable.chunks[0] if variable.chunks else TIME_STEPS_PER_CHUNK,
                               **{other: -1 for other in others}})
        groups = xr.DataArray(key, dims=time, coords={time: source[time]}).chunk({time: lazy.chunks[0]})
        table = means[name]
        difference = xr.apply_ufunc(
            lambda block, index, table=table: block - table[index.reshape(-1)],
            lazy, groups, dask="parallelized", output_dtypes=[np.result_type(variable.dtype, np.float32)])
        anomalies[name] = difference.transpose(*source[name].dims)
        # Set, not merged: apply_ufunc keeps the input's attributes, whose standard_name names the
        # field itself and not its departures.
        anomalies[name].attrs = anomaly_attrs(source[name].attrs, name, period, base)
    attrs = {k: v for k, v in source.attrs.items() if k != "history"}
    attrs.update(climatology_baseline=base, history=str(source.attrs.get("history", "")))
    clim = with_history(clim.assign_attrs(attrs), f"analytics.climatology 1.0.0 ({chosen})")
    anomalies = with_history(anomalies.assign_attrs(source.attrs),
                              f"analytics.climatology 1.0.0 anomalies ({chosen})")
    ctx.progress(1.0, f"climatology over {base}")
    return {"climatology": clim, "anomalies": anomalies}


# ---- analytics.trend -----------------------------------------------------------------------------

MANN_KENDALL_TESTS = {
    "original": "original_test",
    "hamed_rao": "hamed_rao_modification_test",
    "yue_wang": "yue_wang_modification_test",
}
"""Mann-Kendall variants of pymannkendall: the original test and two corrections of its variance for
autocorrelated series (Hamed & Rao 1998; Yue & Wang 2004)."""


def _mann_kendall_p(z: float) -> float:
    """Two-sided p-value of a standard normal statistic, from the survival function: 1 - cdf rounds
    to 0 below about 1e-16, while sf keeps its precision (e.g. 1.85e-113)."""
    from scipy.stats import norm

    return float(2.0 * norm.sf(abs(z)))


def _theil_sen_mann_kendall(years: np.ndarray, values: np.ndarray, alpha: float,
                            variant: str = "original") -> dict[str, float]:
    import pymannkendall
    from scipy.stats import theilslopes

    slope, _, low, high = theilslopes(values, years, alpha=1.0 - alpha)
    test = getattr(pymannkendall, MANN_KENDALL_TESTS[variant])(values, alpha=alpha)
    return {"slope": float(slope), "low": float(low), "high": float(high), "p": _mann_kendall_p(test.z)}


def _ols_hac(years: np.ndarray, values: np.ndarray, alpha: float, use_t: bool = False) -> dict[str, float]:
    import statsmodels.api as sm

    lags = int(math.floor(4 * (values.size / 100.0) ** (2.0 / 9.0)))
    model = sm.OLS(values, sm.add_constant(years - years.mean()))
    fit = model.fit(cov_type="HAC", cov_kwds={"maxlags": lags}, use_t=use_t)
    low, high = fit.conf_int(alpha=alpha)[1]
    return {"slope": float(fit.params[1]), "low": float(low), "high": float(high), "p": float(fit.pvalues[1])}


def _trend_columns(table: pd.DataFrame, columns: list[str]) -> dict[str, dict[str, str]]:
    """CF attributes of the trend table's columns, when every analysed column has the same units:
    slopes are differences per time (temperature trends: ``temperature: difference``)."""
    units = {column_attrs(table, name).get("units", "") for name in columns}
    if len(units) != 1 or not next(iter(units)):
        return {}
    source = column_attrs(table, columns[0])
    per_year = f"{source['units']} year-1"
    return {
        "slope_per_year": difference_attrs(source, "trend per year", per_year),
        "slope_per_decade": difference_attrs(source, "trend per decade", f"0.1 {per_year}"),
        "ci_low": difference_attrs(source, "lower end of the confidence interval of the trend per year",
                                   per_year),
        "ci_high": difference_attrs(source, "upper end of the confidence interval of the trend per year",
                                    per_year),
        "p_value": {"long_name": "p-value of the trend test", "units": "1"},
    }


def _trend(ctx: StepContext, inputs: dict[str, Any], params: dict[str, Any], version: str) -> pd.DataFrame:
    """Both versions of analytics.trend; 1.1.0 adds the modified Mann-Kendall tests, Student t
    quantiles for OLS and a ``units`` column."""
    table = inputs["series"]
    times = table_times(table)
    columns = numeric_columns(table, params.get("columns"))
    method, alpha = params["method"], float(params["alpha"])
    variant = params.get("mann_kendall", "original")
    use_t = bool(params.get("student_t", False))
    rows = []
    for number, name in enumerate(columns):
        series = pd.Series(table[name].to_numpy(dtype=np.float64), index=times).dropna().sort_index()
        if series.empty:
            raise ValueError(f"columns: {name!r} has no valid values (all missing)")
        if params["deseasonalize"]:
            series = series - series.groupby(series.index.month).transform("mean")
        if method == "theil_sen_mann_kendall" and len(series) > MAX_THEIL_SEN_POINTS:
            series = series.resample("MS").mean().dropna()
            ctx.log(f"{name}: more than {MAX_THEIL_SEN_POINTS} values; using {len(series)} monthly means")
        if len(series) < 3 or series.index.nunique() < 3:
            raise ValueError(f"columns: {name!r} has only {len(series)} valid value(s) at distinct times; a "
                             "trend needs at least 3")
        years = ((series.index - series.index[0]) / pd.Timedelta(days=1)).to_numpy() / DAYS_PER_YEAR
        values = series.to_numpy()
        if np.ptp(values) == 0:
            result = {"slope": 0.0, "low": 0.0, "high": 0.0, "p": 1.0}
        elif method == "ols":
            result = _ols_hac(years, values, alpha, use_t)
        else:
            result = _theil_sen_mann_kendall(years, values, alpha, variant)
        row = {
            "column": name, "method": method, "slope_per_year": result["slope"],
            "slope_per_decade": 10.0 * result["slope"], "ci_low": result["low"], "ci_high": result["high"],
            "p_value": result["p"], "significant": bool(result["p"] < alpha), "n": int(values.size),
            "start": iso_times([series.index[0]])[0], "end": iso_times([series.index[-1]])[0],
        }
        if version != "1.0.0":
            units = column_attrs(table, name).get("units", "")
            row["method"] = (f"{method} ({variant} Mann-Kendall)" if method != "ols"
                             else f"ols ({'Student t' if use_t else 'normal'} quantiles)")
            row["units"] = f"{units} year-1" if units else ""
        rows.append(row)
        ctx.progress((number + 1) / len(columns), f"trend of {name}")
    return with_columns(pd.DataFrame(rows), _trend_columns(table, columns))


@block(
    id="analytics.trend",
    version="1.0.0",
    title="Trend of a time series",
    category="analytics",
    inputs=(Port("series", "table", "Time series", "A table with a 'time' column and numeric columns.",
                 quantity=Quantity(params=("columns",), real_dates=True)),),
    outputs=(Port("trend", "table", "Trend", "One row per column: the slope, its confidence interval and "
                                              "whether it is significant."),),
    parameters={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "columns": {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1,
                        "uniqueItems": True, "title": "Columns",
                        "description": "Columns to analyse. Empty: every numeric column."},
            "method": {"type": "string", "enum": ["theil_sen_mann_kendall", "ols"],
                       "default": "theil_sen_mann_kendall", "title": "Method",
                       "description": "theil_sen_mann_kendall: robust slope and rank test (few "
                                      "assumptions); ols: least-squares line with standard errors robust "
                                      "to autocorrelation (Newey-West)."},
            "alpha": {"type": "number", "exclusiveMinimum": 0, "maximum": 0.5, "default": 0.05,
                      "title": "Significance level",
                      "description": "A trend is significant when its p-value is below this; the "
                                     "confidence interval is 1 - alpha (0.05: 95 %)."},
            "deseasonalize": {"type": "boolean", "default": False, "title": "Remove the seasonal cycle",
                              "description": "Subtract the mean of each calendar month first, so the "
                                             "seasonal cycle does not blur the trend."},
        },
    },
)
def trend(ctx: StepContext, inputs: dict[str, Any], params: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """Estimate the long-term trend of each numeric column of a time series, with its uncertainty and
    significance.

    **What goes in:** a table with a `time` column and one or more numeric columns (e.g. the output of
    *Area mean time series*).

    **What comes out:** one row per column with the `method`, the slope in units per year
    (`slope_per_year`) and per decade, the confidence interval of the slope per year (`ci_low`,
    `ci_high`, at 1 − `alpha`, i.e. 95 % by default), the `p_value`, whether the trend is `significant`
    (p-value below `alpha`), the number of values used `n`, and the first and last time used.

    **Methods:**

    * `theil_sen_mann_kendall` (default): the Theil–Sen slope (median of the slopes between all pairs of
      values; Sen 1968) with its confidence interval from `scipy.stats.theilslopes`, and the p-value of
      the Mann–Kendall trend test (Mann 1945; Kendall 1975) from the `pymannkendall` package
      (`original_test`, with the variance corrected for ties). Robust to outliers, but it assumes
      independent values: autocorrelated data (e.g. daily temperatures) make the p-value too small, so
      prefer monthly data or `ols`. Series longer than 5000 values are averaged to monthly means first.
    * `ols`: ordinary least squares with heteroscedasticity- and autocorrelation-consistent (HAC,
      Newey–West) standard errors from `statsmodels`, using
      floor(4·(n/100)^(2/9)) lags (Newey & West 1994).

    With `deseasonalize`, the mean of each calendar month (over the whole series) is subtracted first.
    Missing values are left out.
    """
    return {"trend": _trend(ctx, inputs, params, "1.0.0")}


TREND_1_1_PARAMETERS = {
    "mann_kendall": {"type": "string", "enum": list(MANN_KENDALL_TESTS), "default": "original",
                     "title": "Mann-Kendall test",
                     "description": "original: independent values; hamed_rao or yue_wang: the variance of "
                                    "the test corrected for autocorrelation (Hamed & Rao 1998, Yue & Wang "
                                    "2004), for serially correlated series such as daily temperatures."},
    "student_t": {"type": "boolean", "default": False, "title": "Student t for OLS",
                  "description": "Take the OLS confidence interval and p-value from a Student t "
                                 "distribution with n - 2 degrees of freedom instead of the normal one; "
                                 "more honest for short series."},
}


@block(
    id="analytics.trend",
    version="1.1.0",
    title="Trend of a time series",
    category="analytics",
    inputs=trend.spec.inputs,
    outputs=trend.spec.outputs,
    parameters={**trend.spec.parameters,
                "properties": {**trend.spec.parameters["properties"], **TREND_1_1_PARAMETERS}},
)
def trend_with_options(ctx: StepContext, inputs: dict[str, Any], params: dict[str, Any]
                       ) -> dict[str, pd.DataFrame]:
    """Estimate the long-term trend of each numeric column of a time series, with its uncertainty and
    significance, allowing for autocorrelation.

    **What goes in:** a table with a `time` column and one or more numeric columns (e.g. the output of
    *Area mean time series*).

    **What comes out:** one row per column with the `method` (and the variant used), the slope in
    units per year (`slope_per_year`) and per decade, the confidence interval of the slope per year
    (`ci_low`, `ci_high`, at 1 − `alpha`, i.e. 95 % by default), the `p_value`, whether the trend is
    `significant` (p-value below `alpha`), the number of values used `n`, the first and last time
    used, and the `units` of the slope per year (e.g. `degree_Celsius year-1`; a trend of temperature
    is a temperature difference per time).

    **Methods:**

    * `theil_sen_mann_kendall` (default): the Theil–Sen slope (median of the slopes between all pairs of
      values; Sen 1968) with its confidence interval from `scipy.stats.theilslopes`, and the p-value of
      the Mann–Kendall trend test (Mann 1945; Kendall 1975) from the `pymannkendall` package, with the
      variance corrected for ties. The original test assumes independent values; autocorrelated data
      (e.g. daily temperatures) make its p-value too small. `mann_kendall` picks a **modified test**
      that corrects the variance for autocorrelation: `hamed_rao` (Hamed & Rao 1998, from the
      autocorrelation of the ranks) or `yue_wang` (Yue & Wang 2004, effective sample size). Very small
      p-values are exact (two-sided, from the normal survival function), not rounded to 0. Series
      longer than 5000 values are averaged to monthly means first.
    * `ols`: ordinary least squares with heteroscedasticity- and autocorrelation-consistent (HAC,
      Newey–West) standard errors from `statsmodels`, using floor(4·(n/100)^(2/9)) lags (Newey & West
      1994). With `student_t`, confidence intervals and p-values use Student's t with n − 2 degrees
      of freedom, wider than the normal ones for short series.

    With `deseasonalize`, the mean of each calendar month (over the whole series) is subtracted first.
    Missing values are left out. References: Hamed, K. H. & Rao, A. R. (1998), J. Hydrology 204,
    182-196; Yue, S. & Wang, C. Y. (2004), Water Resources Management 18, 201-218.
    """
    return {"trend": _trend(ctx, inputs, params, "1.1.0")}


# ---- analytics.skill -----------------------------------------------------------------------------

def skill_scores(observed: np.ndarray, modelled: np.ndarray) -> dict[str, float]:
    """Agreement statistics of paired values (population standard deviations, as in Taylor 2001)."""
    n = observed.size
    o_mean, m_mean = observed.mean(), modelled.mean()
    o_std, m_std = observed.std(), modelled.std()
    do, dm = observed - o_mean, modelled - m_mean
    crmsd = math.sqrt(float(np.mean((dm - do) ** 2)))
    correlation = float(np.mean(do * dm) / (o_std * m_std)) if o_std > 0 and m_std > 0 else math.nan
    denominator = float(np.sum((np.abs(modelled - o_mean) + np.abs(observed - o_mean)) ** 2))
    willmott = 1.0 - float(np.sum((modelled - observed) ** 2)) / denominator if denominator > 0 else math.nan
    return {
        "n": n, "mean_observed": float(o_mean), "mean_modelled": float(m_mean),
        "bias": float(m_mean - o_mean), "rmse": math.sqrt(float(np.mean((modelled - observed) ** 2))),
        "crmsd": crmsd, "correlation": correlation, "std_observed": float(o_std),
        "std_modelled": float(m_std), "normalised_std": float(m_std / o_std) if o_std > 0 else math.nan,
        "normalised_crmsd": crmsd / float(o_std) if o_std > 0 else math.nan, "willmott_d": willmott,
        "taylor_angle_deg": math.degrees(math.acos(min(max(correlation, -1.0), 1.0)))
        if not math.isnan(correlation) else math.nan,
    }


@block(
    id="analytics.skill",
    version="1.0.0",
    title="Model skill against observations",
    category="analytics",
    inputs=(Port("matched", "table", "Matched values",
                 "Pairs of observed and modelled values, e.g. from 'interpolate to points'."),),
    outputs=(Port("skill", "table", "Skill", "One row per station (and one for all stations): bias, RMSE, "
                                             "correlation, Taylor-diagram statistics."),),
    parameters={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "observed": {"type": "string", "minLength": 1, "default": "observed", "title": "Observed column",
                         "description": "Column with the observed values."},
            "modelled": {"type": "string", "minLength": 1, "default": "modelled", "title": "Modelled column",
                         "description": "Column with the modelled values at the same place and time."},
        },
    },
)
def skill(ctx: StepContext, inputs: dict[str, Any], params: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """Measure how well a model matches observations.

    **What goes in:** a table of matched pairs with an `observed` and a `modelled` column, and
    optionally `station` and `variable` columns (e.g. the output of *Interpolate to points*). Pairs with
    a missing value on either side are left out.

    **What comes out:** one row per station and one row `ALL` pooling every station (per variable when
    there is a `variable` column), with: `n` pairs; `mean_observed`, `mean_modelled`; `bias` (mean
    modelled − mean observed); `rmse` (root-mean-square difference); `crmsd` (centred RMS difference,
    after removing each mean); Pearson `correlation`; `std_observed` and `std_modelled`;
    `normalised_std` (σ modelled / σ observed); `normalised_crmsd` (CRMSD / σ observed);
    `taylor_angle_deg` (arccos of the correlation, the angle on a Taylor diagram); and Willmott's index
    of agreement `willmott_d` (1 perfect, 0 none).

    **Method:** standard deviations use the number of pairs (not n − 1), as in Taylor (2001), so that
    RMSE² = bias² + CRMSD² and CRMSD² = σo² + σm² − 2·σo·σm·R hold exactly. Willmott's
    d = 1 − Σ(M−O)² / Σ(|M−Ō| + |O−Ō|)² (Willmott 1981). References: Taylor, K. E. (2001), J. Geophys.
    Res. 106(D7), 7183-7192; Willmott, C. J. (1981), Physical Geography 2(2), 184-194.
    """
    table = inputs["matched"]
    names = [params["observed"], params["modelled"]]
    for parameter, name in zip(("observed", "modelled"), names, strict=True):
        if name not in table.columns:
            raise ValueError(f"{parameter}: column {name!r} is not in the table; "
                             f"available: {column_list(table)}")
        if not pd.api.types.is_numeric_dtype(table[name]):
            raise ValueError(f"{parameter}: column {name!r} holds {table[name].dtype} values, not numbers")
    pairs = table.dropna(subset=names)
    if pairs.empty:
        raise ValueError(f"matched: no row has both an observed and a modelled value ({len(table)} rows)")
    groups = [column for column in ("variable", "station") if column in table.columns]
    rows = []

    def add(keys: dict[str, Any], part: pd.DataFrame) -> None:
        rows.append({**keys, **skill_scores(part[names[0]].to_numpy(dtype=np.float64),
                                            part[names[1]].to_numpy(dtype=np.float64))})

    by_variable = pairs.groupby("variable", sort=True) if "variable" in groups else [(None, pairs)]
    for variable, part in by_variable:
        prefix = {"variable": variable} if "variable" in groups else {}
        if "station" in groups:
            for station, station_part in part.groupby("station", sort=True):
                add({**prefix, "station": str(station)}, station_part)
        add({**prefix, "station": "ALL"}, part)
    ctx.progress(1.0, f"{len(rows)} row(s)")
    return {"skill": with_columns(pd.DataFrame(rows), _skill_columns(column_attrs(table, names[0])))}


def _skill_columns(observed: dict[str, str]) -> dict[str, dict[str, str]]:
    """CF attributes of the skill table from those of the observed column: means are values of the
    same kind, errors and spreads are differences, the rest are numbers."""
    plain = {"normalised_std": "1", "normalised_crmsd": "1", "correlation": "1", "willmott_d": "1",
             "taylor_angle_deg": "degree", "n": "1"}
    columns: dict[str, dict[str, str]] = {name: {"units": units} for name, units in plain.items()}
    if observed.get("units"):
        columns["mean_observed"] = on_scale_attrs(observed, "mean of the observed values")
        columns["mean_modelled"] = on_scale_attrs(observed, "mean of the modelled values")
        for name, what in (("bias", "mean modelled minus mean observed value"),
                           ("rmse", "root-mean-square difference"),
                           ("crmsd", "centred root-mean-square difference"),
                           ("std_observed", "standard deviation of the observed values"),
                           ("std_modelled", "standard deviation of the modelled values")):
            columns[name] = difference_attrs(observed, what)
    return columns


# ---- analytics.current_statistics ----------------------------------------------------------------

def _velocity(dataset: xr.Dataset, parameter: str, name: str | None, standard_name: str) -> str:
    known = [str(v) for v in dataset.data_vars]
    if name:
        require_variables(dataset, [name], parameter)
        return name
    found = [v for v in known if dataset[v].attrs.get("standard_name") == standard_name]
    if not found:
        raise ValueError(f"{parameter}: no variable has standard_name {standard_name!r}; name it with the "
                         f"'{parameter}' parameter; available: {', '.join(known) or 'none'}")
    return found[0]


def _unit_factor(variable: xr.DataArray, parameter: str) -> float:
    """Factor converting ``variable`` to m s-1, from its CF units (ValueError when missing or not a speed)."""
    return speed_factor(variable.attrs, str(variable.name), parameter)


def _site(speed_sample: xr.DataArray, lat_name: str, lon_name: str, lat: float, lon: float) -> dict[str, Any]:
    """Indices of the grid point nearest to (lat, lon); ValueError if it is on land (no valid data)."""
    lats, lons = speed_sample[lat_name].values, speed_sample[lon_name].values
    la, lo = np.meshgrid(lats, lons, indexing="ij")
    dlon = (lo - lon + 180.0) % 360.0 - 180.0
    distance = (la - lat) ** 2 + (dlon * np.cos(np.deg2rad(lat))) ** 2
    sea = speed_sample.transpose(lat_name, lon_name).notnull().values
    spacing = [float(np.abs(np.diff(axis)).max(initial=0)) for axis in (lats, lons)]
    limit = 2.0 * max(spacing)
    if math.sqrt(float(distance.min())) > max(limit, 1e-9) and (lats.size > 1 or lons.size > 1):
        raise ValueError(f"lat/lon: ({lat:g}, {lon:g}) is outside the grid, which covers latitudes "
                         f"{lats.min():g} to {lats.max():g} and longitudes {lons.min():g} to {lons.max():g}")
    i, j = np.unravel_index(np.argmin(distance), distance.shape)
    if not sea[i, j]:
        if not sea.any():
            raise ValueError("lat/lon: the dataset has no valid current values at all")
        k, m = np.unravel_index(np.argmin(np.where(sea, distance, np.inf)), distance.shape)
        raise ValueError(
            f"lat/lon: the nearest grid point to ({lat:g}, {lon:g}), at ({lats[i]:g}, {lons[j]:g}), is on "
            f"land (no data); the nearest sea point is ({lats[k]:g}, {lons[m]:g})")
    return {lat_name: int(i), lon_name: int(j)}


def _longest_runs(exceed: np.ndarray, current: np.ndarray, best: np.ndarray, best_end: np.ndarray,
                  offset: int) -> None:
    """Update run-length counters (per point, over the first axis = time) in place."""
    for step in range(exceed.shape[0]):
        current[:] = np.where(exceed[step], current + 1, 0)
        longer = current > best
        best[longer] = current[longer]
        best_end[longer] = offset + step


@block(
    id="analytics.current_statistics",
    version="1.0.0",
    title="Current speed statistics",
    category="analytics",
    inputs=(Port("dataset", "dataset", "Currents",
                 "A dataset with eastward and northward sea water velocity.",
                 quantity=Quantity(kind="velocity", standard_names=SEA_WATER_VELOCITY_NAMES,
                                   params=("u", "v"), match="standard_name")),),
    outputs=(
        Port("statistics", "table", "Statistics",
             "Mean, median, percentiles and maximum of the speed, mean direction and data coverage."),
        Port("exceedance", "table", "Exceedance",
             "For each speed threshold: how often it is exceeded and the longest spell above it."),
    ),
    parameters={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "u": {"type": "string", "minLength": 1, "title": "Eastward velocity variable",
                  "description": "Empty: the variable with standard_name eastward_sea_water_velocity."},
            "v": {"type": "string", "minLength": 1, "title": "Northward velocity variable",
                  "description": "Empty: the variable with standard_name northward_sea_water_velocity."},
            "lat": {"type": "number", "minimum": -90, "maximum": 90, "title": "Site latitude",
                    "description": "Latitude of a site (degrees north); the nearest grid point is used. "
                                   "Empty: statistics over the whole area."},
            "lon": {"type": "number", "minimum": -180, "maximum": 360, "title": "Site longitude",
                    "description": "Longitude of the site (degrees east)."},
            "thresholds": {"type": "array", "items": {"type": "number", "exclusiveMinimum": 0},
                           "minItems": 1, "uniqueItems": True, "default": [0.1, 0.25, 0.5, 0.75, 1.0],
                           "title": "Speed thresholds (m/s)",
                           "description": "Speeds for the exceedance table, in metres per second."},
        },
    },
)
def current_statistics(ctx: StepContext, inputs: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """Summarise ocean current speeds and directions at a site or over an area, and how often speed
    thresholds are exceeded.

    **What goes in:** a dataset with eastward and northward current velocity (found by their CF
    standard names `eastward_sea_water_velocity` / `northward_sea_water_velocity`, or named with `u`
    and `v`), with CF units of speed (cm/s, knots... are converted to m/s; a velocity without units is
    refused rather than guessed). With `lat` and `lon`, the nearest grid point is used (the
    step fails if that point is on land, naming the nearest sea point); without them every sea grid
    point and time step of the area counts as one sample. A single depth level is expected (cut the
    dataset first if it has several).

    **What comes out:**

    * `statistics`: one row with the site (or `area`), its grid position, the period, the number of
      valid samples and the data `coverage` (valid samples / all samples at sea points), and the speed's
      `mean_speed`, `median_speed`, `p90`, `p95`, `p99` and `max_speed` (m/s); `mean_u`, `mean_v` and
      the `mean_direction_deg` of the mean current. Directions follow the **oceanographic
      convention**: the direction the water flows *towards*, in degrees clockwise from north (90 =
      flowing east).
    * `exceedance`: for each threshold (default 0.1, 0.25, 0.5, 0.75 and 1 m/s): the fraction of
      samples with a speed above it, and the longest continuous spell above it at one point (in time
      steps and hours) with its start.

    **Method:** speed = √(u² + v²) at each time step; percentiles interpolate linearly between
    values (over very large areas they are read from a histogram with 1 mm/s bins). Data are read in
    pieces, so large files need not fit in memory.
    """
    dataset = inputs["dataset"]
    u_name = _velocity(dataset, "u", params.get("u"), "eastward_sea_water_velocity")
    v_name = _velocity(dataset, "v", params.get("v"), "northward_sea_water_velocity")
    u, v = dataset[u_name], dataset[v_name]
    if u.dims != v.dims:
        raise ValueError(f"u/v: {u_name!r} has dimensions {u.dims} but {v_name!r} has {v.dims}")
    u_factor, v_factor = _unit_factor(u, "u"), _unit_factor(v, "v")
    time = find_coord(dataset, "time")
    if time is None or time not in u.dims:
        raise ValueError(f"u: {u_name!r} has no time dimension; dimensions: {', '.join(map(str, u.dims))}")
    lat_name, lon_name = find_coord(dataset, "lat"), find_coord(dataset, "lon")
    extra = [d for d in u.dims if d not in (time, lat_name, lon_name)]
    for dim in extra:
        if u.sizes[dim] != 1:
            raise ValueError(f"u: {u_name!r} has {u.sizes[dim]} levels along {dim!r}; select one level first "
                             "(e.g. with ocean.subset)")
    u, v = u.squeeze(extra, drop=True), v.squeeze(extra, drop=True)
    if u.sizes[time] == 0:
        raise ValueError("dataset: the time dimension is empty")
    site_label, site_lat, site_lon = "area", math.nan, math.nan
    lat, lon = params.get("lat"), params.get("lon")
    if (lat is None) != (lon is None):
        raise ValueError("lat/lon: give both the latitude and the longitude of the site, or neither")
    spatial = [d for d in (lat_name, lon_name) if d in u.dims]
    if lat is not None:
        if lat_name not in u.dims or lon_name not in u.dims:
            raise ValueError(f"lat/lon: {u_name!r} has no latitude/longitude dimensions to pick a site from")
        coverage_map = (u.notnull() & v.notnull()).any(time)
        where = _site(coverage_map.where(coverage_map), lat_name, lon_name, float(lat), float(lon))
        u, v = u.isel(where), v.isel(where)
        site_lat, site_lon = float(u[lat_name]), float(u[lon_name])
        site_label = f"{site_lat:g}N {site_lon:g}E"
        spatial = []
    u = u.transpose(time, *spatial)
    v = v.transpose(time, *spatial)
    times = dataset.indexes[time]
    steps = u.sizes[time]
    thresholds = sorted(float(t) for t in params["thresholds"])
    step_hours = float(np.median(np.diff(times.values).astype("timedelta64[s]").astype(np.float64))) / 3600 \
        if steps > 1 else math.nan

    point_shape = tuple(u.sizes[d] for d in spatial) or (1,)
    sea = np.zeros(point_shape, dtype=bool)
    sums = {"u": 0.0, "v": 0.0, "speed": 0.0}
    valid = 0
    peak = -math.inf
    exact: list[np.ndarray] = []
    histogram: np.ndarray | None = None
    above = np.zeros(len(thresholds), dtype=np.int64)
    current = np.zeros((len(thresholds), *point_shape), dtype=np.int64)
    best = np.zeros_like(current)
    best_end = np.full_like(current, -1)
    for first in range(0, steps, TIME_STEPS_PER_CHUNK):
        part = slice(first, first + TIME_STEPS_PER_CHUNK)
        uu = u.isel({time: part}).values.astype(np.float64).reshape(-1, *point_shape) * u_factor
        vv = v.isel({time: part}).values.astype(np.float64).reshape(-1, *point_shape) * v_factor
        speed = np.hypot(uu, vv)
        ok = ~np.isnan(speed)
        sea |= ok.any(axis=0)
        valid += int(ok.sum())
        sums["u"] += float(uu[ok].sum())
        sums["v"] += float(vv[ok].sum())
        sums["speed"] += float(speed[ok].sum())
        values = speed[ok]
        if values.size:
            peak = max(peak, float(values.max()))
        if histogram is None and valid <= EXACT_LIMIT:
            exact.append(values)
        else:
            if histogram is None:
                histogram = np.zeros(0, dtype=np.int64)
                for kept in exact:
                    histogram = _add_to_histogram(histogram, kept)
                exact = []
            histogram = _add_to_histogram(histogram, values)
        for k, threshold in enumerate(thresholds):
            exceed = np.where(ok, speed > threshold, False)
            above[k] += int(exceed.sum())
            _longest_runs(exceed, current[k], best[k], best_end[k], first)
        ctx.progress(min(first + TIME_STEPS_PER_CHUNK, steps) / steps, "reading currents")
    if valid == 0:
        raise ValueError(f"u/v: {u_name!r} and {v_name!r} have no valid values (all missing)"
                         + (f" at {site_label}" if site_label != "area" else ""))
    if histogram is not None:
        percentiles = _histogram_percentiles(histogram, (50, 90, 95, 99))
        ctx.log(f"{valid} samples: percentiles taken from a histogram with {SPEED_BIN_M_S} m/s bins")
    else:
        pooled = np.concatenate(exact).astype(np.float64)
        percentiles = np.percentile(pooled, (50, 90, 95, 99)).tolist()
    mean_u, mean_v = sums["u"] / valid, sums["v"] / valid
    period = iso_times([times[0], times[-1]])
    statistics = pd.DataFrame([{
        "site": site_label, "lat": site_lat, "lon": site_lon, "start": period[0], "end": period[1],
        "n_valid": valid, "coverage": valid / (steps * max(int(sea.sum()), 1)),
        "mean_speed": sums["speed"] / valid, "median_speed": percentiles[0], "p90": percentiles[1],
        "p95": percentiles[2], "p99": percentiles[3], "max_speed": peak, "mean_u": mean_u, "mean_v": mean_v,
        "mean_direction_deg": float(np.degrees(np.arctan2(mean_u, mean_v)) % 360.0),
    }])
    rows = []
    for k, threshold in enumerate(thresholds):
        longest = int(best[k].max()) if best[k].size else 0
        start = ""
        if longest > 0:
            flat = int(np.argmax(best[k]))
            end_step = int(np.ravel(best_end[k])[flat])
            start = iso_times([times[end_step - longest + 1]])[0]
        rows.append({
            "threshold_m_s": threshold, "fraction_exceeded": above[k] / valid,
            "longest_steps": longest, "longest_hours": longest * step_hours, "longest_start": start,
        })
    speed = {"units": "m s-1", "standard_name": "sea_water_speed"}
    statistics = with_columns(statistics, {
        **{column: {**speed, "long_name": f"{label} of the current speed"} for column, label in (
            ("mean_speed", "mean"), ("median_speed", "median"), ("p90", "90th percentile"),
            ("p95", "95th percentile"), ("p99", "99th percentile"), ("max_speed", "maximum"))},
        "mean_u": {"units": "m s-1", "long_name": "mean eastward velocity"},
        "mean_v": {"units": "m s-1", "long_name": "mean northward velocity"},
        "mean_direction_deg": {"units": "degree", "long_name": "direction the mean current flows to, "
                                                              "clockwise from north"},
        "lat": {"units": "degrees_north", "standard_name": "latitude"},
        "lon": {"units": "degrees_east", "standard_name": "longitude"},
        "coverage": {"units": "1", "long_name": "fraction of valid samples"},
    })
    exceedance = with_columns(pd.DataFrame(rows), {
        "threshold_m_s": {"units": "m s-1", "long_name": "current speed threshold"},
        "fraction_exceeded": {"units": "1", "long_name": "fraction of samples above the threshold"},
        "longest_hours": {"units": "hour", "long_name": "longest spell above the threshold"},
    })
    return {"statistics": statistics, "exceedance": exceedance}


def _add_to_histogram(histogram: np.ndarray, values: np.ndarray) -> np.ndarray:
    bins = np.floor(np.asarray(values, dtype=np.float64) / SPEED_BIN_M_S).astype(np.int64)
    counts = np.bincount(bins, minlength=histogram.size)
    if counts.size > histogram.size:
        histogram = np.concatenate([histogram, np.zeros(counts.size - histogram.size, dtype=np.int64)])
    histogram[: counts.size] += counts
    return histogram


def _histogram_percentiles(histogram: np.ndarray, percentiles: tuple[int, ...]) -> list[float]:
    cumulative = np.cumsum(histogram)
    total = cumulative[-1]
    result = []
    for p in percentiles:
        index = int(np.searchsorted(cumulative, p / 100.0 * total))
        result.append((index + 0.5) * SPEED_BIN_M_S)
    return result
