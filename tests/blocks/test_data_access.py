"""data.open_gridded and data.open_observations: formats, laziness, filters, path and URL safety."""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import dask.array
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from blocks import netguard
from blocks.context import StepContext
from blocks.library import data_access
from blocks.library.data_access import open_gridded, open_observations
from blocks.library.demo_data import make_demo_dataset
from blocks.registry import discover
from blocks.runner import validated_params
from blocks.spec import Block
from blocks.types import PORT_TYPES, known_types
from tests.blocks.test_netguard import LocalServer

DAYS = 10


def run(target: Block, params: dict[str, Any], data_dir: Path | None, scratch: Path,
        events: list[dict] | None = None) -> dict[str, Any]:
    context = StepContext(scratch_dir=scratch, data_dir=data_dir,
                          emit=events.append if events is not None else None)
    return dict(target.function(context, {}, validated_params(target.spec, params)))


def logs(events: list[dict]) -> list[str]:
    return [event["message"] for event in events if event["kind"] == "log"]


@pytest.fixture(scope="module")
def space(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("space")
    (root / "ocean").mkdir()
    make_demo_dataset(days=DAYS).to_netcdf(root / "ocean" / "small.nc")
    make_demo_dataset(days=DAYS).chunk({"time": 5}).to_zarr(root / "ocean" / "small.zarr")
    make_demo_dataset(days=DAYS).chunk({"time": 5}).to_zarr(root / "ocean" / "store_without_suffix")
    renamed = make_demo_dataset(days=3).rename({"lat": "latitude", "lon": "longitude"})
    renamed.to_netcdf(root / "ocean" / "renamed.nc")
    (root / "obs").mkdir()
    observations().to_csv(root / "obs" / "buoys.csv", index=False)
    observations().to_parquet(root / "obs" / "buoys.parquet", index=False)
    (root / "obs" / "notes.txt").write_text("not a table")
    return root


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    return tmp_path / "scratch"


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    local = LocalServer()
    yield local
    local.close()


@pytest.fixture
def local_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(netguard.ALLOWED_HOSTS_ENV, "127.0.0.1")
    monkeypatch.delenv(data_access.MAX_DOWNLOAD_ENV, raising=False)


# ---- data.open_gridded ---------------------------------------------------------------------------

def test_blocks_are_discoverable() -> None:
    registry = discover(extra_modules=["blocks.library.data_access"])
    assert registry.errors == []
    for target in (open_gridded, open_observations):
        target.spec.check(known_types())
        schema = target.spec.parameters
        assert schema["additionalProperties"] is False
        for prop in schema["properties"].values():
            assert prop["title"] and prop["description"]


def test_open_netcdf_is_lazy_and_describes_the_dataset(space: Path, scratch: Path) -> None:
    result = run(open_gridded, {"source": "ocean/small.nc"}, space, scratch)
    dataset, metadata = result["dataset"], result["metadata"]
    assert isinstance(dataset.sst.data, dask.array.Array)
    np.testing.assert_array_equal(dataset.sst.values, make_demo_dataset(days=DAYS).sst.values)
    assert metadata["source"] == "ocean/small.nc"
    assert metadata["dimensions"] == {"time": DAYS, "lat": 25, "lon": 41}
    assert metadata["variables"]["sst"] == {
        "units": "degree_Celsius", "standard_name": "sea_surface_temperature",
        "long_name": "Sea surface temperature", "dims": ["time", "lat", "lon"], "shape": [DAYS, 25, 41],
        "dtype": "float32"}
    assert set(metadata["variables"]) == {"sst", "so", "uo", "vo"}
    assert metadata["time_range"] == {"start": "2021-01-01", "end": "2021-01-10", "steps": DAYS}
    assert metadata["bounding_box"] == {"lat_min": 40.0, "lat_max": 46.0, "lon_min": -6.0, "lon_max": 4.0}
    assert metadata["attributes"]["Conventions"] == "CF-1.8"
    assert metadata["attributes"]["title"].startswith("Iliad Portal demo")
    json.dumps(metadata, allow_nan=False)  # the json port's content is strict JSON


def test_open_zarr_directory_or_suffix_and_save_as_artifact(
    space: Path, scratch: Path, tmp_path: Path,
) -> None:
    for source in ("ocean/small.zarr", "ocean/store_without_suffix"):
        dataset = run(open_gridded, {"source": source, "variables": ["sst"]}, space, scratch)["dataset"]
        assert list(dataset.data_vars) == ["sst"]
        assert dataset.sst.data.chunks[0] == (5, 5)
        saved = tmp_path / f"{Path(source).stem}.nc"
        PORT_TYPES["dataset"].save(dataset, saved)  # the runner saves outputs like this
        with xr.open_dataset(saved) as reopened:
            np.testing.assert_array_equal(reopened.sst.values, make_demo_dataset(days=DAYS).sst.values)


def test_latitude_longitude_names_are_recognised(space: Path, scratch: Path) -> None:
    metadata = run(open_gridded, {"source": "ocean/renamed.nc"}, space, scratch)["metadata"]
    assert metadata["bounding_box"] == {"lat_min": 40.0, "lat_max": 46.0, "lon_min": -6.0, "lon_max": 4.0}
    assert metadata["time_range"]["end"] == "2021-01-03"


def test_unknown_variable_lists_the_available_ones(space: Path, scratch: Path) -> None:
    message = "variables: unknown variable 'temp'; the dataset has: sst, so, uo, vo"
    with pytest.raises(ValueError, match=message):
        run(open_gridded, {"source": "ocean/small.nc", "variables": ["sst", "temp"]}, space, scratch)


@pytest.mark.parametrize(("source", "message"), [
    ("/etc/passwd", "source: '/etc/passwd' is an absolute path"),
    ("~/data.nc", "is an absolute path"),
    ("ocean/../../secret.nc", "source: 'ocean/../../secret.nc' contains '..'"),
    ("ocean/missing.nc", "source: 'ocean/missing.nc' does not exist in the data space; it has: "
                         "obs/buoys.csv, obs/buoys.parquet, obs/notes.txt, ocean/renamed.nc, ocean/small.nc, "
                         "ocean/small.zarr, ocean/store_without_suffix"),
    ("obs/notes.txt", "source: 'obs/notes.txt' could not be opened as a NetCDF file"),
    ("file:///etc/passwd", "only http and https URLs"),
    ("s3://bucket/data.zarr", "only http and https URLs"),
])
def test_bad_paths_are_refused(space: Path, scratch: Path, source: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        run(open_gridded, {"source": source}, space, scratch)


def test_symbolic_link_out_of_the_data_space_is_refused(tmp_path: Path, scratch: Path) -> None:
    outside = tmp_path / "outside.nc"
    make_demo_dataset(days=2).to_netcdf(outside)
    root = tmp_path / "space"
    root.mkdir()
    os.symlink(outside, root / "link.nc")
    os.symlink(tmp_path, root / "up")
    for source in ("link.nc", "up/outside.nc"):
        with pytest.raises(ValueError, match=f"source: '{source}' points outside the data space"):
            run(open_gridded, {"source": source}, root, scratch)
    inside = root / "inside.nc"
    make_demo_dataset(days=2).to_netcdf(inside)
    os.symlink(inside, root / "alias.nc")
    assert run(open_gridded, {"source": "alias.nc"}, root, scratch)["dataset"].sizes["time"] == 2


def test_listing_of_a_large_data_space_is_cut_short(tmp_path: Path, scratch: Path) -> None:
    for number in range(40):
        (tmp_path / f"file{number:02d}.nc").touch()
    with pytest.raises(ValueError, match=r"it has: file00.nc, file01.nc, .*, file29.nc, \.\.\.$"):
        run(open_gridded, {"source": "nothing.nc"}, tmp_path, scratch)
    with pytest.raises(ValueError, match=re.escape(r"source: 'a\x00b.nc' is not a usable path")):
        run(open_gridded, {"source": "a\x00b.nc"}, tmp_path, scratch)


def test_paths_need_a_data_space(scratch: Path) -> None:
    with pytest.raises(ValueError, match="this deployment has no local data space; give an http"):
        run(open_gridded, {"source": "demo/biscay_ocean.nc"}, None, scratch)


def test_download_over_http(server: LocalServer, local_allowed: None, tmp_path: Path, scratch: Path) -> None:
    path = tmp_path / "remote.nc"
    make_demo_dataset(days=4).to_netcdf(path)
    server.files["/files/remote.nc"] = path.read_bytes()
    events: list[dict] = []
    result = run(open_gridded, {"source": f"{server.url}/files/remote.nc"}, None, scratch, events)
    np.testing.assert_array_equal(result["dataset"].so.values, make_demo_dataset(days=4).so.values)
    assert (scratch / "download.nc").exists()
    assert any(message.startswith("downloaded 0.") for message in logs(events))
    with pytest.raises(ValueError, match=r"source: .* is 0.\d MB; the limit is 0.0 MB"):
        run(open_gridded, {"source": f"{server.url}/files/remote.nc", "max_download_mb": 0.01}, None, scratch)


def test_download_limit_from_environment_caps_the_parameter(
    server: LocalServer, local_allowed: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, scratch: Path,
) -> None:
    server.files["/files/small.nc"] = b"x" * 2000
    monkeypatch.setenv(data_access.MAX_DOWNLOAD_ENV, "0.001")
    with pytest.raises(ValueError, match="the limit is 0.0 MB"):
        run(open_gridded, {"source": f"{server.url}/files/small.nc", "max_download_mb": 100}, None, scratch)
    assert data_access._max_download_bytes({"max_download_mb": 100}) == 1000
    monkeypatch.delenv(data_access.MAX_DOWNLOAD_ENV)
    assert data_access._max_download_bytes({}) == 2048 * 10**6
    assert data_access._max_download_bytes({"max_download_mb": 5000}) == 2048 * 10**6
    assert data_access._max_download_bytes({"max_download_mb": 1.5}) == 1_500_000


@pytest.mark.parametrize(("source", "message"), [
    ("http://127.0.0.1:9/data.nc", "127.0.0.1 is a loopback address"),
    ("http://169.254.169.254/latest/meta-data/iam", "169.254.169.254 is a link-local address"),
    ("https://10.0.0.1/thredds/dodsC/secret", "10.0.0.1 is a private network address"),
    ("http://8.8.8.8/data.zarr", "remote Zarr stores are not supported"),
])
def test_internal_urls_are_refused(scratch: Path, source: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        run(open_gridded, {"source": source}, None, scratch)


def test_redirect_into_the_internal_network_is_refused(
    server: LocalServer, local_allowed: None, scratch: Path,
) -> None:
    source = f"{server.url}/redirect?to=http://169.254.169.254/latest/data.nc"
    with pytest.raises(ValueError, match="source: 'http://169.254.169.254/latest/data.nc' is refused"):
        run(open_gridded, {"source": source, "engine": "netcdf4"}, None, scratch)


def test_opendap_urls_are_opened_with_pydap_through_the_guard(
    monkeypatch: pytest.MonkeyPatch, scratch: Path,
) -> None:
    calls: list[tuple[Any, dict]] = []

    def fake_open(url: Any, **kwargs: Any) -> xr.Dataset:
        calls.append((url, kwargs))
        return make_demo_dataset(days=2)

    monkeypatch.setattr(data_access.xr, "open_dataset", fake_open)
    url = "https://8.8.8.8/thredds/dodsC/demo/sst"
    result = run(open_gridded, {"source": url}, None, scratch)
    assert result["metadata"]["dimensions"]["time"] == 2
    (called, kwargs), = calls
    assert called == url and kwargs["engine"] == "pydap" and kwargs["chunks"] == {}
    assert isinstance(kwargs["application"], netguard.GuardedWSGIProxy)
    assert kwargs["application"].origin == "https://8.8.8.8"
    run(open_gridded, {"source": "https://8.8.8.8/erddap/griddap/sst_daily"}, None, scratch)
    assert calls[-1][1]["engine"] == "pydap"
    with pytest.raises(ValueError, match="engine: 'opendap' needs a URL"):
        run(open_gridded, {"source": "ocean/small.nc", "engine": "opendap"}, Path("."), scratch)


# ---- data.open_observations ----------------------------------------------------------------------

def observations() -> pd.DataFrame:
    """Two stations, two variables, three days; one bad and one probably bad value."""
    rows = []
    for station, lat, lon in (("A", 44.0, -3.0), ("B", 42.0, 3.5)):
        for day in ("2022-07-01", "2022-07-02", "2022-07-03"):
            rows.append((station, day, lat, lon, 1.0, "sst", 20.0, 1))
            rows.append((station, day, lat, lon, 1.0, "so", 35.5, 2))
    table = pd.DataFrame(rows, columns=list(data_access.OBSERVATION_COLUMNS))
    table.loc[0, ["value", "quality_flag"]] = [35.0, 4]
    table.loc[8, ["value", "quality_flag"]] = [25.0, 3]
    table["platform"] = "moored buoy"
    return table


def open_obs(space: Path, scratch: Path, events: list[dict] | None = None, **params: Any) -> pd.DataFrame:
    params = {"source": "obs/buoys.csv", **params}
    return run(open_observations, params, space, scratch, events)["observations"]


def test_default_keeps_good_and_probably_good_and_logs_the_rest(space: Path, scratch: Path) -> None:
    events: list[dict] = []
    table = open_obs(space, scratch, events)
    assert len(table) == 10
    assert list(table.columns) == [*data_access.OBSERVATION_COLUMNS, "platform"]
    assert set(table.quality_flag) == {1, 2}
    assert "quality flags: dropped 2 rows: 1 with flag 3 (probably bad), 1 with flag 4 (bad)" in logs(events)
    assert "kept 10 of 12 measurements from 2 stations" in logs(events)
    assert table.time.tolist()[:3] == ["2022-07-01", "2022-07-02", "2022-07-02"]


def test_csv_and_parquet_give_the_same_table(space: Path, scratch: Path) -> None:
    parquet = open_obs(space, scratch, source="obs/buoys.parquet")
    pd.testing.assert_frame_equal(open_obs(space, scratch), parquet)


def test_filters(space: Path, scratch: Path) -> None:
    table = open_obs(space, scratch, variables=["sst"], stations=["B"], quality_flags=[1, 2, 3, 4])
    assert table.value.tolist() == [20.0, 25.0, 20.0]
    assert len(open_obs(space, scratch, lat_min=43.0)) == 5
    assert set(open_obs(space, scratch, lon_max=0.0).station) == {"A"}
    one_day = open_obs(space, scratch, start="2022-07-02", end="2022-07-02")
    assert one_day.time.unique().tolist() == ["2022-07-02"]


@pytest.mark.parametrize(("params", "message"), [
    ({"stations": ["C"]}, "stations: unknown station 'C'; the data has: A, B"),
    ({"variables": ["chl"]}, "variables: unknown variable 'chl'; the data has: so, sst"),
    ({"quality_flags": [9]}, "quality_flags: no measurements have flags [9]; "
                             "the data has flags [1, 2, 3, 4]"),
    ({"lat_min": 50.0}, "lat_min=50.0: no stations left; the stations span 42 to 44"),
    ({"lon_min": -5.0, "lon_max": -4.0}, "lon_min=-5.0, lon_max=-4.0: no stations left; the stations span "
                                         "-3 to 3.5"),
    ({"lon_min": 2.0, "lon_max": 1.0}, "lon_min (2.0) must not be greater than lon_max (1.0)"),
    ({"start": "2023-01-01"}, "start/end: no measurements from 2023-01-01 to the end; the data covers "
                              "2022-07-01 to 2022-07-03"),
    ({"start": "2022-07-03", "end": "2022-07-01"}, "start (2022-07-03) must not be after end (2022-07-01)"),
    ({"source": "obs/notes.txt"}, "source: 'obs/notes.txt' is neither CSV"),
    ({"source": "obs/../../x.csv"}, "contains '..'"),
])
def test_observation_errors(space: Path, scratch: Path, params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        open_obs(space, scratch, **params)


@pytest.mark.parametrize(("change", "message"), [
    (lambda t: t.drop(columns=["depth", "quality_flag"]),
     "source: the table lacks the required columns depth, quality_flag; it has: station, time, lat, lon"),
    (lambda t: t.assign(lat=["north"] + [44.0] * 11), "source: column 'lat' must hold numbers; row 2 has "
                                                      "'north'"),
    (lambda t: t.assign(time=["yesterday"] + ["2022-07-01"] * 11),
     "source: column 'time' must hold ISO 8601 dates or times; row 2 has 'yesterday'"),
    (lambda t: t.assign(lon=[400.0] * 12), "source: longitude 400.0 is outside -180 to 360"),
    (lambda t: t.assign(quality_flag=[1.5] * 12), "source: column 'quality_flag' must hold whole numbers"),
    (lambda t: t.assign(lat=[np.nan] + [44.0] * 11),
     "source: column 'lat' has missing values (first at row 2)"),
])
def test_bad_tables_are_explained(tmp_path: Path, scratch: Path, change: Any, message: str) -> None:
    change(observations()).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ValueError, match=re.escape(message)):
        run(open_observations, {"source": "bad.csv"}, tmp_path, scratch)


def test_sub_daily_times_in_utc(tmp_path: Path, scratch: Path) -> None:
    table = observations().assign(time=["2022-07-01T10:00:00Z", "2022-07-01T12:30:00+02:00"] * 6)
    table.to_csv(tmp_path / "hourly.csv", index=False)
    result = run(open_observations, {"source": "hourly.csv"}, tmp_path, scratch)["observations"]
    assert result.time.tolist()[:3] == ["2022-07-01T10:30:00", "2022-07-01T10:00:00", "2022-07-01T10:30:00"]


def test_missing_flags_count_as_no_quality_control(tmp_path: Path, scratch: Path) -> None:
    observations().assign(quality_flag=np.nan).to_csv(tmp_path / "noqc.csv", index=False)
    events: list[dict] = []
    result = run(open_observations, {"source": "noqc.csv", "quality_flags": [0]}, tmp_path, scratch, events)
    assert len(result["observations"]) == 12
    assert "12 rows have no quality flag; they count as flag 0 (no quality control)" in logs(events)


def test_observations_over_http(server: LocalServer, local_allowed: None, scratch: Path) -> None:
    server.files["/obs/buoys.csv"] = observations().to_csv(index=False).encode()
    result = run(open_observations, {"source": f"{server.url}/obs/buoys.csv"}, None, scratch)
    assert len(result["observations"]) == 10
    with pytest.raises(ValueError, match="does not end in a CSV"):
        run(open_observations, {"source": f"{server.url}/obs/buoys"}, None, scratch)
    with pytest.raises(ValueError, match="is a loopback address"):
        run(open_observations, {"source": "http://[::1]/buoys.csv"}, None, scratch)


class _DapHandler(BaseHTTPRequestHandler):
    """Serves /dap/<name>.dds, .das, .dods... with pydap's NetCDF handler, and a redirect route."""

    application: Any = None

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        from webob import Request

        if self.path.startswith("/moved/"):
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254" + self.path[len("/moved"):])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        answer = Request.blank(self.path[len("/dap"):]).get_response(self.application)
        self.send_response(answer.status_code)
        for name, value in answer.headers.items():
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)


@pytest.fixture
def dap_server(tmp_path: Path, local_allowed: None) -> Iterator[str]:
    from pydap.handlers.netcdf_handler import NetCDFHandler

    dataset = make_demo_dataset(days=3, lat_min=44, lat_max=45, lon_min=-5, lon_max=-4, resolution=0.5)
    dataset.to_netcdf(tmp_path / "dap.nc")
    handler = type("Handler", (_DapHandler,), {"application": NetCDFHandler(str(tmp_path / "dap.nc"))})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_opendap_end_to_end_through_the_guard(dap_server: str, scratch: Path) -> None:
    """A real pydap client reads a real (local) OPeNDAP server; every request passes the guard."""
    result = run(open_gridded, {"source": f"{dap_server}/dap/sst_demo", "variables": ["sst"]}, None, scratch)
    dataset = result["dataset"]
    assert result["metadata"]["dimensions"] == {"time": 3, "lat": 3, "lon": 3}
    expected = make_demo_dataset(days=3, lat_min=44, lat_max=45, lon_min=-5, lon_max=-4, resolution=0.5)
    assert isinstance(dataset.sst.data, dask.array.Array)
    # The whole variable: pydap's NetCDF *server* handler cannot serve slices of 3-D variables.
    np.testing.assert_allclose(dataset.sst.values, expected.sst.values)


def test_opendap_redirect_into_the_internal_network_is_refused(dap_server: str, scratch: Path) -> None:
    with pytest.raises(ValueError, match="'http://169.254.169.254/x.dds' is refused"):
        run(open_gridded, {"source": f"{dap_server}/moved/x"}, None, scratch)


def test_opendap_without_allow_list_is_refused(dap_server: str, scratch: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(netguard.ALLOWED_HOSTS_ENV)
    with pytest.raises(ValueError, match="127.0.0.1 is a loopback address"):
        run(open_gridded, {"source": f"{dap_server}/dap/sst_demo"}, None, scratch)


def test_open_gridded_can_select_area_period_and_depth_while_opening(tmp_path: Path) -> None:
    from blocks.library.demo_data import make_demo_dataset

    space = tmp_path / "space"
    (space / "demo").mkdir(parents=True)
    make_demo_dataset(days=40, resolution=0.5).to_netcdf(space / "demo" / "small.nc")
    ctx = StepContext(scratch_dir=tmp_path / "scratch", data_dir=space)
    params = {"source": "demo/small.nc", "variables": ["sst"], "lat_min": 44.0, "lat_max": 45.0,
              "lon_min": -5.0, "lon_max": -3.0, "start": "2021-01-10", "end": "2021-01-19"}
    dataset = open_gridded.function(ctx, {}, params)["dataset"]
    assert list(dataset.data_vars) == ["sst"]
    assert dataset.sizes == {"time": 10, "lat": 3, "lon": 5}
    metadata = open_gridded.function(ctx, {}, params)["metadata"]
    assert metadata["time_range"]["start"].startswith("2021-01-10")
    with pytest.raises(ValueError, match="the data covers 2021-01-01 to 2021-02-09"):
        open_gridded.function(ctx, {}, {**params, "start": "2030-01-01", "end": "2030-01-02"})
