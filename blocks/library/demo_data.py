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

from datetime import date, timedelta

import numpy as np
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
            "units": "degree_Celsius"}),
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

