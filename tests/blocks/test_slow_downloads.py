"""Slow servers: a URL download has an overall deadline, and cancel and walltime stop it promptly.

A real HTTP server on 127.0.0.1 answers and then sends one byte every half second (``/drip``),
nothing at all (``/stall``), or its headers one byte at a time (``/slow-headers``). None of these
ever lets a single read time out, so only an overall deadline, or a check of cancel and walltime
made while waiting, ends such a download. The server gives up after :data:`DRIP_LIMIT_S` so that a
client that never stops still ends (and the test fails instead of hanging).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from blocks import netguard
from blocks.context import StepContext, WalltimeExceeded
from blocks.library import data_access
from blocks.manifest import ResultManifest, StepManifest
from blocks.registry import Registry, discover
from blocks.runner import run_step, validated_params
from tests.blocks.test_runner import write_manifest

LOCAL = ["127.0.0.1"]
DRIP_INTERVAL_S = 0.5
DRIP_LIMIT_S = 8.0


class _DripHandler(BaseHTTPRequestHandler):
    disconnected_at: list[float] = []

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        started = time.monotonic()
        try:
            if self.path.startswith("/slow-headers"):
                self.wfile.write(b"HTTP/1.0 200 OK\r\n")
                self._trickle(b"X-Padding: " + b"a" * 100, started)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/x-netcdf")
            self.end_headers()  # no Content-Length: the body ends when the server closes
            if self.path.startswith("/drip"):
                self._trickle(b"x" * 1000, started)
            else:
                time.sleep(DRIP_LIMIT_S)
        except OSError:  # the client went away
            self.disconnected_at.append(time.monotonic())

    def _trickle(self, data: bytes, started: float) -> None:
        for byte in data:
            if time.monotonic() - started > DRIP_LIMIT_S:
                return
            self.wfile.write(bytes([byte]))
            time.sleep(DRIP_INTERVAL_S)


@pytest.fixture(scope="module")
def drip() -> Iterator[tuple[str, list[float]]]:
    """The slow server's base URL and the times at which it noticed a client hang up."""
    handler = type("Handler", (_DripHandler,), {"disconnected_at": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler.disconnected_at
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(netguard.ALLOWED_HOSTS_ENV, "127.0.0.1")
    monkeypatch.delenv(netguard.DOWNLOAD_DEADLINE_ENV, raising=False)
    monkeypatch.delenv(data_access.MAX_DOWNLOAD_ENV, raising=False)


@pytest.fixture(scope="module")
def registry() -> Registry:
    return discover()


# ---- netguard.download ---------------------------------------------------------------------------

def test_a_trickling_download_is_refused_at_its_deadline(
    drip: tuple[str, list[float]], tmp_path: Path,
) -> None:
    base, disconnected_at = drip
    url = f"{base}/drip/data.nc"
    started = time.monotonic()
    with pytest.raises(ValueError) as caught:
        netguard.download(url, tmp_path / "data.nc", max_bytes=10**6, allowed_hosts=LOCAL, deadline_s=3)
    ended = time.monotonic()
    assert 2.9 <= ended - started < 5, ended - started
    assert str(caught.value).startswith(f"{url!r} took longer than the download deadline of 3 s")
    assert netguard.DOWNLOAD_DEADLINE_ENV in str(caught.value)
    assert not list(tmp_path.iterdir())  # the partial file is removed
    # The connection was cut off, not left to a thread that keeps reading.
    time.sleep(2 * DRIP_INTERVAL_S + 0.5)
    assert any(ended - 0.5 <= moment <= ended + 2 * DRIP_INTERVAL_S + 0.5 for moment in disconnected_at)


@pytest.mark.parametrize("path", ["/slow-headers/data.nc", "/stall/data.nc"])
def test_deadline_also_bounds_slow_headers_and_a_silent_server(
    drip: tuple[str, list[float]], tmp_path: Path, path: str,
) -> None:
    started = time.monotonic()
    with pytest.raises(ValueError, match="took longer than the download deadline of 1.5 s"):
        netguard.download(f"{drip[0]}{path}", tmp_path / "data.nc", max_bytes=10**6, allowed_hosts=LOCAL,
                          deadline_s=1.5)
    assert time.monotonic() - started < 3.5


def test_deadline_comes_from_the_environment(
    drip: tuple[str, list[float]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert netguard.download_deadline_s() == netguard.DEFAULT_DOWNLOAD_DEADLINE_S == 1800
    monkeypatch.setenv(netguard.DOWNLOAD_DEADLINE_ENV, "2")
    started = time.monotonic()
    with pytest.raises(ValueError, match="took longer than the download deadline of 2 s"):
        netguard.download(f"{drip[0]}/drip/data.nc", tmp_path / "data.nc", max_bytes=10**6,
                          allowed_hosts=LOCAL)
    assert time.monotonic() - started < 4
    for bad in ("soon", "0", "-5", "nan"):
        monkeypatch.setenv(netguard.DOWNLOAD_DEADLINE_ENV, bad)
        with pytest.raises(ValueError, match=f"ILIAD_DOWNLOAD_DEADLINE_S='{bad}' is not a positive number"):
            netguard.download_deadline_s()


def test_check_interrupt_is_called_every_half_second_while_nothing_arrives(
    drip: tuple[str, list[float]], tmp_path: Path,
) -> None:
    calls: list[float] = []

    class Stop(Exception):
        pass

    def check() -> None:
        calls.append(time.monotonic())
        if len(calls) == 5:
            raise Stop

    started = time.monotonic()
    with pytest.raises(Stop):
        netguard.download(f"{drip[0]}/stall/data.nc", tmp_path / "data.nc", max_bytes=10**6,
                          allowed_hosts=LOCAL, check_interrupt=check)
    assert time.monotonic() - started < 3.5
    assert max(later - earlier for earlier, later in zip(calls, calls[1:], strict=False)) < 1.0
    assert not list(tmp_path.iterdir())


def test_opendap_proxy_requests_have_the_deadline_too(drip: tuple[str, list[float]]) -> None:
    proxy = netguard.GuardedWSGIProxy(f"{drip[0]}/drip/dodsC/sst", allowed_hosts=LOCAL, deadline_s=2)
    environ = {"PATH_INFO": "/drip/dodsC/sst.dds", "QUERY_STRING": ""}
    started = time.monotonic()
    message = r"/drip/dodsC/sst\.dds' took longer than the download deadline of 2 s"
    with pytest.raises(ValueError, match=message):
        proxy(environ, lambda status, headers: None)
    assert time.monotonic() - started < 4


# ---- data.open_gridded ---------------------------------------------------------------------------

def run_open_gridded(
    tmp_path: Path, registry: Registry, source: str, cancel_requested: Callable[[], bool],
) -> tuple[ResultManifest, float]:
    """Run data.open_gridded through the runner, as a worker does; return the result and its duration."""
    manifest = StepManifest.load(write_manifest(tmp_path, "open", "data.open_gridded", {"source": source}))
    started = time.monotonic()
    result = run_step(manifest, registry=registry, cancel_requested=cancel_requested)
    return result, time.monotonic() - started


def after(seconds: float, then: Callable[[], bool]) -> Callable[[], bool]:
    """A ``cancel_requested`` callback that answers False until ``seconds`` passed, then calls ``then``."""
    started = time.monotonic()
    return lambda: time.monotonic() - started >= seconds and then()


@pytest.mark.parametrize("path", ["/drip/data.nc", "/stall/data.nc", "/drip/thredds/dodsC/sst"])
def test_cancel_stops_a_slow_download_within_seconds(
    drip: tuple[str, list[float]], tmp_path: Path, registry: Registry, path: str,
) -> None:
    result, duration = run_open_gridded(tmp_path, registry, f"{drip[0]}{path}", after(1.0, lambda: True))
    assert not result.ok and result.error is not None
    assert result.error["type"] == "cancelled", result.error
    assert duration < 3.0


def test_walltime_stops_a_slow_download_within_seconds(
    drip: tuple[str, list[float]], tmp_path: Path, registry: Registry,
) -> None:
    def out_of_time() -> bool:
        raise WalltimeExceeded("step ran longer than the 1 s walltime of data.open_gridded@1.0.0")

    source = f"{drip[0]}/drip/data.nc"
    result, duration = run_open_gridded(tmp_path, registry, source, after(1.0, out_of_time))
    assert not result.ok and result.error is not None
    assert result.error["type"] == "WalltimeExceeded"
    assert result.error["message"].startswith("step ran longer than the 1 s walltime")
    assert duration < 3.0


def test_open_gridded_names_source_url_and_deadline(
    drip: tuple[str, list[float]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(netguard.DOWNLOAD_DEADLINE_ENV, "1.5")
    url = f"{drip[0]}/drip/data.nc"
    scratch = tmp_path / "scratch"
    context = StepContext(scratch_dir=scratch)
    params = validated_params(data_access.open_gridded.spec, {"source": url})
    started = time.monotonic()
    with pytest.raises(ValueError) as caught:
        data_access.open_gridded.function(context, {}, params)
    assert time.monotonic() - started < 3.5
    assert str(caught.value).startswith(f"source: {url!r} took longer than the download deadline of 1.5 s")
    assert not (scratch / "download.nc").exists()
