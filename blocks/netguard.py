"""Guard against server-side request forgery (SSRF) when a block fetches a URL a user typed.

A pipeline parameter may name a URL, and the worker that fetches it sits inside the deployment's
network: next to the database, the broker, the cloud metadata service (169.254.169.254). This module
lets a block fetch public http(s) URLs and nothing else:

* :func:`check_url` refuses anything but ``http``/``https`` and resolves the host name, refusing it
  when ANY of its addresses (A and AAAA records) is loopback, private (RFC 1918, IPv6 ULA), link-local
  (including the metadata address), unspecified, multicast, reserved, shared CGNAT space (100.64/10),
  or otherwise not globally routable, including those addresses written as IPv4-mapped, 6to4, Teredo
  or NAT64 IPv6 addresses.
* :func:`guarded_session` returns a ``requests`` session whose transport checks every request it
  sends (so redirects followed by whatever library uses the session are checked too) and connects to
  the address that was checked, not to whatever a second DNS lookup returns: a host name that
  resolves to a public address during the check and to 127.0.0.1 a moment later (DNS rebinding) still
  reaches the public address. TLS certificates are verified against the host name as usual.
  Environment proxies are ignored (a proxy would make the connection somewhere else).
* :func:`guarded_get` follows up to :data:`MAX_REDIRECTS` redirects itself, checking each ``Location``
  before connecting; :func:`download` streams a response to a file with a size limit.
* :class:`GuardedWSGIProxy` is a WSGI application that forwards every request to one server through
  :func:`guarded_get`. Client libraries that accept a WSGI ``application`` instead of making HTTP
  requests themselves (pydap, hence xarray's ``pydap`` engine) are guarded by passing one: pydap
  3.5 builds its own ``requests`` session and copies nothing but the authorization header from a
  session it is given, so a guarded *session* would NOT protect it.

Hosts (names or IP literals, or networks such as ``10.1.0.0/16``) listed in ``allowed_hosts`` or in
the environment variable ``ILIAD_URL_ALLOWED_HOSTS`` (comma separated) are exempt, for a deployment
that deliberately serves data from an internal THREDDS or ERDDAP server.

Django-free: blocks import it on workers.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util import connection as urllib3_connection

ALLOWED_HOSTS_ENV = "ILIAD_URL_ALLOWED_HOSTS"
ALLOWED_SCHEMES = ("http", "https")
MAX_REDIRECTS = 5
DEFAULT_TIMEOUT_S = 30.0
REDIRECT_STATUSES = (301, 302, 303, 307, 308)

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT, RFC 6598
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052 well-known prefix


class UnsafeURL(ValueError):
    """The URL may not be fetched; the message says why."""


def _allowed_entries(allowed_hosts: Iterable[str]) -> list[str]:
    entries = [str(entry) for entry in allowed_hosts]
    entries += os.environ.get(ALLOWED_HOSTS_ENV, "").split(",")
    return [entry.strip().lower().strip("[]") for entry in entries if entry.strip()]


def _host_allowed(host: str, addresses: Iterable[Address], entries: list[str]) -> bool:
    """Whether the host name, or one of the given addresses, is in the allow-list."""
    if host in entries:
        return True
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            continue  # a host name
    return any(address in network for address in addresses for network in networks
               if address.version == network.version)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, 6to4, Teredo, NAT64), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def unsafe_reason(address: Address) -> str | None:
    """Why connecting to ``address`` is refused (e.g. 'a loopback address'), or None when it is public."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            reason = unsafe_reason(embedded)
            if reason is not None:
                return f"{reason} ({embedded}) written as an IPv6 address"
    checks = (
        ("is_unspecified", "the unspecified address"),
        ("is_loopback", "a loopback address"),
        ("is_link_local", "a link-local address (this includes cloud metadata services)"),
        ("is_multicast", "a multicast address"),
        ("is_reserved", "a reserved address"),
        ("is_private", "a private network address"),
    )
    for attribute, reason in checks:
        if getattr(address, attribute):
            return reason
    if isinstance(address, ipaddress.IPv4Address) and address in _SHARED_ADDRESS_SPACE:
        return "a carrier-grade NAT address (100.64.0.0/10)"
    if not address.is_global:
        return "not a public internet address"
    return None


def _resolve(host: str, port: int) -> list[Address]:
    """Every address ``host`` resolves to (A and AAAA records); tests replace this function."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise UnsafeURL(f"cannot resolve host {host!r}: {error}") from None
    addresses: list[Address] = []
    for family, _, _, _, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UnsafeURL(f"host {host!r} has no IPv4 or IPv6 address")
    return addresses


def _split(url: str) -> tuple[str, str, int]:
    """Scheme, normalised host and port of a URL, or UnsafeURL."""
    try:
        parts = urlsplit(str(url))
        port = parts.port
    except ValueError as error:
        raise UnsafeURL(f"{url!r} is not a valid URL: {error}") from None
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        shown = f"{scheme!r}" if scheme else "no scheme"
        raise UnsafeURL(f"{url!r}: only http and https URLs may be fetched, this one has {shown}")
    host = (parts.hostname or "").lower().rstrip(".")
    if not host:
        raise UnsafeURL(f"{url!r} has no host name")
    return scheme, host, port or (443 if scheme == "https" else 80)


def checked_addresses(url: str, *, allowed_hosts: Iterable[str] = ()) -> list[Address]:
    """The addresses ``url``'s host resolves to, all of them safe (or the host allow-listed).

    Raises :class:`UnsafeURL` otherwise. :func:`check_url` is the same without the return value.
    """
    _, host, port = _split(url)
    entries = _allowed_entries(allowed_hosts)
    try:
        literal: Address | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is None and host in entries:
        return _resolve(host, port)
    addresses = [literal] if literal is not None else _resolve(host, port)
    if _host_allowed(host, addresses, entries):
        return addresses
    for address in addresses:
        reason = unsafe_reason(address)
        if reason is not None:
            where = f"{host!r} resolves to {address}, " if literal is None else f"{address} is "
            raise UnsafeURL(
                f"{url!r} is refused: {where}{reason}. Only public internet addresses may be fetched; "
                f"an administrator can allow a host with {ALLOWED_HOSTS_ENV}"
            )
    return addresses


def check_url(url: str, *, allowed_hosts: Iterable[str] = ()) -> None:
    """Raise :class:`UnsafeURL` unless ``url`` is http(s) and its host is public or allow-listed."""
    checked_addresses(url, allowed_hosts=allowed_hosts)


# ---- pinned connections ---------------------------------------------------------------------------

def _pinned_classes(pins: Mapping[str, str]) -> dict[str, type[HTTPConnectionPool]]:
    """Connection pool classes whose connections go to ``pins[host]`` instead of resolving host."""

    def new_conn(self: Any) -> socket.socket:
        host = str(self.host).lower().strip("[]").rstrip(".")
        address = pins.get(host)
        if address is None:  # every request goes through GuardedAdapter.send, which pins its host
            raise NewConnectionError(self, f"refusing to connect to unchecked host {host!r}")
        try:
            return urllib3_connection.create_connection(
                (address, self.port), self.timeout, source_address=self.source_address,
                socket_options=self.socket_options,
            )
        except TimeoutError as error:
            raise ConnectTimeoutError(self, f"connection to {host} ({address}) timed out") from error
        except OSError as error:
            raise NewConnectionError(self, f"failed to connect to {host} ({address}): {error}") from error

    http_connection = type("PinnedHTTPConnection", (HTTPConnection,), {"_new_conn": new_conn})
    https_connection = type("PinnedHTTPSConnection", (HTTPSConnection,), {"_new_conn": new_conn})
    return {
        "http": type("PinnedHTTPConnectionPool", (HTTPConnectionPool,), {"ConnectionCls": http_connection}),
        "https": type("PinnedHTTPSConnectionPool", (HTTPSConnectionPool,),
                      {"ConnectionCls": https_connection}),
    }


class GuardedAdapter(HTTPAdapter):
    """A transport that checks each request's URL and connects to the checked address."""

    def __init__(self, allowed_hosts: Iterable[str] = (), **kwargs: Any) -> None:
        self.allowed_hosts = tuple(allowed_hosts)
        self._pins: dict[str, str] = {}
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _pinned_classes(self._pins)

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        addresses = checked_addresses(str(request.url), allowed_hosts=self.allowed_hosts)
        _, host, _ = _split(str(request.url))
        self._pins[host] = str(addresses[0])
        if kwargs.get("proxies"):
            kwargs["proxies"] = {}
        return super().send(request, *args, **kwargs)


def guarded_session(*, allowed_hosts: Iterable[str] = ()) -> requests.Session:
    """A requests session that only reaches public addresses (see the module description)."""
    session = requests.Session()
    session.trust_env = False  # no proxies or .netrc from the worker's environment
    session.max_redirects = MAX_REDIRECTS
    adapter = GuardedAdapter(allowed_hosts)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def guarded_get(
    url: str,
    *,
    allowed_hosts: Iterable[str] = (),
    timeout: float = DEFAULT_TIMEOUT_S,
    stream: bool = False,
    headers: Mapping[str, str] | None = None,
    max_redirects: int = MAX_REDIRECTS,
    session: requests.Session | None = None,
) -> requests.Response:
    """GET ``url``, following at most ``max_redirects`` redirects, each checked before connecting.

    Raises :class:`UnsafeURL` when the URL or a redirect target is refused or there are too many
    redirects; network errors are ``requests`` exceptions. The caller closes the response.
    """
    own_session = session is None
    session = session or guarded_session(allowed_hosts=allowed_hosts)
    try:
        current = url
        for _ in range(max_redirects + 1):
            check_url(current, allowed_hosts=allowed_hosts)
            response = session.get(current, allow_redirects=False, timeout=timeout, stream=stream,
                                   headers=dict(headers or {}))
            location = response.headers.get("Location")
            if response.status_code not in REDIRECT_STATUSES or not location:
                return response
            response.close()
            current = urljoin(current, location)
        raise UnsafeURL(f"{url!r}: more than {max_redirects} redirects")
    finally:
        if own_session:
            session.close()


def download(
    url: str,
    destination: Path,
    *,
    max_bytes: int,
    allowed_hosts: Iterable[str] = (),
    timeout: float = DEFAULT_TIMEOUT_S,
    chunk_size: int = 1 << 20,
    on_progress: Any = None,
) -> int:
    """Stream ``url`` into ``destination`` (removed again on failure); return the number of bytes.

    Refuses (ValueError) a response larger than ``max_bytes``, by its Content-Length before reading
    or by counting while reading. ``on_progress(bytes_so_far, total_or_None)`` is called per chunk.
    """
    destination = Path(destination)
    response = guarded_get(url, allowed_hosts=allowed_hosts, timeout=timeout, stream=True)
    written = 0
    try:
        if response.status_code != 200:
            raise ValueError(f"{url!r}: the server answered HTTP {response.status_code} {response.reason}")
        declared = response.headers.get("Content-Length")
        total = int(declared) if declared and declared.isdigit() else None
        limit = f"the limit is {max_bytes / 1e6:,.1f} MB"
        if total is not None and total > max_bytes:
            raise ValueError(f"{url!r} is {total / 1e6:,.1f} MB; {limit}")
        with open(destination, "wb") as handle:
            for chunk in response.iter_content(chunk_size=chunk_size):
                written += len(chunk)
                if written > max_bytes:
                    raise ValueError(f"{url!r} is larger than {max_bytes / 1e6:,.1f} MB; {limit}")
                handle.write(chunk)
                if on_progress is not None:
                    on_progress(written, total)
    except BaseException:
        destination.unlink(missing_ok=True)
        raise
    finally:
        response.close()
    return written


HOP_BY_HOP_HEADERS = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
    "transfer-encoding", "upgrade", "content-encoding", "content-length",
})


class GuardedWSGIProxy:
    """A WSGI application answering each request by fetching it from ``base_url``'s server, guarded.

    ``GuardedWSGIProxy("https://host/thredds/dodsC/x")`` turns a request for ``/thredds/dodsC/x.dds``
    into ``guarded_get("https://host/thredds/dodsC/x.dds")`` (redirects checked, connection pinned)
    and returns the answer. Each response body is limited to ``max_bytes``. An :class:`UnsafeURL`
    propagates to the caller of the application.
    """

    def __init__(
        self, base_url: str, *, allowed_hosts: Iterable[str] = (), max_bytes: int | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        check_url(base_url, allowed_hosts=allowed_hosts)
        parts = urlsplit(base_url)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.allowed_hosts = tuple(allowed_hosts)
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.session = guarded_session(allowed_hosts=self.allowed_hosts)
        self.requested: list[str] = []

    def url_for(self, environ: Mapping[str, Any]) -> str:
        path = quote(str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", "")),
                     safe="/:@!$&'()*+,;=~")
        query = str(environ.get("QUERY_STRING", ""))
        return f"{self.origin}{path}" + (f"?{query}" if query else "")

    def __call__(self, environ: Mapping[str, Any], start_response: Any) -> list[bytes]:
        url = self.url_for(environ)
        self.requested.append(url)
        headers = {"Accept-Encoding": "gzip, deflate"}
        if environ.get("HTTP_AUTHORIZATION"):
            headers["Authorization"] = str(environ["HTTP_AUTHORIZATION"])
        response = guarded_get(url, allowed_hosts=self.allowed_hosts, timeout=self.timeout, stream=True,
                               headers=headers, session=self.session)
        try:
            body = bytearray()
            for chunk in response.iter_content(chunk_size=1 << 20):
                body += chunk
                if self.max_bytes is not None and len(body) > self.max_bytes:
                    raise ValueError(f"{url!r}: the response is larger than {self.max_bytes / 1e6:,.1f} MB")
        finally:
            response.close()
        kept = [(name, value) for name, value in response.headers.items()
                if name.lower() not in HOP_BY_HOP_HEADERS]
        start_response(f"{response.status_code} {response.reason or ''}".strip(),
                       [*kept, ("Content-Length", str(len(body)))])
        return [bytes(body)]
