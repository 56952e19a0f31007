"""Blocks that package results for people and other systems: NetCDF, CSV, GeoJSON and PNG."""

from __future__ import annotations

import io
import math
import re
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from blocks.context import StepContext
from blocks.library.cf import table_columns
from blocks.library.geo import (
    TIME_COLUMN,
    column_list,
    find_coord,
    iso_times,
    numeric_column,
    require_columns,
    require_variables,
    table_times,
    utc_stamp,
    with_history,
)
from blocks.spec import Port, block
from blocks.types import csvw_document

CF_VERSION = "CF-1.8"
COORDINATE_ATTRIBUTES = {
    "lat": {"standard_name": "latitude", "units": "degrees_north", "axis": "Y"},
    "lon": {"standard_name": "longitude", "units": "degrees_east", "axis": "X"},
    "time": {"standard_name": "time", "axis": "T"},
}
KEPT_ENCODING = ("dtype", "scale_factor", "add_offset", "_FillValue", "units", "calendar")
"""Encoding kept from the source file; chunking and compression are set afresh."""
DEFAULT_SOURCE = "Iliad Portal pipeline"
FIGURE_SIZE_IN = (10.0, 6.0)
FIGURE_DPI = 100


# ---- deliver.netcdf ------------------------------------------------------------------------------

def _conventions(existing: Any) -> str:
    """CF-1.8 plus any non-CF conventions the input declared (e.g. ACDD-1.3)."""
    parts = re.split(r"[,\s]+", str(existing or ""))
    others = [part for part in parts if part and not part.startswith("CF-")]
    return ", ".join([CF_VERSION, *others])


@block(
    id="deliver.netcdf",
    version="1.0.0",
    title="Deliver as NetCDF",
    category="deliver",
    inputs=(Port("dataset", "dataset", "Dataset", "The gridded result to deliver."),),
    outputs=(Port("dataset", "dataset", "NetCDF file", "A compressed, CF-1.8 NetCDF file with provenance."),),
    parameters={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "title": {"type": "string", "maxLength": 300, "title": "Title",
                      "description": "Title stored in the file. Empty: keep the dataset's own title."},
            "source": {"type": "string", "maxLength": 1000, "title": "Source",
                       "description": "How the data were produced (CF 'source' attribute). Empty: keep the "
                                      f"dataset's own, or '{DEFAULT_SOURCE}'."},
            "provenance": {"type": "string", "maxLength": 20000, "default": "", "title": "Provenance",
                           "description": "Which steps, blocks and settings produced the data; stored in "
                                          "the file's 'provenance' attribute and history."},
            "compression": {"type": "integer", "minimum": 0, "maximum": 9, "default": 4,
                            "title": "Compression level",
                            "description": "zlib compression, 0 (none, fastest) to 9 (smallest file)."},
        },
    },
)
def deliver_netcdf(ctx: StepContext, inputs: dict[str, Any], params: dict[str, Any]) -> dict[str, xr.Dataset]:
    """Package a gridded result as a self-describing NetCDF file for download or other tools.

    **What goes in:** a gridded dataset, and optionally a title, a description of its source and a
    provenance text (which steps and settings produced it).

    **What comes out:** the same values in a NetCDF-4 file that follows the CF-1.8 conventions read
    by Panoply, ncview, QGIS, Python (xarray) and the Copernicus tools: `Conventions = CF-1.8`, a
    `history` line recording this step, `source`, `provenance` and `date_created` attributes, and
    standard names, units and axes on the latitude, longitude and time coordinates. Every variable is
    compressed (zlib, level 4 by default).

    **Good to know:** values are not changed or reread into memory; the step warns in its log about
    variables without units.
    """
    dataset: xr.Dataset = inputs["dataset"]
    if not dataset.data_vars:
        raise ValueError("dataset: the dataset has no data variables to deliver")
    result = dataset.copy()
    for kind, attributes in COORDINATE_ATTRIBUTES.items():
        name = find_coord(result, kind)
        if name is None:
            continue
        merged = {**attributes, **{key: value for key, value in result[name].attrs.items()
                                   if key not in ("axis", "standard_name")}}
        result[name].attrs = merged
        if kind != "time":
            result[name].encoding = {**result[name].encoding, "_FillValue": None}
    level = int(params.get("compression", 4))
    for coordinate in result.coords.values():
        coordinate.encoding = {key: value for key, value in coordinate.encoding.items()
                               if key in KEPT_ENCODING}
    for name, variable in result.data_vars.items():
        encoding = {key: value for key, value in variable.encoding.items() if key in KEPT_ENCODING}
        if variable.dtype.kind in "fiu":
            encoding.update({"zlib": level > 0, "complevel": level} if level else {"zlib": False})
        variable.encoding = encoding
        if "units" not in variable.attrs and variable.dtype.kind in "fiu":
            ctx.log(f"variable {name!r} has no units attribute", level="warning")
    provenance = (params.get("provenance") or "").strip()
    attrs = dict(result.attrs)
    attrs["Conventions"] = _conventions(attrs.get("Conventions"))
    if params.get("title"):
        attrs["title"] = params["title"]
    attrs.setdefault("title", "Iliad Portal result")
    attrs["source"] = params.get("source") or attrs.get("source") or DEFAULT_SOURCE
    stamp = utc_stamp()
    attrs["date_created"] = stamp
    if provenance:
        attrs["provenance"] = provenance
    line = f"deliver.netcdf 1.0.0 (compression={level})"
    if provenance:
        line += f" provenance: {' '.join(provenance.split())}"
    result.attrs = attrs
    ctx.progress(1.0, f"prepared {len(result.data_vars)} variables for NetCDF")
    return {"dataset": with_history(result, line, stamp=stamp)}


# ---- deliver.csv ---------------------------------------------------------------------------------

@block(
    id="deliver.csv",
    version="1.0.0",
    title="Deliver as CSV",
    category="deliver",
    inputs=(Port("table", "table", "Table", "The table to deliver."),),
    outputs=(Port("table", "table", "CSV file", "The chosen columns, rounded, as a CSV file."),),
    parameters={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "columns": {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1,
                        "uniqueItems": True, "title": "Columns",
                        "description": "Columns to keep, in this order. Empty: all columns."},
            "decimals": {"type": "integer", "minimum": 0, "maximum": 12, "title": "Decimals",
                         "description": "Round numbers with decimals to this many digits. Empty: keep "
                                        "full precision."},
        },
    },
)
def deliver_csv(ctx: StepContext, inputs: dict[str, Any], params: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """Package a table as a CSV file (opens in Excel, LibreOffice, R, Python).

    **What goes in:** any table, and optionally which columns to keep (in the order given) and how
    many decimals to keep.

    **What comes out:** a comma-separated file with a header row. Numbers with decimals are rounded
    to the chosen number of digits; whole numbers, dates and text are left as they are. When the table
    records units (and CF standard names, descriptions) for its columns, they are kept in a companion
    file `<name>.csv-metadata.json` next to the CSV, in the W3C CSV on the Web (CSVW) format: one entry
    per column under `tableSchema.columns` with its `titles` and `cf:units`, `cf:standard_name`,
    `cf:long_name` and `cf:units_metadata`.
    """
    table: pd.DataFrame = inputs["table"]
    described = table_columns(table)
    columns = params.get("columns")
    if columns:
        require_columns(table, columns, "columns")
        table = table[columns]
    table = table.copy()
    table.attrs["columns"] = {name: attrs for name, attrs in described.items() if name in table.columns}
    decimals = params.get("decimals")
    if decimals is not None:
        for name in table.columns:
            if pd.api.types.is_float_dtype(table[name]):
                table[name] = table[name].round(decimals)
    ctx.progress(1.0, f"{len(table)} rows, {len(table.columns)} columns")
    return {"table": table}


@block(
    id="deliver.csv",
    version="1.1.0",
    title="Deliver as CSV",
    category="deliver",
    inputs=deliver_csv.spec.inputs,
    outputs=(
        *deliver_csv.spec.outputs,
        Port("units", "json", "Column units (CSVW)",
             "Units, CF standard names and descriptions of the columns, as W3C CSV on the Web metadata.",
             required=False),
    ),
    parameters=deliver_csv.spec.parameters,
)
def deliver_csv_with_units(
    ctx: StepContext, inputs: dict[str, Any], params: dict[str, Any]
) -> dict[str, Any]:
    """Package a table as a CSV file, with its column units as a file of their own.

    **What goes in:** any table, and optionally which columns to keep (in the order given) and how
    many decimals to keep.

    **What comes out:** the CSV file (numbers with decimals rounded to the chosen digits), and, when
    the table records units for its columns, a second download: the W3C CSV on the Web (CSVW)
    metadata of the CSV, one entry per column under `tableSchema.columns` with its `titles` and
    `cf:units`, `cf:standard_name`, `cf:long_name` and `cf:units_metadata`. Version 1.0.0 keeps the
    same metadata only beside the CSV in the artifact store.
    """
    table = deliver_csv.function(ctx, inputs, params)["table"]
    return {"table": table, "units": csvw_document(table, "table.csv")}


# ---- deliver.geojson -----------------------------------------------------------------------------

def _coordinate_column(table: pd.DataFrame, given: str | None, names: tuple[str, ...], param: str) -> str:
    if given:
        require_columns(table, [given], param)
        return given
    for name in table.columns:
        if str(name).lower() in names:
            return str(name)
    raise ValueError(f"{param}: the table has no {' or '.join(names)} column; available: {column_list(table)}"
                     f" (set {param} to name it)")


def _checked_coordinates(table: pd.DataFrame, column: str, low: float, high: float, param: str) -> np.ndarray:
    values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values) | (values < low) | (values > high)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        shown = _json_scalar(table[column].iloc[row])
        shown = "no value" if shown is None else shown
        raise ValueError(f"{param}: {int(bad.sum())} rows of {column!r} are missing or outside {low:g} to "
                         f"{high:g}; the first is row {row + 1} with {shown}")
    return values


def _json_scalar(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp | datetime):
        return value.isoformat()
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


@block(
    id="deliver.geojson",
    version="1.0.0",
    title="Deliver as GeoJSON points",
    category="deliver",
    inputs=(Port("table", "table", "Table", "A table with latitude and longitude columns."),),
    outputs=(Port("features", "geojson", "GeoJSON", "One point feature per row."),),
    parameters={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "lat_column": {"type": "string", "minLength": 1, "title": "Latitude column",
                           "description": "Column with latitudes in degrees north. Empty: 'lat' or "
                                          "'latitude'."},
            "lon_column": {"type": "string", "minLength": 1, "title": "Longitude column",
                           "description": "Column with longitudes in degrees east. Empty: 'lon' or "
                                          "'longitude'."},
            "properties": {"type": "array", "items": {"type": "string", "minLength": 1}, "uniqueItems": True,
                           "title": "Properties",
                           "description": "Columns to attach to each point (the time column is always "
                                          "attached when there is one). Empty: every other column."},
        },
    },
)
def deliver_geojson(ctx: StepContext, inputs: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """Turn a table of positions into map points (GeoJSON) for web maps and GIS (QGIS, ArcGIS).

    **What goes in:** a table with a latitude and a longitude column (found automatically when they
    are called `lat`/`latitude` and `lon`/`longitude`), for example observations or particle
    positions. Optionally which other columns to attach to each point.

    **What comes out:** a GeoJSON FeatureCollection with one point per row. As the GeoJSON standard
    (RFC 7946) requires, coordinates are written longitude first, in degrees on WGS 84, with
    longitudes from 0-360 converted to -180-180. The other columns (including `time`) become each
    point's properties; missing values become null.

    **Good to know:** the step fails, naming the first bad row, when a latitude or longitude is
    missing or out of range.
    """
    table: pd.DataFrame = inputs["table"]
    if table.empty:
        raise ValueError("table: the table has no rows")
    lat = _coordinate_column(table, params.get("lat_column"), ("lat", "latitude"), "lat_column")
    lon = _coordinate_column(table, params.get("lon_column"), ("lon", "longitude"), "lon_column")
    lats = _checked_coordinates(table, lat, -90.0, 90.0, "lat_column")
    lons = _checked_coordinates(table, lon, -180.0, 360.0, "lon_column")
    lons = np.where(lons > 180.0, lons - 360.0, lons)
    wanted = params.get("properties")
    if wanted is None:
        names = [str(name) for name in table.columns if name not in (lat, lon)]
    else:
        require_columns(table, wanted, "properties")
        names = list(wanted)
        if TIME_COLUMN in table.columns and TIME_COLUMN not in names:
            names.insert(0, TIME_COLUMN)
    records = table[names].to_dict(orient="records") if names else [{}] * len(table)
    features = [
        {"type": "Feature",
         "geometry": {"type": "Point", "coordinates": [round(float(x), 7), round(float(y), 7)]},
         "properties": {str(key): _json_scalar(value) for key, value in record.items()}}
        for x, y, record in zip(lons, lats, records, strict=True)
    ]
    ctx.progress(1.0, f"{len(features)} points")
    return {"features": {"type": "FeatureCollection", "features": features}}


# ---- deliver.png ---------------------------------------------------------------------------------

READABLE_UNITS = {"degree_Celsius": "°C", "degrees_Celsius": "°C", "degree_C": "°C", "degC": "°C",
                  "celsius": "°C", "m s-1": "m/s", "m/s": "m/s", "cm s-1": "cm/s", "degrees_north": "°N",
                  "degrees_east": "°E"}
"""CF unit strings shown in a friendlier form on pictures."""


def _label(attrs: dict[str, Any], name: str) -> tuple[str, str]:
    title = str(attrs.get("long_name") or attrs.get("standard_name") or name)
    units = str(attrs.get("units") or "")
    units = READABLE_UNITS.get(units, units)
    return title, f"{title} ({units})" if units else title


def _png(figure: Any) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=FIGURE_DPI)
    return buffer.getvalue()


def _select_time(array: xr.DataArray, time_name: str, wanted: str | None) -> tuple[xr.DataArray, str]:
    index = array.indexes[time_name]
    first, last = index.min(), index.max()
    if not wanted:
        chosen = array.isel({time_name: 0})
    else:
        try:
            moment = pd.Timestamp(wanted)
        except ValueError:
            raise ValueError(f"time: {wanted!r} is not a date or time (expected YYYY-MM-DD or "
                             "YYYY-MM-DDTHH:MM)") from None
        if moment.tzinfo is not None:
            moment = moment.tz_convert(None)
        if not first - pd.Timedelta(days=1) < moment < last + pd.Timedelta(days=1):
            raise ValueError(f"time: {wanted} is outside the data, which covers {first.isoformat()} to "
                             f"{last.isoformat()}")
        chosen = array.sel({time_name: moment}, method="nearest")
    return chosen, iso_times([pd.Timestamp(chosen[time_name].values)])[0]


def _map_png(dataset: xr.Dataset, params: dict[str, Any]) -> bytes:
    from matplotlib.figure import Figure

    known = [str(name) for name in dataset.data_vars]
    lat, lon = find_coord(dataset, "lat"), find_coord(dataset, "lon")
    name = params.get("variable")
    if name is None:
        spatial = [n for n in known if lat in dataset[n].dims and lon in dataset[n].dims]
        if not spatial:
            raise ValueError(f"variable: no variable has latitude and longitude dimensions; variables: "
                             f"{', '.join(known) or 'none'}")
        name = spatial[0]
    require_variables(dataset, [name], "variable")
    array = dataset[name]
    if lat is None or lon is None or lat not in array.dims or lon not in array.dims:
        raise ValueError(f"variable: {name!r} has dimensions ({', '.join(map(str, array.dims))}); a map "
                         "needs latitude and longitude")
    subtitle = []
    time = find_coord(dataset, "time")
    if time is not None and time in array.dims:
        array, stamp = _select_time(array, time, params.get("time"))
        subtitle.append(stamp)
    elif params.get("time"):
        raise ValueError(f"time: {name!r} has no time dimension")
    for dim in [d for d in array.dims if d not in (lat, lon)]:
        value = array[dim].values[0] if dim in array.coords else 0
        array = array.isel({dim: 0})
        subtitle.append(f"{dim} = {_json_scalar(value)}")
    array = array.transpose(lat, lon)
    values = np.asarray(array.values, dtype=np.float64)
    if not np.isfinite(values).any():
        raise ValueError(f"variable: {name!r} has no valid values at {', '.join(subtitle) or 'this time'}")
    title, label = _label(array.attrs, name)
    figure = Figure(figsize=FIGURE_SIZE_IN)
    axes = figure.add_subplot()
    axes.set_facecolor("0.85")  # land and other missing values show grey
    mesh = axes.pcolormesh(array[lon].values, array[lat].values, np.ma.masked_invalid(values),
                           shading="nearest", cmap=params.get("colormap") or "viridis")
    colorbar = figure.colorbar(mesh, ax=axes)
    colorbar.set_label(label)
    axes.set_xlabel("Longitude (degrees east)")
    axes.set_ylabel("Latitude (degrees north)")
    middle = math.cos(math.radians(float(np.nanmean(array[lat].values))))
    axes.set_aspect(1.0 / max(middle, 0.1))
    axes.set_title(params.get("title") or " — ".join([title, *subtitle]))
    figure.tight_layout()
    return _png(figure)


def _chart_png(table: pd.DataFrame, params: dict[str, Any]) -> bytes:
    from matplotlib.figure import Figure

    times = table_times(table, "table")
    column = numeric_column(table, params.get("column"))
    values = table[column].astype(float)
    if values.isna().all():
        raise ValueError(f"column: {column!r} has no values (all missing)")
    order = np.argsort(times.to_numpy(), kind="stable")
    figure = Figure(figsize=FIGURE_SIZE_IN)
    axes = figure.add_subplot()
    axes.plot(times.to_numpy()[order], values.to_numpy()[order], linewidth=1.2, label=column)
    axes.set_xlabel("Time")
    axes.set_ylabel(params.get("y_label") or column)
    axes.grid(True, alpha=0.3)
    axes.set_title(params.get("title") or column)
    figure.autofmt_xdate()
    figure.tight_layout()
    return _png(figure)


@block(
    id="deliver.png",
    version="1.0.0",
    title="Deliver as PNG image",
    category="deliver",
    inputs=(Port("data", "any", "Dataset or table",
                 "A gridded dataset (drawn as a map) or a table with a time column (drawn as a line)."),),
    outputs=(Port("image", "image", "Image", "A PNG picture, 1000 x 600 pixels."),),
    parameters={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "variable": {"type": "string", "minLength": 1, "title": "Variable (maps)",
                         "description": "Dataset variable to map, e.g. sst. Empty: the first one with "
                                        "latitude and longitude."},
            "time": {"type": "string", "minLength": 1, "maxLength": 40, "title": "Time (maps)",
                     "description": "Date or date and time to map (YYYY-MM-DD or YYYY-MM-DDTHH:MM); the "
                                    "nearest time step is used. Empty: the first time step."},
            "column": {"type": "string", "minLength": 1, "title": "Column (charts)",
                       "description": "Table column to draw over time. Empty: the first numeric column."},
            "title": {"type": "string", "maxLength": 200, "title": "Title",
                      "description": "Title above the picture. Empty: the variable's name and the time."},
            "y_label": {"type": "string", "maxLength": 100, "title": "Vertical axis label (charts)",
                        "description": "Label of the vertical axis of a chart. Empty: the column name."},
            "colormap": {"type": "string", "enum": ["viridis", "plasma", "inferno", "cividis", "coolwarm",
                                                    "RdBu_r"],
                         "default": "viridis", "title": "Colours (maps)",
                         "description": "Colour scale of a map; coolwarm and RdBu_r suit anomalies."},
        },
    },
)
def deliver_png(ctx: StepContext, inputs: dict[str, Any], params: dict[str, Any]) -> dict[str, bytes]:
    """Draw a static picture (PNG) for a report or a slide.

    **What goes in:** either a gridded dataset, drawn as a colour map of one variable at one time,
    or a table with a `time` column, drawn as a line chart of one column.

    **What comes out:** a PNG image of 1000 x 600 pixels. A map has a colour bar labelled with the
    variable's name and units, longitude and latitude axes, land (missing values) in grey, and a
    title with the variable and the time shown. For a dataset with depth levels the first level is
    shown. A chart has time along the bottom and the column up the side.
    """
    data = inputs["data"]
    if isinstance(data, xr.Dataset):
        image = _map_png(data, params)
    elif isinstance(data, pd.DataFrame):
        image = _chart_png(data, params)
    else:
        raise ValueError(f"data: expected a gridded dataset or a table, got {type(data).__name__}")
    ctx.progress(1.0, f"drew a {len(image) / 1024:.0f} KiB PNG")
    return {"image": image}
