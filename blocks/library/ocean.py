"""Blocks that cut and summarise gridded ocean datasets."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from blocks.context import StepContext
from blocks.library.geo import (
    KIND_WORDS,
    cos_lat_weights,
    coverage,
    depth_is_height,
    find_coord,
    iso_times,
    longitude_convention,
    parse_day,
    require_coord,
    require_variables,
    time_series_table,
    with_history,
    wrap_longitudes,
)
from blocks.spec import Derived, Port, block

TIME_STEPS_PER_CHUNK = 120
"""Area means are computed this many time steps at a time, to bound memory and report progress."""

MAX_LEVELS_LISTED = 12
"""Error messages about depth list the dataset's levels when there are at most this many."""


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


def _space_selection(
    dataset: xr.Dataset, params: dict[str, Any], wrap: bool = False
) -> dict[str, tuple[slice, str]]:
    """Slices per spatial dimension, each with a description of the parameters it came from.

    With ``wrap`` a single longitude edge is first expressed in the dataset's longitude convention
    (0-360 or -180-180); a pair of edges is left to :func:`_framed_longitudes`.
    """
    selection = {}
    for axis in ("lat", "lon"):
        lower, upper = params.get(f"{axis}_min"), params.get(f"{axis}_max")
        if lower is None and upper is None:
            continue
        if lower is not None and upper is not None and lower > upper:
            raise ValueError(f"{axis}_min ({lower}) must not be greater than {axis}_max ({upper})")
        name = find_coord(dataset, axis)
        if name is None:
            raise ValueError(f"{axis}_min/{axis}_max: the dataset has no {KIND_WORDS[axis]} coordinate")
        given = ", ".join(f"{axis}_{end}={value}" for end, value in (("min", lower), ("max", upper))
                          if value is not None)
        if wrap and axis == "lon":
            if lower is not None and upper is not None:
                continue
            convention = longitude_convention(dataset.indexes[name])
            lower, upper = (None if value is None else float(wrap_longitudes(value, convention))
                            for value in (lower, upper))
        selection[name] = (_ordered_slice(dataset.indexes[name], lower, upper), given)
    return selection


def _framed_longitudes(dataset: xr.Dataset, lower: float, upper: float) -> xr.Dataset:
    """Keep longitudes from ``lower`` to ``upper`` (degrees east, either convention), across the seam.

    When the box lies inside the dataset's own convention this is a plain slice. Otherwise every
    longitude is expressed in the frame [lower, lower + 360) and the ones up to ``upper`` are kept,
    sorted, with their values in the frame of the request (e.g. -10 to 10 from a 0-360 dataset).
    """
    name = find_coord(dataset, "lon")
    if name is None:
        raise ValueError("lon_min/lon_max: the dataset has no longitude coordinate")
    index = dataset.indexes[name]
    low_edge, high_edge = (0.0, 360.0) if longitude_convention(index) == 360 else (-180.0, 180.0)
    if upper - lower >= 360.0:
        return dataset
    if low_edge <= lower and upper <= high_edge:
        return dataset.sel({name: _ordered_slice(index, lower, upper)})
    values = np.asarray(index, dtype=np.float64)
    framed = lower + np.mod(values - lower, 360.0)
    keep = np.flatnonzero(framed <= upper)
    order = keep[np.argsort(framed[keep], kind="stable")]
    result = dataset.isel({name: order})
    return result.assign_coords({name: (name, framed[order], dict(dataset[name].attrs))})


def _depth_levels(index: pd.Index) -> str:
    if len(index) > MAX_LEVELS_LISTED:
        return f"the levels cover {coverage(index)}"
    return "the levels are " + ", ".join(f"{value:g}" for value in index)


def _depth_selection(dataset: xr.Dataset, params: dict[str, Any], ctx: StepContext) -> xr.Dataset:
    """Keep the depth levels from depth_min to depth_max (metres, positive down), or the nearest level."""
    lower, upper = params.get("depth_min"), params.get("depth_max")
    if lower is None and upper is None:
        return dataset
    if lower is not None and upper is not None and lower > upper:
        raise ValueError(f"depth_min ({lower}) must not be greater than depth_max ({upper})")
    name = require_coord(dataset, "depth", "depth_min/depth_max")
    index = dataset.indexes[name]
    # Depth stored as height (positive up, values below zero): compare with the negated request.
    upward = depth_is_height(dataset[name])
    sign = -1.0 if upward else 1.0
    given = ", ".join(f"depth_{end}={value}" for end, value in (("min", lower), ("max", upper))
                      if value is not None)
    if lower is not None and lower == upper:
        result = dataset.sel({name: [sign * lower]}, method="nearest")
        level = float(result.indexes[name][0])
        ctx.log(f"depth {lower:g} m: nearest level {sign * level:g} m")
        return result
    bounds = (None if lower is None else sign * lower, None if upper is None else sign * upper)
    bounds = bounds[::-1] if upward else bounds
    result = dataset.sel({name: _ordered_slice(index, *bounds)})
    if result.sizes[name] == 0:
        raise ValueError(
            f"empty selection: {given} keeps no depth levels; {_depth_levels(index)} "
            "(give the same depth_min and depth_max to take the nearest level)"
        )
    return result


def _time_selection(dataset: xr.Dataset, params: dict[str, Any]) -> dict[str, tuple[slice, str]]:
    start, end = params.get("start"), params.get("end")
    if start is None and end is None:
        return {}
    start = None if start is None else f"{parse_day('start', start):%Y-%m-%d}"
    end = None if end is None else f"{parse_day('end', end):%Y-%m-%d}"
    if start is not None and end is not None and start > end:
        raise ValueError(f"start ({start}) must not be after end ({end})")
    name = find_coord(dataset, "time")
    if name is None:
        raise ValueError("start/end: the dataset has no time coordinate")
    first, last = (day[:10] for day in iso_times([dataset.indexes[name].min(), dataset.indexes[name].max()]))
    covers = f"the data covers {first} to {last}"
    if start is not None and start > last:
        raise ValueError(f"start ({start}) is after the end of the data; {covers}")
    if end is not None and end < first:
        raise ValueError(f"end ({end}) is before the beginning of the data; {covers}")
    given = ", ".join(f"{key}={value}" for key, value in (("start", start), ("end", end)) if value)
    # Date strings select whole days, so an `end` day is included up to 23:59:59.
    return {name: (slice(start, end), given)}


SUBSET_PARAMETERS: dict[str, Any] = {
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
}

DEPTH_PARAMETERS: dict[str, Any] = {
    "depth_min": {"type": "number", "minimum": 0, "title": "Shallowest depth",
                  "description": "Keep depth levels from this depth, metres below the surface. "
                                 "Empty: from the surface. Same value as the deepest depth: the nearest "
                                 "level only."},
    "depth_max": {"type": "number", "minimum": 0, "title": "Deepest depth",
                  "description": "Keep depth levels down to this depth, metres below the surface. "
                                 "Empty: to the bottom."},
}


def _subset(ctx: StepContext, inputs: dict[str, Any], params: dict[str, Any], version: str) -> xr.Dataset:
    """Both versions of ocean.subset; 1.1.0 adds depth and longitude edges in either convention."""
    newer = version != "1.0.0"
    dataset = _selected_variables(inputs["dataset"], params.get("variables"))
    selection = {**_space_selection(dataset, params, wrap=newer), **_time_selection(dataset, params)}
    if newer:
        dataset = _depth_selection(dataset, params, ctx)
    ctx.progress(0.5, "selecting")
    result = dataset.sel({name: part for name, (part, _) in selection.items()})
    lower, upper = params.get("lon_min"), params.get("lon_max")
    if newer and lower is not None and upper is not None:
        result = _framed_longitudes(result, float(lower), float(upper))
        name = find_coord(dataset, "lon")
        selection[str(name)] = (slice(None), f"lon_min={lower}, lon_max={upper}")
    for name, (_, given) in selection.items():
        if result.sizes[name] == 0:
            covers = coverage(dataset.indexes[name])
            raise ValueError(f"empty selection: {given} keeps no {name} values; the data covers {covers}")
    chosen = ", ".join(f"{key}={params[key]}" for key in sorted(params))
    ctx.progress(1.0, "selected " + ", ".join(f"{size} {dim}" for dim, size in result.sizes.items()))
    return with_history(result, f"ocean.subset {version} ({chosen or 'no selection'})")


def subset_dataset(ctx: StepContext, dataset: xr.Dataset, params: dict[str, Any]) -> xr.Dataset:
    """Apply an ``ocean.subset`` 1.1.0 selection (area, period, depth, variables) to a dataset."""
    return _subset(ctx, {"dataset": dataset}, params, "1.1.0")


@block(
    id="ocean.subset",
    version="1.0.0",
    title="Subset area, period and variables",
    category="transform",
    inputs=(Port("dataset", "dataset", "Dataset", "The gridded dataset to cut."),),
    outputs=(Port("dataset", "dataset", "Subset", "The same dataset restricted to the selection.",
                  quantity=Derived(from_port="dataset", keep="variables")),),
    parameters=SUBSET_PARAMETERS,
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
    return {"dataset": _subset(ctx, inputs, params, "1.0.0")}


@block(
    id="ocean.subset",
    version="1.1.0",
    title="Subset area, depth, period and variables",
    category="transform",
    inputs=(Port("dataset", "dataset", "Dataset", "The gridded dataset to cut."),),
    outputs=(Port("dataset", "dataset", "Subset", "The same dataset restricted to the selection.",
                  quantity=Derived(from_port="dataset", keep="variables")),),
    parameters={**SUBSET_PARAMETERS, "properties": {**SUBSET_PARAMETERS["properties"], **DEPTH_PARAMETERS}},
)
def subset_with_depth(
    ctx: StepContext, inputs: dict[str, Any], params: dict[str, Any]
) -> dict[str, xr.Dataset]:
    """Cut a dataset down to an area, a depth range, a period and a choice of variables.

    **What goes in:** a gridded dataset (for example the demo dataset or a Copernicus Marine product).
    Coordinates may be called `lat`/`lon` or `latitude`/`longitude` (or carry the CF standard names).

    **What comes out:** the same dataset, keeping only the grid points inside the box
    (southern/northern and western/eastern edges in degrees), the depth levels from the shallowest to
    the deepest depth (metres below the surface), the days from the first to the last day (both
    included) and the variables listed. Every setting is optional: leave it empty to keep everything
    along that direction. Edges that fall between grid points keep the points inside. Give the same
    shallowest and deepest depth to keep only the level nearest to it (e.g. 0 for the surface level).

    **Longitudes:** edges may be given from -180 to 180 or from 0 to 360, whatever the dataset uses;
    a box across the dataset's seam (e.g. -10 to 10 on a 0-360 dataset) is joined into one piece,
    and then the result's longitudes follow the convention of the edges you gave.

    **Good to know:** descriptions, units and other metadata are kept, and a line recording the cut
    is added to the dataset's history. Nothing is read from disk beyond what is kept. The step fails
    with an explanation when a variable does not exist, an edge is the wrong way round, a depth is
    asked of a dataset without depth levels, the period lies outside the data, or nothing is left.
    """
    return {"dataset": _subset(ctx, inputs, params, "1.1.0")}


def _area_dims(dataset: xr.Dataset, name: str) -> tuple[str, str, str]:
    """Latitude, longitude and time dimension names of a variable, or ValueError saying what is wrong."""
    dims = dataset[name].dims
    lat, lon = find_coord(dataset, "lat"), find_coord(dataset, "lon")
    if lat not in dims or lon not in dims:
        raise ValueError(
            f"variable: {name!r} has dimensions ({', '.join(map(str, dims))}); "
            "an area mean needs latitude and longitude dimensions"
        )
    time = find_coord(dataset, "time")
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
    outputs=(Port("table", "table", "Time series", "One row per time: the date and the area mean.",
                  quantity=Derived(from_port="dataset", keep="variable")),),
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
    require_variables(dataset, [name], "variable")
    lat, lon, time = _area_dims(dataset, name)
    weights = cos_lat_weights(dataset[lat])
    steps = dataset.sizes[time]
    means = []
    for first in range(0, steps, TIME_STEPS_PER_CHUNK):
        part = dataset[name].isel({time: slice(first, first + TIME_STEPS_PER_CHUNK)})
        means.append(part.weighted(weights).mean(dim=(lat, lon)).values.astype(np.float64))
        ctx.progress(min(first + TIME_STEPS_PER_CHUNK, steps) / steps, "averaging")
    values = np.concatenate(means) if means else np.array([], dtype=np.float64)
    if np.isnan(values).all():
        raise ValueError(f"variable: {name!r} has no valid values (all missing) in this area and period")
    table = time_series_table(dataset[name].indexes[time], {name: values}, {name: dataset[name].attrs})
    return {"table": table}
