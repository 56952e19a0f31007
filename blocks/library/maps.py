"""plot.map: a gridded field at one time (and depth) as a plotly heatmap on latitude/longitude axes."""

from __future__ import annotations

import html
import math
import re
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import xarray as xr

from blocks.context import StepContext
from blocks.library.geo import KIND_WORDS, coord_kind, require_variables
from blocks.library.plots import MUTED, _style
from blocks.spec import Port, block

MAX_CELLS = 250_000
"""Grids with more cells are averaged over blocks of cells so the figure stays small and quick."""

LAND_COLOUR = "#a8a8a8"
"""Missing values (land, no data) let the plot background show through in this neutral grey."""

TYPICAL_MAP_WIDTH_PX = 760
"""Plot width the figure height is chosen for; wider or narrower screens keep the map's shape."""

EXTRA_DEPTH_NAMES = ("level", "elevation")
"""Vertical coordinate names the map also steps through as depth (geo.find_coord does not use them)."""

COLOUR_SCALES = ("auto", "thermal", "haline", "speed", "balance", "delta", "deep", "algae", "oxy", "dense",
                 "amp", "ice", "matter", "turbid", "tempo", "viridis", "cividis")
DIVERGING = ("balance", "delta", "curl")

# (words looked for in the variable's name, standard_name and long_name; colour scale; centred on zero:
# True always, None when the data has both signs (else the sequential 'deep'), False never).
# The first rule that matches wins.
COLOUR_RULES: tuple[tuple[tuple[str, ...], str, bool | None], ...] = (
    (("anomaly", "anomalies"), "balance", True),
    (("temperature", "sst", "thetao", "tos", "bottomt"), "thermal", False),
    (("salinity", "so", "sos", "psal"), "haline", False),
    (("speed",), "speed", False),
    (("velocity", "current", "uo", "vo", "ugos", "vgos", "wind"), "balance", True),
    (("chlorophyll", "chl"), "algae", False),
    (("oxygen", "o2"), "oxy", False),
    (("sea_surface_height", "sea_level", "zos", "adt", "sla", "ssh"), "balance", None),
    (("wave",), "amp", False),
    (("density", "sigma"), "dense", False),
    (("ice",), "ice", False),
    (("turbidity", "suspended", "spm"), "turbid", False),
    (("nitrate", "phosphate", "silicate", "nutrient", "no3", "po4"), "matter", False),
    (("depth", "bathymetry", "deptho", "elevation"), "deep", False),
)

UNIT_NAMES = {
    "degree_celsius": "°C", "degrees_celsius": "°C", "degc": "°C", "celsius": "°C", "deg_c": "°C",
    "degree_c": "°C", "degrees_c": "°C", "k": "K", "kelvin": "K",
    "m s-1": "m/s", "m/s": "m/s", "m.s-1": "m/s", "cm s-1": "cm/s", "cm/s": "cm/s",
    "psu": "PSU", "pss-78": "PSU", "0.001": "‰", "1e-3": "‰",
    "degrees_north": "°N", "degree_north": "°N", "degrees_east": "°E", "degree_east": "°E",
    "1": "", "": "",
}
SUPERSCRIPTS = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _pretty_units(units: Any, standard_name: str = "") -> str:
    """CF units as people write them: degree_Celsius → °C, m s-1 → m/s, mg m-3 → mg m⁻³."""
    text = str(units or "").strip()
    key = text.lower()
    if key in ("1e-3", "0.001", "1") and "salinity" in standard_name:
        return "PSU"
    if key in UNIT_NAMES:
        return UNIT_NAMES[key]
    return re.sub(r"(?<=[A-Za-z])(-?\d+)\b", lambda match: match.group(1).translate(SUPERSCRIPTS), text)


def _kind(name: str, coordinate: xr.DataArray) -> str | None:
    """Which axis (latitude, longitude, time, depth) a 1-D coordinate is, or None."""
    kind = coord_kind(name, coordinate)
    if kind is None and name.lower() in EXTRA_DEPTH_NAMES:
        kind = "depth"
    return KIND_WORDS[kind] if kind else None


def _dimension_kinds(dataset: xr.Dataset, variable: str) -> dict[str, str]:
    """Axis kind → dimension name for the variable's dimensions that have a 1-D coordinate."""
    kinds: dict[str, str] = {}
    for dim in dataset[variable].dims:
        if dim in dataset.coords and dataset.coords[dim].ndim == 1:
            kind = _kind(str(dim), dataset.coords[dim])
            if kind and kind not in kinds:
                kinds[kind] = str(dim)
    return kinds


def _time_label(value: Any) -> str:
    if (value.hour, value.minute, value.second) == (0, 0, 0):
        return value.strftime("%Y-%m-%d")
    return value.strftime("%Y-%m-%d %H:%M UTC")


def _day_number(day: str) -> int:
    """A number that grows by about one per day for any calendar (for 'nearest day' only)."""
    year, month, mday = (int(part) for part in day[:10].split("-"))
    return year * 372 + month * 31 + mday


def _time_position(index: pd.Index, requested: str | None) -> tuple[int, str]:
    """Position of the time step to draw and a note when it is not on the requested day."""
    if requested is None:
        return len(index) - 1, ""
    days = np.asarray([t.strftime("%Y-%m-%d") for t in index], dtype=object)
    first, last = min(days), max(days)
    if requested < first or requested > last:
        raise ValueError(f"time: {requested} is outside the data; the data covers {first} to {last}")
    same_day = np.flatnonzero(days == requested)
    if same_day.size:
        return int(same_day[0]), ""
    distance = np.abs(np.array([_day_number(day) for day in days]) - _day_number(requested))
    position = int(np.argmin(distance))
    return position, f"nearest time step to {requested}"


def _depth_position(coordinate: xr.DataArray, requested: float | None) -> tuple[int, str]:
    values = np.asarray(coordinate.values, dtype=np.float64)
    units = _pretty_units(coordinate.attrs.get("units", "m")) or "m"
    if requested is None:
        position = int(np.nanargmin(np.abs(values)))
    else:
        low, high = np.nanmin(values), np.nanmax(values)
        if not low <= requested <= high:
            raise ValueError(f"depth: {requested:g} is outside the data's levels; they cover "
                             f"{low:g} to {high:g} {units}")
        position = int(np.nanargmin(np.abs(values - requested)))
    return position, f"depth {values[position]:g} {units}"


def _colour_scale(variable: str, attrs: dict[str, Any], low: float, high: float, choice: str
                  ) -> tuple[str, bool]:
    """Colour scale name and whether it is centred on zero."""
    signed = low < 0 < high
    if choice != "auto":
        return choice, choice in DIVERGING and signed
    words = " ".join(str(attrs.get(key, "")) for key in ("standard_name", "long_name")).lower()
    tokens = set(re.split(r"[^a-z0-9]+", f"{variable.lower()} {words}"))
    text = f"{variable.lower()} {words}"
    for keys, scale, centred in COLOUR_RULES:
        if any((key in tokens) if len(key) <= 4 else (key in text) for key in keys):
            if centred is None:
                return (scale, True) if signed else ("deep", False)
            return ("balance", True) if centred else (scale, False)
    return ("balance", True) if signed and min(-low, high) > 0.25 * max(-low, high) else ("viridis", False)


def _coarsened(field: xr.DataArray, lat: str, lon: str) -> tuple[xr.DataArray, int]:
    """The field averaged over blocks of factor x factor cells so it has at most MAX_CELLS cells."""
    rows, columns = field.sizes[lat], field.sizes[lon]
    factor = 1
    while math.ceil(rows / factor) * math.ceil(columns / factor) > MAX_CELLS:
        factor = max(factor + 1, math.ceil(math.sqrt(rows * columns / MAX_CELLS)))
    if factor == 1:
        return field, 1
    coarse = field.coarsen({lat: factor, lon: factor}, boundary="pad").mean()
    return coarse, factor


@block(
    id="plot.map",
    version="1.0.0",
    title="Map of a variable",
    category="visualise",
    inputs=(Port("dataset", "dataset", "Dataset", "A gridded dataset with latitude and longitude."),),
    outputs=(Port("figure", "figure", "Map", "An interactive colour map of the variable."),),
    parameters={
        "type": "object",
        "additionalProperties": False,
        "required": ["variable"],
        "properties": {
            "variable": {"type": "string", "minLength": 1, "title": "Variable",
                         "description": "Name of the variable to map, e.g. sst."},
            "time": {"type": "string", "format": "date", "title": "Day",
                     "description": "Day to map (YYYY-MM-DD); the first time step of that day, or the "
                                    "nearest one. Empty: the last time in the data."},
            "depth": {"type": "number", "title": "Depth",
                      "description": "Depth level to map, in the dataset's depth units (usually metres); "
                                     "the nearest level is used. Empty: the level nearest the surface."},
            "colour_scale": {"type": "string", "enum": list(COLOUR_SCALES), "default": "auto",
                             "title": "Colour scale",
                             "description": "Colours for the values. 'auto' picks one that suits the "
                                            "variable (thermal for temperature, haline for salinity, "
                                            "speed or balance for currents...)."},
            "colour_min": {"type": "number", "title": "Lowest colour value",
                           "description": "Value shown with the first colour. Empty: the lowest value."},
            "colour_max": {"type": "number", "title": "Highest colour value",
                           "description": "Value shown with the last colour. Empty: the highest value."},
            "title": {"type": "string", "title": "Title",
                      "description": "Title above the map. Empty: the variable's long name and the date."},
        },
    },
)
def map_plot(ctx: StepContext, inputs: dict[str, Any], params: dict[str, Any]) -> dict[str, go.Figure]:
    """Draw a map of one variable at one moment, e.g. sea surface temperature on a given day.

    **What goes in:** a gridded dataset with latitude and longitude (for example the demo dataset or
    a Copernicus Marine product), the name of the variable, and optionally the day and the depth.
    By default the map shows the last day in the data and the level nearest the surface.

    **What comes out:** an interactive colour map. Hover over it to read the value and units at
    each point; zoom by dragging a box. Land and missing values are grey. The colours follow the
    cmocean scales made for oceanography (Thyng et al., 2016, *True colors of oceanography*,
    Oceanography 29(3)): *thermal* for temperature, *haline* for salinity, *speed* for current
    speed, and a two-sided *balance* scale centred on zero for eastward/northward currents, sea
    level and anomalies. The shape of the map keeps distances right in the middle of the area (one
    degree of longitude is drawn shorter than one of latitude away from the equator).

    **Large grids** (more than 250,000 points) are averaged over small blocks of grid cells so the
    map stays quick to open; the subtitle says so.
    """
    dataset: xr.Dataset = inputs["dataset"]
    variable = params["variable"]
    require_variables(dataset, [variable], "variable")
    array = dataset[variable]
    kinds = _dimension_kinds(dataset, variable)
    if "latitude" not in kinds or "longitude" not in kinds:
        raise ValueError(f"variable: {variable!r} has dimensions ({', '.join(map(str, array.dims))}); a map "
                         "needs latitude and longitude dimensions with 1-D coordinates")
    lat, lon = kinds["latitude"], kinds["longitude"]
    selection: dict[str, int] = {}
    labels, notes = [], []
    if "time" in kinds:
        position, note = _time_position(dataset.indexes[kinds["time"]], params.get("time"))
        selection[kinds["time"]] = position
        labels.append(_time_label(dataset.indexes[kinds["time"]][position]))
        notes += [note] if note else []
    elif params.get("time"):
        raise ValueError(f"time: variable {variable!r} has no time dimension; leave the day empty")
    if "depth" in kinds:
        position, label = _depth_position(dataset.coords[kinds["depth"]], params.get("depth"))
        selection[kinds["depth"]] = position
        labels.append(label)
    elif params.get("depth") is not None:
        raise ValueError(f"depth: variable {variable!r} has no depth dimension; leave the depth empty")
    for dim in array.dims:
        if dim not in (lat, lon) and dim not in selection:
            selection[str(dim)] = 0
            notes.append(f"first of {array.sizes[dim]} {dim}")
    ctx.progress(0.2, "reading the field")
    field = array.isel(selection).transpose(lat, lon)
    original = (field.sizes[lat], field.sizes[lon])
    field, factor = _coarsened(field, lat, lon)
    if factor > 1:
        notes.append(f"averaged over blocks of {factor}×{factor} cells to keep the figure small "
                     f"(grid of {original[0]:,}×{original[1]:,} shown as {field.sizes[lat]:,}×"
                     f"{field.sizes[lon]:,})")
    values = np.asarray(field.values, dtype=np.float32)
    finite = np.isfinite(values)
    when = ", ".join(labels)
    if not finite.any():
        raise ValueError(f"variable: {variable!r} has no valid values (all missing)"
                         + (f" at {when}" if when else ""))
    ctx.progress(0.7, "drawing")

    attrs = dict(array.attrs)
    units = _pretty_units(attrs.get("units", ""), str(attrs.get("standard_name", "")))
    name = str(attrs.get("long_name") or attrs.get("standard_name", "") .replace("_", " ").capitalize()
               or variable)
    low, high = float(values[finite].min()), float(values[finite].max())
    scale, centred = _colour_scale(variable, attrs, low, high, params["colour_scale"])
    zmin, zmax = params.get("colour_min"), params.get("colour_max")
    if zmin is not None and zmax is not None and zmin >= zmax:
        raise ValueError(f"colour_min ({zmin:g}) must be less than colour_max ({zmax:g})")
    if centred and zmin is None and zmax is None:
        limit = max(abs(low), abs(high))
        zmin, zmax = -limit, limit
    zmin = low if zmin is None else zmin
    zmax = high if zmax is None else zmax
    if zmin == zmax:
        zmin, zmax = zmin - 0.5, zmax + 0.5

    x = np.asarray(field[lon].values, dtype=np.float64)
    y = np.asarray(field[lat].values, dtype=np.float64)
    unit_text = f" {html.escape(units)}" if units else ""
    figure = go.Figure(go.Heatmap(
        x=np.round(x, 6).tolist(), y=np.round(y, 6).tolist(), z=values,
        colorscale=scale, zmin=zmin, zmax=zmax, hoverongaps=False, name=variable,
        colorbar={"title": {"text": units or variable, "side": "right"}, "thickness": 16, "outlinewidth": 0,
                  "len": 0.9},
        hovertemplate=(f"{html.escape(name)}: <b>%{{z:.4~g}}{unit_text}</b><br>"
                       "lat %{y:.3f}°, lon %{x:.3f}°<extra></extra>"),
    ))
    title = params.get("title") or " · ".join(
        part for part in (f"{name}{f' ({units})' if units else ''}", when) if part)
    source = str(dataset.attrs.get("title", "")).strip()
    subtitle = " · ".join([part for part in (source, *notes) if part] + ["grey: land or no data"])
    half_dx = float(np.abs(np.diff(x)).min()) / 2 if x.size > 1 else 0.5
    half_dy = float(np.abs(np.diff(y)).min()) / 2 if y.size > 1 else 0.5
    middle = float(np.clip((np.nanmin(y) + np.nanmax(y)) / 2, -70, 70))
    ratio = 1 / math.cos(math.radians(middle))
    spans = (float(np.nanmax(x) - np.nanmin(x)) + 2 * half_dx,
             float(np.nanmax(y) - np.nanmin(y)) + 2 * half_dy)
    # Height for a typical preview width, so the map, not white space, fills the figure.
    height = int(np.clip(TYPICAL_MAP_WIDTH_PX * spans[1] * ratio / spans[0], 320, 640)) + 150
    _style(figure, title, subtitle, height=height, plot_bgcolor=LAND_COLOUR)
    figure.update_layout(
        xaxis={"title": {"text": "Longitude (°E)"}, "ticksuffix": "°", "showgrid": False, "zeroline": False,
               "range": [float(np.nanmin(x)) - half_dx, float(np.nanmax(x)) + half_dx], "constrain": "domain",
               "linecolor": MUTED, "mirror": True, "showline": True},
        yaxis={"title": {"text": "Latitude (°N)"}, "ticksuffix": "°", "showgrid": False, "zeroline": False,
               "range": [float(np.nanmin(y)) - half_dy, float(np.nanmax(y)) + half_dy], "constrain": "domain",
               "scaleanchor": "x", "scaleratio": ratio,
               "linecolor": MUTED, "mirror": True, "showline": True},
    )
    ctx.progress(1.0, f"mapped {variable} {when}".strip())
    return {"figure": figure}
