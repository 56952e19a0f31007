"""A synthetic but realistic regional ocean dataset, used by the demo block and by tests.

Every field is an analytic function of date and position plus seeded noise, so a given call always
returns the same bytes and a given date and place has the same large-scale state whatever period or
area is asked for. The ingredients:

* a seasonal cycle of sea surface temperature (coldest in early March, warmest in late August) whose
  mean falls northwards;
* mesoscale eddies: a streamfunction made of a few sinusoidal modes drifting westwards; the currents
  are its geostrophic velocities, warm-core eddies turn clockwise and fresher water sits in cold cores;
* a coarse, schematic coastline of Iberia and France, so land shows as missing values;
* a planted marine heatwave (see :data:`HEATWAVE_START` and the constants after it).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

EARTH_RADIUS_M = 6_371_000.0
DAYS_PER_YEAR = 365.2425
EPOCH = np.datetime64("2000-01-01", "D")
"""Phases of the seasonal cycle and of the eddies count from here, not from the requested start."""

COLDEST_DAY_OF_YEAR = 62
SST_MEAN_AT_43N_C = 17.5
SST_NORTHWARD_GRADIENT_C_PER_DEG = -0.3
SST_SEASONAL_AMPLITUDE_C = 4.4
SST_EDDY_AMPLITUDE_C = 0.8
SST_NOISE_C = 0.08
SEAWATER_FREEZING_C = -1.8

SALINITY_MEAN = 35.7
SALINITY_NORTHWARD_GRADIENT_PER_DEG = -0.06
SALINITY_SEASONAL_AMPLITUDE = 0.12
SALINITY_EDDY_AMPLITUDE = 0.25
SALINITY_NOISE = 0.01

STREAMFUNCTION_M2_S = 21_000.0
"""Scale of the eddy streamfunction; it gives currents of roughly 0.1-0.5 m/s."""
VELOCITY_NOISE_M_S = 0.015

EDDY_MODES: tuple[tuple[float, float, float, float, float, float], ...] = (
    # (wavelength east-west in degrees, wavelength north-south in degrees,
    #  westward drift in degrees per day, phase east-west, phase north-south, weight)
    (3.1, 2.3, 0.030, 0.4, 1.1, 0.45),
    (2.2, 1.7, 0.045, 2.0, 0.3, 0.30),
    (4.3, 3.6, 0.020, 4.1, 2.6, 0.25),
)

HEATWAVE_START = date(2022, 7, 18)
"""First day of the planted marine heatwave (summer of the second year of the default period)."""
HEATWAVE_DAYS = 21
"""The heatwave is at full strength from HEATWAVE_START for this many days (to 2022-08-07)."""
HEATWAVE_RAMP_DAYS = 3
"""Days over which the heatwave builds up before and decays after its full-strength period."""
HEATWAVE_LAT = (44.0, 45.5)
HEATWAVE_LON = (-5.0, -2.5)
"""Box (degrees north and east, in the southern Bay of Biscay) where the heatwave is at full strength."""
HEATWAVE_EDGE_DEG = 0.4
"""Outside the box the heatwave fades as a Gaussian of the distance to the box with this width."""
HEATWAVE_AMPLITUDE_C = 3.0


def _axis(lower: float, upper: float, resolution: float) -> np.ndarray:
    count = int(np.floor((upper - lower) / resolution + 1e-9)) + 1
    return np.round(lower + resolution * np.arange(count), 6)


def _days_since_epoch(times: np.ndarray) -> np.ndarray:
    return (times - EPOCH).astype("timedelta64[D]").astype(np.float64)


def _land_mask(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """True over land, shape (lat, lon): Iberia south of 43.5 N and France north of it."""
    la, lo = lat[:, None], lon[None, :]
    # Spain's Mediterranean coast runs from Gibraltar north-east to Cap de Creus.
    iberia = (la >= 36.0) & (la < 43.5) & (lo >= -9.3) & (lo < np.minimum(1.3 * (la - 40.0), 3.2))
    france = (la >= 43.5) & (la < 48.5) & (lo < 7.5) & (lo > -1.5 - np.maximum(la - 46.5, 0.0) * 1.5)
    return iberia | france


def _eddy_fields(
    days: np.ndarray, lat: np.ndarray, lon: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normalised streamfunction (within [-1, 1]) and its geostrophic u, v in m/s, each (time, lat, lon)."""
    phi = np.deg2rad(lat)[None, :, None]
    shape = (days.size, lat.size, lon.size)
    psi, u, v = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    for wave_lon, wave_lat, drift, phase_lon, phase_lat, weight in EDDY_MODES:
        k_lon, k_lat = 360.0 / wave_lon, 360.0 / wave_lat  # per radian
        along = np.deg2rad(lon[None, :] + drift * days[:, None]) * k_lon + phase_lon
        across = np.deg2rad(lat) * k_lat + phase_lat
        sin_a, cos_a = np.sin(along)[:, None, :], np.cos(along)[:, None, :]
        sin_b, cos_b = np.sin(across)[None, :, None], np.cos(across)[None, :, None]
        psi += weight * sin_a * sin_b
        u -= weight * k_lat * sin_a * cos_b
        v += weight * k_lon * cos_a * sin_b
    scale = STREAMFUNCTION_M2_S / EARTH_RADIUS_M
    return psi, u * scale, v * scale / np.cos(phi)


def _heatwave(times: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Heatwave warming in degrees Celsius, shape (time, lat, lon)."""
    start = np.datetime64(HEATWAVE_START, "D")
    day = (times - start).astype("timedelta64[D]").astype(np.float64)
    before = -day / (HEATWAVE_RAMP_DAYS + 1)
    after = (day - (HEATWAVE_DAYS - 1)) / (HEATWAVE_RAMP_DAYS + 1)
    in_time = np.clip(1.0 - np.maximum(np.maximum(before, after), 0.0), 0.0, 1.0)
    lat_gap = np.maximum(np.maximum(HEATWAVE_LAT[0] - lat, lat - HEATWAVE_LAT[1]), 0.0)
    lon_gap = np.maximum(np.maximum(HEATWAVE_LON[0] - lon, lon - HEATWAVE_LON[1]), 0.0)
    distance2 = lat_gap[:, None] ** 2 + lon_gap[None, :] ** 2
    in_space = np.exp(-distance2 / (2 * HEATWAVE_EDGE_DEG**2))
    return HEATWAVE_AMPLITUDE_C * in_time[:, None, None] * in_space[None, :, :]


def _coordinates(times: np.ndarray, lat: np.ndarray, lon: np.ndarray, start: date) -> dict[str, xr.Variable]:
    time = xr.Variable(
        "time", times.astype("datetime64[ns]"), {"standard_name": "time", "long_name": "time", "axis": "T"}
    )
    time.encoding = {"units": f"days since {start.isoformat()}", "calendar": "standard",
                     "dtype": "int32"}
    latitude = xr.Variable(
        "lat", lat, {"standard_name": "latitude", "long_name": "latitude", "units": "degrees_north",
                     "axis": "Y"}
    )
    longitude = xr.Variable(
        "lon", lon, {"standard_name": "longitude", "long_name": "longitude", "units": "degrees_east",
                     "axis": "X"}
    )
    for coordinate in (latitude, longitude):
        coordinate.encoding = {"_FillValue": None}
    return {"time": time, "lat": latitude, "lon": longitude}


def _data_variable(values: np.ndarray, land: np.ndarray, attrs: dict[str, str]) -> xr.Variable:
    field = values.astype(np.float32)
    field[:, land] = np.nan
    variable = xr.Variable(("time", "lat", "lon"), field, attrs)
    variable.encoding = {"_FillValue": np.float32(np.nan), "zlib": True, "complevel": 1}
    return variable


def make_demo_dataset(
    *,
    start: str = "2021-01-01",
    days: int = 1096,
    lat_min: float = 40.0,
    lat_max: float = 46.0,
    lon_min: float = -6.0,
    lon_max: float = 4.0,
    resolution: float = 0.25,
    seed: int = 20210101,
) -> xr.Dataset:
    """Daily surface temperature, salinity and currents on a regular grid, with CF-1.8 metadata.

    ``start`` is an ISO date; the grid runs from ``lat_min``/``lon_min`` in steps of ``resolution``
    degrees up to ``lat_max``/``lon_max`` (included when it falls on the grid). Variables ``sst``
    (degree_Celsius), ``so`` (1e-3), ``uo`` and ``vo`` (m s-1) are float32 on (time, lat, lon) with NaN
    over land. The same arguments always give an identical dataset.
    """
    first = date.fromisoformat(start)
    times = np.datetime64(first, "D") + np.arange(days).astype("timedelta64[D]")
    lat, lon = _axis(lat_min, lat_max, resolution), _axis(lon_min, lon_max, resolution)
    elapsed = _days_since_epoch(times)
    rng = np.random.default_rng(seed)
    shape = (times.size, lat.size, lon.size)
    land = _land_mask(lat, lon)

    season = -np.cos(2 * np.pi * (elapsed - COLDEST_DAY_OF_YEAR) / DAYS_PER_YEAR)[:, None, None]
    north = (lat - 43.0)[None, :, None]
    psi, u, v = _eddy_fields(elapsed, lat, lon)

    sst = (
        SST_MEAN_AT_43N_C
        + SST_NORTHWARD_GRADIENT_C_PER_DEG * north
        + SST_SEASONAL_AMPLITUDE_C * season
        + SST_EDDY_AMPLITUDE_C * psi
        + _heatwave(times, lat, lon)
        + SST_NOISE_C * rng.standard_normal(shape, dtype=np.float32)
    )
    salinity = (
        SALINITY_MEAN
        + SALINITY_NORTHWARD_GRADIENT_PER_DEG * north
        + SALINITY_SEASONAL_AMPLITUDE * season
        + SALINITY_EDDY_AMPLITUDE * psi
        + SALINITY_NOISE * rng.standard_normal(shape, dtype=np.float32)
    )
    uo = u + VELOCITY_NOISE_M_S * rng.standard_normal(shape, dtype=np.float32)
    vo = v + VELOCITY_NOISE_M_S * rng.standard_normal(shape, dtype=np.float32)

    data_vars = {
        "sst": _data_variable(np.maximum(sst, SEAWATER_FREEZING_C), land, {
            "standard_name": "sea_surface_temperature", "long_name": "Sea surface temperature",
            "units": "degree_Celsius", "units_metadata": "temperature: on_scale"}),
        "so": _data_variable(salinity, land, {
            "standard_name": "sea_water_salinity", "long_name": "Sea surface salinity", "units": "1e-3"}),
        "uo": _data_variable(uo, land, {
            "standard_name": "eastward_sea_water_velocity", "long_name": "Eastward surface current",
            "units": "m s-1"}),
        "vo": _data_variable(vo, land, {
            "standard_name": "northward_sea_water_velocity", "long_name": "Northward surface current",
            "units": "m s-1"}),
    }
    last = first + timedelta(days=days - 1)
    arguments = (
        f"start={start}, days={days}, lat_min={lat_min}, lat_max={lat_max}, lon_min={lon_min}, "
        f"lon_max={lon_max}, resolution={resolution}, seed={seed}"
    )
    attrs = {
        "Conventions": "CF-1.8",
        "title": "Iliad Portal demo ocean dataset (synthetic)",
        "institution": "Iliad Portal demo generator",
        "source": "synthetic: analytic seasonal cycle, drifting geostrophic eddies, seeded noise",
        "history": f"created by blocks.library.demo_data.make_demo_dataset({arguments})",
        "comment": (
            f"Planted marine heatwave: +{HEATWAVE_AMPLITUDE_C:g} degC from {HEATWAVE_START.isoformat()} for "
            f"{HEATWAVE_DAYS} days over {HEATWAVE_LAT[0]:g}-{HEATWAVE_LAT[1]:g} N, "
            f"{HEATWAVE_LON[0]:g}-{HEATWAVE_LON[1]:g} E. Not real data."
        ),
        "geospatial_lat_min": float(lat[0]),
        "geospatial_lat_max": float(lat[-1]),
        "geospatial_lon_min": float(lon[0]),
        "geospatial_lon_max": float(lon[-1]),
        "time_coverage_start": first.isoformat(),
        "time_coverage_end": last.isoformat(),
    }
    return xr.Dataset(data_vars, coords=_coordinates(times, lat, lon, first), attrs=attrs)



# ---- hourly currents, winds and buoy observations for the demo data space --------------------------

TIDE_PERIOD_H = 12.4206
"""The principal lunar semi-diurnal tide (M2), the largest sub-daily signal in Biscay shelf currents."""
TIDE_AMPLITUDE_M_S = 0.12
TIDE_ELLIPSE_RATIO = 0.4
"""The minor (northward) axis of the tidal current ellipse relative to its major (eastward) axis."""
DRIFT_PERIOD_START = "2022-07-20"
DRIFT_PERIOD_HOURS = 240
"""Hourly currents and winds cover ten days from this date (inside the planted heatwave)."""

WIND_BACKGROUND_M_S = (4.5, 1.5)
"""Prevailing wind (eastward, northward), i.e. from the west-south-west at about 4.7 m/s."""
WIND_SWING_M_S = 2.5
WIND_SWING_PERIOD_DAYS = 4.0
WIND_STORM_MAX_M_S = 13.0
WIND_STORM_RADIUS_DEG = 1.8
WIND_STORM_TRACK = ((47.5, -9.0), (44.0, 5.0))
"""A low-pressure system crosses the area from north-west to south-east on days 4 to 7."""
WIND_STORM_DAYS = (3.5, 7.0)
WIND_NOISE_M_S = 0.7


def _hourly_times(start: str, hours: int, step_hours: int = 1) -> np.ndarray:
    first = np.datetime64(start, "h")
    return first + (np.arange(0, hours, step_hours)).astype("timedelta64[h]")


def _days_since_epoch_exact(times: np.ndarray) -> np.ndarray:
    return (times - EPOCH).astype("timedelta64[s]").astype(np.float64) / 86400.0


def _hourly_coordinates(times: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> dict[str, xr.Variable]:
    first = str(times[0].astype("datetime64[s]")).replace("T", " ")
    coordinates = _coordinates(times, lat, lon, date(2000, 1, 1))
    coordinates["time"].encoding = {"units": f"hours since {first}", "calendar": "standard",
                                    "dtype": "int32"}
    return coordinates


def make_demo_currents_hourly(
    *,
    start: str = DRIFT_PERIOD_START,
    hours: int = DRIFT_PERIOD_HOURS,
    lat_min: float = 40.0,
    lat_max: float = 46.0,
    lon_min: float = -6.0,
    lon_max: float = 4.0,
    resolution: float = 0.25,
    seed: int = 20220720,
) -> xr.Dataset:
    """Hourly surface currents ``uo``, ``vo`` (m s-1): the daily eddies plus an M2 tidal current.

    The eddies are the same as in :func:`make_demo_dataset` (same place, same day) but evaluated every
    hour; the tide adds a current that turns round an ellipse twice a day, which daily means average
    away but which moves a drifting particle back and forth by a few kilometres.
    """
    times = _hourly_times(start, hours)
    lat, lon = _axis(lat_min, lat_max, resolution), _axis(lon_min, lon_max, resolution)
    elapsed = _days_since_epoch_exact(times)
    rng = np.random.default_rng(seed)
    shape = (times.size, lat.size, lon.size)
    land = _land_mask(lat, lon)
    _, u, v = _eddy_fields(elapsed, lat, lon)
    phase = 2 * np.pi * elapsed * 24.0 / TIDE_PERIOD_H
    lag = np.deg2rad(8.0 * (lon - lon_min))[None, None, :]  # the tide arrives later further east
    u = u + TIDE_AMPLITUDE_M_S * np.cos(phase[:, None, None] - lag)
    v = v + TIDE_AMPLITUDE_M_S * TIDE_ELLIPSE_RATIO * np.sin(phase[:, None, None] - lag)
    u = u + VELOCITY_NOISE_M_S * rng.standard_normal(shape, dtype=np.float32)
    v = v + VELOCITY_NOISE_M_S * rng.standard_normal(shape, dtype=np.float32)
    data_vars = {
        "uo": _data_variable(u, land, {
            "standard_name": "eastward_sea_water_velocity", "long_name": "Eastward surface current",
            "units": "m s-1"}),
        "vo": _data_variable(v, land, {
            "standard_name": "northward_sea_water_velocity", "long_name": "Northward surface current",
            "units": "m s-1"}),
    }
    attrs = {
        "Conventions": "CF-1.8",
        "title": "Iliad Portal demo hourly surface currents (synthetic)",
        "institution": "Iliad Portal demo generator",
        "source": "synthetic: drifting geostrophic eddies plus an M2 tidal current, seeded noise",
        "history": f"created by blocks.library.demo_data.make_demo_currents_hourly(start={start}, "
                   f"hours={hours}, resolution={resolution}, seed={seed})",
        "comment": "Not real data.",
        "time_coverage_start": np.datetime_as_string(times[0], unit="s"),
        "time_coverage_end": np.datetime_as_string(times[-1], unit="s"),
    }
    return xr.Dataset(data_vars, coords=_hourly_coordinates(times, lat, lon), attrs=attrs)


def make_demo_winds(
    *,
    start: str = DRIFT_PERIOD_START,
    hours: int = DRIFT_PERIOD_HOURS,
    step_hours: int = 1,
    lat_min: float = 40.0,
    lat_max: float = 46.0,
    lon_min: float = -6.0,
    lon_max: float = 4.0,
    resolution: float = 0.5,
    seed: int = 20220721,
) -> xr.Dataset:
    """10 m wind ``eastward_wind`` and ``northward_wind`` (m s-1) every ``step_hours`` hours, CF-1.8.

    A prevailing west-south-westerly that veers back and forth every few days, and a storm (a
    low-pressure system, winds turning anticlockwise round it up to about 13 m/s) crossing the area
    from north-west to south-east between days 4 and 7. Wind is defined over land too.
    """
    times = _hourly_times(start, hours, step_hours)
    lat, lon = _axis(lat_min, lat_max, resolution), _axis(lon_min, lon_max, resolution)
    rng = np.random.default_rng(seed)
    shape = (times.size, lat.size, lon.size)
    day = (times - times[0]).astype("timedelta64[s]").astype(np.float64) / 86400.0
    swing = np.sin(2 * np.pi * day / WIND_SWING_PERIOD_DAYS)[:, None, None]
    u = np.full(shape, WIND_BACKGROUND_M_S[0]) + WIND_SWING_M_S * 0.4 * swing
    v = np.full(shape, WIND_BACKGROUND_M_S[1]) + WIND_SWING_M_S * swing
    (lat0, lon0), (lat1, lon1) = WIND_STORM_TRACK
    first, last = WIND_STORM_DAYS
    progress = np.clip((day - first) / (last - first), 0.0, 1.0)
    strength = np.sin(np.pi * progress)[:, None, None]  # builds up and dies away along the track
    centre_lat = (lat0 + (lat1 - lat0) * progress)[:, None, None]
    centre_lon = (lon0 + (lon1 - lon0) * progress)[:, None, None]
    dy = lat[None, :, None] - centre_lat
    dx = (lon[None, None, :] - centre_lon) * np.cos(np.deg2rad(lat))[None, :, None]
    r = np.hypot(dx, dy) + 1e-6
    # Rankine-like vortex with a smooth core: speed peaks at WIND_STORM_RADIUS_DEG from the centre.
    ratio = r / WIND_STORM_RADIUS_DEG
    speed = WIND_STORM_MAX_M_S * strength * ratio * np.exp(0.5 * (1.0 - ratio**2))
    u = u - speed * dy / r
    v = v + speed * dx / r
    u = u + WIND_NOISE_M_S * rng.standard_normal(shape, dtype=np.float32)
    v = v + WIND_NOISE_M_S * rng.standard_normal(shape, dtype=np.float32)

    def variable(values: np.ndarray, attrs: dict[str, str]) -> xr.Variable:
        result = xr.Variable(("time", "lat", "lon"), values.astype(np.float32), attrs)
        result.encoding = {"_FillValue": np.float32(np.nan), "zlib": True, "complevel": 1}
        return result

    data_vars = {
        "eastward_wind": variable(u, {"standard_name": "eastward_wind", "long_name": "Eastward wind at 10 m",
                                      "units": "m s-1", "coordinates": "height"}),
        "northward_wind": variable(v, {"standard_name": "northward_wind",
                                       "long_name": "Northward wind at 10 m", "units": "m s-1",
                                       "coordinates": "height"}),
    }
    coords: dict[str, Any] = _hourly_coordinates(times, lat, lon)
    coords["height"] = xr.Variable((), np.float32(10.0), {
        "standard_name": "height", "long_name": "height above the sea surface", "units": "m",
        "positive": "up", "axis": "Z"})
    attrs = {
        "Conventions": "CF-1.8",
        "title": "Iliad Portal demo 10 m winds (synthetic)",
        "institution": "Iliad Portal demo generator",
        "source": "synthetic: prevailing westerly, a crossing storm, seeded noise",
        "history": f"created by blocks.library.demo_data.make_demo_winds(start={start}, hours={hours}, "
                   f"step_hours={step_hours}, resolution={resolution}, seed={seed})",
        "comment": f"Storm crossing from {WIND_STORM_TRACK[0]} to {WIND_STORM_TRACK[1]} (lat, lon) on days "
                   f"{WIND_STORM_DAYS[0]:g}-{WIND_STORM_DAYS[1]:g}. Not real data.",
        "time_coverage_start": np.datetime_as_string(times[0], unit="s"),
        "time_coverage_end": np.datetime_as_string(times[-1], unit="s"),
    }
    dataset = xr.Dataset(data_vars, coords=coords, attrs=attrs)
    for name in ("eastward_wind", "northward_wind"):
        dataset[name].attrs.pop("coordinates")  # xarray writes the scalar coordinate itself
    return dataset


DEMO_STATIONS: tuple[tuple[str, float, float], ...] = (
    # (station id, latitude, longitude): moored buoys at sea points of the default demo grid.
    ("GASCOGNE", 45.2, -5.0),
    ("BILBAO", 43.8, -3.1),
    ("CAPBRETON", 43.9, -1.9),
    ("LION", 42.4, 3.6),
    ("TARRAGONA", 40.7, 1.6),
)
OBSERVATION_COLUMNS = ("station", "time", "lat", "lon", "depth", "variable", "value", "quality_flag")
BUOY_DEPTH_M = 1.0
BUOY_NOISE = {"sst": 0.12, "so": 0.02}
"""Standard deviation of the measurement noise, per variable, in the variable's units."""
BUOY_BIAS_MAX = {"sst": 0.25, "so": 0.03}
"""Each station's sensor is off by a constant drawn uniformly from +- this."""
BUOY_SPIKES = {"sst": (6.0, 12.0), "so": (2.0, 5.0)}
"""Bad values (flag 4) are off by this much (either sign); probably bad ones (flag 3) by half of it."""


def make_demo_observations(
    dataset: xr.Dataset,
    *,
    stations: tuple[tuple[str, float, float], ...] = DEMO_STATIONS,
    variables: tuple[str, ...] = ("sst", "so"),
    seed: int = 20200101,
) -> pd.DataFrame:
    """Daily buoy measurements matching a demo dataset, in the long observation-table format.

    Columns ``station, time, lat, lon, depth, variable, value, quality_flag``; ``time`` is an ISO
    date (daily means). Each value is the gridded truth interpolated (bilinearly) to the station, plus
    a constant per-station sensor bias and random noise. Every station has one or two gaps (days
    without a row), about 1 % of values are flagged 2 (probably good), and a few spikes are clearly
    wrong and flagged 3 (probably bad) or 4 (bad). The same arguments always give the same table.
    """
    rng = np.random.default_rng(seed)
    lat_name = "lat" if "lat" in dataset.coords else "latitude"
    lon_name = "lon" if "lon" in dataset.coords else "longitude"
    names = [station for station, _, _ in stations]
    points = {
        lat_name: xr.DataArray([lat for _, lat, _ in stations], dims="station"),
        lon_name: xr.DataArray([lon for _, _, lon in stations], dims="station"),
    }
    days = pd.DatetimeIndex(dataset.indexes["time"]).strftime("%Y-%m-%d").to_numpy()
    truths = {variable: dataset[variable].interp(points, method="linear").transpose("station", ...).values
              for variable in variables}
    frames = []
    for position, (station, lat, lon) in enumerate(stations):
        present = np.ones(days.size, dtype=bool)
        for _ in range(rng.integers(1, 3)):
            length = int(rng.integers(3, 26))
            first = int(rng.integers(0, max(days.size - length, 1)))
            present[first:first + length] = False
        for variable in variables:
            truth = truths[variable][position]
            if np.isnan(truth).all():
                raise ValueError(f"station {names[position]} ({lat}, {lon}) is not at a sea point")
            bias = rng.uniform(-BUOY_BIAS_MAX[variable], BUOY_BIAS_MAX[variable])
            noise = BUOY_NOISE[variable] * rng.standard_normal(days.size)
            value = truth.astype(np.float64) + bias + noise
            flag = np.ones(days.size, dtype=np.int64)
            flag[rng.random(days.size) < 0.01] = 2
            low, high = BUOY_SPIKES[variable]
            spikes = rng.choice(np.flatnonzero(present), size=5, replace=False)
            for number, index in enumerate(spikes):
                size = rng.uniform(low, high) * rng.choice([-1.0, 1.0])
                if number < 2:  # probably bad: off by half as much
                    value[index] += size / 2
                    flag[index] = 3
                else:
                    value[index] += size
                    flag[index] = 4
            keep = present & ~np.isnan(truth)
            frames.append(pd.DataFrame({
                "station": station, "time": days[keep], "lat": lat, "lon": lon, "depth": BUOY_DEPTH_M,
                "variable": variable, "value": np.round(value[keep], 3), "quality_flag": flag[keep],
            }))
    table = pd.concat(frames, ignore_index=True)
    table = table.sort_values(["station", "time", "variable"], kind="stable", ignore_index=True)
    return table[list(OBSERVATION_COLUMNS)]


# ---- the demo data space -------------------------------------------------------------------------

DATA_SPACE_VERSION = "1"
"""Bump when any generated file changes; write_demo_data_space then regenerates every file."""
DATA_SPACE_FOLDER = "demo"
DATA_SPACE_OCEAN = {"start": "2020-01-01", "days": 1461}
"""Four years, 2020-2023, at the default 0.25 degree grid: the heatwave (2022) has normal years on
both sides. About 7 MB on disk and about 1.5 s to generate."""

DATA_SPACE_README = """\
# Iliad Portal demo data space (synthetic)

These files are generated by `blocks.library.demo_data.write_demo_data_space` (content version
{version}). They are **synthetic**: realistic-looking but not real measurements. Paths below are what
you type as the *source* of the "Open gridded dataset" and "Open observations" blocks.

Area: 40-46 N, 6 W-4 E (Bay of Biscay and north-west Mediterranean, with a simplified coastline of
Spain and France; land is missing values).

## demo/biscay_ocean.nc

Daily, 2020-01-01 to 2023-12-31, 0.25 degree grid (time x lat x lon = 1461 x 25 x 41), CF-1.8.

| variable | standard name | units |
|---|---|---|
| `sst` | sea_surface_temperature | degree_Celsius |
| `so` | sea_water_salinity | 1e-3 (practical salinity) |
| `uo` | eastward_sea_water_velocity | m s-1 |
| `vo` | northward_sea_water_velocity | m s-1 |

Seasonal cycle (about 13 C in March to 22 C in August, cooler to the north), slowly drifting eddies
with geostrophic currents around them, a little noise.

**Planted marine heatwave:** +{amplitude:g} C from {hw_start} to {hw_end} (building up and dying
away over {ramp} days either side) over {lat0:g}-{lat1:g} N, {lon0:g}-{lon1:g} E (southern Bay of
Biscay), fading smoothly outside that box. A heatwave analysis of the area mean there should find it.

## demo/biscay_currents_hourly.nc

Hourly surface currents `uo`, `vo` (m s-1) for {drift_hours} hours from {drift_start}, same grid as
above: the same eddies plus a tidal current (M2, period 12.42 h, about 0.12 m/s). Drift models need
sub-daily currents: the tide moves a particle back and forth by a few kilometres twice a day, which
daily means average away.

## demo/biscay_winds.nc

10 m wind `eastward_wind`, `northward_wind` (m s-1, scalar coordinate `height` = 10 m), hourly for the
same {drift_hours} hours, on a 0.5 degree grid: a west-south-westerly breeze and a storm crossing from
north-west to south-east on days 4-7 (winds up to about 20 m/s near it). For the oil-spill
(particle drift) pilot.

## demo/biscay_buoys.csv and demo/biscay_buoys.parquet

The same table in two formats: daily measurements from five moored buoys, in the observation-table
format `station, time, lat, lon, depth, variable, value, quality_flag` (one row per measurement).
Variables `sst` (degree_Celsius) and `so` (1e-3) at 1 m depth, taken from `biscay_ocean.nc` at the
buoy position plus a per-buoy sensor bias (up to 0.25 C / 0.03) and noise. Each buoy has one or two
gaps of a few days to a few weeks. Quality flags (Copernicus/OceanSITES): 1 good, 2 probably good
(about 1 %), 3 probably bad and 4 bad: a few clearly wrong spikes (3 to 12 C off) per buoy and
variable, which a quality filter keeping flags 1 and 2 removes.

| station | lat | lon |
|---|---|---|
{stations}
"""


def _data_space_files() -> dict[str, str]:
    names = ("biscay_ocean.nc", "biscay_currents_hourly.nc", "biscay_winds.nc", "biscay_buoys.csv",
             "biscay_buoys.parquet", "README.md")
    return {name: f"{DATA_SPACE_FOLDER}/{name}" for name in names}


def _readme_text() -> str:
    end = HEATWAVE_START + timedelta(days=HEATWAVE_DAYS - 1)
    return DATA_SPACE_README.format(
        version=DATA_SPACE_VERSION, amplitude=HEATWAVE_AMPLITUDE_C, hw_start=HEATWAVE_START.isoformat(),
        hw_end=end.isoformat(), ramp=HEATWAVE_RAMP_DAYS, lat0=HEATWAVE_LAT[0], lat1=HEATWAVE_LAT[1],
        lon0=HEATWAVE_LON[0], lon1=HEATWAVE_LON[1], drift_hours=DRIFT_PERIOD_HOURS,
        drift_start=DRIFT_PERIOD_START,
        stations="\n".join(f"| {name} | {lat:g} | {lon:g} |" for name, lat, lon in DEMO_STATIONS),
    )


def write_demo_data_space(data_dir: Path) -> list[Path]:
    """Write the demo files under ``data_dir/demo`` and return their paths (see ``demo/README.md``).

    Idempotent: when ``demo/VERSION`` holds :data:`DATA_SPACE_VERSION`, files that exist are kept and
    only missing ones are written; otherwise every file is regenerated. Each file is written under a
    temporary name and renamed, so an interrupted run never leaves a half-written file behind, and
    ``VERSION`` is written last. Takes about 2 s and 10 MB the first time.
    """
    folder = Path(data_dir) / DATA_SPACE_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / "VERSION"
    current = marker.exists() and marker.read_text(encoding="utf-8").strip() == DATA_SPACE_VERSION
    paths = {name: Path(data_dir) / relative for name, relative in _data_space_files().items()}
    missing = {name for name, path in paths.items() if not current or not path.exists()}
    ocean: xr.Dataset | None = None

    def ocean_dataset() -> xr.Dataset:
        nonlocal ocean
        if ocean is None:
            ocean = make_demo_dataset(**DATA_SPACE_OCEAN)
        return ocean

    def atomically(path: Path, write: Callable[[Path], None]) -> None:
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            write(temporary)
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)

    if "biscay_ocean.nc" in missing:
        atomically(paths["biscay_ocean.nc"], lambda p: ocean_dataset().to_netcdf(p, engine="netcdf4"))
    if "biscay_currents_hourly.nc" in missing:
        atomically(paths["biscay_currents_hourly.nc"],
                   lambda p: make_demo_currents_hourly().to_netcdf(p, engine="netcdf4"))
    if "biscay_winds.nc" in missing:
        atomically(paths["biscay_winds.nc"], lambda p: make_demo_winds().to_netcdf(p, engine="netcdf4"))
    if missing & {"biscay_buoys.csv", "biscay_buoys.parquet"}:
        buoys = make_demo_observations(ocean_dataset())
        atomically(paths["biscay_buoys.csv"], lambda p: buoys.to_csv(p, index=False))
        typed = buoys.assign(time=pd.to_datetime(buoys["time"]).astype("datetime64[ms]"))
        atomically(paths["biscay_buoys.parquet"], lambda p: typed.to_parquet(p, index=False))
    if "README.md" in missing:
        atomically(paths["README.md"], lambda p: p.write_text(_readme_text(), encoding="utf-8"))
    if not current:
        atomically(marker, lambda p: p.write_text(DATA_SPACE_VERSION + "\n", encoding="utf-8"))
    return list(paths.values())
