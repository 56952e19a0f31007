"""HTTP(S) file servers and OPeNDAP servers, read-only, every request through the URL guard.

``config``: ``url`` (the base address that is the space's root, e.g. ``https://data.example.org/pub/``
or an OPeNDAP server's ``https://host/thredds/dodsC/``); ``files`` (optional list of paths relative
to ``url`` to offer when the server has no HTML directory index). Folders are read from the
server's HTML index pages (Apache/nginx autoindex, pydap, THREDDS HTML): links below the current
address become entries. ``credentials``: optional ``username``/``password`` (HTTP basic) or
``token`` (bearer).

For kind ``opendap`` the entries are datasets, opened remotely by the data-access blocks (only the
selected slices are read), so :meth:`open` of a whole dataset is refused.
"""

from __future__ import annotations

import re
from email.utils import parsedate_to_datetime
from html import unescape
from pathlib import PurePosixPath
from typing import IO, Any
from urllib.parse import quote, unquote, urljoin, urlsplit

import requests

from apps.dataspaces.connectors.base import Connector, ConnectorError, Entry, NotFound, guess_media_type
from blocks import netguard

TIMEOUT_S = 30.0
MAX_INDEX_BYTES = 5_000_000
OPENDAP_SUFFIXES = (
    ".html",
    ".dds",
    ".das",
    ".dmr",
    ".info",
    ".ascii",
    ".dods",
    ".dap",
    ".nc4",
    ".ver",
    ".help",
    ".rdf",
    ".json",
    ".csv",
    ".asc",
)
_LINK = re.compile(r"""<a\s[^>]*?href\s*=\s*["']([^"'#?]+)["']""", re.IGNORECASE)


class HTTPConnector(Connector):
    kind = "http"
    writable = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        url = str(self.config.get("url") or "").strip()
        if not url:
            raise ConnectorError(f"data space {self.name!r} has no URL configured")
        self.base = url if url.endswith("/") else url + "/"
        self._session: requests.Session | None = None

    @property
    def session(self) -> requests.Session:
        if self._session is None:
            try:
                netguard.check_url(self.base)
            except netguard.UnsafeURL as error:
                raise ConnectorError(f"data space {self.name!r}: {error}") from None
            self._session = netguard.guarded_session()
        return self._session

    @property
    def headers(self) -> dict[str, str]:
        token = self.credentials.get("token")
        return {"Authorization": f"Bearer {token}"} if token else {}

    @property
    def auth(self) -> tuple[str, str] | None:
        user = self.credentials.get("username")
        return (str(user), str(self.credentials.get("password") or "")) if user else None

    def url_of(self, path: str) -> str:
        """The absolute URL of ``path`` in this space (what the data-access blocks fetch)."""
        return urljoin(self.base, quote(self.clean(path)))

    def _request(self, method: str, url: str, *, stream: bool = False) -> requests.Response:
        try:
            netguard.check_url(url)
            response = self.session.request(
                method,
                url,
                headers=self.headers,
                auth=self.auth,
                stream=stream,
                timeout=TIMEOUT_S,
                allow_redirects=True,
            )
        except netguard.UnsafeURL as error:
            raise ConnectorError(f"data space {self.name!r}: {error}") from None
        except requests.RequestException as error:
            raise ConnectorError(
                f"data space {self.name!r}: cannot reach {urlsplit(url).netloc} ({type(error).__name__})",
                permanent=False,
            ) from None
        if response.status_code == 404:
            response.close()
            raise NotFound(f"{self._relative(url)!r} does not exist in space {self.name!r}")
        if response.status_code in (401, 403):
            response.close()
            raise ConnectorError(
                f"data space {self.name!r}: the server refused access (HTTP {response.status_code})"
            )
        if response.status_code >= 400:
            response.close()
            raise ConnectorError(
                f"data space {self.name!r}: the server answered HTTP {response.status_code}",
                permanent=response.status_code < 500,
            )
        return response

    def _relative(self, url: str) -> str:
        return unquote(url[len(self.base) :]) if url.startswith(self.base) else url

    def _index_links(self, folder_url: str) -> list[str]:
        response = self._request("GET", folder_url, stream=True)
        try:
            body = response.raw.read(MAX_INDEX_BYTES, decode_content=True)
        finally:
            response.close()
        text = body.decode(response.encoding or "utf-8", errors="replace")
        links: list[str] = []
        for href in _LINK.findall(text):
            target = urljoin(folder_url, unescape(href))
            if not target.startswith(folder_url) or target == folder_url:
                continue  # parent folder, sort links, other sites
            rest = target[len(folder_url) :]
            if "/" in rest.rstrip("/"):
                continue
            if target not in links:
                links.append(target)
        return links

    def list(self, path: str = "") -> list[Entry]:
        relative = self.clean(path)
        listed = self.config.get("files")
        if listed:
            return _entries_from_names([self.clean(str(name)) for name in listed], relative, self)
        folder_url = self.base + (quote(relative) + "/" if relative else "")
        entries = []
        for link in self._index_links(folder_url):
            name = unquote(link[len(folder_url) :]).rstrip("/")
            if not name or name.startswith(".") or self._skip(name):
                continue
            is_dir = link.endswith("/")
            entries.append(
                Entry(
                    path=f"{relative}/{name}".lstrip("/"),
                    name=name,
                    is_dir=is_dir,
                    media_type=None if is_dir else guess_media_type(name),
                    extra={} if is_dir else {"href": link},
                )
            )
        return sorted(entries, key=lambda entry: (not entry.is_dir, entry.name.lower()))

    def _skip(self, name: str) -> bool:
        return False

    def stat(self, path: str) -> Entry:
        relative = self.clean(path)
        if not relative:
            return Entry(path="", name="", is_dir=True)
        url = self.url_of(relative)
        response = self._request("HEAD", url)
        response.close()
        length = response.headers.get("Content-Length")
        modified = response.headers.get("Last-Modified")
        name = PurePosixPath(relative).name
        try:
            when = parsedate_to_datetime(modified) if modified else None
        except (TypeError, ValueError):
            when = None
        return Entry(
            path=relative,
            name=name,
            is_dir=False,
            size=int(length) if length and length.isdigit() else None,
            modified=when,
            media_type=guess_media_type(name) or response.headers.get("Content-Type"),
            extra={"href": url},
        )

    def open(self, path: str) -> IO[bytes]:
        response = self._request("GET", self.url_of(path), stream=True)
        response.raw.decode_content = True
        return response.raw


class OPeNDAPConnector(HTTPConnector):
    """An OPeNDAP server (THREDDS ``dodsC``, Hyrax, pydap): its HTML catalogue lists datasets, each
    opened remotely through the URL guard by the data-access blocks."""

    kind = "opendap"

    def _skip(self, name: str) -> bool:
        return name.lower().endswith(OPENDAP_SUFFIXES)

    def stat(self, path: str) -> Entry:
        relative = self.clean(path)
        if not relative:
            return Entry(path="", name="", is_dir=True)
        url = self.url_of(relative)
        response = self._request("GET", url + ".das", stream=True)
        response.close()
        name = PurePosixPath(relative).name
        return Entry(
            path=relative,
            name=name,
            is_dir=False,
            media_type="application/x-netcdf",
            extra={"href": url, "opendap": True},
        )

    def open(self, path: str) -> IO[bytes]:
        raise ConnectorError(
            f"{path!r} in space {self.name!r} is an OPeNDAP dataset: it is read remotely, "
            "slice by slice, not downloaded whole"
        )


def _entries_from_names(names: list[str], folder: str, connector: HTTPConnector) -> list[Entry]:
    prefix = f"{folder}/" if folder else ""
    seen: dict[str, Entry] = {}
    for name in names:
        if not name.startswith(prefix):
            continue
        rest = name[len(prefix) :]
        head, _, tail = rest.partition("/")
        if tail:
            seen.setdefault(head, Entry(path=prefix + head, name=head, is_dir=True))
        elif head:
            seen[head] = Entry(
                path=name,
                name=head,
                is_dir=False,
                media_type=guess_media_type(head),
                extra={"href": connector.url_of(name)},
            )
    if folder and not seen:
        raise NotFound(f"{folder!r} is not a folder in space {connector.name!r}")
    return sorted(seen.values(), key=lambda entry: (not entry.is_dir, entry.name.lower()))
