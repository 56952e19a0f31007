"""A folder on the portal's machine (or a shared file system every worker mounts).

``config``: ``root`` (absolute folder; the portal's data directory when empty), ``read_only``.
Symbolic links may not lead out of the root.
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from apps.dataspaces.connectors.base import Connector, ConnectorError, Entry, NotFound, guess_media_type


class LocalConnector(Connector):
    kind = "local"
    writable = True

    @property
    def root(self) -> Path:
        root = str(self.config.get("root") or "").strip()
        if not root:
            raise ConnectorError(f"data space {self.name!r} has no root folder configured")
        return Path(root).resolve()

    def _path(self, path: str, *, must_exist: bool = True) -> tuple[str, Path]:
        relative = self.clean(path)
        root = self.root
        try:
            resolved = (root / relative).resolve()
        except (OSError, RuntimeError):
            raise ConnectorError(f"{relative!r} in space {self.name!r} is not a usable path") from None
        if not resolved.is_relative_to(root):
            raise ConnectorError(
                f"{relative!r} in space {self.name!r} points outside the space (through a symbolic link)"
            )
        try:
            if must_exist and not relative and not resolved.exists():
                resolved.mkdir(parents=True, exist_ok=True)  # a new space: its folder comes with it
            exists = resolved.exists()
        except OSError as error:
            raise ConnectorError(
                f"{relative!r} in space {self.name!r} is not usable: {error.strerror}"
            ) from None
        if must_exist and not exists:
            raise NotFound(f"{relative or '/'!r} does not exist in space {self.name!r}")
        return relative, resolved

    def _entry(self, relative: str, path: Path) -> Entry:
        status = path.stat()
        is_dir = path.is_dir() and not path.name.lower().endswith(".zarr")
        size = _folder_size(path) if path.is_dir() and not is_dir else (None if is_dir else status.st_size)
        return Entry(
            path=relative,
            name=path.name if relative else "",
            is_dir=is_dir,
            size=size,
            modified=datetime.fromtimestamp(status.st_mtime, tz=UTC),
            media_type=None if is_dir else guess_media_type(path.name),
            extra={"zarr": True} if path.is_dir() and not is_dir else {},
        )

    def list(self, path: str = "") -> list[Entry]:
        relative, folder = self._path(path)
        if not folder.is_dir():
            raise ConnectorError(f"{relative!r} in space {self.name!r} is a file, not a folder")
        root = self.root
        entries = []
        for child in folder.iterdir():
            if child.name.startswith("."):
                continue
            try:
                if not child.resolve().is_relative_to(root):
                    continue  # a link out of the space is not shown
                entries.append(self._entry(f"{relative}/{child.name}".lstrip("/"), child))
            except OSError:
                continue
        return sorted(entries, key=lambda entry: (not entry.is_dir, entry.name.lower()))

    def stat(self, path: str) -> Entry:
        relative, resolved = self._path(path)
        return self._entry(relative, resolved)

    def open(self, path: str) -> IO[bytes]:
        relative, resolved = self._path(path)
        if resolved.is_dir():
            raise ConnectorError(f"{relative!r} in space {self.name!r} is a folder, not a file")
        try:
            return resolved.open("rb")
        except PermissionError:
            raise ConnectorError(f"{relative!r} in space {self.name!r}: permission denied") from None

    def put(self, path: str, local_file: Path) -> Entry:
        if self.read_only:
            return super().put(path, local_file)
        relative, target = self._path(path, must_exist=False)
        if not relative:
            raise ConnectorError(f"give a file name to write in space {self.name!r}")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            # Checked again after creating folders: a link inside may have been swapped meanwhile.
            if not target.parent.resolve().is_relative_to(self.root):
                raise ConnectorError(f"{relative!r} in space {self.name!r} points outside the space")
            partial = target.with_name(f".{target.name}.partial")
            shutil.copyfile(local_file, partial)
            os.replace(partial, target)
        except PermissionError:
            raise ConnectorError(
                f"writing {relative!r} to space {self.name!r}: permission denied", permanent=False
            ) from None
        except OSError as error:
            # ENOSPC and friends: the space may have room again later.
            raise ConnectorError(
                f"writing {relative!r} to space {self.name!r} failed: {error.strerror}", permanent=False
            ) from None
        return self._entry(relative, target)

    def local_path(self, path: str) -> Path:
        """The file or Zarr folder at ``path`` on this machine (no copy needed)."""
        return self._path(path)[1]


def _folder_size(folder: Path) -> int:
    return sum(
        entry.stat().st_size for entry in folder.rglob("*") if entry.is_file() and not entry.is_symlink()
    )
