"""Blocks that transform gridded datasets: resample in time, average over a region, match
observations, convert units and calculate new variables."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import shapely
import xarray as xr
from shapely.geometry import shape

from blocks.context import StepContext
from blocks.expressions import ExpressionError, evaluate, parse
from blocks.library.cf import (
    DIFFERENCE,
    ON_SCALE,
    UNKNOWN,
    coulomb_hint,
    is_temperature,
    linear_conversion,
    on_scale_attrs,
    parse_units,
    temperature_kind,
    with_columns,
)
from blocks.library.geo import (
    OBSERVATION_COLUMNS,
    coverage,
    depth_is_height,
    find_coord,
    iso_times,
    longitude_convention,
    require_coord,
    require_variables,
    time_series_table,
    variable_list,
    with_history,
    wrap_longitudes,
)
from blocks.spec import Derived, Port, Quantity, block

TIME_STEPS_PER_CHUNK = 120
"""Region means are computed this many time steps at a time, to bound memory and report progress."""

POINTS_PER_CHUNK = 20_000
"""Observations are interpolated this many at a time (sorted by time), each chunk in one vectorised call."""

PACKING_KEYS = ("dtype", "scale_factor", "add_offset", "_FillValue", "missing_value", "_Unsigned")
"""Encoding of packed variables (e.g. int16 with a scale factor) that no longer fits changed values."""

VARIABLES_PARAMETER: dict[str, Any] = {
    "type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1, "uniqueItems": True,
    "title": "Variables", "description": "Names of the variables to use, e.g. sst. Empty: all of them.",
}


def _unpacked(variable: xr.DataArray) -> xr.DataArray:
    """``variable`` without the packing encoding of its source, so new values are stored as floats."""
    variable = variable.copy(deep=False)
    variable.encoding = {key: value for key, value in variable.encoding.items() if key not in PACKING_KEYS}
    return variable


def _numeric(variable: xr.DataArray) -> bool:
    return variable.dtype.kind in "biuf"


def _lazy(variable: xr.DataArray) -> xr.DataArray:
    """A numeric variable as a dask array (if it is not one yet), so numpy operations do not read the
    whole variable into memory: values are computed piece by piece when the result is saved."""
    if variable.chunks is not None or not _numeric(variable) or variable.ndim == 0:
        return variable
    return variable.chunk("auto")


def _lazy_in_time(dataset: xr.Dataset, time: str) -> xr.Dataset:
    """Dask-chunk variables along time (if not chunked yet) so reductions read the file piece by piece."""
    if any(variable.chunks is not None for variable in dataset.data_vars.values()):
        return dataset
    return dataset.chunk({time: "auto"})


# ---- transform.resample -------------------------------------------------------------------------

FREQUENCIES = {"daily": "1D", "monthly": "MS", "seasonal": "QS-DEC", "annual": "YS"}
SEASONS = {12: "DJF", 3: "MAM", 6: "JJA", 9: "SON"}


@block(
    id="transform.resample",
    version="1.0.0",
    title="Resample in time (daily, monthly, seasonal, annual)",
    category="transform",
    inputs=(Port("dataset", "dataset", "Dataset", "A gridded dataset with a time dimension."),),
    outputs=(Port("dataset", "dataset", "Resampled dataset",
                  "One time step per day, month, season or year."),),
    parameters={
        "type": "object",
        "additionalProperties": False,
        "required": ["frequency"],
        "properties": {
            "frequency": {"type": "string", "enum": list(FREQUENCIES), "default": "monthly",
                          "title": "New time step",
                          "description": "daily, monthly, seasonal (DJF, MAM, JJA, SON) or annual."},
            "statistic": {"type": "string", "enum": ["mean", "max", "min", "sum"], "default": "mean",
                          "title": "Statistic",
                          "description": "How the values within each period are combined."},
            "variables": VARIABLES_PARAMETER,
        },
    },
)
def resample(ctx: StepContext, inputs: dict[str, Any], params: dict[str, Any]) -> dict[str, xr.Dataset]:
    """Turn a dataset into daily, monthly, seasonal or annual values (mean, maximum, minimum or sum).

    **What goes in:** a gridded dataset with a time dimension, e.g. hourly or daily data.

    **What comes out:** the same grid with one time step per period. Each period is labelled by its
    first day (e.g. 2021-07-01 for July 2021). Variables without a time dimension are kept unchanged.

    **Seasons** are the meteorological ones: DJF (December, January, February), MAM, JJA and SON.
    December counts with the January and February that follow it: the winter 2021/22 holds December
    2021, January and February 2022 and is labelled 2021-12-01. A season (or month, year) at the
    edge of the data is computed from the time steps available, so it may be incomplete; the log says
    how many time steps went into the shortest and the longest period. Seasonal output also gets a
    `season` label (DJF, MAM, JJA or SON) for each time step.

    **Method:** missing values (land, gaps) are left out; a period with no value at all stays
    missing (also for the sum). The statistic is recorded in each variable's CF `cell_methods`.
    """
    dataset = inputs["dataset"]
    require_variables(dataset, params.get("variables"))
    time = require_coord(dataset, "time", "dataset")
    names = params.get("variables") or [str(name) for name in dataset.data_vars]
    timed = [name for name in names if time in dataset[name].dims and _numeric(dataset[name])]
    for name in names:
        if time in dataset[name].dims and name not in timed:
            ctx.log(f"left out {name}: it holds {dataset[name].dtype} values, not numbers", "warning")
    names = [name for name in names if name in timed or time not in dataset[name].dims]
    if not timed:
        raise ValueError(f"variables: none of {', '.join(names)} has a time dimension and numbers")
    frequency, statistic = params["frequency"], params["statistic"]
    counts = dataset[time].resample({time: FREQUENCIES[frequency]}).count().values
    if counts.size > dataset.sizes[time]:
        raise ValueError(
            f"frequency: {frequency} would give {counts.size} time steps from {dataset.sizes[time]}; "
            f"the data ({coverage(dataset.indexes[time])}) are already coarser than {frequency}"
        )
    ctx.log(f"{counts.size} {frequency} periods of {int(counts.min())} to {int(counts.max())} time steps")
    source = _lazy_in_time(dataset[timed], time)
    resampler = source.resample({time: FREQUENCIES[frequency]})
    if statistic == "sum":
        result = resampler.sum(min_count=1, keep_attrs=True)
    else:
        result = getattr(resampler, statistic)(keep_attrs=True)
    for name in timed:
        variable = _unpacked(result[name])
        previous = str(dataset[name].attrs.get("cell_methods", "")).strip()
        method = f"{time}: {statistic}"
        variable.attrs["cell_methods"] = f"{previous} {method}".strip()
        result[name] = variable
    result[time].attrs.update(dataset[time].attrs)
    if frequency == "seasonal":
        months = pd.DatetimeIndex(result.indexes[time]).month if isinstance(
            result.indexes[time], pd.DatetimeIndex) else [t.month for t in result.indexes[time]]
        result = result.assign_coords(season=(time, [SEASONS[int(month)] for month in months]))
    untimed = [name for name in names if name not in timed]
    if untimed:
        result = result.assign({name: dataset[name] for name in untimed})
    result.attrs = dict(dataset.attrs)
    ctx.progress(1.0, f"{counts.size} {frequency} time steps")
    line = f"transform.resample 1.0.0 (frequency={frequency}, statistic={statistic})"
    return {"dataset": with_history(result, line)}


# ---- transform.region_mean ----------------------------------------------------------------------

POLYGON_HELP = ("a Polygon is a list of rings, each a list of [longitude, latitude] positions whose "
                "first and last positions are equal")


def _geometries(region: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(label, geometry) pairs of a GeoJSON geometry, Feature or FeatureCollection."""
    kind = region.get("type")
    if kind == "FeatureCollection":
        features = region.get("features")
        if not isinstance(features, list) or not features:
            raise ValueError("region: the FeatureCollection has no features")
        found = []
        for number, feature in enumerate(features, start=1):
            if not isinstance(feature, dict) or feature.get("type") != "Feature":
                raise ValueError(f"region: feature {number} of the FeatureCollection is not a Feature")
            found.append((f"feature {number}", feature.get("geometry")))
        return found
    if kind == "Feature":
        return [("the Feature", region.get("geometry"))]
    if kind in ("Polygon", "MultiPolygon"):
        return [("the geometry", region)]
    raise ValueError(
        f"region: GeoJSON type {kind!r} is not supported; give a Polygon or MultiPolygon geometry, "
        "a Feature or a FeatureCollection of them"
    )


def region_geometry(region: Any) -> shapely.Geometry:
    """The (multi)polygon a GeoJSON ``region`` describes, or ValueError saying what is wrong with it."""
    if not isinstance(region, dict):
        raise ValueError("region: expected a GeoJSON object")
    polygons = []
    for label, geometry in _geometries(region):
        if not isinstance(geometry, dict):
            raise ValueError(f"region: {label} has no geometry")
        kind = geometry.get("type")
        if kind not in ("Polygon", "MultiPolygon"):
            raise ValueError(f"region: {label} is a {kind!r}; only Polygon and MultiPolygon enclose an area")
        if "coordinates" not in geometry:
            raise ValueError(f"region: the {kind} of {label} has no 'coordinates'")
        try:
            polygon = shape(geometry)
        except (TypeError, ValueError, KeyError, IndexError, AttributeError,
                shapely.errors.GEOSException) as error:
            raise ValueError(
                f"region: the coordinates of the {kind} of {label} are not valid ({error}); {POLYGON_HELP}"
            ) from None
        if polygon.is_empty:
            raise ValueError(f"region: the {kind} of {label} is empty")
        if not polygon.is_valid:
            raise ValueError(
                f"region: the {kind} of {label} is not a valid polygon: {shapely.is_valid_reason(polygon)}"
            )
        polygons.append(polygon)
    return shapely.union_all(polygons)


def _bbox(geometry: shapely.Geometry) -> str:
    west, south, east, north = geometry.bounds
    return f"bounding box lon {west:g} to {east:g}, lat {south:g} to {north:g}"


def region_mask(geometry: shapely.Geometry, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Boolean (lat, lon) mask of grid points strictly inside ``geometry`` (longitudes of any convention)."""
    west, south, east, north = geometry.bounds
    mask = np.zeros((lat.size, lon.size), dtype=bool)
    rows = np.flatnonzero((lat >= south) & (lat <= north))
    shapely.prepare(geometry)
    for shift in (0.0, -360.0, 360.0):
        shifted = lon + shift
        columns = np.flatnonzero((shifted >= west) & (shifted <= east))
        if rows.size and columns.size:
            x, y = np.meshgrid(shifted[columns], lat[rows])
            mask[np.ix_(rows, columns)] |= shapely.contains_xy(geometry, x, y)
    return mask


@block(
    id="transform.region_mean",
    version="1.0.0",
    title="Region mean time series (polygon)",
    category="transform",
    inputs=(Port("dataset", "dataset", "Dataset", "A gridded dataset with time, latitude and longitude."),),
    outputs=(Port("table", "table", "Time series",
                  "One row per time: the date and the region mean of each variable.",
                  quantity=Derived(from_port="dataset", keep="variables")),),
    parameters={
        "type": "object",
        "additionalProperties": False,
        "required": ["region"],
        "properties": {
            "region": {"type": "object", "required": ["type"], "title": "Region",
                       "description": "The area as GeoJSON: a Polygon or MultiPolygon geometry, or a "
                                      "Feature or FeatureCollection of them (longitude, latitude)."},
            "variables": VARIABLES_PARAMETER,
        },
    },
)
def region_mean(ctx: StepContext, inputs: dict[str, Any], params: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """Average variables over a region drawn as a polygon, giving one value per time step.

    **What goes in:** a gridded dataset with time, latitude and longitude, and the region as
    GeoJSON (for example drawn on a map): a polygon, several polygons, or a collection of features
    (their union is used). Longitudes may be -180 to 180 or 0 to 360, whatever the dataset uses.

    **What comes out:** a table with a `time` column (a date such as 2022-07-18 for daily data, a full
    date and time otherwise) and one column per variable, named after it, in the variable's units.

    **Method:** the grid points strictly inside the polygon are averaged, each weighted by the
    cosine of its latitude (proportional to the cell area on a regular latitude-longitude grid).
    Missing values (land, gaps) are left out of both the sum and the weights. Variables with an extra
    dimension such as depth need a single level first (see *Subset*); by default they are skipped.
    The step fails when the polygon is not valid GeoJSON (saying what is wrong) or covers no sea point.
    """
    dataset, region = inputs["dataset"], params["region"]
    geometry = region_geometry(region)
    chosen = params.get("variables")
    require_variables(dataset, chosen)
    lat = require_coord(dataset, "lat", "dataset")
    lon = require_coord(dataset, "lon", "dataset")
    time = require_coord(dataset, "time", "dataset")
    names = []
    for name in chosen or [str(name) for name in dataset.data_vars]:
        dims = dataset[name].dims
        extra = [str(dim) for dim in dims if dim not in (lat, lon, time) and dataset.sizes[dim] > 1]
        if lat in dims and lon in dims and time in dims and not extra:
            names.append(name)
        elif chosen:
            raise ValueError(
                f"variables: {name!r} has dimensions ({', '.join(map(str, dims))}); a region mean needs "
                "time, latitude and longitude only (pick a single level of other dimensions with Subset)"
            )
        else:
            ctx.log(f"skipping {name}: its dimensions ({', '.join(map(str, dims))}) are not time, lat, lon")
    if not names:
        raise ValueError(f"dataset: no variable has time, latitude and longitude dimensions; "
                         f"variables: {variable_list(dataset)}")
    mask = region_mask(geometry, np.asarray(dataset[lat], dtype=np.float64),
                       np.asarray(dataset[lon], dtype=np.float64))
    if not mask.any():
        raise ValueError(
            f"region: the polygon ({_bbox(geometry)}) contains no grid point of the dataset; the data "
            f"cover lon {coverage(dataset.indexes[lon])}, lat {coverage(dataset.indexes[lat])}"
        )
    rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    part = dataset[names].isel({lat: rows, lon: columns})
    inside = xr.DataArray(mask[np.ix_(rows, columns)], dims=(lat, lon))
    weights = (np.cos(np.deg2rad(part[lat])) * inside).astype(np.float64)
    ctx.log(f"{int(mask.sum())} grid points inside the polygon")
    steps = dataset.sizes[time]
    means: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for first in range(0, steps, TIME_STEPS_PER_CHUNK):
        piece = part.isel({time: slice(first, first + TIME_STEPS_PER_CHUNK)})
        for name in names:
            values = piece[name].squeeze([dim for dim in piece[name].dims if dim not in (lat, lon, time)],
                                         drop=True)
            mean = values.weighted(weights).mean(dim=(lat, lon))
            means[name].append(np.asarray(mean.values, dtype=np.float64).reshape(-1))
        ctx.progress(min(first + TIME_STEPS_PER_CHUNK, steps) / steps, "averaging")
    columns_out = {name: np.concatenate(chunks) if chunks else np.array([]) for name, chunks in means.items()}
    if all(np.isnan(values).all() for values in columns_out.values()):
        raise ValueError(
            f"region: the polygon ({_bbox(geometry)}) covers {int(mask.sum())} grid points but no sea "
            "point: every value inside it is missing (land)"
        )
    for name, values in columns_out.items():
        if np.isnan(values).all():
            ctx.log(f"{name}: no valid value inside the polygon", level="warning")
    return {"table": time_series_table(dataset.indexes[time], columns_out,
                                       {name: dataset[name].attrs for name in columns_out})}


# ---- transform.interpolate_to_points ------------------------------------------------------------

REQUIRED_COLUMNS = ("station", "time", "lat", "lon", "variable", "value")
MATCHED_COLUMNS = ("station", "time", "lat", "lon", "depth", "variable", "observed", "modelled")


def _observations(table: pd.DataFrame, flags: list[int], ctx: StepContext) -> pd.DataFrame:
    missing = [column for column in REQUIRED_COLUMNS if column not in table.columns]
    if missing:
        raise ValueError(
            f"observations: the table lacks the columns {', '.join(missing)}; its columns are "
            f"{', '.join(map(str, table.columns))}; expected {', '.join(OBSERVATION_COLUMNS)}"
        )
    if table.empty:
        raise ValueError("observations: the table has no rows")
    table = table.copy()
    if "depth" not in table.columns:
        table["depth"] = np.nan
    if "quality_flag" in table.columns and flags:
        flag = pd.to_numeric(table["quality_flag"], errors="coerce")
        keep = flag.isin(flags) | flag.isna()
        if not keep.any():
            present = ", ".join(f"{value:g}" for value in sorted(flag.dropna().unique()))
            raise ValueError(f"quality_flags: no observation has flag {', '.join(map(str, flags))} "
                             f"(flags present: {present})")
        if (~keep).any():
            ctx.log(f"left out {int((~keep).sum())} observations whose quality flag is not "
                    f"{', '.join(map(str, flags))}")
        table = table[keep]
    try:
        times = pd.to_datetime(table["time"], utc=True, format="ISO8601")
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"observations: the 'time' column holds values that are not ISO times: {error}"
        ) from None
    table["time"] = times.dt.tz_localize(None)
    for column in ("lat", "lon", "depth", "value"):
        values = pd.to_numeric(table[column], errors="coerce")
        if column != "depth" and values.isna().all():
            raise ValueError(f"observations: the '{column}' column holds no numbers")
        table[column] = values.astype(np.float64)
    return table.reset_index(drop=True)


def _point_variable(dataset: xr.Dataset, name: str, lat: str, lon: str, time: str | None,
                    depth: str | None) -> xr.DataArray:
    """The variable with ascending coordinates and only dimensions interpolation can handle."""
    variable = dataset[name]
    known = {lat, lon, time, depth} - {None}
    for dim in variable.dims:
        if dim not in known and variable.sizes[dim] > 1:
            raise ValueError(f"variable_map: {name!r} has a dimension {dim!r} of size {variable.sizes[dim]} "
                             "that observations cannot be matched along; select one value first")
    variable = variable.squeeze([dim for dim in variable.dims if dim not in known], drop=True)
    for dim in (lat, lon):
        if dim not in variable.dims:
            dims = ", ".join(map(str, variable.dims))
            raise ValueError(f"variable_map: {name!r} has no {dim} dimension; it has {dims}")
        if variable.sizes[dim] < 2:
            raise ValueError(f"dataset: {name!r} has a single {dim} value; interpolation needs at least two")
    for dim in variable.dims:
        index = variable.indexes.get(dim)
        if index is not None and len(index) > 1 and not index.is_monotonic_increasing:
            variable = variable.sortby(dim)
    return variable


def _is_global(longitudes: pd.Index) -> bool:
    """Whether evenly spaced ``longitudes`` go all the way round (n steps make 360°), in either
    convention (0 to 360 or -180 to 180), so the grid is periodic across the seam."""
    values = np.sort(np.asarray(longitudes, dtype=np.float64))
    if values.size < 3:
        return False
    steps = np.diff(values)
    step = float(np.median(steps))
    if step <= 0 or not np.allclose(steps, step, rtol=1e-3, atol=1e-6):
        return False
    return abs(values[-1] - values[0] + step - 360.0) <= 1e-3 * step + 1e-6


def _periodic(variable: xr.DataArray, lon: str) -> xr.DataArray:
    """``variable`` (ascending longitudes, global) with its last column repeated 360° west of the first
    and its first column 360° east of the last, so points across the seam interpolate between them."""
    values = np.asarray(variable.indexes[lon], dtype=np.float64)
    west = variable.isel({lon: [-1]}).assign_coords({lon: [values[-1] - 360.0]})
    east = variable.isel({lon: [0]}).assign_coords({lon: [values[0] + 360.0]})
    return xr.concat([west, variable, east], dim=lon)


def _interpolated(variable: xr.DataArray, indexers: dict[str, xr.DataArray]) -> np.ndarray:
    """Multilinear interpolation at points, in one vectorised call, where a missing grid value only
    counts when its weight is not zero (so a point on a grid node next to land gets the node's value).

    Values (missing set to 0) and a validity mask are interpolated together; where the interpolated
    mask is 1 every corner with a weight is valid and the interpolated values are exact.
    """
    pair = xr.Dataset({"value": variable.fillna(0.0), "valid": variable.notnull().astype(np.float64)})
    result = pair.interp(indexers, method="linear")
    values = np.asarray(result["value"].values, dtype=np.float64)
    valid = np.asarray(result["valid"].values, dtype=np.float64)
    return np.where(valid > 1.0 - 1e-9, values, np.nan)


def _matched_columns(dataset: xr.Dataset, pairs: dict[str, str]) -> dict[str, dict[str, str]]:
    """CF attributes of the matched table: positions, and the observed and modelled values in the units
    of the dataset variable when every matched variable has the same units (rows of variables in
    different units share one column, which then has no single unit)."""
    columns: dict[str, dict[str, str]] = {
        "lat": {"units": "degrees_north", "standard_name": "latitude"},
        "lon": {"units": "degrees_east", "standard_name": "longitude"},
        "depth": {"units": "m", "standard_name": "depth", "long_name": "depth below the surface"},
    }
    attrs = [dataset[name].attrs for name in pairs.values()]
    units = {str(each.get("units", "")) for each in attrs}
    if len(units) == 1 and units != {""}:
        kept = on_scale_attrs(attrs[0]) if len(attrs) == 1 else {
            key: value for key, value in on_scale_attrs(attrs[0]).items() if key != "long_name"}
        columns["modelled"] = {**kept, "long_name": f"modelled {kept.get('long_name', 'value')}"}
        columns["observed"] = {**kept, "long_name": f"observed {kept.get('long_name', 'value')}"}
    return columns


@block(
    id="transform.interpolate_to_points",
    version="1.0.0",
    title="Match model to observations",
    category="transform",
    inputs=(
        Port("dataset", "dataset", "Model dataset", "The gridded dataset (model or satellite)."),
        Port("observations", "table", "Observations",
             "In-situ observations: station, time, lat, lon, depth, variable, value, quality_flag."),
    ),
    outputs=(Port("matched", "table", "Matched pairs",
                  "One row per observation with the observed and the modelled value."),),
    parameters={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "variable_map": {"type": "object", "additionalProperties": {"type": "string", "minLength": 1},
                             "default": {}, "title": "Variable names",
                             "description": "Which dataset variable each observed variable is compared "
                                            "with, e.g. {\"TEMP\": \"thetao\"}. Variables not listed are "
                                            "compared with the dataset variable of the same name."},
            "max_time_gap_hours": {"type": "number", "exclusiveMinimum": 0, "default": 24,
                                   "title": "Largest time gap (hours)",
                                   "description": "Observations farther than this from every time step "
                                                  "of the dataset are not matched."},
            "quality_flags": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 9},
                              "uniqueItems": True, "default": [1, 2], "title": "Quality flags kept",
                              "description": "Observations with other flags are left out (1 good, 2 "
                                             "probably good, 3 probably bad, 4 bad, 9 missing). Observations "
                                             "without a flag are kept. Empty: keep all."},
        },
    },
)
def interpolate_to_points(
    ctx: StepContext, inputs: dict[str, Any], params: dict[str, Any]
) -> dict[str, pd.DataFrame]:
    """Find the model value at the place and time of each observation, to compare them.

    **What goes in:** a gridded dataset (model or satellite) and a table of in-situ observations
    (`station, time, lat, lon, depth, variable, value, quality_flag`, one row per measurement).
    Observed variables are matched with dataset variables of the same name, or as given in
    *Variable names* (e.g. `TEMP` with `thetao`).

    **What comes out:** a table `station, time, lat, lon, depth, variable, observed, modelled`, one
    row per observation, ready for skill scores.

    **Method:** the dataset is interpolated linearly between the four surrounding grid points
    (bilinear), linearly between the two surrounding time steps and, when the dataset has depth
    levels, linearly between the two surrounding levels (an observation above the first level takes
    the first level; one without depth takes the surface). Observations outside the grid, below the
    deepest level, more than *Largest time gap* from every time step, or next to land (a missing
    grid value) get no modelled value; the log says how many. Observations with a bad quality flag
    are left out. The step fails when no observation can be matched.
    """
    dataset = inputs["dataset"]
    table = _observations(inputs["observations"], params.get("quality_flags") or [], ctx)
    variable_map: dict[str, str] = params.get("variable_map") or {}
    lat = require_coord(dataset, "lat", "dataset")
    lon = require_coord(dataset, "lon", "dataset")
    time, depth = find_coord(dataset, "time"), find_coord(dataset, "depth")
    observed_names = [str(name) for name in pd.unique(table["variable"])]
    for key, target in variable_map.items():
        if target not in dataset.data_vars:
            raise ValueError(f"variable_map: {key!r} maps to {target!r}, which is not in the dataset; "
                             f"available: {variable_list(dataset)}")
    pairs = {name: variable_map.get(name, name) for name in observed_names
             if variable_map.get(name, name) in dataset.data_vars}
    skipped = [name for name in observed_names if name not in pairs]
    if not pairs:
        raise ValueError(
            f"variable_map: no observed variable ({', '.join(observed_names)}) matches a dataset variable "
            f"({variable_list(dataset)}); map them, e.g. {{\"{observed_names[0]}\": \"...\"}}"
        )
    if skipped:
        ctx.log(f"no dataset variable for {', '.join(skipped)}; those observations are left out", "warning")
        table = table[table["variable"].astype(str).isin(list(pairs))].reset_index(drop=True)

    lon_values = np.asarray(wrap_longitudes(table["lon"].to_numpy(),
                                            longitude_convention(dataset.indexes[lon])), dtype=np.float64)
    lat_index, lon_index = dataset.indexes[lat], dataset.indexes[lon]
    periodic = _is_global(lon_index)
    if periodic:
        ctx.log("the grid goes all the way round in longitude: interpolating across the seam")
    in_grid = ((table["lat"] >= lat_index.min()) & (table["lat"] <= lat_index.max())
               & (periodic | ((lon_values >= lon_index.min()) & (lon_values <= lon_index.max())))).to_numpy()
    times = table["time"].to_numpy(dtype="datetime64[ns]")
    in_time = np.ones(len(table), dtype=bool)
    clamped = times
    if time is not None:
        index = dataset.indexes[time]
        if not isinstance(index, pd.DatetimeIndex):
            raise ValueError(f"dataset: its time axis ({type(index).__name__}, e.g. a non-standard calendar) "
                             "cannot be matched with observation times")
        model_times = np.sort(index.to_numpy())
        times = times.astype(model_times.dtype)  # interp gives NaN when the two time units differ
        position = np.clip(np.searchsorted(model_times, times), 1, len(model_times)) - 1
        following = np.minimum(position + 1, len(model_times) - 1)
        gap = np.minimum(np.abs(times - model_times[position]), np.abs(times - model_times[following]))
        in_time = gap <= np.timedelta64(int(params["max_time_gap_hours"] * 3600e9), "ns")
        clamped = np.clip(times, model_times[0], model_times[-1])
    else:
        ctx.log("the dataset has no time dimension: observations are matched in space only")
    depths = table["depth"].to_numpy()
    in_depth = np.ones(len(table), dtype=bool)
    model_depths = depths
    if depth is not None:
        levels = np.asarray(dataset.indexes[depth], dtype=np.float64)
        upward = depth_is_height(dataset[depth])
        levels = -levels if upward else levels
        surface = np.nanmin(levels)
        wanted = np.where(np.isnan(depths), surface, np.maximum(depths, surface))
        in_depth = wanted <= np.nanmax(levels)
        model_depths = -wanted if upward else wanted
    elif np.nan_to_num(depths).any():
        ctx.log("the dataset has no depth dimension: observation depths are ignored")

    modelled = np.full(len(table), np.nan)
    names = table["variable"].astype(str).to_numpy()
    for observed_name, dataset_name in pairs.items():
        if depth is None or depth not in dataset[dataset_name].dims:  # a surface field: depth does not matter
            in_depth[names == observed_name] = True
    usable = in_grid & in_time & in_depth
    order = np.flatnonzero(usable)
    order = order[np.argsort(times[order], kind="stable")]
    done, total = 0, max(order.size, 1)
    for observed_name, dataset_name in pairs.items():
        variable = _point_variable(dataset, dataset_name, lat, lon, time, depth)
        if periodic:
            variable = _periodic(variable, lon)
        rows = order[names[order] == observed_name]
        for first in range(0, rows.size, POINTS_PER_CHUNK):
            chunk = rows[first:first + POINTS_PER_CHUNK]
            indexers = {lat: xr.DataArray(table["lat"].to_numpy()[chunk], dims="points"),
                        lon: xr.DataArray(lon_values[chunk], dims="points")}
            if time is not None and time in variable.dims:
                indexers[time] = xr.DataArray(clamped[chunk], dims="points")
            if depth is not None and depth in variable.dims:
                indexers[depth] = xr.DataArray(model_depths[chunk], dims="points")
            if len(indexers) > 2 and any(variable.sizes[dim] < 2 for dim in indexers):
                single = [dim for dim in indexers if variable.sizes[dim] < 2]
                variable = variable.squeeze(single, drop=True)
                indexers = {dim: value for dim, value in indexers.items() if dim not in single}
            modelled[chunk] = _interpolated(variable, indexers)
            done += chunk.size
            ctx.progress(done / total, f"interpolating {observed_name}")

    land = usable & np.isnan(modelled)
    too_far = f"more than {params['max_time_gap_hours']:g} h from a time step"
    counts = {"outside the grid": int((~in_grid).sum()),
              too_far: int((in_grid & ~in_time).sum()),
              "below the deepest level": int((in_grid & in_time & ~in_depth).sum()),
              "on land or next to a missing grid value": int(land.sum())}
    matched = int(np.isfinite(modelled).sum())
    unmatched = "; ".join(f"{count} {why}" for why, count in counts.items() if count)
    ctx.log(f"matched {matched} of {len(table)} observations"
            + (f"; not matched: {unmatched}" if unmatched else ""))
    if matched == 0:
        cover = f"lat {coverage(lat_index)}, lon {coverage(lon_index)}"
        if time is not None:
            cover += f", time {coverage(dataset.indexes[time])}"
        raise ValueError(
            f"observations: no observation could be matched ({unmatched}); the dataset covers {cover}"
        )
    result = pd.DataFrame({
        "station": table["station"].to_numpy(),
        "time": iso_times(table["time"]),
        "lat": table["lat"].to_numpy(),
        "lon": table["lon"].to_numpy(),
        "depth": table["depth"].to_numpy(),
        "variable": table["variable"].astype(str).to_numpy(),
        "observed": table["value"].to_numpy(),
        "modelled": modelled,
    })
    return {"matched": with_columns(result[list(MATCHED_COLUMNS)], _matched_columns(dataset, pairs))}


# ---- transform.convert_units --------------------------------------------------------------------

def _converted(values: Any, factor: float, offset: float) -> Any:
    """``values * factor + offset`` (lazy for dask arrays), keeping a floating dtype."""
    converted = values * factor + offset if offset else values * factor
    dtype = getattr(values, "dtype", None)
    return converted.astype(dtype) if dtype is not None and dtype.kind == "f" else converted


RANGE_ATTRIBUTES = ("valid_min", "valid_max", "valid_range", "actual_range")


@block(
    id="transform.convert_units",
    version="1.0.0",
    title="Convert units",
    category="transform",
    inputs=(Port("dataset", "dataset", "Dataset", "A gridded dataset whose variables have units.",
                 quantity=Quantity(params=("variable",))),),
    outputs=(Port("dataset", "dataset", "Dataset", "The same dataset with the variable in the new units.",
                  quantity=Derived(from_port="dataset", op="convert", variable="variable",
                                   units="to_units")),),
    parameters={
        "type": "object",
        "additionalProperties": False,
        "required": ["variable", "to_units"],
        "properties": {
            "variable": {"type": "string", "minLength": 1, "title": "Variable",
                         "description": "Name of the variable to convert, e.g. thetao."},
            "to_units": {"type": "string", "minLength": 1, "maxLength": 100, "title": "New units",
                         "description": "The units wanted, as in CF/UDUNITS, e.g. K, degC, knot, km h-1."},
        },
    },
)
def convert_units(ctx: StepContext, inputs: dict[str, Any], params: dict[str, Any]) -> dict[str, xr.Dataset]:
    """Convert a variable to other units, e.g. °C to kelvin or m/s to knots.

    **What goes in:** a gridded dataset, the name of a variable that has a `units` attribute (as
    every CF dataset has) and the units wanted, written as in CF/UDUNITS: `K`, `degC`,
    `degree_Celsius`, `knot`, `m s-1`, `km h-1`, `1e-3`...

    **What comes out:** the same dataset with that variable's values converted and its `units`
    attribute set to the new units exactly as written. Valid ranges (`valid_min`, `valid_max`...)
    are converted too; everything else is unchanged.

    **Temperatures and temperature differences:** 20 °C is 293.15 K, but a difference of 0.5 °C (an
    anomaly, a trend) is 0.5 K. As in CF 1.11, the variable's `units_metadata` says which:
    `temperature: difference` is converted without the scale offset (°C ↔ K factor 1, °F ↔ °C
    factor 5/9), `temperature: on_scale` with it. Anomalies and trends made by the portal carry
    `temperature: difference`. A temperature without `units_metadata` is taken as on the scale when
    the conversion needs an offset, and the log warns, naming the variable.

    **Method:** conversion factors and offsets come from the pint units library with the CF units
    definitions of cf-xarray; none are typed by hand. As in UDUNITS, `C` is the coulomb (degrees
    Celsius are `degC` or `degree_Celsius`). The step fails when a unit is unknown, when the two units
    measure different things (e.g. a speed and a temperature), or when the variable has no units.
    """
    dataset, name, to_units = inputs["dataset"], params["variable"], params["to_units"].strip()
    require_variables(dataset, [name], "variable")
    from_units = dataset[name].attrs.get("units")
    if from_units is None or not str(from_units).strip():
        raise ValueError(f"variable: {name!r} has no units attribute, so its values cannot be converted")
    source = parse_units(str(from_units).strip(), f"variable: the units of {name!r}")
    target = parse_units(to_units, "to_units")
    if source.dimensionality != target.dimensionality:
        raise ValueError(
            f"to_units: {name!r} is in {from_units!r} ({source.dimensionality}), which cannot be converted "
            f"to {to_units!r} ({target.dimensionality}){coulomb_hint(f'{from_units} {to_units}')}"
        )
    try:
        factor, offset = linear_conversion(source, target)
    except Exception as error:  # e.g. pint refusing a scaled offset unit
        raise ValueError(f"to_units: cannot convert {from_units!r} to {to_units!r}: {error}") from None
    variable = _lazy(_unpacked(dataset[name]))
    attrs = dict(variable.attrs)
    kind = temperature_kind(attrs)
    if is_temperature(source) and offset:
        if kind == UNKNOWN:
            raise ValueError(
                f"variable: {name!r} has units_metadata {attrs['units_metadata']!r}, so whether it holds "
                f"temperatures or temperature differences is unknown, and {from_units!r} -> {to_units!r} "
                "differs between the two; set units_metadata to 'temperature: on_scale' or "
                "'temperature: difference'")
        if kind is None:
            ctx.log(f"variable {name!r}: no units_metadata says whether its values are temperatures on the "
                    "scale or temperature differences; treating them as on the scale (CF 1.11), so "
                    f"{from_units} -> {to_units} adds the scale offset. Anomalies and trends need "
                    "units_metadata 'temperature: difference'", level="warning")
            kind = ON_SCALE
        if kind == DIFFERENCE:
            offset = 0.0
        attrs["units_metadata"] = kind
    converted = _converted(variable, factor, offset)
    for key in RANGE_ATTRIBUTES:
        if key in attrs:
            try:
                attrs[key] = _converted(np.asarray(attrs[key], dtype=np.float64), factor, offset).tolist()
            except (TypeError, ValueError):
                del attrs[key]
    converted.attrs = {**attrs, "units": to_units}
    converted.encoding = variable.encoding
    result = dataset.assign({name: converted})
    ctx.log(f"{name}: {from_units} -> {to_units}")
    line = f"transform.convert_units 1.0.0 (variable={name}, {from_units} -> {to_units})"
    return {"dataset": with_history(result, line)}


# ---- transform.calculate ------------------------------------------------------------------------

@block(
    id="transform.calculate",
    version="1.0.0",
    title="Calculate a new variable",
    category="transform",
    inputs=(Port("dataset", "dataset", "Dataset", "A gridded dataset."),),
    outputs=(Port("dataset", "dataset", "Dataset", "The same dataset with the new variable added.",
                  quantity=Derived(from_port="dataset", op="add", name="name", units="units",
                                   long_name="long_name")),),
    parameters={
        "type": "object",
        "additionalProperties": False,
        "required": ["expression", "name"],
        "properties": {
            "expression": {"type": "string", "minLength": 1, "maxLength": 1000, "title": "Formula",
                           "description": "How to compute the new variable from the others, e.g. "
                                          "sqrt(uo**2 + vo**2)."},
            "name": {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_]{0,63}$",
                     "title": "New variable name",
                     "description": "Name of the new variable, e.g. speed (letters, digits, underscores)."},
            "units": {"type": "string", "maxLength": 100, "title": "Units",
                      "description": "Units of the result, e.g. m s-1. Empty: none recorded."},
            "long_name": {"type": "string", "maxLength": 200, "title": "Description",
                          "description": "A readable description, e.g. 'current speed'."},
        },
    },
)
def calculate(ctx: StepContext, inputs: dict[str, Any], params: dict[str, Any]) -> dict[str, xr.Dataset]:
    """Add a variable computed from the others with a formula, e.g. the current speed from its components.

    **What goes in:** a gridded dataset and a formula over its variables, such as
    `sqrt(uo**2 + vo**2)` (current speed) or `where(sst > 20, sst - 20, 0)`.

    **What comes out:** the same dataset with one more variable, named as you choose, with the units
    and description you give.

    **Formulas** may use the names of the dataset's variables and coordinates, numbers, `+ - * / **`
    (power) and `%` (remainder), comparisons (`< <= > >= == !=`), `and`, `or`, `not`, parentheses and
    the functions `sqrt`, `abs`, `exp`, `log` (natural), `log10`, `sin`, `cos`, `tan`, `arctan2(y, x)`,
    `where(condition, a, b)`, `minimum(a, b)`, `maximum(a, b)` and `clip(x, low, high)` (angles in
    radians).
    The calculation is done grid point by grid point; missing values stay missing. Nothing else can
    be written, so a formula cannot read files or run programs; a refused formula is reported with the
    offending part and its position.
    """
    dataset, name = inputs["dataset"], params["name"]
    if name in dataset.variables:
        raise ValueError(f"name: {name!r} already exists in the dataset; choose another name")
    variables = {str(key): dataset[key] for key in dataset.variables}
    _, used = parse(params["expression"], variables)
    if not any(used_name in dataset.data_vars for used_name in used):
        raise ExpressionError(
            f"expression: uses no variable of the dataset; available: {variable_list(dataset)}"
        )
    result = evaluate(params["expression"], {
        key: _lazy(variables[key]) if key in dataset.data_vars else variables[key] for key in used})
    if not isinstance(result, xr.DataArray):
        raise ValueError("expression: does not give a value per grid point")
    if result.dtype == bool:
        result = result.astype(np.int8)
    attrs = {"comment": f"calculated as {params['expression']}"}
    if params.get("units"):
        attrs["units"] = params["units"]
    if params.get("long_name"):
        attrs["long_name"] = params["long_name"]
    result = result.rename(name)
    result.attrs = attrs
    result.encoding = {}
    output = dataset.assign({name: result})
    ctx.log(f"{name} = {params['expression']} (dimensions {', '.join(map(str, result.dims))})")
    line = f"transform.calculate 1.0.0 ({name} = {params['expression']})"
    return {"dataset": with_history(output, line)}
