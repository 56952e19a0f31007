"""model.particle_drift: OpenDrift runs on a uniform current (known answer) and on the demo currents.

OpenDrift is heavy (loading it and its coastline takes several seconds), so the runs are shared by
module-scoped fixtures and the error tests fail before any simulation starts.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from pyproj import Geod

from blocks.context import StepCancelled, StepContext
from blocks.library.demo_data import make_demo_dataset
from blocks.library.drift import particle_drift
from blocks.registry import discover
from blocks.runner import validated_params
from blocks.types import PORT_TYPES, known_types
from tests.blocks.sample_blocks import call

RELEASE = {"lat": 44.0, "lon": -5.0}
BISCAY = {"lat": 45.0, "lon": -4.0}
"""At sea in the Bay of Biscay, 200 km west of the French coast, inside the demo dataset."""


def uniform_currents(u: float = 0.5, v: float = 0.0, days: int = 3, names: tuple[str, str] = ("uo", "vo"),
                     standard_names: bool = True, lon_max: float = -2.0) -> xr.Dataset:
    times = pd.date_range("2021-03-01", periods=days, freq="D")
    lat, lon = np.arange(42.0, 46.01, 0.25), np.arange(-8.0, lon_max + 0.01, 0.25)
    shape = (days, lat.size, lon.size)

    def attrs(standard: str) -> dict[str, str]:
        return {"standard_name": standard, "units": "m s-1"} if standard_names else {"units": "m s-1"}

    return xr.Dataset(
        {names[0]: (("time", "latitude", "longitude"), np.full(shape, u, np.float32),
                    attrs("eastward_sea_water_velocity")),
         names[1]: (("time", "latitude", "longitude"), np.full(shape, v, np.float32),
                    attrs("northward_sea_water_velocity"))},
        coords={"time": times, "latitude": ("latitude", lat, {"units": "degrees_north"}),
                "longitude": ("longitude", lon, {"units": "degrees_east"})},
    )


def drift(tmp_path: Path, currents: xr.Dataset, emit: Any = None, **params: Any) -> dict[str, Any]:
    return call(particle_drift, {"currents": currents}, params, tmp_path, emit=emit)


@pytest.fixture(scope="module")
def uniform_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return drift(tmp_path_factory.mktemp("uniform"), uniform_currents(), model="larvae", **RELEASE,
                 radius_m=0, particles=20, start="2021-03-01T00:00", duration_hours=24, use_landmask=False,
                 time_step_minutes=60, output_interval_minutes=60)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    events: list[dict[str, Any]] = []
    outputs = drift(tmp_path_factory.mktemp("demo"), make_demo_dataset(start="2022-07-01", days=4),
                    events.append, model="oil", **BISCAY, radius_m=2000, particles=300,
                    start="2022-07-01T06:00", duration_hours=24, density_resolution_deg=0.02)
    return {**outputs, "events": events}


def test_block_is_discovered_and_its_spec_is_valid() -> None:
    registry = discover(extra_modules=["blocks.library.drift"])
    assert registry.errors == []
    registry.get("model.particle_drift", "1.0.0").spec.check(known_types())


def test_uniform_current_moves_particles_the_expected_distance(uniform_run: dict[str, Any]) -> None:
    trajectories = uniform_run["trajectories"]
    assert trajectories.sizes == {"trajectory": 20, "time": 25}
    lon, lat = trajectories["lon"].values, trajectories["lat"].values
    distance_east = Geod(ellps="WGS84").inv(
        np.full(20, RELEASE["lon"]), np.full(20, RELEASE["lat"]), lon[:, -1], lat[:, -1])[2]
    expected = 0.5 * 24 * 3600  # 43.2 km
    np.testing.assert_allclose(distance_east, expected, rtol=0.02)
    assert (lon[:, -1] > RELEASE["lon"]).all()
    np.testing.assert_allclose(lat[:, -1], RELEASE["lat"], atol=1e-3)
    assert trajectories.attrs["featureType"] == "trajectory"
    assert trajectories["lon"].attrs["standard_name"] == "longitude"
    assert trajectories["trajectory"].attrs["cf_role"] == "trajectory_id"
    assert (trajectories["status"].values == 0).all()


def test_uniform_outputs_save_as_their_port_types(uniform_run: dict[str, Any], tmp_path: Path) -> None:
    for port, name in (("trajectories", "dataset"), ("density", "dataset"), ("tracks", "geojson")):
        path = tmp_path / f"{port}{PORT_TYPES[name].extension}"
        PORT_TYPES[name].save(uniform_run[port], path)
        assert path.stat().st_size > 0
    density = uniform_run["density"]
    assert density["lat"].attrs["standard_name"] == "latitude"
    assert (density["particle_count"].sum(dim=("lat", "lon")).values == 20).all()


def test_demo_run_outputs_are_consistent(demo_run: dict[str, Any]) -> None:
    trajectories, density, tracks = demo_run["trajectories"], demo_run["density"], demo_run["tracks"]
    assert trajectories.sizes["trajectory"] == 300
    assert "mass_oil" in trajectories and "mass_evaporated" in trajectories
    # Density counts the particles still drifting at each output time, no more, no less.
    active = (np.isfinite(trajectories["lon"].values) & (trajectories["status"].values == 0)).sum(axis=0)
    np.testing.assert_array_equal(density["particle_count"].sum(dim=("lat", "lon")).values, active)
    assert density.sizes["time"] == trajectories.sizes["time"] == 25
    # Each counted particle lies in its cell.
    step = -1
    lon, lat = trajectories["lon"].values[:, step], trajectories["lat"].values[:, step]
    half = 0.01 + 1e-9
    grid = density["particle_count"].isel(time=step)
    for i in np.flatnonzero(np.isfinite(lon))[:20]:
        cell = grid.sel(lat=lat[i], lon=lon[i], method="nearest")
        assert abs(float(cell["lat"]) - lat[i]) <= half and abs(float(cell["lon"]) - lon[i]) <= half
        assert int(cell) >= 1
    features = tracks["features"]
    kinds = pd.Series([feature["properties"]["kind"] for feature in features]).value_counts()
    assert kinds["release"] == 1 and kinds["final"] == 300 and 0 < kinds["track"] <= 300
    finals = [feature for feature in features if feature["properties"]["kind"] == "final"]
    statuses = {feature["properties"]["status"] for feature in finals}
    assert statuses <= set(trajectories["status"].attrs["flag_meanings"].split())
    active_finals = sum(feature["properties"]["status"] == "active" for feature in finals)
    assert active_finals == active[-1]
    assert len(json.dumps(tracks)) < 1_000_000


def test_demo_run_reports_progress_and_keeps_stdout_clean(demo_run: dict[str, Any]) -> None:
    fractions = [event["fraction"] for event in demo_run["events"] if event["kind"] == "progress"]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    messages = [event["message"] for event in demo_run["events"] if event["kind"] == "progress"]
    assert any("drift step" in message for message in messages)
    logs = [event["message"] for event in demo_run["events"] if event["kind"] == "log"]
    assert any("final state" in message for message in logs)


def test_opendrift_writes_nothing_to_stdout(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    drift(tmp_path, uniform_currents(), model="litter", **RELEASE, particles=5, duration_hours=2,
          use_landmask=False)
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""


def test_cancellation_stops_the_run(tmp_path: Path) -> None:
    progress: list[str] = []

    def emit(event: dict[str, Any]) -> None:
        if event["kind"] == "progress":
            progress.append(event["message"])

    context = StepContext(scratch_dir=tmp_path, emit=emit,
                          cancel_requested=lambda: any("drift step" in message for message in progress))
    params = validated_params(particle_drift.spec, {**RELEASE, "model": "litter", "particles": 5,
                                                    "duration_hours": 48, "use_landmask": False,
                                                    "time_step_minutes": 10})
    with pytest.raises(StepCancelled):
        particle_drift.function(context, {"currents": uniform_currents()}, params)
    steps = [message for message in progress if "drift step" in message]
    assert len(steps) == 1  # stopped at the first step that saw the cancellation, not after 288


def test_wind_pushes_litter_ashore_where_it_strands(tmp_path: Path) -> None:
    calm_sea = uniform_currents(u=0.0, lon_max=1.0)
    wind = uniform_currents(u=15.0, lon_max=1.0, names=("u10", "v10"), standard_names=False)
    # 3 % of a 15 m/s westerly is 0.45 m/s: the French coast, about 28 km east, is reached in about 17 h.
    result = call(particle_drift, {"currents": calm_sea, "wind": wind},
                  {"model": "litter", "lat": 44.5, "lon": -1.6, "particles": 20, "duration_hours": 24,
                   "wind_drift_factor": 0.03}, tmp_path)
    finals = [feature["properties"] for feature in result["tracks"]["features"]
              if feature["properties"]["kind"] == "final"]
    assert len(finals) == 20 and {final["status"] for final in finals} == {"stranded"}
    assert all("2021-03-01T14:00:00Z" <= final["time"] <= "2021-03-01T20:00:00Z" for final in finals)
    counts = result["density"]["particle_count"].sum(dim=("lat", "lon")).values
    assert counts[0] == 20 and counts[-1] == 0


def test_release_on_land_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"lat/lon: the release point \(43 N, -3 E\) is on land"):
        drift(tmp_path, uniform_currents(), model="litter", lat=43.0, lon=-3.0)


def test_release_outside_the_currents_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="outside the currents data, which cover 42 to 46 N and -8 to -2 E"):
        drift(tmp_path, uniform_currents(), model="litter", lat=40.0, lon=-5.0)


def test_start_outside_the_forcing_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="start: 2021-04-01T00:00:00Z is outside the currents data; the "
                                         "currents data covers 2021-03-01T00:00:00Z to 2021-03-03T00:00:00Z"):
        drift(tmp_path, uniform_currents(), model="litter", **RELEASE, start="2021-04-01")


def test_drift_beyond_the_forcing_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="duration_hours: the drift would end at 2021-03-04T00:00:00Z"):
        drift(tmp_path, uniform_currents(), model="litter", **RELEASE, start="2021-03-02", duration_hours=48)


def test_missing_velocity_variables_are_named(tmp_path: Path) -> None:
    currents = uniform_currents().rename(vo="speed")
    currents["speed"].attrs = {"units": "m s-1"}
    with pytest.raises(ValueError, match=r"currents: no variable with standard_name "
                                         r"northward_sea_water_velocity .* the dataset has: "
                                         r"uo \(eastward_sea_water_velocity\), speed"):
        drift(tmp_path, currents, **RELEASE)


def test_velocities_are_found_by_common_names(tmp_path: Path) -> None:
    currents = uniform_currents(u=0.0, v=0.2, standard_names=False)
    result = drift(tmp_path, currents, model="larvae", **RELEASE, particles=3, radius_m=0, duration_hours=6,
                   use_landmask=False)
    moved_north = result["trajectories"]["lat"].values[:, -1] - RELEASE["lat"]
    np.testing.assert_allclose(moved_north, 0.2 * 6 * 3600 / 111_100, rtol=0.02)


def test_velocities_in_cm_per_second_are_converted(tmp_path: Path) -> None:
    currents = uniform_currents(u=0.0, v=20.0)
    for name in ("uo", "vo"):
        currents[name].attrs["units"] = "cm s-1"
    result = drift(tmp_path, currents, model="larvae", **RELEASE, particles=3, radius_m=0, duration_hours=6,
                   use_landmask=False)
    moved_north = result["trajectories"]["lat"].values[:, -1] - RELEASE["lat"]
    np.testing.assert_allclose(moved_north, 0.2 * 6 * 3600 / 111_100, rtol=0.02)  # 20 cm/s = 0.2 m/s


@pytest.mark.parametrize(("units", "message"), [
    (None, "currents: 'vo' has no units attribute; give it one"),
    ("C", "currents: 'vo' has units 'C', which is not a speed (in CF/UDUNITS 'C' is the coulomb"),
    ("bananas", "currents: the units of 'vo': unknown unit"),
])
def test_velocity_units_are_read_not_guessed(tmp_path: Path, units: str | None, message: str) -> None:
    currents = uniform_currents()
    currents["vo"].attrs.pop("units")
    if units:
        currents["vo"].attrs["units"] = units
    with pytest.raises(ValueError, match=re.escape(message)):
        drift(tmp_path, currents, **RELEASE)


def test_unknown_oil_type_lists_close_matches(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="oil_type: 'GENERIC MEDIUM CRUD' is not in OpenDrift's oil library; "
                                         "close matches: GENERIC MEDIUM CRUDE"):
        drift(tmp_path, uniform_currents(), model="oil", **RELEASE, oil_type="GENERIC MEDIUM CRUD")


def test_output_interval_must_be_a_multiple_of_the_time_step(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"output_interval_minutes: 45 is not a multiple of "
                                         r"time_step_minutes \(30\)"):
        drift(tmp_path, uniform_currents(), **RELEASE, output_interval_minutes=45)
