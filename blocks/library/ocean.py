"""Blocks that cut and summarise gridded ocean datasets."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from blocks.context import StepContext
from blocks.spec import Port, block

AXIS_NAMES = {"latitude": ("lat", "latitude"), "longitude": ("lon", "longitude"), "time": ("time",)}
"""Coordinate names recognised for each axis, besides a CF ``standard_name`` naming the axis."""

TIME_STEPS_PER_CHUNK = 120
"""Area means are computed this many time steps at a time, to bound memory and report progress."""


def _find_axis(dataset: xr.Dataset, kind: str) -> str | None:
    """The name of the 1-D dimension coordinate for ``kind`` (latitude, longitude or time), if any."""
    for name, coordinate in dataset.coords.items():
        is_dimension = coordinate.dims == (name,)
        named = str(name).lower() in AXIS_NAMES[kind] or coordinate.attrs.get("standard_name") == kind
        if is_dimension and named:
            return str(name)
    return None


def _iso_times(times: Iterable[Any]) -> list[str]:
    """Dates (YYYY-MM-DD) when every time is at midnight, full ISO 8601 timestamps otherwise."""
    values = list(times)
    daily = all((t.hour, t.minute, t.second, t.microsecond) == (0, 0, 0, 0) for t in values)
    return [t.strftime("%Y-%m-%d") if daily else t.isoformat() for t in values]


def _coverage(index: pd.Index) -> str:
    """Human description of the range of a coordinate, e.g. '40 to 46' or '2021-01-01 to 2023-12-31'."""
    if isinstance(index, (pd.DatetimeIndex, xr.CFTimeIndex)):
        first, last = _iso_times([index.min(), index.max()])
        return f"{first} to {last}"
    return f"{index.min():g} to {index.max():g}"


def _with_history(dataset: xr.Dataset, line: str) -> xr.Dataset:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    previous = str(dataset.attrs.get("history", "")).rstrip("\n")
    entry = f"{stamp} {line}"
    return dataset.assign_attrs(history=f"{previous}\n{entry}" if previous else entry)


def _parse_date(name: str, value: str) -> str:
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise ValueError(f"{name}: {value!r} is not a date (expected YYYY-MM-DD)") from None


def _ordered_slice(index: pd.Index, lower: Any, upper: Any) -> slice:
    """A label slice from lower to upper that also works when the coordinate is stored descending."""
    descending = len(index) > 1 and index[0] > index[-1]
    return slice(upper, lower) if descending else slice(lower, upper)


def _selected_variables(dataset: xr.Dataset, variables: list[str] | None) -> xr.Dataset:
    if not variables:
        return dataset
    known = [str(name) for name in dataset.data_vars]
    for name in variables:
        if name not in known:
            raise ValueError(f"variables: unknown variable {name!r}; the dataset has: {', '.join(known)}")
    return dataset[variables]


def _space_selection(dataset: xr.Dataset, params: dict[str, Any]) -> dict[str, tuple[slice, str]]:
    """Slices per spatial dimension, each with a description of the parameters it came from."""
    selection = {}
    for kind, axis in (("latitude", "lat"), ("longitude", "lon")):
        lower, upper = params.get(f"{axis}_min"), params.get(f"{axis}_max")
        if lower is None and upper is None:
            continue
        if lower is not None and upper is not None and lower > upper:
            raise ValueError(f"{axis}_min ({lower}) must not be greater than {axis}_max ({upper})")
        name = _find_axis(dataset, kind)
        if name is None:
            raise ValueError(f"{axis}_min/{axis}_max: the dataset has no {kind} coordinate")
        given = ", ".join(f"{axis}_{end}={value}" for end, value in (("min", lower), ("max", upper))
                          if value is not None)
        selection[name] = (_ordered_slice(dataset.indexes[name], lower, upper), given)
    return selection


def _time_selection(dataset: xr.Dataset, params: dict[str, Any]) -> dict[str, tuple[slice, str]]:
    start, end = params.get("start"), params.get("end")
    if start is None and end is None:
        return {}
    start = None if start is None else _parse_date("start", start)
    end = None if end is None else _parse_date("end", end)
    if start is not None and end is not None and start > end:
        raise ValueError(f"start ({start}) must not be after end ({end})")
    name = _find_axis(dataset, "time")
    if name is None:
        raise ValueError("start/end: the dataset has no time coordinate")
    first, last = (day[:10] for day in _iso_times([dataset.indexes[name].min(), dataset.indexes[name].max()]))
    covers = f"the data covers {first} to {last}"
    if start is not None and start > last:
        raise ValueError(f"start ({start}) is after the end of the data; {covers}")
    if end is not None and end < first:
        raise ValueError(f"end ({end}) is before the beginning of the data; {covers}")
    given = ", ".join(f"{key}={value}" for key, value in (("start", start), ("end", end)) if value)
    # Date strings select whole days, so an `end` day is included up to 23:59:59.
    return {name: (slice(start, end), given)}


@block(
    id="ocean.subset",
    version="1.0.0",
    title="Subset area, period and variables",
    category="transform",
    inputs=(Port("dataset", "dataset", "Dataset", "The gridded dataset to cut."),),
    outputs=(Port("dataset", "dataset", "Subset", "The same dataset restricted to the selection."),),
    parameters={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "lat_min": {"type": "number", "minimum": -90, "maximum": 90, "title": "Southern edge",
                        "description": "Keep latitudes from this value, degrees north. Empty: no limit."},
            "lat_max": {"type": "number", "minimum": -90, "maximum": 90, "title": "Northern edge",
                        "description": "Keep latitudes up to this value, degrees north. Empty: no limit."},
            "lon_min": {"type": "number", "minimum": -180, "maximum": 360, "title": "Western edge",
                        "description": "Keep longitudes from this value, degrees east. Empty: no limit."},
            "lon_max": {"type": "number", "minimum": -180, "maximum": 360, "title": "Eastern edge",
                        "description": "Keep longitudes up to this value, degrees east. Empty: no limit."},
            "start": {"type": "string", "format": "date", "title": "First day",
                      "description": "Keep times from this day (YYYY-MM-DD). Empty: from the beginning."},
            "end": {"type": "string", "format": "date", "title": "Last day",
                    "description": "Keep times up to and including this day. Empty: to the end."},
            "variables": {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1,
                          "uniqueItems": True, "title": "Variables",
                          "description": "Names of the variables to keep, e.g. sst. Empty: keep all."},
        },
    },
)
def subset(ctx: StepContext, inputs: dict[str, Any], params: dict[str, Any]) -> dict[str, xr.Dataset]:
    """Cut a dataset down to an area, a period and a choice of variables.

    **What goes in:** a gridded dataset (for example the demo dataset or a Copernicus Marine product).

    **What comes out:** the same dataset, keeping only the grid points inside the box
    (southern/northern and western/eastern edges in degrees), the days from the first to the last day
    (both included) and the variables listed. Every setting is optional: leave it empty to keep
    everything along that direction. Edges that fall between grid points keep the points inside.

    **Good to know:** descriptions, units and other metadata are kept, and a line recording the cut
    is added to the dataset's history. Nothing is read from disk beyond what is kept, so cutting a
    small area out of a large file is quick. The step fails with an explanation when a variable does
    not exist, an edge is the wrong way round, the period lies outside the data, or nothing is left.
    """
    dataset = _selected_variables(inputs["dataset"], params.get("variables"))
    selection = {**_space_selection(dataset, params), **_time_selection(dataset, params)}
    ctx.progress(0.5, "selecting")
    result = dataset.sel({name: part for name, (part, _) in selection.items()})
    for name, (_, given) in selection.items():
        if result.sizes[name] == 0:
            covers = _coverage(dataset.indexes[name])
            raise ValueError(f"empty selection: {given} keeps no {name} values; the data covers {covers}")
    chosen = ", ".join(f"{key}={params[key]}" for key in sorted(params))
    ctx.progress(1.0, "selected " + ", ".join(f"{size} {dim}" for dim, size in result.sizes.items()))
    return {"dataset": _with_history(result, f"ocean.subset 1.0.0 ({chosen or 'no selection'})")}


def _area_dims(dataset: xr.Dataset, name: str) -> tuple[str, str, str]:
    """Latitude, longitude and time dimension names of a variable, or ValueError saying what is wrong."""
    dims = dataset[name].dims
    lat, lon = _find_axis(dataset, "latitude"), _find_axis(dataset, "longitude")
    if lat not in dims or lon not in dims:
        raise ValueError(
            f"variable: {name!r} has dimensions ({', '.join(map(str, dims))}); "
            "an area mean needs latitude and longitude dimensions"
        )
    time = _find_axis(dataset, "time")
    others = [str(dim) for dim in dims if dim not in (lat, lon)]
    if time is None or others != [time]:
        raise ValueError(
            f"variable: {name!r} has dimensions ({', '.join(map(str, dims))}); an area mean needs exactly "
            "time, latitude and longitude (select a single level of any other dimension first)"
        )
    return str(lat), str(lon), time


@block(
    id="ocean.area_mean",
    version="1.0.0",
    title="Area mean time series",
    category="analytics",
    inputs=(Port("dataset", "dataset", "Dataset", "A gridded dataset with time, latitude and longitude."),),
    outputs=(Port("table", "table", "Time series", "One row per time: the date and the area mean."),),
    parameters={
        "type": "object",
        "additionalProperties": False,
        "required": ["variable"],
        "properties": {
            "variable": {"type": "string", "minLength": 1, "title": "Variable",
                         "description": "Name of the variable to average, e.g. sst."},
        },
    },
)
def area_mean(ctx: StepContext, inputs: dict[str, Any], params: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """Average a variable over the whole area, giving one value per time step.

    **What goes in:** a gridded dataset with time, latitude and longitude, and the name of the
    variable to average (for example `sst`).

    **What comes out:** a table with two columns: `time` (a date such as 2022-07-18 for daily
    data, or a full date and time otherwise) and the area mean, in a column named after the variable
    and in the variable's own units.

    **Method:** grid cells get smaller towards the poles, so each value is weighted by the cosine of
    its latitude, which is proportional to the cell's area on a regular latitude-longitude grid.
    Missing values (land, gaps) are left out of both the sum and the weights.
    """
    dataset, name = inputs["dataset"], params["variable"]
    if name not in dataset.data_vars:
        available = ", ".join(str(known) for known in dataset.data_vars) or "none"
        raise ValueError(f"variable: {name!r} is not in the dataset; available: {available}")
    lat, lon, time = _area_dims(dataset, name)
    weights = np.cos(np.deg2rad(dataset[lat]))
    steps = dataset.sizes[time]
    means = []
    for first in range(0, steps, TIME_STEPS_PER_CHUNK):
        part = dataset[name].isel({time: slice(first, first + TIME_STEPS_PER_CHUNK)})
        means.append(part.weighted(weights).mean(dim=(lat, lon)).values.astype(np.float64))
        ctx.progress(min(first + TIME_STEPS_PER_CHUNK, steps) / steps, "averaging")
    values = np.concatenate(means) if means else np.array([], dtype=np.float64)
    if np.isnan(values).all():
        raise ValueError(f"variable: {name!r} has no valid values (all missing) in this area and period")
    table = pd.DataFrame({"time": _iso_times(dataset[name].indexes[time]), name: values})
    return {"table": table}
