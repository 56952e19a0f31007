"""The connector interface: how the portal lists, reads, writes and searches one data space.

A connector is built from a space's kind, name, non-secret ``config`` and decrypted ``credentials``
(:func:`apps.dataspaces.connectors.connector_for` does it for a ``DataSpace`` row). Nothing here
imports Django, so a worker can build a connector from plain values.

Paths are POSIX, relative to the space's root: ``""`` is the root, ``"demo/biscay_ocean.nc"`` a file.
Absolute paths, ``..`` and NUL bytes are refused with a permanent :class:`ConnectorError` before any
request is made (:func:`clean_path`). Every error a connector raises is a :class:`ConnectorError`
whose message names the space and the user's path, never a server path or a credential.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import IO, Any, ClassVar


class ConnectorError(Exception):
    """An operation on a data space failed. ``permanent`` when retrying cannot help (no such file,
    refused path, read-only space, wrong credentials); False when it may (server down, time-out,
    space full, throttled)."""

    def __init__(self, message: str, *, permanent: bool = True) -> None:
        super().__init__(message)
        self.permanent = permanent


class ReadOnly(ConnectorError):
    """The space cannot be written (HTTP, OPeNDAP, STAC, or a space configured read-only)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=True)


class NotFound(ConnectorError):
    """No file, folder or item at that path."""

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=True)


@dataclass
class Entry:
    """One file, folder, STAC item or asset of a space.

    ``path`` is relative to the space root (what :meth:`Connector.open` takes); ``size`` in bytes
    (None when unknown); ``modified`` aware UTC or None; ``media_type`` e.g. ``application/x-netcdf``
    (None when unknown); ``extra`` holds kind-specific facts (STAC: ``bbox``, ``datetime``,
    ``collection``, ``assets``; HTTP/STAC: ``href``).
    """

    path: str
    name: str
    is_dir: bool
    size: int | None = None
    modified: datetime | None = None
    media_type: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["modified"] = self.modified.isoformat() if self.modified else None
        return data


MEDIA_TYPES = {
    ".nc": "application/x-netcdf",
    ".nc4": "application/x-netcdf",
    ".netcdf": "application/x-netcdf",
    ".cdf": "application/x-netcdf",
    ".h5": "application/x-hdf5",
    ".hdf5": "application/x-hdf5",
    ".he5": "application/x-hdf5",
    ".zarr": "application/vnd+zarr",
    ".csv": "text/csv",
    ".tsv": "text/tab-separated-values",
    ".parquet": "application/vnd.apache.parquet",
    ".pq": "application/vnd.apache.parquet",
    ".json": "application/json",
    ".geojson": "application/geo+json",
    ".png": "image/png",
    ".html": "text/html",
    ".pdf": "application/pdf",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".gz": "application/gzip",
    ".zip": "application/zip",
}


def guess_media_type(name: str) -> str | None:
    """The media type of a file name from its suffix (``.csv.gz`` counts as CSV), or None."""
    lowered = name.lower()
    if lowered.endswith(".csv.gz"):
        return "text/csv"
    return MEDIA_TYPES.get(PurePosixPath(lowered).suffix)


def clean_path(path: str, *, space: str = "") -> str:
    """``path`` normalised (no leading/trailing slashes, no ``.`` parts), or a permanent
    ConnectorError when it is absolute, climbs out with ``..``, or holds a NUL byte or backslash."""
    text = "" if path is None else str(path)
    where = f" in space {space!r}" if space else ""
    if len(text) > MAX_PATH_CHARS:
        raise ConnectorError(f"path{where} is {len(text)} characters long; at most {MAX_PATH_CHARS}")
    if "\x00" in text:
        raise ConnectorError(f"path {text!r}{where} contains a NUL byte")
    if "\\" in text:
        raise ConnectorError(f"path {text!r}{where} contains a backslash; use '/' between folders")
    if text.startswith(("/", "~")) or (len(text) > 1 and text[1] == ":"):
        raise ConnectorError(f"path {text!r}{where} is absolute; give a path relative to the space")
    parts = [part for part in PurePosixPath(text).parts if part not in ("", ".")]
    if ".." in parts:
        raise ConnectorError(f"path {text!r}{where} contains '..'; paths may not leave the space")
    return "/".join(parts)


class Connector:
    """Base of every connector. Subclasses set ``kind`` and implement the operations they support;
    read-only kinds leave :meth:`put` raising :class:`ReadOnly`.

    ``config`` holds non-secret options (root, bucket, URL, ``read_only``); ``credentials`` secret
    ones (keys, passwords, tokens). Both are plain dictionaries; neither is ever shown to users.
    """

    kind: ClassVar[str] = ""
    writable: ClassVar[bool] = False

    def __init__(self, *, name: str, config: Mapping[str, Any], credentials: Mapping[str, Any] | None = None):
        self.name = name
        self.config = dict(config)
        self.credentials = dict(credentials or {})

    @property
    def read_only(self) -> bool:
        """True when :meth:`put` is refused: the kind cannot write, or ``config["read_only"]``."""
        return not self.writable or bool(self.config.get("read_only"))

    def clean(self, path: str) -> str:
        return clean_path(path, space=self.name)

    def list(self, path: str = "") -> list[Entry]:
        """The entries directly inside folder ``path`` (folders first, then by name).
        Raises NotFound when there is no such folder, ConnectorError otherwise."""
        raise NotImplementedError

    def stat(self, path: str) -> Entry:
        """The entry at ``path``; raises NotFound when there is none."""
        raise NotImplementedError

    def open(self, path: str) -> IO[bytes]:
        """A binary file object reading the file at ``path`` (the caller closes it).
        Raises NotFound, or ConnectorError for a folder or an unreadable file."""
        raise NotImplementedError

    def put(self, path: str, local_file: Path) -> Entry:
        """Write the local file ``local_file`` to ``path`` (creating folders, replacing a file) and
        return its entry. Raises ReadOnly for a read-only space; ConnectorError(permanent=False) when
        the server is down, the space full or the write was throttled."""
        raise ReadOnly(f"data space {self.name!r} is read-only")

    def search(self, query: Mapping[str, Any]) -> list[Entry]:
        """Entries matching ``query``: ``q`` (text in the name) for every kind; STAC also takes
        ``bbox`` ([west, south, east, north]), ``datetime`` (RFC 3339 instant or ``start/end``),
        ``collection`` and ``limit``. The default walks folders (at most ``limit`` matches, 100)."""
        text = str(query.get("q") or "").strip().lower()
        limit = int(query.get("limit") or 100)
        found: list[Entry] = []
        folders = [""]
        visited = 0
        while folders and len(found) < limit and visited < MAX_SEARCH_FOLDERS:
            folder = folders.pop(0)
            visited += 1
            for entry in self.list(folder):
                if not text or text in entry.name.lower():
                    found.append(entry)
                    if len(found) >= limit:
                        break
                if entry.is_dir and not entry.name.lower().endswith(".zarr"):
                    folders.append(entry.path)
        return found

    def local_copy(self, path: str, destination: Path, *, max_bytes: int | None = None) -> Path:
        """Copy the file at ``path`` to ``destination`` and return it; a ConnectorError when it is larger
        than ``max_bytes`` (checked against the size the space reports and while copying)."""
        entry = self.stat(path)
        if entry.is_dir:
            raise ConnectorError(f"{path!r} in space {self.name!r} is a folder, not a file")
        if max_bytes is not None and entry.size is not None and entry.size > max_bytes:
            raise ConnectorError(
                f"{path!r} in space {self.name!r} is {entry.size / 1e6:,.1f} MB, more than the limit of "
                f"{max_bytes / 1e6:,.1f} MB"
            )
        destination.parent.mkdir(parents=True, exist_ok=True)
        copied = 0
        with self.open(path) as source, destination.open("wb") as target:
            while chunk := source.read(CHUNK_BYTES):
                copied += len(chunk)
                if max_bytes is not None and copied > max_bytes:
                    target.close()
                    destination.unlink(missing_ok=True)
                    raise ConnectorError(
                        f"{path!r} in space {self.name!r} is larger than the limit of "
                        f"{max_bytes / 1e6:,.1f} MB"
                    )
                target.write(chunk)
        return destination


CHUNK_BYTES = 1 << 20
MAX_PATH_CHARS = 1024
MAX_SEARCH_FOLDERS = 200
