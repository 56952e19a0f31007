"""Lagrangian particle drift with OpenDrift: oil spills, larvae and floating litter."""

from __future__ import annotations

import difflib
import logging
import time as clock
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from blocks.context import StepCancelled, StepContext
from blocks.library.cf import speed_factor
from blocks.library.geo import find_coord, with_history
from blocks.library.schemas import number
from blocks.spec import Port, Quantity, Resources, block

DEFAULT_OIL_TYPE = "GENERIC MEDIUM CRUDE"
"""Part of the ADIOS oil library shipped inside OpenDrift, so available offline."""
MAX_PARTICLES = 5000
MAX_OUTPUT_TIMES = 1000
"""More stored time steps than this would make the trajectory file needlessly large."""
MAX_DENSITY_VALUES = 20_000_000
"""Largest density grid (cells x output times) written."""
MAX_TRACK_LINES = 500
"""At most this many particles get a track line in the GeoJSON (evenly chosen); all get a final point."""
MAX_TRACK_VERTICES = 200
TRACK_SIMPLIFY_DEG = 0.0005
"""Track lines are simplified to within about 50 m, and coordinates rounded to 5 decimals (about 1 m)."""
MAX_DRIFT_SPEED_M_S = 3.0
MIN_FORCING_MARGIN_DEG = 2.0
"""Forcing data are cut to the box particles moving at most this fast can reach (at least this margin)."""
MAX_LOGGED_MESSAGES = 50
"""Distinct OpenDrift log messages copied to the step log."""
CURRENT_NAMES = {
    "eastward_sea_water_velocity": ("uo", "u", "water_u", "ugos", "eastward_sea_water_velocity"),
    "northward_sea_water_velocity": ("vo", "v", "water_v", "vgos", "northward_sea_water_velocity"),
}
WIND_NAMES = {
    "eastward_wind": ("eastward_wind", "u10", "uwnd", "wind_u", "u_wind"),
    "northward_wind": ("northward_wind", "v10", "vwnd", "wind_v", "v_wind"),
}
AXES = {
    "lat": ("latitude", "degrees_north", "Y"),
    "lon": ("longitude", "degrees_east", "X"),
    "time": ("time", None, "T"),
}
"""CF standard name, units and axis given to the forcing coordinates (found with geo.find_coord)."""
OIL_EXPORT = ("mass_oil", "mass_evaporated", "mass_dispersed", "mass_biodegraded", "water_fraction",
              "viscosity", "density", "oil_film_thickness")
COMMON_EXPORT = ("lon", "lat", "z", "status", "moving", "age_seconds", "origin_marker",
                 "x_sea_water_velocity", "y_sea_water_velocity", "x_wind", "y_wind")


# ---- forcing data -------------------------------------------------------------------------------

def _find_variable(dataset: xr.Dataset, standard_name: str, names: tuple[str, ...]) -> str | None:
    for name, variable in dataset.data_vars.items():
        if variable.attrs.get("standard_name") == standard_name:
            return str(name)
    for name in names:
        if name in dataset.data_vars:
            return name
    return None


def _describe_variables(dataset: xr.Dataset) -> str:
    described = [
        f"{name} ({variable.attrs['standard_name']})" if "standard_name" in variable.attrs else str(name)
        for name, variable in dataset.data_vars.items()
    ]
    return ", ".join(described) or "none"


def _forcing(dataset: xr.Dataset, port: str, standard_names: dict[str, tuple[str, ...]]) -> xr.Dataset:
    """The two velocity components of ``dataset`` with CF names and attributes, on (time, lat, lon).

    Lazy: nothing is read yet. Raises ValueError naming the port when something is missing.
    """
    found = {standard: _find_variable(dataset, standard, names) for standard, names in standard_names.items()}
    missing = [standard for standard, name in found.items() if name is None]
    if missing:
        raise ValueError(
            f"{port}: no variable with standard_name {' or '.join(missing)} (looked also for "
            f"{', '.join(name for standard in missing for name in standard_names[standard])}); "
            f"the dataset has: {_describe_variables(dataset)}"
        )
    axes = {kind: find_coord(dataset, kind) for kind in AXES}
    absent = [kind for kind, name in axes.items() if name is None]
    if absent:
        raise ValueError(f"{port}: the dataset has no {' or '.join(absent)} coordinate; coordinates: "
                         f"{', '.join(map(str, dataset.coords)) or 'none'}")
    selected = dataset[list(found.values())]
    for dim in list(selected.dims):
        if dim not in axes.values():
            # e.g. depth: drift at the surface uses the level nearest the surface.
            selected = selected.isel({dim: 0}, drop=True)
    renamed = selected.rename({axes["time"]: "time", axes["lat"]: "lat", axes["lon"]: "lon"})
    renamed = renamed.rename({name: standard for standard, name in found.items() if name != standard})
    for kind, (standard_name, units, axis) in AXES.items():
        attrs = {**renamed[kind].attrs, "standard_name": standard_name, "axis": axis}
        if units:
            attrs["units"] = units
        renamed[kind].attrs = attrs
    for standard in found:
        attrs = renamed[standard].attrs
        factor = speed_factor(attrs, str(found[standard]), port)
        if factor != 1.0:
            renamed[standard] = renamed[standard] * factor
        renamed[standard].attrs = {**attrs, "standard_name": standard, "units": "m s-1"}
    if renamed.sizes["time"] < 1:
        raise ValueError(f"{port}: the dataset has no time steps")
    return renamed.sortby("time")


def _time_range(dataset: xr.Dataset) -> tuple[pd.Timestamp, pd.Timestamp]:
    index = dataset.indexes["time"]
    if not isinstance(index, pd.DatetimeIndex):
        raise ValueError("currents: the time coordinate is not in a standard calendar")
    return index[0], index[-1]


def _fmt(moment: pd.Timestamp | datetime) -> str:
    return pd.Timestamp(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_start(value: str | None, first: pd.Timestamp) -> pd.Timestamp:
    if not value:
        return first
    try:
        moment = pd.Timestamp(value)
    except (ValueError, TypeError):
        moment = pd.NaT
    if moment is pd.NaT:
        raise ValueError(f"start: {value!r} is not a date and time (expected e.g. 2021-06-01T12:00)")
    if moment.tzinfo is not None:
        moment = moment.tz_convert("UTC").tz_localize(None)
    return moment


def _reach_deg(hours: float) -> float:
    """Half-width in degrees of the box particles released at a point can reach in ``hours``."""
    return max(MIN_FORCING_MARGIN_DEG, hours * 3600 * MAX_DRIFT_SPEED_M_S / 111_000)


def _write_forcing(forcing: xr.Dataset, start: pd.Timestamp, end: pd.Timestamp, lat: float, lon: float,
                   path: Path) -> None:
    """Write the forcing around the release, for the times bracketing [start, end], for OpenDrift's CF reader.

    Only what the particles can reach is written, so a large (e.g. global) product is not copied whole.
    """
    times = forcing.indexes["time"]
    first = max(int(times.searchsorted(start, side="right")) - 1, 0)
    last = min(int(times.searchsorted(end, side="left")), len(times) - 1)
    reach = _reach_deg((end - start) / pd.Timedelta(hours=1))
    lat_reach = reach
    lon_reach = reach / max(np.cos(np.deg2rad(min(abs(lat) + reach, 89.0))), 0.01)
    box = {}
    for name, centre, half in (("lat", lat, lat_reach), ("lon", lon, lon_reach)):
        values = forcing.indexes[name]
        inside = np.flatnonzero((values >= centre - half) & (values <= centre + half))
        if len(inside):  # one more point on each side, so interpolation covers the whole box
            box[name] = slice(max(inside[0] - 1, 0), min(inside[-1] + 2, len(values)))
    part = forcing.isel(time=slice(first, last + 1), **box)
    if part.sizes["time"] == 1:  # the CF reader needs two times to interpolate; a field constant in time
        step = pd.Timedelta(hours=1)
        part = xr.concat([part, part.assign_coords(time=part.indexes["time"] + step)], dim="time")
    encoding = {name: {"zlib": False} for name in part.data_vars}
    for name in ("time", "lat", "lon"):
        part[name].encoding = {}
    part.attrs = {"Conventions": "CF-1.8"}
    part.to_netcdf(path, encoding=encoding)


def _check_coverage(forcing: xr.Dataset, port: str, start: pd.Timestamp, end: pd.Timestamp) -> None:
    first, last = _time_range(forcing)
    covers = f"the {port} data covers {_fmt(first)} to {_fmt(last)}"
    if forcing.sizes["time"] == 1:
        return  # a single field is used for all times
    if start < first or start > last:
        raise ValueError(f"start: {_fmt(start)} is outside the {port} data; {covers}")
    if end > last:
        raise ValueError(f"duration_hours: the drift would end at {_fmt(end)}, after the end of the {port} "
                         f"data; {covers}: shorten the drift or start earlier")


def _check_position(forcing: xr.Dataset, lat: float, lon: float) -> None:
    lats, lons = forcing["lat"].values, forcing["lon"].values
    if not (lats.min() <= lat <= lats.max()) or not (lons.min() <= lon <= lons.max()):
        raise ValueError(
            f"lat/lon: the release point ({lat:g} N, {lon:g} E) is outside the currents data, which cover "
            f"{lats.min():g} to {lats.max():g} N and {lons.min():g} to {lons.max():g} E"
        )


# ---- running OpenDrift --------------------------------------------------------------------------

class _ContextHandler(logging.StreamHandler):
    """Sends OpenDrift's log records to the step log (a StreamHandler so OpenDrift accepts it as is)."""

    def __init__(self, ctx: StepContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.seen: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            # OpenDrift repeats some warnings at every step: log each once, and not too many.
            if message in self.seen or len(self.seen) >= MAX_LOGGED_MESSAGES:
                return
            self.seen.add(message)
            level = "warning" if record.levelno >= logging.WARNING else "info"
            self.ctx.log(f"OpenDrift: {message}", level)
        except Exception:  # noqa: BLE001 - logging must never break the run
            pass


@contextmanager
def _opendrift_output(ctx: StepContext) -> Iterator[_ContextHandler]:
    """Route OpenDrift's logger and Python warnings to ctx.log instead of stdout/stderr."""
    logger = logging.getLogger("opendrift")
    propagate, level = logger.propagate, logger.level
    handler = _ContextHandler(ctx)
    handler.setLevel(logging.WARNING)
    logger.propagate = False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            yield handler
        seen = set()
        for warning in caught:
            text = f"{warning.category.__name__}: {warning.message}"
            if text not in seen:
                seen.add(text)
                ctx.log(f"OpenDrift: {text}", "warning")
    finally:
        logger.removeHandler(handler)
        logger.propagate, logger.level = propagate, level


def _on_land(lat: float, lon: float) -> bool:
    from opendrift.readers.reader_global_landmask import get_mask

    return bool(get_mask().contains(float(lon), float(lat)))


def _model(params: dict[str, Any], handler: logging.Handler) -> Any:
    if params["model"] == "oil":
        from opendrift.models.openoil import OpenOil

        simulation = OpenOil(loglevel=logging.WARNING, logfile=[handler], weathering_model="noaa")
        name = params["oil_type"]
        if name not in simulation.oiltypes:
            close = difflib.get_close_matches(name.upper(), simulation.oiltypes, n=5, cutoff=0.5)
            generic = [oil for oil in simulation.oiltypes if oil.startswith("GENERIC")]
            raise ValueError(
                f"oil_type: {name!r} is not in OpenDrift's oil library; "
                + (f"close matches: {', '.join(close)}" if close else f"generic types: {', '.join(generic)}")
            )
        return simulation
    from opendrift.models.oceandrift import OceanDrift

    return OceanDrift(loglevel=logging.WARNING, logfile=[handler])


def _track_progress(ctx: StepContext, simulation: Any, steps: int, state: dict[str, Any]) -> None:
    """Report each OpenDrift time step and stop the run when it is cancelled.

    OpenDrift cannot resume a run, so the run is not cut in chunks; instead its per-step
    ``release_elements`` is wrapped. A cancellation raised there is caught by OpenDrift's main loop,
    which ends the run early; the block then raises StepCancelled.
    """
    original = simulation.release_elements

    def release_elements(*args: Any, **kwargs: Any) -> Any:
        state["step"] += 1
        try:
            ctx.progress(0.15 + 0.75 * min(state["step"] / steps, 1.0),
                         f"drift step {state['step']} of {steps}")
            ctx.raise_if_cancelled()
        except StepCancelled:
            state["cancelled"] = True
            raise
        return original(*args, **kwargs)

    simulation.release_elements = release_elements


# ---- outputs ------------------------------------------------------------------------------------

def _status_names(trajectories: xr.Dataset) -> list[str]:
    meanings = str(trajectories["status"].attrs.get("flag_meanings", "active")).split()
    values = np.atleast_1d(trajectories["status"].attrs.get("flag_values", np.arange(len(meanings))))
    names = {int(value): meaning for value, meaning in zip(values, meanings, strict=False)}
    return [names.get(code, f"status_{code}") for code in range(max(names, default=0) + 1)]


def _final_state(trajectories: xr.Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per particle: index of the last stored time, last lon, last lat and last status code."""
    lon = trajectories["lon"].values
    valid = np.isfinite(lon)
    last = np.where(valid.any(axis=1), valid.shape[1] - 1 - np.argmax(valid[:, ::-1], axis=1), -1)
    rows = np.arange(lon.shape[0])
    status = trajectories["status"].values[rows, last]
    return last, lon[rows, last], trajectories["lat"].values[rows, last], status


def _tracks(trajectories: xr.Dataset, params: dict[str, Any], start: pd.Timestamp) -> dict[str, Any]:
    from shapely.geometry import LineString

    names = _status_names(trajectories)
    times = [_fmt(t) for t in trajectories.indexes["time"]]
    lon, lat = trajectories["lon"].values, trajectories["lat"].values
    last, final_lon, final_lat, final_status = _final_state(trajectories)
    count = lon.shape[0]
    features: list[dict[str, Any]] = [{
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [params["lon"], params["lat"]]},
        "properties": {"kind": "release", "time": _fmt(start), "radius_m": params["radius_m"],
                       "particles": count, "model": params["model"]},
    }]
    lines = np.unique(np.linspace(0, count - 1, min(count, MAX_TRACK_LINES)).round().astype(int))
    for particle in lines:
        valid = np.isfinite(lon[particle])
        if valid.sum() < 2:
            continue
        line = LineString(np.column_stack([lon[particle][valid], lat[particle][valid]]))
        line = line.simplify(TRACK_SIMPLIFY_DEG, preserve_topology=False)
        coordinates = np.asarray(line.coords)
        if len(coordinates) > MAX_TRACK_VERTICES:
            keep = np.unique(np.linspace(0, len(coordinates) - 1, MAX_TRACK_VERTICES).round().astype(int))
            coordinates = coordinates[keep]
        features.append({
            "type": "Feature",
            "geometry": {"type": "LineString", "coordinates": np.round(coordinates, 5).tolist()},
            "properties": {"kind": "track", "particle": int(particle),
                           "status": names[int(final_status[particle])],
                           "start": times[int(np.argmax(valid))], "end": times[int(last[particle])]},
        })
    for particle in range(count):
        if last[particle] < 0:
            continue
        features.append({
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [round(float(final_lon[particle]), 5),
                                                          round(float(final_lat[particle]), 5)]},
            "properties": {"kind": "final", "particle": particle,
                           "status": names[int(final_status[particle])], "time": times[int(last[particle])]},
        })
    return {"type": "FeatureCollection", "features": features}


def _density(trajectories: xr.Dataset, resolution: float) -> xr.Dataset:
    """Number of active particles per grid cell at each output time, on a regular lat/lon grid."""
    lon, lat = trajectories["lon"].values, trajectories["lat"].values
    active = np.isfinite(lon) & (trajectories["status"].values == 0)
    if not active.any():
        active = np.isfinite(lon)
    lon_edges = _edges(lon[np.isfinite(lon)], resolution)
    lat_edges = _edges(lat[np.isfinite(lat)], resolution)
    times = trajectories.indexes["time"]
    cells = (len(lon_edges) - 1) * (len(lat_edges) - 1)
    if cells * len(times) > MAX_DENSITY_VALUES:
        raise ValueError(
            f"density_resolution_deg: {resolution:g} degrees gives {cells:,} cells x {len(times)} times, "
            f"more than {MAX_DENSITY_VALUES:,} values: use a coarser resolution or a longer output interval"
        )
    counts = np.zeros((len(times), len(lat_edges) - 1, len(lon_edges) - 1), dtype=np.int32)
    for step in range(len(times)):
        chosen = active[:, step]
        counts[step], _, _ = np.histogram2d(lat[chosen, step], lon[chosen, step], bins=(lat_edges, lon_edges))
    centre = lambda edges: np.round((edges[:-1] + edges[1:]) / 2, 6)  # noqa: E731
    dataset = xr.Dataset(
        {"particle_count": (("time", "lat", "lon"), counts, {
            "long_name": "number of active (drifting) particles in the grid cell", "units": "1",
            "coverage_content_type": "modelResult"})},
        coords={
            "time": ("time", times, {"standard_name": "time", "axis": "T"}),
            "lat": ("lat", centre(lat_edges), {"standard_name": "latitude", "units": "degrees_north",
                                               "axis": "Y"}),
            "lon": ("lon", centre(lon_edges), {"standard_name": "longitude", "units": "degrees_east",
                                               "axis": "X"}),
        },
    )
    for name in ("lat", "lon"):
        dataset[name].encoding = {"_FillValue": None}
    return dataset


def _edges(values: np.ndarray, resolution: float) -> np.ndarray:
    lower = np.floor(values.min() / resolution) * resolution
    upper = (np.floor(values.max() / resolution) + 1) * resolution
    count = int(round((upper - lower) / resolution))
    return np.round(lower + resolution * np.arange(count + 1), 9)


def _trajectory_attrs(trajectories: xr.Dataset, params: dict[str, Any]) -> xr.Dataset:
    axes = (("lon", "longitude", "degrees_east"), ("lat", "latitude", "degrees_north"))
    for name, standard_name, units in axes:
        if name in trajectories:
            attrs = {**trajectories[name].attrs, "standard_name": standard_name, "units": units}
            trajectories[name].attrs = attrs
    trajectories["trajectory"].attrs = {**trajectories["trajectory"].attrs, "cf_role": "trajectory_id",
                                         "long_name": "particle number"}
    trajectories["time"].attrs = {**trajectories["time"].attrs, "standard_name": "time", "axis": "T"}
    chosen = ", ".join(f"{key}={params[key]}" for key in sorted(params))
    trajectories.attrs.update({"Conventions": "CF-1.8", "featureType": "trajectory"})
    return with_history(trajectories, f"model.particle_drift 1.0.0 ({chosen})")


# ---- the block ----------------------------------------------------------------------------------

PARAMETERS: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["lat", "lon"],
    "properties": {
        "model": {"type": "string", "enum": ["oil", "larvae", "litter"], "default": "oil",
                  "title": "What drifts",
                  "description": "oil: an oil spill that also weathers (evaporates, disperses, strands); "
                                 "larvae: fish or shellfish larvae carried by the currents; litter: floating "
                                 "litter pushed by currents and wind."},
        "oil_type": {"type": "string", "minLength": 1, "default": DEFAULT_OIL_TYPE, "title": "Oil type",
                     "description": "Name of the oil in OpenDrift's (ADIOS) oil library, e.g. GENERIC MEDIUM "
                                    "CRUDE, GENERIC DIESEL, GENERIC BUNKER C. Only used for oil."},
        "wind_drift_factor": number(
            "Wind drift factor", "Share of the wind speed added to the drift, e.g. 0.02 (2 %) for floating "
            "litter, 0 for larvae below the surface. Empty: 0.02 for litter, 0 for larvae. Only used for "
            "larvae and litter (oil has its own wind drift).", None, 0.0, 0.1),
        "lat": number("Release latitude", "Latitude of the release point, degrees north.", None, -90, 90),
        "lon": number("Release longitude", "Longitude of the release point, degrees east.", None, -180, 180),
        "radius_m": number("Release radius (m)", "Particles are released at random within this distance of "
                            "the release point, in metres.", 1000, 0, 100_000),
        "start": {"type": "string", "title": "Release time",
                  "description": "Date and time of the release, in UTC, e.g. 2022-07-18T06:00. It must lie "
                                 "within the currents data. Empty: the first time of the currents data."},
        "duration_hours": number("Duration (hours)", "How long to follow the particles after the release.",
                                  24, 1, 720, "integer"),
        "particles": number("Number of particles", "How many particles to release (more: smoother maps, "
                             "slower).", 500, 1, MAX_PARTICLES, "integer"),
        "time_step_minutes": number("Time step (minutes)", "Time step of the computation.", 30, 1, 360,
                                     "integer"),
        "output_interval_minutes": number("Output interval (minutes)", "How often positions are stored; a "
                                           "multiple of the time step.", 60, 1, 1440, "integer"),
        "use_landmask": {"type": "boolean", "default": True, "title": "Stop at the coast",
                         "description": "Particles reaching the coast (GSHHG full-resolution coastline) are "
                                        "stranded. Off: only the currents data decide where the sea is."},
        "density_resolution_deg": number("Density grid spacing (degrees)",
                                          "Cell size of the particle density map.", 0.05, 0.001, 2),
    },
}


@block(
    id="model.particle_drift",
    version="1.0.0",
    title="Particle drift (oil, larvae, litter)",
    category="model",
    inputs=(
        Port("currents", "dataset", "Currents",
             "Surface currents: eastward and northward sea water velocity (m/s) on time, latitude and "
             "longitude.",
             quantity=Quantity(kind="velocity", standard_names=tuple(CURRENT_NAMES), match="standard_name")),
        Port("wind", "dataset", "Wind (optional)",
             "10 m wind: eastward and northward wind (m/s). Without it the wind is taken as calm.",
             required=False,
             quantity=Quantity(kind="velocity", standard_names=tuple(WIND_NAMES), match="standard_name")),
    ),
    outputs=(
        Port("trajectories", "dataset", "Trajectories",
             "Every particle's position and state at every output time (OpenDrift's CF trajectory file)."),
        Port("tracks", "geojson", "Tracks",
             "Map features: the release point, a line per particle track and each particle's final "
             "position."),
        Port("density", "dataset", "Particle density",
             "Number of drifting particles per grid cell at every output time."),
    ),
    parameters=PARAMETERS,
    resources=Resources(cpus=1, memory_mb=3072, walltime_s=3600),
    cacheable=False,  # particles are released and diffused at random, without a seed parameter
)
def particle_drift(ctx: StepContext, inputs: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """Simulate where an oil spill, fish larvae or floating litter drift with the currents and wind.

    **What goes in:** surface currents (a gridded dataset with eastward and northward sea water
    velocity, e.g. a Copernicus Marine product or the demo dataset) and, optionally, the 10 m wind.
    Settings: what drifts, where and when it is released (a point, a radius and a time within the
    currents data), how long to follow it and how many particles to use.

    **What comes out:**

    - `trajectories`: each particle's position and state every output interval (OpenDrift's
      CF-compliant trajectory NetCDF file). The `status` variable tells whether a particle is still
      drifting (`active`), reached the coast (`stranded`), evaporated or dispersed (oil), or left the
      data area (`missing_data` / `outside`).
    - `tracks`: a map layer (GeoJSON): the release point, one line per particle (at most 500,
      simplified to about 50 m) and each particle's final position with its status.
    - `density`: the number of still-drifting particles in each cell of a regular grid at every
      output time, to map where the material is most concentrated.

    **Method:** OpenDrift (Dagestad et al. 2018, *OpenDrift v1.0: a generic framework for
    trajectory modelling*, Geoscientific Model Development 11, 1405-1420), a Lagrangian model from
    the Norwegian Meteorological Institute. Particles move with the currents interpolated in space
    and time (and a share of the wind, the *wind drift factor*). Oil uses the OpenOil module, with
    evaporation, emulsification and dispersion from NOAA's oil library (ADIOS). With *stop at the
    coast* on, particles that hit the GSHHG coastline are stranded there; the release point itself
    must then be at sea.

    **Good to know:** the run takes a few seconds to load the coastline plus a few seconds per
    thousand particles and day; it reports progress at every step and stops at the next step when
    cancelled. All data stays local: nothing is downloaded.
    """
    started = clock.monotonic()
    ctx.progress(0.0, "checking the forcing data")
    currents = _forcing(inputs["currents"], "currents", CURRENT_NAMES)
    wind = _forcing(inputs["wind"], "wind", WIND_NAMES) if inputs.get("wind") is not None else None
    first, _ = _time_range(currents)
    start = _parse_start(params.get("start"), first)
    end = start + pd.Timedelta(hours=params["duration_hours"])
    _check_coverage(currents, "currents", start, end)
    if wind is not None:
        _check_coverage(wind, "wind", start, end)
    _check_position(currents, params["lat"], params["lon"])
    step, output = params["time_step_minutes"], params["output_interval_minutes"]
    if output % step:
        raise ValueError(f"output_interval_minutes: {output} is not a multiple of time_step_minutes ({step})")
    outputs = params["duration_hours"] * 60 // output + 1
    if outputs > MAX_OUTPUT_TIMES:
        raise ValueError(f"output_interval_minutes: {output} minutes over {params['duration_hours']} hours "
                         f"stores {outputs} times, more than {MAX_OUTPUT_TIMES}: use a longer interval")
    if params["model"] == "oil" and not params.get("oil_type"):
        raise ValueError("oil_type: an oil type is needed for model='oil'")

    scratch = Path(ctx.scratch_dir)
    scratch.mkdir(parents=True, exist_ok=True)
    current_file, wind_file = scratch / "currents.nc", scratch / "wind.nc"
    ctx.progress(0.02, "writing the forcing data")
    _write_forcing(currents, start, end, params["lat"], params["lon"], current_file)
    if wind is not None:
        _write_forcing(wind, start, end, params["lat"], params["lon"], wind_file)
    ctx.raise_if_cancelled()
    ctx.progress(0.05, "loading OpenDrift and the coastline (takes a few seconds)")

    state: dict[str, Any] = {"step": 0, "cancelled": False}
    outfile = scratch / "opendrift.nc"
    with _opendrift_output(ctx) as handler:
        from opendrift.readers import reader_netCDF_CF_generic

        if params["use_landmask"] and _on_land(params["lat"], params["lon"]):
            raise ValueError(
                f"lat/lon: the release point ({params['lat']:g} N, {params['lon']:g} E) is on land; move it "
                "to the sea or turn off use_landmask"
            )
        simulation = _model(params, handler)
        try:
            ctx.raise_if_cancelled()
            simulation.add_reader(reader_netCDF_CF_generic.Reader(str(current_file), name="currents"))
            if wind is not None:
                simulation.add_reader(reader_netCDF_CF_generic.Reader(str(wind_file), name="wind"))
            else:
                ctx.log("no wind given: calm (0 m/s) is assumed")
                simulation.set_config("environment:constant:x_wind", 0)
                simulation.set_config("environment:constant:y_wind", 0)
            if not params["use_landmask"]:
                simulation.set_config("general:use_auto_landmask", False)
                simulation.set_config("environment:constant:land_binary_mask", 0)
            seed: dict[str, Any] = {}
            if params["model"] == "oil":
                seed["oil_type"] = params["oil_type"]
            else:
                default = 0.02 if params["model"] == "litter" else 0.0
                seed["wind_drift_factor"] = params.get("wind_drift_factor", default)
            release = start.to_pydatetime()
            simulation.seed_elements(lon=params["lon"], lat=params["lat"], radius=params["radius_m"],
                                     number=params["particles"], time=release, **seed)
            steps = params["duration_hours"] * 60 // step
            _track_progress(ctx, simulation, steps, state)
            export = list(COMMON_EXPORT) + (list(OIL_EXPORT) if params["model"] == "oil" else [])
            export = [name for name in export if name in _known_variables(simulation)]
            ctx.progress(0.15, f"drifting {params['particles']} particles for {params['duration_hours']} h")
            run_started = clock.monotonic()
            try:
                simulation.run(duration=timedelta(hours=params["duration_hours"]),
                               time_step=timedelta(minutes=step), time_step_output=timedelta(minutes=output),
                               outfile=str(outfile),
                               export_variables=export)
            except SystemExit as error:  # OpenDrift calls sys.exit on some failures: never end the worker
                if state["cancelled"]:
                    raise StepCancelled("the run was cancelled") from None
                raise ValueError(f"OpenDrift stopped: {error}") from None
            except Exception as error:
                if state["cancelled"]:
                    raise StepCancelled("the run was cancelled") from None
                raise ValueError(f"OpenDrift stopped: {error}") from error
            if state["cancelled"]:
                raise StepCancelled("the run was cancelled")
            messages = simulation.get_messages() if hasattr(simulation, "get_messages") else ""
            ctx.log(f"OpenDrift ran {state['step']} steps in {clock.monotonic() - run_started:.1f} s"
                    + (f"; {messages.strip()}" if messages and messages.strip() else ""))
        finally:
            _close_files(simulation)

    ctx.progress(0.9, "writing the outputs")
    with xr.open_dataset(outfile) as opened:
        trajectories = opened.load()
    trajectories = _trajectory_attrs(trajectories, params)
    names = _status_names(trajectories)
    _, _, _, final_status = _final_state(trajectories)
    summary = pd.Series([names[int(code)] for code in final_status if np.isfinite(code)]).value_counts()
    ctx.log("final state: " + ", ".join(f"{count} {name}" for name, count in summary.items()))
    density = _density(trajectories, params["density_resolution_deg"])
    tracks = _tracks(trajectories, params, start)
    ctx.progress(1.0, f"drift simulated in {clock.monotonic() - started:.1f} s")
    return {"trajectories": trajectories, "tracks": tracks, "density": density}


def _close_files(simulation: Any) -> None:
    """Best effort: close the files OpenDrift keeps open (its result and the readers' datasets)."""
    handles = [getattr(simulation, "result", None)]
    handles += [getattr(reader, "Dataset", None) for reader in simulation.env.readers.values()]
    for handle in handles:
        try:
            if handle is not None and hasattr(handle, "close"):
                handle.close()
        except Exception:  # noqa: BLE001 - closing is a courtesy; the scratch directory is removed anyway
            pass


def _known_variables(simulation: Any) -> set[str]:
    variables = set(simulation.ElementType.variables) | {"lon", "lat", "status", "moving", "age_seconds",
                                                          "origin_marker", "z"}
    return variables | set(simulation.required_variables)
