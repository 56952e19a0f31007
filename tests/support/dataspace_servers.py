"""Real data-space servers on 127.0.0.1 for tests: S3 (moto's server), WebDAV (wsgidav + cheroot),
OPeNDAP (pydap's server), a static STAC catalogue over http.server and a STAC API
(stac-fastapi-static under uvicorn). Each starts in well under ten seconds and fails loudly when it
cannot start (tests are never skipped for a missing server)."""

from __future__ import annotations

import functools
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from iliad_portal.embedded import free_port

S3_USER = {"access_key_id": "testing-key", "secret_access_key": "testing-secret"}
WEBDAV_USER = {"username": "dav-user", "password": "dav-password"}


def wait_for_port(
    port: int, process: subprocess.Popen | None = None, timeout: float = 60.0, log: Path | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            pass
        if (process is not None and process.poll() is not None) or time.monotonic() > deadline:
            text = log.read_text() if log and log.exists() else ""
            raise RuntimeError(f"server on port {port} did not start:\n{text[-3000:]}")
        time.sleep(0.1)


def stop_process(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


class S3Server:
    """moto's S3 in this process (``ThreadedMotoServer``); ``reset()`` empties it."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self.port = free_port()
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> S3Server:
        self.server.start()
        wait_for_port(self.port)
        return self

    def client(self):
        import boto3

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=S3_USER["access_key_id"],
            aws_secret_access_key=S3_USER["secret_access_key"],
        )

    def reset(self) -> None:
        import requests

        requests.post(f"{self.url}/moto-api/reset", timeout=10)

    def stop(self) -> None:
        self.server.stop()


class WebDAVServer:
    """wsgidav serving ``root`` with basic authentication (``WEBDAV_USER``) under cheroot."""

    def __init__(self, root: Path) -> None:
        from cheroot import wsgi
        from wsgidav.wsgidav_app import WsgiDAVApp

        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        config = {
            "provider_mapping": {"/": str(root)},
            "http_authenticator": {
                "domain_controller": None,
                "accept_basic": True,
                "accept_digest": False,
                "default_to_digest": False,
            },
            "simple_dc": {
                "user_mapping": {"*": {WEBDAV_USER["username"]: {"password": WEBDAV_USER["password"]}}}
            },
            "verbose": 0,
            "logging": {"enable": False},
            "property_manager": True,
            "lock_storage": True,
        }
        self.server = wsgi.Server(("127.0.0.1", 0), WsgiDAVApp(config))
        self.thread = threading.Thread(target=self.server.serve, daemon=True)

    def start(self) -> WebDAVServer:
        self.server.prepare()
        self.port = self.server.bind_addr[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread.start()
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        self.server.stop()


class ProcessServer:
    """A server command in its own process group, its output in ``log``."""

    def __init__(self, command: list[str], port: int, log: Path, env: dict[str, str] | None = None) -> None:
        self.command, self.port, self.log = command, port, log
        self.env = {**os.environ, **(env or {})}
        self.url = f"http://127.0.0.1:{port}"

    def start(self, timeout: float = 60.0) -> ProcessServer:
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                self.command, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
            )
        wait_for_port(self.port, self.process, timeout, self.log)
        return self

    def stop(self) -> None:
        stop_process(self.process)


def opendap_server(root: Path, log: Path) -> ProcessServer:
    port = free_port()
    pydap = Path(sys.executable).with_name("pydap")
    return ProcessServer([str(pydap), "-b", "127.0.0.1", "-p", str(port), "-d", str(root)], port, log)


def stac_api_server(catalog: Path, log: Path) -> ProcessServer:
    port = free_port()
    return ProcessServer(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "stac_fastapi.static.app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        port,
        log,
        env={"CATALOG_HREF": catalog.resolve().as_uri()},
    )


class StaticServer:
    """``http.server`` serving a folder (a static STAC catalogue, HTTP files) from a thread."""

    def __init__(self, root: Path) -> None:
        handler = functools.partial(_QuietHandler, directory=str(root))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> StaticServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args) -> None:  # noqa: A002 - the base class's name
        pass


def write_stac_catalog(root: Path, asset_base: str, asset_file: Path) -> Path:
    """A static catalogue in ``root``: collection ``biscay-sst`` with two items (2024-06-01 over the
    Bay of Biscay, 2024-07-01 over the North Sea), each with a NetCDF asset at ``asset_base``."""
    import datetime as dt

    import pystac

    catalog = pystac.Catalog(id="iliad-test", description="Test catalogue")
    collection = pystac.Collection(
        id="biscay-sst",
        description="Sea surface temperature",
        title="Biscay SST",
        extent=pystac.Extent(
            pystac.SpatialExtent([[-10.0, 43.0, 8.0, 58.0]]),
            pystac.TemporalExtent(
                [[dt.datetime(2024, 6, 1, tzinfo=dt.UTC), dt.datetime(2024, 7, 31, tzinfo=dt.UTC)]]
            ),
        ),
        license="CC-BY-4.0",
    )
    catalog.add_child(collection)
    for item_id, bbox, when in (
        ("sst-2024-06-01", [-10.0, 43.0, -1.0, 48.0], dt.datetime(2024, 6, 1, tzinfo=dt.UTC)),
        ("sst-2024-07-01", [2.0, 52.0, 8.0, 58.0], dt.datetime(2024, 7, 1, tzinfo=dt.UTC)),
    ):
        west, south, east, north = bbox
        geometry = {
            "type": "Polygon",
            "coordinates": [[[west, south], [east, south], [east, north], [west, north], [west, south]]],
        }
        item = pystac.Item(
            id=item_id,
            geometry=geometry,
            bbox=bbox,
            datetime=when,
            properties={"title": f"SST {when:%Y-%m-%d}"},
        )
        item.add_asset(
            "data",
            pystac.Asset(
                href=f"{asset_base}/{asset_file.name}",
                media_type="application/x-netcdf",
                title="NetCDF",
                roles=["data"],
                extra_fields={"file:size": asset_file.stat().st_size},
            ),
        )
        collection.add_item(item)
    catalog.normalize_hrefs(str(root))
    catalog.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return root / "catalog.json"


def write_small_netcdf(path: Path) -> Path:
    """A small CF NetCDF file: ``sst`` (degC) on time × lat × lon over the Bay of Biscay."""
    import numpy as np
    import pandas as pd
    import xarray as xr

    time_axis = pd.date_range("2024-06-01", periods=3, freq="D")
    lat = np.linspace(43.0, 48.0, 6)
    lon = np.linspace(-10.0, -1.0, 10)
    values = 15 + np.random.default_rng(1).random((3, 6, 10)).astype("float32")
    dataset = xr.Dataset(
        {
            "sst": (
                ("time", "lat", "lon"),
                values,
                {
                    "units": "degC",
                    "standard_name": "sea_surface_temperature",
                    "long_name": "Sea surface temperature",
                },
            )
        },
        coords={
            "time": time_axis,
            "lat": ("lat", lat, {"units": "degrees_north", "standard_name": "latitude"}),
            "lon": ("lon", lon, {"units": "degrees_east", "standard_name": "longitude"}),
        },
        attrs={"title": "Test SST", "Conventions": "CF-1.8"},
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    dataset.to_netcdf(path)
    return path


def json_dump(path: Path, value) -> None:
    path.write_text(json.dumps(value))
