"""Guard against server-side request forgery (SSRF) when a block fetches a URL a user typed.

A pipeline parameter may name a URL, and the worker that fetches it sits inside the deployment's
network: next to the database, the broker, the cloud metadata service (169.254.169.254). This module
lets a block fetch public http(s) URLs and nothing else:

* :func:`check_url` refuses anything but ``http``/``https`` and resolves the host name, refusing it
  when ANY of its addresses (A and AAAA records) is not globally routable: loopback, private
  (RFC 1918, IPv6 ULA), link-local (including the metadata address), unspecified, multicast,
  reserved, shared CGNAT space (100.64/10), documentation, benchmarking, deprecated (IPv6 site-local
  fec0::/10, 6to4 relays) or any other range of the IANA special-purpose registries, including such
  addresses written as IPv4-mapped, 6to4, Teredo or NAT64 IPv6 addresses.
* :func:`guarded_session` returns a ``requests`` session whose transport checks every request it
  sends (so redirects followed by whatever library uses the session are checked too) and connects to
  the address that was checked, not to whatever a second DNS lookup returns: a host name that
  resolves to a public address during the check and to 127.0.0.1 a moment later (DNS rebinding) still
  reaches the public address. TLS certificates are verified against the host name as usual.
  Environment proxies are ignored (a proxy would make the connection somewhere else).
* :func:`guarded_get` follows up to :data:`MAX_REDIRECTS` redirects itself, checking each ``Location``
  before connecting; :func:`download` streams a response to a file with a size limit and an overall
  deadline (``ILIAD_DOWNLOAD_DEADLINE_S``, default 30 minutes) that holds however slowly the server
  trickles its bytes, and calls a ``check_interrupt`` callback (cancel, walltime) every half second.
* :func:`pinned_httpx_transport` does the same for httpx clients (WebDAV spaces), and
  :func:`pin_pool_manager` for a urllib3 pool manager such as botocore's (S3 spaces with an
  ``endpoint_url``): the name is resolved once, by the check, and the socket goes to that address.
* :class:`GuardedWSGIProxy` is a WSGI application that forwards every request to one server through
  :func:`guarded_get`, each exchange under the same deadline. Client libraries that accept a WSGI
  ``application`` instead of making HTTP requests themselves (pydap, hence xarray's ``pydap``
  engine) are guarded by passing one: pydap 3.5 builds its own ``requests`` session and copies
  nothing but the authorization header from a session it is given, so a guarded *session* would NOT
  protect it.

Hosts (names or IP literals, or networks such as ``10.1.0.0/16``) listed in ``allowed_hosts`` or in
the environment variable ``ILIAD_URL_ALLOWED_HOSTS`` (comma separated) are exempt, for a deployment
that deliberately serves data from an internal THREDDS or ERDDAP server.

Django-free: blocks import it on workers.
"""

from __future__ import annotations

import ipaddress
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
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
DOWNLOAD_DEADLINE_ENV = "ILIAD_DOWNLOAD_DEADLINE_S"
DEFAULT_DOWNLOAD_DEADLINE_S = 1800.0
POLL_INTERVAL_S = 0.5
"""How long the caller's thread waits at most for the next piece of a download before it looks at
the deadline and calls ``check_interrupt`` again."""
REDIRECT_STATUSES = (301, 302, 303, 307, 308)

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052 well-known prefix

_SPECIAL_PURPOSE: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str | None], ...] = tuple(
    (ipaddress.ip_network(network), reason) for network, reason in (
        # IANA IPv4 Special-Purpose Address Registry (the first matching row wins)
        ("0.0.0.0/32", "the unspecified address"),
        ("0.0.0.0/8", "a 'this network' address (0.0.0.0/8)"),
        ("10.0.0.0/8", "a private network address"),
        ("100.64.0.0/10", "a carrier-grade NAT address (100.64.0.0/10)"),
        ("127.0.0.0/8", "a loopback address"),
        ("169.254.0.0/16", "a link-local address (this includes cloud metadata services)"),
        ("172.16.0.0/12", "a private network address"),
        ("192.0.0.0/24", "an IETF protocol assignment (192.0.0.0/24)"),
        ("192.0.2.0/24", "a documentation address (192.0.2.0/24)"),
        ("192.88.99.0/24", "a deprecated 6to4 relay anycast address (192.88.99.0/24)"),
        ("192.168.0.0/16", "a private network address"),
        ("198.18.0.0/15", "a benchmarking address (198.18.0.0/15)"),
        ("198.51.100.0/24", "a documentation address (198.51.100.0/24)"),
        ("203.0.113.0/24", "a documentation address (203.0.113.0/24)"),
        ("224.0.0.0/4", "a multicast address"),
        ("255.255.255.255/32", "the broadcast address"),
        ("240.0.0.0/4", "a reserved address"),
        # IANA IPv6 Special-Purpose Address Registry
        ("::/128", "the unspecified address"),
        ("::1/128", "a loopback address"),
        ("::ffff:0:0/96", "an IPv4-mapped address (::ffff:0:0/96)"),
        ("64:ff9b::/96", None),  # NAT64 (DNS64 on IPv6-only networks): its IPv4 address was checked
        ("64:ff9b:1::/48", "a local-use NAT64 address (64:ff9b:1::/48)"),
        ("100::/64", "a discard-only address (100::/64)"),
        # 2001::/23 is not globally reachable except for these assignments
        ("2001:1::1/128", None), ("2001:1::2/128", None), ("2001:1::3/128", None),
        ("2001:3::/32", None), ("2001:4:112::/48", None), ("2001:20::/28", None), ("2001:30::/28", None),
        ("2001::/32", "a Teredo tunnel address (2001::/32)"),
        ("2001:db8::/32", "a documentation address (2001:db8::/32)"),
        ("2001::/23", "an IETF protocol assignment (2001::/23)"),
        ("3fff::/20", "a documentation address (3fff::/20)"),
        ("5f00::/16", "a segment routing (SRv6) address (5f00::/16)"),
        ("fc00::/7", "a private network address"),
        ("fe80::/10", "a link-local address"),
        ("fec0::/10", "a deprecated site-local address (fec0::/10)"),
        ("ff00::/8", "a multicast address"),
    )
)
"""Ranges of the IANA special-purpose registries, each with why it is refused, or None for the few
assignments inside a refused range that are globally reachable (allowed outright). Listed explicitly
because Python's ``is_global`` lags the registries (it counts fec0::/10, 3fff::/20 and 64:ff9b:1::/48
as global)."""


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
    """Why connecting to ``address`` is refused (e.g. 'a loopback address'), or None when it is public.

    Deny unless global: an address of a special-purpose range (:data:`_SPECIAL_PURPOSE`) or one
    Python does not count as globally reachable is refused; an IPv6 address that stands for an IPv4
    address (mapped, 6to4, Teredo, NAT64) is refused when that IPv4 address would be.
    """
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            reason = unsafe_reason(embedded)
            if reason is not None:
                return f"{reason} ({embedded}) written as an IPv6 address"
    for network, reason in _SPECIAL_PURPOSE:
        if address.version == network.version and address in network:
            return reason
    checks = (
        ("is_unspecified", "the unspecified address"),
        ("is_loopback", "a loopback address"),
        ("is_link_local", "a link-local address"),
        ("is_multicast", "a multicast address"),
        ("is_reserved", "a reserved address"),
        ("is_private", "a private network address"),
    )
    for attribute, reason in checks:
        if getattr(address, attribute):
            return reason
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

class _Connections:
    """The sockets one exchange reads from, so that another thread can cut them off.

    A thread that makes a request for a :class:`_TimedExchange` sets itself as ``_exchange.connections``;
    the pinned pool and connection classes hand it the socket of every connection the request uses.
    The sockets themselves are kept: http.client drops a connection's socket once the response owns it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._cut = False

    def add(self, sock: socket.socket | None) -> None:
        """Remember ``sock``; one that arrives after the cut is shut down at once."""
        if sock is None:
            return
        with self._lock:
            self._sockets.append(sock)
            cut = self._cut
        if cut:
            _shut_down(sock)

    def cut(self) -> None:
        """Shut down every socket, so that a thread blocked reading one returns at once."""
        with self._lock:
            self._cut = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut_down(sock)


def _shut_down(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed


_exchange = threading.local()


def _register(connection: Any) -> None:
    connections = getattr(_exchange, "connections", None)
    if connections is not None:
        connections.add(connection.sock)


def _pinned_classes(pins: Mapping[str, str]) -> dict[str, type[HTTPConnectionPool]]:
    """Connection pool classes whose connections go to ``pins[host]`` instead of resolving host.

    They also register each connection a request uses with the calling thread's :class:`_Connections`.
    """

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

    def connect_then_check(base: type[HTTPConnection]) -> Callable[[Any], None]:
        def connect(self: Any) -> None:
            base.connect(self)
            _register(self)
        return connect

    def make_request(self: Any, conn: Any, *args: Any, **kwargs: Any) -> Any:
        _register(conn)  # a reused connection; a new one registers when it connects, inside the request
        return HTTPConnectionPool._make_request(self, conn, *args, **kwargs)

    http_connection = type("PinnedHTTPConnection", (HTTPConnection,),
                           {"_new_conn": new_conn, "connect": connect_then_check(HTTPConnection)})
    https_connection = type("PinnedHTTPSConnection", (HTTPSConnection,),
                            {"_new_conn": new_conn, "connect": connect_then_check(HTTPSConnection)})
    return {
        "http": type("PinnedHTTPConnectionPool", (HTTPConnectionPool,),
                     {"ConnectionCls": http_connection, "_make_request": make_request}),
        "https": type("PinnedHTTPSConnectionPool", (HTTPSConnectionPool,),
                      {"ConnectionCls": https_connection, "_make_request": make_request}),
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


def pin_pool_manager(manager: Any, *, allowed_hosts: Iterable[str] = ()) -> Callable[[str], None]:
    """Make the urllib3 ``PoolManager`` ``manager`` (e.g. botocore's) connect only to addresses that
    were checked, as :func:`guarded_session` does for requests. Returns ``check(url)``: call it before
    each request (raises :class:`UnsafeURL`; pins the URL's host to its checked address). A host
    that was never checked cannot be connected to at all."""
    pins: dict[str, str] = {}
    manager.pool_classes_by_scheme = _pinned_classes(pins)
    manager.clear()  # pools made before pinning would still resolve for themselves
    allowed = tuple(allowed_hosts)

    def check(url: str) -> None:
        addresses = checked_addresses(url, allowed_hosts=allowed)
        _, host, _ = _split(url)
        pins[host] = str(addresses[0])

    return check


def pinned_httpx_transport(*, allowed_hosts: Iterable[str] = (), **options: Any) -> Any:
    """An httpx transport (``httpx.HTTPTransport(**options)``) that checks every request's URL and
    opens its connections to the address the check resolved, never to a second DNS answer; TLS
    still verifies the certificate against (and sends SNI for) the URL's host name."""
    import httpcore
    import httpx

    allowed = tuple(allowed_hosts)
    pins: dict[tuple[str, int], str] = {}

    class PinnedBackend(httpcore.SyncBackend):
        def connect_tcp(self, host: str, port: int, *args: Any, **kwargs: Any) -> Any:
            address = pins.get((host.lower().strip("[]").rstrip("."), port))
            if address is None:
                raise httpcore.ConnectError(f"refusing to connect to unchecked host {host!r}")
            return super().connect_tcp(address, port, *args, **kwargs)

    class PinnedTransport(httpx.HTTPTransport):
        def __init__(self) -> None:
            super().__init__(**options)
            self._pool._network_backend = PinnedBackend()

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            url = str(request.url)
            addresses = checked_addresses(url, allowed_hosts=allowed)
            _, host, port = _split(url)
            pins[(host, port)] = str(addresses[0])
            return super().handle_request(request)

    return PinnedTransport()


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


def download_deadline_s() -> float:
    """The overall time a download may take: ``ILIAD_DOWNLOAD_DEADLINE_S`` seconds, default 1800.

    Raises ValueError naming the variable when it is set to anything but a positive number.
    """
    text = os.environ.get(DOWNLOAD_DEADLINE_ENV, "").strip()
    if not text:
        return DEFAULT_DOWNLOAD_DEADLINE_S
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise ValueError(f"{DOWNLOAD_DEADLINE_ENV}={text!r} is not a positive number of seconds")
    return value


class _TimedExchange:
    """A streamed :func:`guarded_get` made on a helper thread and bounded by an overall deadline.

    The per-read ``timeout`` alone does not bound a download: a server that trickles a byte every
    few seconds never lets a read time out. Here the caller's thread waits at most
    :data:`POLL_INTERVAL_S` at a time for the next piece (headers or a chunk of the body); between
    waits it checks the deadline and calls ``check_interrupt``, which stops the exchange by raising.
    Leaving the ``with`` block early shuts the connection down, which ends the helper thread too.
    """

    def __init__(
        self, url: str, *, deadline_s: float, check_interrupt: Callable[[], object] | None, chunk_size: int,
        **get_options: Any,
    ) -> None:
        self.url = url
        self.deadline_s = deadline_s
        self._deadline = time.monotonic() + deadline_s
        self._check_interrupt = check_interrupt
        self._checked_at = float("-inf")
        self._chunk_size = chunk_size
        self._get_options = get_options
        self._items: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=4)
        self._connections = _Connections()
        self._stopped = threading.Event()
        self._finished = False
        self._response: requests.Response | None = None
        self._thread = threading.Thread(target=self._fetch, name=f"fetch {url}", daemon=True)

    def __enter__(self) -> _TimedExchange:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopped.set()
        if not self._finished:
            self._connections.cut()
        self._thread.join(timeout=2 * POLL_INTERVAL_S)
        if self._thread.is_alive():
            return  # closing a response blocks while another thread reads it; the socket is shut down
        responses = [self._response]
        while True:  # a response the helper handed over that was never taken
            try:
                kind, value = self._items.get_nowait()
            except queue.Empty:
                break
            if kind == "response":
                responses.append(value)
        for response in responses:
            if response is not None:
                response.close()

    def response(self) -> requests.Response:
        """The response, once its headers arrived (after redirects); raises what guarded_get raised."""
        _, self._response = self._next()
        return self._response

    def chunks(self) -> Iterator[bytes]:
        """The body, piece by piece."""
        while True:
            kind, chunk = self._next()
            if kind == "end":
                self._finished = True
                return
            yield chunk

    def _fetch(self) -> None:
        _exchange.connections = self._connections
        try:
            response = guarded_get(self.url, stream=True, **self._get_options)
            if not self._put("response", response):
                response.close()
                return
            for chunk in response.iter_content(chunk_size=self._chunk_size):
                if not self._put("chunk", chunk):
                    return
            self._put("end", None)
        except Exception as error:  # raised again in the caller's thread
            self._put("error", error)
        finally:
            _exchange.connections = None

    def _put(self, kind: str, value: Any) -> bool:
        while not self._stopped.is_set():
            try:
                self._items.put((kind, value), timeout=POLL_INTERVAL_S)
                return True
            except queue.Full:
                continue
        return False

    def _next(self) -> tuple[str, Any]:
        while True:
            now = time.monotonic()
            if self._check_interrupt is not None and now - self._checked_at >= POLL_INTERVAL_S:
                self._checked_at = now
                self._check_interrupt()
            remaining = self._deadline - now
            if remaining <= 0:
                raise ValueError(
                    f"{self.url!r} took longer than the download deadline of {self.deadline_s:g} s: the "
                    f"server sends too slowly. Try again later or ask for less data; an administrator can "
                    f"raise the deadline with {DOWNLOAD_DEADLINE_ENV}"
                )
            try:
                kind, value = self._items.get(timeout=min(POLL_INTERVAL_S, remaining))
            except queue.Empty:
                continue
            if kind == "error":
                raise value
            return kind, value


def download(
    url: str,
    destination: Path,
    *,
    max_bytes: int,
    allowed_hosts: Iterable[str] = (),
    timeout: float = DEFAULT_TIMEOUT_S,
    chunk_size: int = 1 << 20,
    on_progress: Any = None,
    deadline_s: float | None = None,
    check_interrupt: Callable[[], object] | None = None,
) -> int:
    """Stream ``url`` into ``destination`` (removed again on failure); return the number of bytes.

    Refuses (ValueError) a response larger than ``max_bytes``, by its Content-Length before reading
    or by counting while reading, and a download that takes longer than ``deadline_s`` seconds in
    all (default :func:`download_deadline_s`), however slowly the server trickles its bytes.
    ``timeout`` bounds each single wait for the server. ``on_progress(bytes_so_far, total_or_None)``
    is called per chunk; ``check_interrupt()`` at least every :data:`POLL_INTERVAL_S` seconds while
    the download runs, even when no byte arrives: it abandons the download by raising (for example
    ``StepContext.raise_if_cancelled``), and that exception propagates.
    """
    destination = Path(destination)
    deadline_s = download_deadline_s() if deadline_s is None else deadline_s
    written = 0
    try:
        with _TimedExchange(url, deadline_s=deadline_s, check_interrupt=check_interrupt,
                            chunk_size=chunk_size, allowed_hosts=allowed_hosts, timeout=timeout) as exchange:
            response = exchange.response()
            if response.status_code != 200:
                raise ValueError(
                    f"{url!r}: the server answered HTTP {response.status_code} {response.reason}"
                )
            declared = response.headers.get("Content-Length")
            total = int(declared) if declared and declared.isdigit() else None
            limit = f"the limit is {max_bytes / 1e6:,.1f} MB"
            if total is not None and total > max_bytes:
                raise ValueError(f"{url!r} is {total / 1e6:,.1f} MB; {limit}")
            with open(destination, "wb") as handle:
                for chunk in exchange.chunks():
                    written += len(chunk)
                    if written > max_bytes:
                        raise ValueError(f"{url!r} is larger than {max_bytes / 1e6:,.1f} MB; {limit}")
                    handle.write(chunk)
                    if on_progress is not None:
                        on_progress(written, total)
    except BaseException:
        destination.unlink(missing_ok=True)
        raise
    return written


HOP_BY_HOP_HEADERS = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
    "transfer-encoding", "upgrade", "content-encoding", "content-length",
})


class GuardedWSGIProxy:
    """A WSGI application answering each request by fetching it from ``base_url``'s server, guarded.

    ``GuardedWSGIProxy("https://host/thredds/dodsC/x")`` turns a request for ``/thredds/dodsC/x.dds``
    into ``guarded_get("https://host/thredds/dodsC/x.dds")`` (redirects checked, connection pinned)
    and returns the answer. Each response body is limited to ``max_bytes``, and each exchange to
    ``deadline_s`` seconds (default :func:`download_deadline_s`), with ``check_interrupt`` called
    while it waits, as :func:`download` does. An :class:`UnsafeURL`, a ValueError for a response over
    a limit, and whatever ``check_interrupt`` raises propagate to the caller of the application.
    """

    def __init__(
        self, base_url: str, *, allowed_hosts: Iterable[str] = (), max_bytes: int | None = None,
        timeout: float = DEFAULT_TIMEOUT_S, deadline_s: float | None = None,
        check_interrupt: Callable[[], object] | None = None,
    ) -> None:
        check_url(base_url, allowed_hosts=allowed_hosts)
        parts = urlsplit(base_url)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.allowed_hosts = tuple(allowed_hosts)
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.deadline_s = download_deadline_s() if deadline_s is None else deadline_s
        self.check_interrupt = check_interrupt
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
        with _TimedExchange(url, deadline_s=self.deadline_s, check_interrupt=self.check_interrupt,
                            chunk_size=1 << 20, allowed_hosts=self.allowed_hosts, timeout=self.timeout,
                            headers=headers, session=self.session) as exchange:
            response = exchange.response()
            body = bytearray()
            for chunk in exchange.chunks():
                body += chunk
                if self.max_bytes is not None and len(body) > self.max_bytes:
                    raise ValueError(f"{url!r}: the response is larger than {self.max_bytes / 1e6:,.1f} MB")
        kept = [(name, value) for name, value in response.headers.items()
                if name.lower() not in HOP_BY_HOP_HEADERS]
        start_response(f"{response.status_code} {response.reason or ''}".strip(),
                       [*kept, ("Content-Length", str(len(body)))])
        return [bytes(body)]
