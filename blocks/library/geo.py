"""Shared helpers for blocks: CF coordinates, longitudes, history and time series tables.

This module defines no blocks. Its public API:

* :func:`find_coord` / :func:`require_coord` - the name of the latitude, longitude, time or depth
  coordinate of a dataset, found by name, CF ``standard_name``, ``axis`` or ``units``;
* :func:`coverage`, :func:`iso_times` - human-readable ranges and ISO 8601 time strings;
* :func:`wrap_longitudes`, :func:`longitude_convention` - 0-360 versus -180-180 longitudes;
* :func:`depth_is_height` - whether a depth coordinate counts upwards (negative below the surface);
* :func:`cos_lat_weights` - area weights of a regular latitude-longitude grid;
* :func:`with_history` - append a line to a dataset's CF ``history`` attribute;
* :func:`time_series_table`, :func:`read_time_series` - build and parse the shared time series table
  (a ``time`` column plus one numeric column per variable).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr

Kind = Literal["lat", "lon", "time", "depth"]

KIND_WORDS: dict[str, str] = {"lat": "latitude", "lon": "longitude", "time": "time", "depth": "depth"}
"""How each kind of coordinate is named in messages."""

COORD_NAMES: dict[str, tuple[str, ...]] = {
    "lat": ("lat", "latitude", "nav_lat", "lat_rho"),
    "lon": ("lon", "longitude", "nav_lon", "lon_rho"),
    "time": ("time", "t", "time_counter"),
    "depth": ("depth", "deptht", "depthu", "depthv", "depthw", "lev", "z"),
}
"""Coordinate names recognised for each kind (compared case-insensitively)."""

STANDARD_NAMES: dict[str, tuple[str, ...]] = {
    "lat": ("latitude", "grid_latitude"),
    "lon": ("longitude", "grid_longitude"),
    "time": ("time",),
    "depth": ("depth", "depth_below_geoid", "sea_floor_depth_below_sea_surface"),
}
"""CF standard names recognised for each kind."""

AXES: dict[str, str] = {"lat": "Y", "lon": "X", "time": "T", "depth": "Z"}
"""CF ``axis`` attribute of each kind."""

UNITS: dict[str, tuple[str, ...]] = {
    "lat": ("degrees_north", "degree_north", "degree_n", "degrees_n", "degreen", "degreesn"),
    "lon": ("degrees_east", "degree_east", "degree_e", "degrees_e", "degreee", "degreese"),
}
"""CF units that identify latitude and longitude (compared case-insensitively)."""

TIME_COLUMN = "time"
"""Name of the time column of every time series table."""


def _is_time_like(coordinate: xr.DataArray) -> bool:
    if np.issubdtype(coordinate.dtype, np.datetime64):
        return True
    if coordinate.dtype == object and coordinate.size:
        first = coordinate.values.flat[0]
        return hasattr(first, "calendar") and hasattr(first, "year")  # a cftime datetime
    return " since " in str(coordinate.attrs.get("units", ""))


def _score(name: str, coordinate: xr.DataArray, kind: str) -> int:
    """How surely ``coordinate`` is of ``kind``: 4 by name, 3 by standard_name, 2 by axis, 1 by units."""
    attrs = coordinate.attrs
    if name.lower() in COORD_NAMES[kind]:
        return 4
    if str(attrs.get("standard_name", "")).lower() in STANDARD_NAMES[kind]:
        return 3
    if str(attrs.get("axis", "")).upper() == AXES[kind]:
        return 2
    if kind in UNITS and str(attrs.get("units", "")).lower() in UNITS[kind]:
        return 1
    if kind == "time" and _is_time_like(coordinate):
        return 1
    if kind == "depth" and str(attrs.get("positive", "")).lower() in ("up", "down"):
        return 1
    return 0


def find_coord(dataset: xr.Dataset | xr.DataArray, kind: Kind, *, dimension: bool = True) -> str | None:
    """The name of the ``kind`` coordinate ("lat", "lon", "time" or "depth") of ``dataset``, or None.

    A coordinate is recognised, in this order of preference, by its name (``lat``, ``latitude``...),
    its CF ``standard_name``, its CF ``axis`` attribute (Y, X, T, Z) or its units (``degrees_north``,
    ``degrees_east``, a datetime type, ``positive`` up/down for depth). With ``dimension=True`` (the
    default) only 1-D dimension coordinates count (``lat(lat)``), so the result can be used to select
    and reduce; with ``dimension=False`` 2-D coordinates of curvilinear grids count too.
    """
    if kind not in COORD_NAMES:
        raise KeyError(f"unknown coordinate kind {kind!r}; use one of {', '.join(COORD_NAMES)}")
    best, best_score = None, 0
    for name, coordinate in dataset.coords.items():
        if dimension and coordinate.dims != (name,):
            continue
        score = _score(str(name), coordinate, kind)
        if score > best_score:
            best, best_score = str(name), score
    return best


def require_coord(
    dataset: xr.Dataset | xr.DataArray, kind: Kind, parameter: str, *, dimension: bool = True
) -> str:
    """Like :func:`find_coord`, but raise ValueError starting with ``parameter`` when there is none.

    The message names the dataset's dimensions, e.g.
    ``"depth_min: the dataset has no depth dimension; its dimensions are time, lat, lon"``.
    """
    name = find_coord(dataset, kind, dimension=dimension)
    if name is None:
        dims = ", ".join(map(str, dataset.dims)) or "none"
        what = "dimension" if dimension else "coordinate"
        raise ValueError(
            f"{parameter}: the dataset has no {KIND_WORDS[kind]} {what}; its dimensions are {dims}"
        )
    return name


def depth_is_height(coordinate: xr.DataArray) -> bool:
    """Whether a depth coordinate counts upwards (CF ``positive: up``, or only values of zero and below).

    Blocks take depths in metres below the surface; compare them with ``-value`` when this is True.
    """
    if str(coordinate.attrs.get("positive", "")).lower() in ("up", "down"):
        return str(coordinate.attrs["positive"]).lower() == "up"
    values = np.asarray(coordinate, dtype=np.float64)
    return bool(values.size) and float(np.nanmax(values)) <= 0 < float(-np.nanmin(values))


def iso_times(times: Iterable[Any]) -> list[str]:
    """Dates (``YYYY-MM-DD``) when every time is at midnight, full ISO 8601 timestamps otherwise."""
    values = [pd.Timestamp(t) if isinstance(t, np.datetime64) else t for t in times]
    daily = all((t.hour, t.minute, t.second, t.microsecond) == (0, 0, 0, 0) for t in values)
    return [t.strftime("%Y-%m-%d") if daily else t.isoformat() for t in values]


def coverage(index: pd.Index | Sequence[Any]) -> str:
    """The range of a coordinate in words, e.g. ``'40 to 46'`` or ``'2021-01-01 to 2023-12-31'``."""
    index = index if isinstance(index, pd.Index) else pd.Index(index)
    if len(index) == 0:
        return "nothing"
    if isinstance(index, (pd.DatetimeIndex, xr.CFTimeIndex)):
        first, last = iso_times([index.min(), index.max()])
        return f"{first} to {last}"
    return f"{index.min():g} to {index.max():g}"


def with_history(dataset: xr.Dataset, line: str) -> xr.Dataset:
    """A copy of ``dataset`` whose CF ``history`` attribute ends with a time-stamped ``line``."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    previous = str(dataset.attrs.get("history", "")).rstrip("\n")
    entry = f"{stamp} {line}"
    return dataset.assign_attrs(history=f"{previous}\n{entry}" if previous else entry)


def longitude_convention(longitudes: Iterable[float]) -> int:
    """180 when longitudes run from -180 to 180 (or stay within 0-180), 360 when they go past 180."""
    values = np.asarray(list(longitudes) if not isinstance(longitudes, np.ndarray) else longitudes)
    return 360 if values.size and np.nanmax(values) > 180 else 180


def wrap_longitudes(longitudes: Any, convention: int) -> Any:
    """Longitudes expressed in ``convention`` 180 (-180 <= lon < 180) or 360 (0 <= lon < 360).

    Works on numbers, numpy arrays and pandas/xarray objects; e.g. ``wrap_longitudes(350, 180)`` is -10.
    """
    if convention == 360:
        return np.mod(longitudes, 360.0)
    if convention == 180:
        return np.mod(np.add(longitudes, 180.0), 360.0) - 180.0
    raise ValueError(f"convention must be 180 or 360, not {convention!r}")


def cos_lat_weights(latitudes: xr.DataArray) -> xr.DataArray:
    """Area weights of a regular latitude-longitude grid: the cosine of latitude (degrees north)."""
    return np.cos(np.deg2rad(latitudes))


def time_series_table(times: Iterable[Any], columns: Mapping[str, Any]) -> pd.DataFrame:
    """The shared time series table: a ``time`` column plus one numeric column per variable.

    ``times`` are datetimes (numpy, pandas or cftime); they become ``YYYY-MM-DD`` strings when all
    fall at midnight, full ISO 8601 timestamps otherwise. ``columns`` maps a variable name to values
    (one per time, converted to float64).
    """
    texts = iso_times(times)
    table = pd.DataFrame({TIME_COLUMN: texts})
    for name, values in columns.items():
        array = np.asarray(values, dtype=np.float64).reshape(-1)
        if len(array) != len(texts):
            raise ValueError(f"column {name!r} has {len(array)} values for {len(texts)} times")
        table[str(name)] = array
    return table


def read_time_series(
    table: pd.DataFrame, columns: Sequence[str] | None = None, *, parameter: str = "series"
) -> pd.DataFrame:
    """Parse a time series table into a frame indexed by time (sorted), holding numeric columns.

    ``columns`` picks the value columns (default: every numeric column besides ``time``). Raises
    ValueError starting with ``parameter`` when the ``time`` column is missing or unreadable, a
    requested column is missing or not numeric, or the table has no rows or no numeric column.
    """
    known = ", ".join(map(str, table.columns)) or "none"
    if TIME_COLUMN not in table.columns:
        raise ValueError(f"{parameter}: the table has no 'time' column; its columns are {known}")
    if len(table) == 0:
        raise ValueError(f"{parameter}: the table has no rows")
    try:
        times = pd.to_datetime(table[TIME_COLUMN], format="ISO8601")
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"{parameter}: the 'time' column holds values that are not ISO dates: {error}"
        ) from None
    if times.dt.tz is not None:
        times = times.dt.tz_convert("UTC").dt.tz_localize(None)
    if columns is None:
        columns = [str(name) for name in table.columns
                   if name != TIME_COLUMN and pd.api.types.is_numeric_dtype(table[name])]
        if not columns:
            raise ValueError(f"{parameter}: the table has no numeric column; its columns are {known}")
    for name in columns:
        if name not in table.columns:
            raise ValueError(f"{parameter}: column {name!r} is not in the table; its columns are {known}")
        if not pd.api.types.is_numeric_dtype(table[name]):
            raise ValueError(f"{parameter}: column {name!r} holds {table[name].dtype} values, not numbers")
    frame = table[list(columns)].astype(np.float64)
    frame.index = pd.DatetimeIndex(times, name=TIME_COLUMN)
    return frame.sort_index()
