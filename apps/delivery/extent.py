"""Where and when a delivered file's data lies, read from the file itself: the bounding box and time
range of a NetCDF dataset's latitude, longitude and time coordinates, of a table's lat/lon/time
columns, or of a GeoJSON document's coordinates. Unknown parts are None."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

LAT_NAMES = ("lat", "latitude", "nav_lat", "y")
LON_NAMES = ("lon", "longitude", "nav_lon", "x")
TIME_NAMES = ("time", "date", "datetime", "t")


@dataclass(frozen=True)
class Extent:
    bbox: list[float] | None = None
    """[west, south, east, north] in degrees (WGS 84)."""
    start: datetime | None = None
    end: datetime | None = None


def _bbox(lons: Any, lats: Any) -> list[float] | None:
    import numpy as np

    lons = np.asarray(lons, dtype="float64").ravel()
    lats = np.asarray(lats, dtype="float64").ravel()
    lons, lats = lons[np.isfinite(lons)], lats[np.isfinite(lats)]
    if not lons.size or not lats.size:
        return None
    lons = np.where(lons > 180.0, lons - 360.0, lons)
    box = [float(lons.min()), float(lats.min()), float(lons.max()), float(lats.max())]
    if not (-180 <= box[0] <= box[2] <= 180 and -90 <= box[1] <= box[3] <= 90):
        return None
    return [round(value, 6) for value in box]


def _times(values: Any) -> tuple[datetime | None, datetime | None]:
    import pandas as pd

    try:
        times = pd.to_datetime(pd.Series(list(values)), errors="coerce", utc=True).dropna()
    except (TypeError, ValueError, OverflowError):
        return None, None
    if times.empty:
        return None, None
    return times.min().to_pydatetime().astimezone(UTC), times.max().to_pydatetime().astimezone(UTC)


def _named(names: Any, wanted: tuple[str, ...]) -> str | None:
    lowered = {str(name).lower(): str(name) for name in names}
    return next((lowered[name] for name in wanted if name in lowered), None)


def _netcdf(path: Path) -> Extent:
    import xarray as xr

    with xr.open_dataset(path, decode_times=True) as dataset:
        names = list(dataset.coords) + list(dataset.data_vars)
        by_standard = {str(dataset[n].attrs.get("standard_name", "")): str(n) for n in names}
        lat = by_standard.get("latitude") or _named(names, LAT_NAMES)
        lon = by_standard.get("longitude") or _named(names, LON_NAMES)
        time = by_standard.get("time") or _named(names, TIME_NAMES)
        bbox = _bbox(dataset[lon].values, dataset[lat].values) if lat and lon else None
        start, end = _times(dataset[time].values) if time else (None, None)
    return Extent(bbox, start, end)


def _table(path: Path) -> Extent:
    import pandas as pd

    table = pd.read_csv(path, nrows=1_000_000)
    lat, lon, time = (_named(table.columns, names) for names in (LAT_NAMES, LON_NAMES, TIME_NAMES))
    bbox = _bbox(table[lon], table[lat]) if lat and lon else None
    start, end = _times(table[time]) if time else (None, None)
    return Extent(bbox, start, end)


def _geojson(path: Path) -> Extent:
    document = json.loads(path.read_text(encoding="utf-8"))
    points: list[tuple[float, float]] = []
    times: list[Any] = []

    def walk(coordinates: Any) -> None:
        if isinstance(coordinates, list | tuple) and coordinates and isinstance(coordinates[0], int | float):
            points.append((float(coordinates[0]), float(coordinates[1])))
        elif isinstance(coordinates, list | tuple):
            for part in coordinates:
                walk(part)

    features = document.get("features") or ([document] if document.get("type") == "Feature" else [])
    for feature in features:
        walk((feature.get("geometry") or {}).get("coordinates"))
        time = (feature.get("properties") or {}).get("time")
        if time is not None:
            times.append(time)
    bbox = _bbox([p[0] for p in points], [p[1] for p in points]) if points else None
    start, end = _times(times) if times else (None, None)
    return Extent(bbox, start, end)


READERS = {"application/x-netcdf": _netcdf, "text/csv": _table, "application/geo+json": _geojson}


def file_extent(path: Path, media_type: str) -> Extent:
    """The extent of the file at ``path``; an empty Extent when the format is not understood or the
    file cannot be read (a report must not fail because one file is odd)."""
    reader = READERS.get(media_type)
    if reader is None:
        return Extent()
    try:
        extent = reader(path)
    except Exception:  # noqa: BLE001  any unreadable file simply has no known extent
        return Extent()
    if extent.bbox and not all(math.isfinite(value) for value in extent.bbox):
        return Extent(None, extent.start, extent.end)
    return extent
