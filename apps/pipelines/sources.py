"""What a pipeline's sources hold, for checking units and quantities before a run.

:func:`describe_source` reads the CF attributes of the variables of a NetCDF file or Zarr store in
the local data space (``settings.ILIAD_DATA_DIR``) without reading any values, and gives the plain
dictionary :func:`engine.validate_document` expects. URLs are never fetched while validating: they
are unknown, and so are files that cannot be read or are not self-contained. Results are cached per
(path, modification time, size), so the editor's repeated validations read each file once.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from django.conf import settings

from blocks.types import CF_COLUMN_KEYS as CF_ATTRIBUTES


def describe_source(source: str) -> dict[str, Any] | None:
    """``{"variables": {name: {units, standard_name, ...}}, "calendar": str | None}`` for a data-space
    path, or None when it is a URL or cannot be described (the run reports why)."""
    if not isinstance(source, str) or not source.strip() or "://" in source:
        return None
    # Imported here: the block library brings xarray, which the web process need not load at start.
    from blocks.library.data_access import NETCDF_SUFFIXES, ZARR_SUFFIXES

    root = Path(settings.ILIAD_DATA_DIR).resolve()
    try:
        path = (root / source.strip().lstrip("/")).resolve()
        if not path.is_relative_to(root):
            return None
        is_zarr = path.is_dir() and path.name.lower().endswith(ZARR_SUFFIXES)
        if not is_zarr and not (path.is_file() and path.name.lower().endswith(NETCDF_SUFFIXES)):
            return None
        stamp = _stamp(path, is_zarr)
    except (OSError, RuntimeError, ValueError):  # too long, a NUL byte, a symlink loop...
        return None
    return _described(str(path), source, str(root), is_zarr, *stamp)


def _stamp(path: Path, is_zarr: bool) -> tuple[int, int]:
    """(modification time in ns, size) of a file, or of a Zarr store's metadata."""
    if is_zarr:
        for name in ("zarr.json", ".zmetadata", ".zgroup"):
            if (path / name).exists():
                path = path / name
                break
    status = path.stat()
    return status.st_mtime_ns, status.st_size


@lru_cache(maxsize=256)
def _described(
    path_text: str, source: str, root_text: str, is_zarr: bool, mtime_ns: int, size: int
) -> dict[str, Any] | None:
    from blocks.formatguard import ensure_self_contained

    path, root = Path(path_text), Path(root_text)
    try:
        # Never open a file that would make the library read other files (external links, VDS).
        ensure_self_contained(path, source=source, root=root)
        return _read_attributes(path, is_zarr)
    except Exception:  # noqa: BLE001 - an unreadable source is unknown here; running it says why
        return None


def _read_attributes(path: Path, is_zarr: bool) -> dict[str, Any]:
    import xarray

    options = {"decode_times": False, "mask_and_scale": False, "decode_coords": "all"}
    if is_zarr:
        from zarr.storage import LocalStore

        dataset = xarray.open_zarr(LocalStore(path, read_only=True), chunks=None, **options)
    else:
        dataset = xarray.open_dataset(path, engine="netcdf4", chunks=None, **options)
    with dataset:
        variables = {
            str(name): {key: str(variable.attrs[key]) for key in CF_ATTRIBUTES if key in variable.attrs}
            for name, variable in dataset.data_vars.items()
        }
        calendar = None
        for variable in dataset.variables.values():
            if variable.attrs.get("standard_name") == "time" or variable.attrs.get("axis") == "T":
                calendar = str(variable.attrs.get("calendar", "standard"))
                break
        try:
            extent = _extent(dataset)
        except Exception:  # noqa: BLE001 - odd coordinates lose the extent, never the variables
            extent = {}
    return {"variables": variables, "calendar": calendar, "extent": extent}


# Coordinates larger than this are not read to find the extent (a curvilinear grid's 2-D latitudes).
_EXTENT_MAX_VALUES = 4_000_000


def _extent(dataset) -> dict[str, Any]:
    """The area (degrees) and days a dataset covers, from its coordinates (CF ``standard_name`` or
    ``axis``, or the usual names), else from ACDD ``geospatial_*`` and ``time_coverage_*`` attributes."""
    import numpy as np
    from xarray.coding.times import decode_cf_datetime

    def coordinate(standard_name: str, axis: str, names: tuple[str, ...]):
        for variable in (*dataset.coords.values(), *dataset.data_vars.values()):
            attrs = variable.attrs
            named = attrs.get("standard_name") == standard_name or attrs.get("axis") == axis
            if named or variable.name in names:
                if 0 < variable.size <= _EXTENT_MAX_VALUES:
                    return variable
        return None

    def span(variable) -> tuple[float, float] | None:
        values = np.asarray(variable.values, dtype="float64")
        fill = variable.attrs.get("_FillValue", variable.attrs.get("missing_value"))
        if fill is not None:
            values = np.where(values == np.float64(fill), np.nan, values)
        attrs = variable.attrs
        values = values * float(attrs.get("scale_factor", 1)) + float(attrs.get("add_offset", 0))
        if not np.isfinite(values).any():
            return None
        return float(np.nanmin(values)), float(np.nanmax(values))

    extent: dict[str, Any] = {}
    lat = coordinate("latitude", "Y", ("lat", "latitude"))
    lon = coordinate("longitude", "X", ("lon", "longitude"))
    lat_span, lon_span = (span(lat) if lat is not None else None), (span(lon) if lon is not None else None)
    attrs = dataset.attrs
    if lat_span is None and all(f"geospatial_lat_{side}" in attrs for side in ("min", "max")):
        lat_span = float(attrs["geospatial_lat_min"]), float(attrs["geospatial_lat_max"])
    if lon_span is None and all(f"geospatial_lon_{side}" in attrs for side in ("min", "max")):
        lon_span = float(attrs["geospatial_lon_min"]), float(attrs["geospatial_lon_max"])
    if lat_span and lon_span:
        (west, east), (south, north) = lon_span, lat_span
        extent["bbox"] = {"west": west, "south": south, "east": east, "north": north}
    time = coordinate("time", "T", ("time",))
    if time is not None and isinstance(time.attrs.get("units"), str) and "since" in time.attrs["units"]:
        time_span = span(time)
        if time_span:
            days = decode_cf_datetime(
                np.array(time_span), time.attrs["units"], time.attrs.get("calendar", "standard")
            )
            extent["time"] = {"start": str(days[0])[:10], "end": str(days[1])[:10]}
    elif all(f"time_coverage_{side}" in attrs for side in ("start", "end")):
        start, end = str(attrs["time_coverage_start"]), str(attrs["time_coverage_end"])
        extent["time"] = {"start": start[:10], "end": end[:10]}
    return extent
