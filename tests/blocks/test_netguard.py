"""The SSRF guard: refused addresses, the allow-list, redirects and pinned connections.

Only 127.0.0.1 is ever contacted: a local HTTP server runs in a thread, is allow-listed for the first
hop, and every refusal of another address happens before any connection is made (a spy on the socket
factory checks that).
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from blocks import netguard
from blocks.netguard import UnsafeURL, check_url, download, guarded_get, guarded_session

LOCAL = ["127.0.0.1"]


class _Handler(BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        if parts.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", query["to"][0])
            self.end_headers()
        elif parts.path.startswith("/chain/"):
            left = int(parts.path.rsplit("/", 1)[1])
            self.send_response(302 if left else 200)
            self.send_header("Location" if left else "Content-Length", f"/chain/{left - 1}" if left else "2")
            self.end_headers()
            if not left:
                self.wfile.write(b"ok")
        elif parts.path == "/host":
            body = str(self.headers.get("Host")).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif parts.path == "/unsized":  # no Content-Length: the size limit must count while reading
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"x" * 5000)
            self.close_connection = True
        elif parts.path in self.files:
            body = self.files[parts.path]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()


class LocalServer:
    """An HTTP server on 127.0.0.1 serving ``files`` (path -> bytes), redirects and echo routes."""

    def __init__(self) -> None:
        handler = type("Handler", (_Handler,), {"files": {}})
        self.files: dict[str, bytes] = handler.files
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    local = LocalServer()
    yield local
    local.close()


@pytest.fixture
def contacted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Addresses the guarded transport connected to, recorded by a spy on its socket factory."""
    addresses: list[str] = []
    original = netguard.urllib3_connection.create_connection

    def spy(address: tuple[str, int], *args: object, **kwargs: object) -> object:
        addresses.append(address[0])
        return original(address, *args, **kwargs)

    monkeypatch.setattr(netguard.urllib3_connection, "create_connection", spy)
    return addresses


@pytest.fixture(autouse=True)
def no_environment_allow_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(netguard.ALLOWED_HOSTS_ENV, raising=False)


@pytest.mark.parametrize(("url", "reason"), [
    ("http://127.0.0.1/", "127.0.0.1 is a loopback address"),
    ("http://127.1.2.3:8000/admin", "127.1.2.3 is a loopback address"),
    ("http://[::1]/", "::1 is a loopback address"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
    ("http://10.0.0.1/", "10.0.0.1 is a private network address"),
    ("https://172.16.5.4/", "172.16.5.4 is a private network address"),
    ("http://192.168.1.10/", "192.168.1.10 is a private network address"),
    ("http://100.64.0.1/", "100.64.0.1 is a carrier-grade NAT address"),
    ("http://0.0.0.0/", "0.0.0.0 is the unspecified address"),
    ("http://224.0.0.251/", "224.0.0.251 is a multicast address"),
    ("http://240.0.0.1/", "240.0.0.1 is a reserved address"),
    ("http://[fd12:3456::1]/", "fd12:3456::1 is a private network address"),
    ("http://[fe80::1]/", "fe80::1 is a link-local address"),
    ("http://[ff02::1]/", "ff02::1 is a multicast address"),
    ("http://[::]/", ":: is the unspecified address"),
    ("http://[::ffff:127.0.0.1]/", "a loopback address (127.0.0.1) written as an IPv6 address"),
    ("http://[::ffff:169.254.169.254]/", "a link-local address (this includes cloud metadata services) "
                                         "(169.254.169.254) written as an IPv6 address"),
    ("http://[::ffff:10.1.2.3]/", "a private network address (10.1.2.3) written as an IPv6 address"),
    ("http://[64:ff9b::a9fe:a9fe]/", "(169.254.169.254) written as an IPv6 address"),
    ("http://[2002:a00:1::1]/", "a private network address (10.0.0.1) written as an IPv6 address"),
])
def test_internal_addresses_are_refused(url: str, reason: str) -> None:
    with pytest.raises(UnsafeURL, match="is refused") as caught:
        check_url(url)
    assert reason in str(caught.value)
    assert netguard.ALLOWED_HOSTS_ENV in str(caught.value)


def test_localhost_name_is_refused_after_resolving() -> None:
    with pytest.raises(UnsafeURL, match=r"'localhost' resolves to (127\.0\.0\.1|::1), a loopback address"):
        check_url("http://localhost:8000/")


@pytest.mark.parametrize(("url", "message"), [
    ("ftp://example.org/data.nc", "only http and https URLs may be fetched, this one has 'ftp'"),
    ("file:///etc/passwd", "this one has 'file'"),
    ("gopher://127.0.0.1:6379/_INFO", "this one has 'gopher'"),
    ("example.org/data.nc", "this one has no scheme"),
    ("http:///data.nc", "has no host name"),
    ("http://example.org:99999/", "is not a valid URL"),
])
def test_bad_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(UnsafeURL, match=message):
        check_url(url)


def test_public_address_passes() -> None:
    check_url("http://8.8.8.8/data.nc")
    check_url("https://[2001:4860:4860::8888]/")


PRIVATE = "a private network address"
LINK_LOCAL_V4 = "a link-local address (this includes cloud metadata services)"


@pytest.mark.parametrize(("address", "reason"), [
    # IANA IPv4 special-purpose registry, one representative address per range
    ("0.1.2.3", "a 'this network' address (0.0.0.0/8)"),
    ("0.0.0.0", "the unspecified address"),
    ("10.200.0.1", PRIVATE),
    ("100.127.255.254", "a carrier-grade NAT address (100.64.0.0/10)"),
    ("127.0.0.2", "a loopback address"),
    ("169.254.10.20", LINK_LOCAL_V4),
    ("172.31.255.254", PRIVATE),
    ("192.0.0.9", "an IETF protocol assignment (192.0.0.0/24)"),
    ("192.0.2.45", "a documentation address (192.0.2.0/24)"),
    ("192.88.99.1", "a deprecated 6to4 relay anycast address (192.88.99.0/24)"),
    ("192.168.255.1", PRIVATE),
    ("198.19.0.1", "a benchmarking address (198.18.0.0/15)"),
    ("198.51.100.7", "a documentation address (198.51.100.0/24)"),
    ("203.0.113.9", "a documentation address (203.0.113.0/24)"),
    ("239.255.255.250", "a multicast address"),
    ("250.1.2.3", "a reserved address"),
    ("255.255.255.255", "the broadcast address"),
    # IANA IPv6 special-purpose registry
    ("::", "the unspecified address"),
    ("::1", "a loopback address"),
    ("::8.8.8.8", "a reserved address"),  # IPv4-compatible, deprecated
    ("::ffff:8.8.8.8", "an IPv4-mapped address (::ffff:0:0/96)"),
    ("::ffff:192.168.0.1", f"{PRIVATE} (192.168.0.1) written as an IPv6 address"),
    ("64:ff9b::a00:1", f"{PRIVATE} (10.0.0.1) written as an IPv6 address"),
    ("64:ff9b:1::808:808", "a local-use NAT64 address (64:ff9b:1::/48)"),
    ("100::1", "a discard-only address (100::/64)"),
    ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", "a Teredo tunnel address (2001::/32)"),  # client 8.8.8.8
    ("2001:0:4136:e378:8000:63bf:f5ff:fffe", f"{PRIVATE} (10.0.0.1) written as an IPv6 address"),
    ("2001:2::1", "an IETF protocol assignment (2001::/23)"),
    ("2001:db8:85a3::8a2e:370:7334", "a documentation address (2001:db8::/32)"),
    ("2002:a9fe:a9fe::1", f"{LINK_LOCAL_V4} (169.254.169.254) written as an IPv6 address"),
    ("3fff:1::1", "a documentation address (3fff::/20)"),
    ("5f00::1", "a segment routing (SRv6) address (5f00::/16)"),
    ("fc00::1", PRIVATE),
    ("fe80::1:2", "a link-local address"),
    ("fec0::1", "a deprecated site-local address (fec0::/10)"),
    ("ff05::2", "a multicast address"),
])
def test_every_special_purpose_range_is_refused(address: str, reason: str) -> None:
    assert netguard.unsafe_reason(ipaddress.ip_address(address)) == reason
    host = f"[{address}]" if ":" in address else address
    with pytest.raises(UnsafeURL, match="is refused") as caught:
        check_url(f"http://{host}/data.nc")
    assert f"is {reason}. Only public internet addresses may be fetched" in str(caught.value)


@pytest.mark.parametrize("address", [
    "8.8.8.8", "1.1.1.1", "192.31.196.1", "2001:4860:4860::8888", "2a00:1450:4007:80e::200e",
    "2002:808:808::1",  # 6to4 of a public address
    "64:ff9b::808:808",  # NAT64 of a public address: what DNS64 answers on an IPv6-only network
    "2001:4:112::1", "2001:1::1",  # globally reachable assignments inside 2001::/23
])
def test_public_addresses_pass(address: str) -> None:
    assert netguard.unsafe_reason(ipaddress.ip_address(address)) is None


def test_every_resolved_address_must_be_public(monkeypatch: pytest.MonkeyPatch) -> None:
    records = [ipaddress.ip_address("93.184.216.34"), ipaddress.ip_address("10.0.0.7")]
    monkeypatch.setattr(netguard, "_resolve", lambda host, port: records)
    with pytest.raises(UnsafeURL, match=r"'data\.example\.org' resolves to 10\.0\.0\.7, a private network"):
        check_url("https://data.example.org/x.nc")
    monkeypatch.setattr(netguard, "_resolve", lambda host, port: records[:1])
    check_url("https://data.example.org/x.nc")


def test_unresolvable_host_is_refused() -> None:
    with pytest.raises(UnsafeURL, match="cannot resolve host 'no-such-host.invalid'"):
        check_url("http://no-such-host.invalid/")


def test_allow_list_exempts_hosts_literals_and_networks(monkeypatch: pytest.MonkeyPatch) -> None:
    check_url("http://127.0.0.1:8080/", allowed_hosts=["127.0.0.1"])
    check_url("http://[::1]/", allowed_hosts=["::1"])
    check_url("http://10.1.2.3/", allowed_hosts=["10.1.0.0/16"])
    with pytest.raises(UnsafeURL):
        check_url("http://10.2.0.1/", allowed_hosts=["10.1.0.0/16"])
    monkeypatch.setattr(netguard, "_resolve", lambda host, port: [ipaddress.ip_address("10.0.0.5")])
    check_url("http://thredds.internal/", allowed_hosts=["THREDDS.internal"])
    with pytest.raises(UnsafeURL):
        check_url("http://other.internal/", allowed_hosts=["thredds.internal"])


def test_allow_list_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(netguard.ALLOWED_HOSTS_ENV, " 192.168.0.9 , erddap.lan")
    check_url("http://192.168.0.9/griddap")
    with pytest.raises(UnsafeURL):
        check_url("http://192.168.0.10/")


def test_guarded_get_reaches_an_allowed_host(server: LocalServer, contacted: list[str]) -> None:
    server.files["/hello.txt"] = b"hello"
    with guarded_get(f"{server.url}/hello.txt", allowed_hosts=LOCAL) as response:
        assert response.status_code == 200 and response.content == b"hello"
    assert contacted == ["127.0.0.1"]
    with pytest.raises(UnsafeURL, match="127.0.0.1 is a loopback address"):
        guarded_get(f"{server.url}/hello.txt")


@pytest.mark.parametrize("target", [
    "http://10.0.0.1/secret", "http://169.254.169.254/latest/meta-data/", "http://[::ffff:10.0.0.1]:8080/",
    "http://[::1]:9/admin", "http://192.168.0.1/", "file:///etc/passwd",
])
def test_redirect_to_internal_address_is_refused_before_connecting(
    server: LocalServer, contacted: list[str], target: str,
) -> None:
    with pytest.raises(UnsafeURL, match="refused|only http and https"):
        guarded_get(f"{server.url}/redirect?to={target}", allowed_hosts=LOCAL)
    assert contacted == ["127.0.0.1"]  # only the first hop was contacted


def test_session_checks_redirects_that_requests_follows_itself(
    server: LocalServer, contacted: list[str],
) -> None:
    """Libraries given a guarded session (pydap for OPeNDAP) follow redirects through the guard too."""
    with guarded_session(allowed_hosts=LOCAL) as session:
        assert session.get(f"{server.url}/chain/2").content == b"ok"
        with pytest.raises(UnsafeURL, match="169.254.169.254"):
            session.get(f"{server.url}/redirect?to=http://169.254.169.254/")
    assert set(contacted) == {"127.0.0.1"}


def test_relative_redirects_are_followed_up_to_the_limit(server: LocalServer) -> None:
    with guarded_get(f"{server.url}/chain/5", allowed_hosts=LOCAL) as response:
        assert response.content == b"ok"
    with pytest.raises(UnsafeURL, match="more than 5 redirects"):
        guarded_get(f"{server.url}/chain/6", allowed_hosts=LOCAL)


def test_connection_goes_to_the_checked_address_not_a_new_lookup(
    server: LocalServer, contacted: list[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DNS rebinding: the name is resolved once, by the check, and the socket goes to that address.

    'data.example.test' cannot be resolved by the system (.test is reserved); only the guard's
    resolver knows it, so the request succeeds only because the connection is pinned.
    """
    port = server.server.server_address[1]
    monkeypatch.setattr(netguard, "_resolve", lambda host, p: [ipaddress.ip_address("127.0.0.1")])
    with guarded_get(f"http://data.example.test:{port}/host", allowed_hosts=LOCAL) as response:
        assert response.content == f"data.example.test:{port}".encode()  # Host header kept
    assert contacted == ["127.0.0.1"]


def test_download_streams_to_a_file(server: LocalServer, tmp_path: Path) -> None:
    server.files["/blob.bin"] = bytes(range(256)) * 400
    seen: list[int] = []
    size = download(f"{server.url}/blob.bin", tmp_path / "blob.bin", max_bytes=10**6, allowed_hosts=LOCAL,
                    chunk_size=4096, on_progress=lambda done, total: seen.append(done))
    assert size == 102_400 and (tmp_path / "blob.bin").read_bytes() == server.files["/blob.bin"]
    assert seen[-1] == 102_400 and len(seen) > 1


def test_download_refuses_files_over_the_limit(server: LocalServer, tmp_path: Path) -> None:
    server.files["/big.bin"] = b"x" * 5000
    with pytest.raises(ValueError, match=r"is 0.0 MB; the limit is 0.0 MB"):
        download(f"{server.url}/big.bin", tmp_path / "big.bin", max_bytes=4000, allowed_hosts=LOCAL)
    with pytest.raises(ValueError, match="is larger than"):
        download(f"{server.url}/unsized", tmp_path / "unsized.bin", max_bytes=4000, allowed_hosts=LOCAL)
    assert not list(tmp_path.iterdir())  # partial files are removed


def test_download_reports_http_errors(server: LocalServer, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="the server answered HTTP 404"):
        download(f"{server.url}/missing.nc", tmp_path / "missing.nc", max_bytes=1000, allowed_hosts=LOCAL)
