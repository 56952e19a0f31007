"""WebDAV drives (Nextcloud, ownCloud, B2DROP, SharePoint-style research drives) through webdav4.

``config``: ``url`` (the folder that is the space's root, e.g.
``https://b2drop.eudat.eu/remote.php/webdav/iliad``), ``read_only``. ``credentials``: ``username``
and ``password`` (or an app token as password). Every request is checked by the URL guard first.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

import httpx

from apps.dataspaces.connectors.base import Connector, ConnectorError, Entry, NotFound, guess_media_type
from blocks import netguard

TIMEOUT_S = 30.0


class WebDAVConnector(Connector):
    kind = "webdav"
    writable = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.url = str(self.config.get("url") or "").strip().rstrip("/")
        if not self.url:
            raise ConnectorError(f"data space {self.name!r} has no WebDAV URL configured")
        self._client = None

    @property
    def client(self):
        if self._client is None:
            from webdav4.client import Client

            try:
                netguard.check_url(self.url)
            except netguard.UnsafeURL as error:
                raise ConnectorError(f"data space {self.name!r}: {error}") from None
            user, password = self.credentials.get("username"), self.credentials.get("password")
            auth = (str(user), str(password or "")) if user else None
            http = httpx.Client(
                auth=auth,
                timeout=TIMEOUT_S,
                trust_env=False,
                follow_redirects=False,
                transport=_GuardedTransport(),
            )
            self._client = Client(self.url, http_client=http, retry=False)
        return self._client

    def _error(self, error: Exception, what: str) -> ConnectorError:
        from webdav4.client import ResourceNotFound

        if isinstance(error, ConnectorError):
            return error
        if isinstance(error, ResourceNotFound):
            return NotFound(f"{what} does not exist in space {self.name!r}")
        if isinstance(error, netguard.UnsafeURL):
            return ConnectorError(f"data space {self.name!r}: {error}")
        response = getattr(error, "response", None)
        status = getattr(response, "status_code", None)
        if status in (401, 403):
            return ConnectorError(
                f"{what} in space {self.name!r}: the server refused the credentials or "
                f"access (HTTP {status})",
                permanent=True,
            )
        if status == 404:
            return NotFound(f"{what} does not exist in space {self.name!r}")
        if status == 507:
            return ConnectorError(
                f"{what} in space {self.name!r}: the space is full (HTTP 507)", permanent=False
            )
        if isinstance(error, httpx.TransportError) or (status is not None and status >= 500):
            return ConnectorError(
                f"{what} in space {self.name!r}: cannot reach the WebDAV server "
                f"({status or type(error).__name__})",
                permanent=False,
            )
        return ConnectorError(f"{what} in space {self.name!r}: {error}")

    def _entry(self, info: dict[str, Any], relative_base: str = "") -> Entry:
        name = str(info.get("display_name") or info["name"].rstrip("/").rsplit("/", 1)[-1])
        relative = str(info["name"]).strip("/")
        is_dir = info.get("type") == "directory"
        return Entry(
            path=relative,
            name=relative.rsplit("/", 1)[-1] or name,
            is_dir=is_dir,
            size=None if is_dir else info.get("content_length"),
            modified=info.get("modified"),
            media_type=None if is_dir else (guess_media_type(relative) or info.get("content_type")),
        )

    def list(self, path: str = "") -> list[Entry]:
        relative = self.clean(path)
        try:
            if relative and not self.client.isdir(relative):
                if self.client.exists(relative):
                    raise ConnectorError(f"{relative!r} in space {self.name!r} is a file, not a folder")
                raise NotFound(f"{relative!r} does not exist in space {self.name!r}")
            infos = self.client.ls(relative, detail=True)
        except Exception as error:  # noqa: BLE001
            raise self._error(error, repr(relative or "/")) from None
        entries = [self._entry(info) for info in infos if isinstance(info, dict)]
        entries = [entry for entry in entries if entry.path != relative and not entry.name.startswith(".")]
        return sorted(entries, key=lambda entry: (not entry.is_dir, entry.name.lower()))

    def stat(self, path: str) -> Entry:
        relative = self.clean(path)
        if not relative:
            return Entry(path="", name="", is_dir=True)
        try:
            return self._entry(self.client.info(relative))
        except Exception as error:  # noqa: BLE001
            raise self._error(error, repr(relative)) from None

    def open(self, path: str) -> IO[bytes]:
        relative = self.clean(path)
        entry = self.stat(relative)
        if entry.is_dir:
            raise ConnectorError(f"{relative!r} in space {self.name!r} is a folder, not a file")
        try:
            return self.client.open(relative, mode="rb")
        except Exception as error:  # noqa: BLE001
            raise self._error(error, repr(relative)) from None

    def put(self, path: str, local_file: Path) -> Entry:
        if self.read_only:
            return super().put(path, local_file)
        relative = self.clean(path)
        if not relative:
            raise ConnectorError(f"give a file name to write in space {self.name!r}")
        try:
            parts = relative.split("/")[:-1]
            for depth in range(1, len(parts) + 1):
                folder = "/".join(parts[:depth])
                if not self.client.exists(folder):
                    self.client.mkdir(folder)
            self.client.upload_file(str(local_file), relative, overwrite=True)
        except Exception as error:  # noqa: BLE001
            raise self._error(error, f"writing {relative!r}") from None
        return self.stat(relative)


def _GuardedTransport() -> httpx.BaseTransport:  # noqa: N802 - was a class; callers are unchanged
    """An httpx transport that checks every request's URL with the URL guard and connects to the
    address the check resolved (no second DNS lookup: no DNS rebinding)."""
    return netguard.pinned_httpx_transport(retries=0)
