"""Shared helpers for blocks: CF coordinates, longitudes, history and time series tables.

This module defines no blocks. Its public API:

* :func:`find_coord` / :func:`require_coord` - the name of the latitude, longitude, time or depth
  coordinate of a dataset, found by name, CF ``standard_name``, ``axis`` or ``units``; and
  :func:`coord_kind`, which of these a given coordinate is;
* :func:`coverage`, :func:`iso_times`, :func:`iso_column` - human-readable ranges and ISO 8601 time
  strings;
* :func:`wrap_longitudes`, :func:`longitude_convention` - 0-360 versus -180-180 longitudes;
* :func:`depth_is_height` - whether a depth coordinate counts upwards (negative below the surface);
* :func:`cos_lat_weights` - area weights of a regular latitude-longitude grid;
* :func:`with_history` - append a line to a dataset's CF ``history`` attribute;
* :func:`parse_day` - a ``YYYY-MM-DD`` parameter as a timestamp;
* :func:`variable_list`, :func:`require_variables` - check the variables of datasets;
* :func:`column_list`, :func:`require_columns`, :func:`numeric_column`, :func:`numeric_columns`,
  :func:`table_times` - check the columns of tables;
* :func:`time_series_table`, :func:`read_time_series` - build and parse the shared time series table
  (a ``time`` column plus one numeric column per variable).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr

from blocks.library.cf import on_scale_attrs, with_columns

Kind = Literal["lat", "lon", "time", "depth"]

KIND_WORDS: dict[str, str] = {"lat": "latitude", "lon": "longitude", "time": "time", "depth": "depth"}
"""How each kind of coordinate is named in messages."""

COORD_NAMES: dict[str, tuple[str, ...]] = {
    "lat": ("lat", "latitude", "nav_lat", "lat_rho", "y_lat"),
    "lon": ("lon", "longitude", "long", "nav_lon", "lon_rho", "x_lon"),
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

OBSERVATION_COLUMNS = ("station", "time", "lat", "lon", "depth", "variable", "value", "quality_flag")
"""Columns of the observation table (one row per measurement), as data.open_observations writes it."""


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


def coord_kind(name: str, coordinate: xr.DataArray) -> Kind | None:
    """Which kind of coordinate ("lat", "lon", "time" or "depth") ``coordinate`` is, or None.

    Judged as in :func:`find_coord`; when several kinds fit, the surest wins (name, then CF
    ``standard_name``, ``axis`` and units).
    """
    scores = {kind: _score(name, coordinate, kind) for kind in COORD_NAMES}
    best = max(scores, key=lambda kind: scores[kind])
    return best if scores[best] else None  # type: ignore[return-value]


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


def iso_column(times: pd.Series) -> pd.Series:
    """A datetime column as text: ``YYYY-MM-DD`` when every time is at midnight, else
    ``YYYY-MM-DDTHH:MM:SS`` (missing times stay missing; the index is kept)."""
    if times.empty:
        return pd.Series([], index=times.index, dtype=object, name=times.name)
    known = times.dropna()
    daily = bool((known == known.dt.normalize()).all())
    return times.dt.strftime("%Y-%m-%d" if daily else "%Y-%m-%dT%H:%M:%S")


def coverage(index: pd.Index | Sequence[Any]) -> str:
    """The range of a coordinate in words, e.g. ``'40 to 46'`` or ``'2021-01-01 to 2023-12-31'``."""
    index = index if isinstance(index, pd.Index) else pd.Index(index)
    if len(index) == 0:
        return "nothing"
    if isinstance(index, (pd.DatetimeIndex, xr.CFTimeIndex)):
        first, last = iso_times([index.min(), index.max()])
        return f"{first} to {last}"
    return f"{index.min():g} to {index.max():g}"


def utc_stamp() -> str:
    """The current UTC time as ``YYYY-MM-DDTHH:MM:SSZ``, as written in ``history`` and ``date_created``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def with_history(dataset: xr.Dataset, line: str, *, stamp: str | None = None) -> xr.Dataset:
    """A copy of ``dataset`` whose CF ``history`` attribute ends with a time-stamped ``line``.

    ``stamp`` defaults to :func:`utc_stamp`; pass one to use the same time in other attributes.
    """
    stamp = stamp or utc_stamp()
    previous = str(dataset.attrs.get("history", "")).rstrip("\n")
    entry = f"{stamp} {line}"
    return dataset.assign_attrs(history=f"{previous}\n{entry}" if previous else entry)


def parse_day(parameter: str, value: str) -> pd.Timestamp:
    """A ``YYYY-MM-DD`` parameter value as a midnight timestamp, or ValueError starting with ``parameter``."""
    try:
        return pd.Timestamp(date.fromisoformat(value))
    except ValueError:
        raise ValueError(f"{parameter}: {value!r} is not a date (expected YYYY-MM-DD)") from None


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


def time_series_table(times: Iterable[Any], columns: Mapping[str, Any],
                      metadata: Mapping[str, Mapping[str, Any]] | None = None) -> pd.DataFrame:
    """The shared time series table: a ``time`` column plus one numeric column per variable.

    ``times`` are datetimes (numpy, pandas or cftime); they become ``YYYY-MM-DD`` strings when all
    fall at midnight, full ISO 8601 timestamps otherwise. ``columns`` maps a variable name to values
    (one per time, converted to float64). ``metadata`` maps a column to the attributes of the variable
    it comes from; its CF attributes (units, standard_name, long_name, units_metadata) are recorded in
    ``table.attrs["columns"]`` (see :mod:`blocks.library.cf`).
    """
    texts = iso_times(times)
    table = pd.DataFrame({TIME_COLUMN: texts})
    for name, values in columns.items():
        array = np.asarray(values, dtype=np.float64).reshape(-1)
        if len(array) != len(texts):
            raise ValueError(f"column {name!r} has {len(array)} values for {len(texts)} times")
        table[str(name)] = array
    return with_columns(table, {str(name): on_scale_attrs(attrs) for name, attrs in (metadata or {}).items()})


def read_time_series(
    table: pd.DataFrame, columns: Sequence[str] | None = None, *, parameter: str = "series"
) -> pd.DataFrame:
    """Parse a time series table into a frame indexed by time (sorted), holding numeric columns.

    ``columns`` picks the value columns (default: every numeric column besides ``time``). Raises
    ValueError starting with ``parameter`` when the ``time`` column is missing, unreadable (times are
    ISO 8601) or empty, a requested column is missing or not numeric, or the table has no rows or no
    numeric column (see :func:`table_times` and :func:`numeric_columns`).
    """
    times = table_times(table, parameter, iso_only=True)
    frame = table[numeric_columns(table, columns, parameter)].astype(np.float64)
    frame.index = pd.DatetimeIndex(times, name=TIME_COLUMN)
    return frame.sort_index()


def variable_list(dataset: xr.Dataset) -> str:
    """The data variable names of ``dataset`` for messages, e.g. ``'sst, sss'`` (``'none'`` without any)."""
    return ", ".join(map(str, dataset.data_vars)) or "none"


def require_variables(dataset: xr.Dataset, names: Iterable[str] | None, parameter: str = "variables") -> None:
    """Raise ValueError starting with ``parameter`` unless every one of ``names`` is a data variable."""
    for name in names or ():
        if name not in dataset.data_vars:
            raise ValueError(
                f"{parameter}: {name!r} is not in the dataset; available: {variable_list(dataset)}"
            )


def column_list(table: pd.DataFrame) -> str:
    """The column names of ``table`` for messages, e.g. ``'time, sst'`` (``'none'`` without columns)."""
    return ", ".join(map(str, table.columns)) or "none"


def require_columns(table: pd.DataFrame, names: Iterable[str] | None, parameter: str = "columns") -> None:
    """Raise ValueError starting with ``parameter`` unless every one of ``names`` is a column of ``table``."""
    for name in names or ():
        if name not in table.columns:
            raise ValueError(f"{parameter}: {name!r} is not in the table; available: {column_list(table)}")


def _holds_numbers(column: pd.Series, booleans: bool) -> bool:
    return pd.api.types.is_numeric_dtype(column) and (booleans or not pd.api.types.is_bool_dtype(column))


def numeric_column(
    table: pd.DataFrame, column: str | None, parameter: str = "column", *,
    exclude: Sequence[str] = (TIME_COLUMN,), booleans: bool = True,
) -> str:
    """``column`` checked to exist and hold numbers or, when it is empty, the first numeric column.

    Columns in ``exclude`` are not picked by default; with ``booleans=False`` true/false columns do
    not count as numbers. Raises ValueError starting with ``parameter``.
    """
    if column:
        require_columns(table, [column], parameter)
        if not _holds_numbers(table[column], booleans):
            raise ValueError(f"{parameter}: {column!r} holds {table[column].dtype} values, not numbers")
        return column
    for name in table.columns:
        if name not in exclude and _holds_numbers(table[name], booleans):
            return str(name)
    raise ValueError(f"{parameter}: the table has no numeric column; columns: {column_list(table)}")


def numeric_columns(
    table: pd.DataFrame, wanted: Sequence[str] | None, parameter: str = "columns", *, booleans: bool = True
) -> list[str]:
    """The ``wanted`` columns, each checked by :func:`numeric_column`, or when there are none every
    numeric column besides ``time`` (true/false columns only with ``booleans``)."""
    if wanted:
        return [numeric_column(table, name, parameter) for name in wanted]
    found = [str(name) for name in table.columns
             if name != TIME_COLUMN and _holds_numbers(table[name], booleans)]
    if not found:
        raise ValueError(f"{parameter}: the table has no numeric column; columns: {column_list(table)}")
    return found


def table_times(
    table: pd.DataFrame, parameter: str = "series", *, iso_only: bool = False
) -> pd.DatetimeIndex:
    """The ``time`` column of a table as naive UTC timestamps.

    Times are read in any format pandas recognises or, with ``iso_only``, as ISO 8601 (which may mix
    dates and date-times). Raises ValueError starting with ``parameter`` when the column is missing,
    the table has no rows, or a time is unreadable or empty (naming the first such row, counted from 1).
    """
    if TIME_COLUMN not in table.columns:
        raise ValueError(f"{parameter}: the table has no 'time' column; columns: {column_list(table)}")
    if table.empty:
        raise ValueError(f"{parameter}: the table has no rows")
    raw = table[TIME_COLUMN]
    try:
        times = pd.to_datetime(raw, utc=True, errors="coerce", format="ISO8601" if iso_only else None)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"{parameter}: the 'time' column holds values that are not dates ({error})"
        ) from None
    times = pd.DatetimeIndex(times).tz_convert(None)
    if times.hasnans:
        row = int(np.flatnonzero(times.isna())[0])
        if raw.isna().iloc[row]:
            raise ValueError(f"{parameter}: the 'time' column is empty in row {row + 1}")
        raise ValueError(f"{parameter}: the 'time' column holds values that are not dates, e.g. "
                         f"{raw.iloc[row]!r} in row {row + 1}")
    return times
