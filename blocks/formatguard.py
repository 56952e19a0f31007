"""Refuse gridded data that pulls in bytes from outside itself, before any reader opens it.

NetCDF-4 (HDF5) files can keep a variable's values in other files: external raw storage (any file
by path, e.g. ``/proc/self/environ``), external links to objects in other HDF5 files and virtual
datasets assembled from other files. netCDF4 and h5netcdf both follow them silently. A Zarr store is
a folder of files, any of which can be a symbolic link. :func:`ensure_self_contained` inspects the
structure only (no values are read) and raises ``ValueError`` if anything could lead a reader out
of the file, or out of the data space for a Zarr store. Messages name the user's ``source`` and
names inside the file, never a server path.

Accepted: HDF5 files (signature at offset 0 or in a user block at 512, 1024, 2048... bytes) that
pass the checks, classic NetCDF (CDF-1, CDF-2, CDF-5; the format has no way to refer to other
files) and Zarr v2/v3 folders. Everything else (GRIB, HDF4, NcML, kerchunk JSON...) is refused.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
CLASSIC_NETCDF_SIGNATURES = (b"CDF\x01", b"CDF\x02", b"CDF\x05")
FIRST_USER_BLOCK_OFFSET = 512
ZARR_METADATA_NAMES = (".zmetadata", "zarr.json")
"""Files whose JSON can list members by name (consolidated metadata); each name must stay inside."""


def netcdf_format(path: Path) -> str | None:
    """``"hdf5"``, ``"classic"`` or None, from the file's signature (magic bytes); OSError if unreadable."""
    size = path.stat().st_size
    with path.open("rb") as stream:
        head = stream.read(len(HDF5_SIGNATURE))
        if head[:4] in CLASSIC_NETCDF_SIGNATURES:
            return "classic"
        offset = 0
        while head != HDF5_SIGNATURE:
            offset = max(FIRST_USER_BLOCK_OFFSET, offset * 2)
            if offset + len(HDF5_SIGNATURE) > size:
                return None
            stream.seek(offset)
            head = stream.read(len(HDF5_SIGNATURE))
    return "hdf5"


def ensure_self_contained(path: Path, *, source: str, root: Path | None = None) -> None:
    """Raise ValueError unless ``path`` is a NetCDF file or Zarr store that reads only its own bytes.

    ``path`` is a file (NetCDF-4/HDF5 or classic NetCDF) or a folder (a Zarr store). ``root`` is the
    data space a Zarr store's symbolic links may point into (default: the store itself). Only the
    structure is read: HDF5 links and dataset creation properties, folder entries, Zarr metadata.
    The message starts with ``source: '<source>'`` and never contains a server path.
    """
    try:
        mode = path.stat().st_mode
    except OSError:
        raise ValueError(f"source: {source!r} cannot be read") from None
    if stat.S_ISDIR(mode):
        _check_zarr_store(path.resolve(), source, (root or path).resolve())
    elif stat.S_ISREG(mode):
        _check_netcdf_file(path, source)
    else:
        raise ValueError(f"source: {source!r} is neither a file nor a folder (a device, pipe or socket)")


# ---- NetCDF -------------------------------------------------------------------------------------

def _check_netcdf_file(path: Path, source: str) -> None:
    try:
        kind = netcdf_format(path)
    except OSError:
        raise ValueError(f"source: {source!r} cannot be read") from None
    if kind is None:
        raise ValueError(f"source: {source!r} could not be opened as a NetCDF file: it is neither "
                         "NetCDF-4/HDF5 nor classic NetCDF (other formats such as GRIB, HDF4, NcML or "
                         "JSON references are not supported)")
    if kind == "hdf5":
        problem = _hdf5_problem(path)
        if problem:
            raise ValueError(f"source: {source!r} is refused: {problem}; only files that hold all their "
                             "own data are accepted")


def _hdf5_problem(path: Path) -> str | None:
    """Why the HDF5 file may read data from elsewhere, or None if every object keeps its data inside.

    Links are listed with H5Lvisit, which reports external and soft links without following them
    and descends only through hard links, so every object reached is opened through hard links
    alone; opening a dataset reads its header, not its values nor its virtual sources.
    """
    import h5py
    from h5py import h5d, h5l, h5o

    try:
        handle = h5py.File(path, "r", locking=False)
    except (OSError, ValueError):
        return "it is not a readable NetCDF-4/HDF5 file (damaged, truncated, or made for another driver)"
    with handle:
        try:
            for name, link_type in _links(handle):
                shown = name.decode("utf-8", "replace")
                if link_type == h5l.TYPE_EXTERNAL:
                    return f"it contains an external link {shown!r} to another file"
                if link_type == h5l.TYPE_SOFT:
                    continue  # a path inside this file; its target is visited through its hard link
                if link_type != h5l.TYPE_HARD:
                    return f"it contains a link {shown!r} of a kind that cannot be checked (type {link_type})"
                item = h5o.open(handle.id, name)
                if not isinstance(item, h5d.DatasetID):
                    continue
                creation = item.get_create_plist()
                if creation.get_layout() == h5d.VIRTUAL:
                    return f"variable {shown!r} is a virtual dataset (its values come from other files)"
                if creation.get_external_count():
                    return f"variable {shown!r} stores its data in an external file"
        except (OSError, ValueError, KeyError, RuntimeError):
            return "its structure could not be read (damaged or truncated file?)"
    return None


def _links(handle: Any) -> list[tuple[bytes, int]]:
    """Every link in the file as (path from the root, link type), without following any."""
    found: list[tuple[bytes, int]] = []
    handle.id.links.visit(lambda name, info: found.append((name, info.type)), info=True)
    return found


# ---- Zarr ---------------------------------------------------------------------------------------

def _check_zarr_store(store: Path, source: str, root: Path) -> None:
    """Every entry of the store, through symbolic links that stay in ``root``, must stay in ``root``.

    A folder reached through a symbolic link is walked too (once), since its own entries may be links
    leading out again. Ordinary entries cost no system call beyond listing their folder.
    """
    pending = [(store, "")]
    visited = {store}
    while pending:
        folder, shown_folder = pending.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError:
            raise ValueError(f"source: {source!r} has a folder {shown_folder or '.'!r} that cannot be read") \
                from None
        for entry in entries:
            shown = f"{shown_folder}/{entry.name}" if shown_folder else entry.name
            if entry.is_symlink():
                target = _link_target(entry, source, shown, root)
                if target is None:
                    continue
                is_folder, is_file = stat.S_ISDIR(target[1]), stat.S_ISREG(target[1])
                path = target[0]
            else:
                is_folder, is_file = entry.is_dir(follow_symlinks=False), entry.is_file(follow_symlinks=False)
                path = Path(entry.path)
            if is_folder:
                if path not in visited:
                    visited.add(path)
                    pending.append((path, shown))
            elif not is_file:
                raise ValueError(f"source: {source!r} has an entry {shown!r} that is not a regular file "
                                 "(a device, pipe or socket)")
            elif entry.name in ZARR_METADATA_NAMES:
                _check_member_names(path, source, shown)


def _link_target(entry: os.DirEntry[str], source: str, shown: str, root: Path) -> tuple[Path, int] | None:
    """Where a symbolic link in a store leads and its mode; None if it dangles inside ``root``."""
    try:
        target = Path(entry.path).resolve()
    except (OSError, RuntimeError):
        raise ValueError(f"source: {source!r} contains a symbolic link loop at {shown!r}") from None
    if not target.is_relative_to(root):
        raise ValueError(f"source: {source!r} contains a symbolic link {shown!r} that points outside the "
                         "data space")
    try:
        return target, target.stat().st_mode
    except FileNotFoundError:
        return None  # dangling inside the data space: readers see a missing chunk
    except OSError:
        raise ValueError(f"source: {source!r} has an entry {shown!r} that cannot be read") from None


def _check_member_names(path: Path, source: str, shown: str) -> None:
    """Consolidated metadata names members; a name may not climb out of the store or be absolute."""
    try:
        document = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return  # not ours to judge: zarr reports unreadable metadata when it opens the store
    for name in _member_names(document):
        parts = name.replace("\\", "/").split("/")
        if name.startswith(("/", "\\", "~")) or ".." in parts:
            raise ValueError(f"source: {source!r} has metadata {shown!r} naming a member {name!r} outside "
                             "the store")


def _member_names(document: Any) -> Iterator[str]:
    """Keys of Zarr v2 ``.zmetadata`` ``metadata`` and of Zarr v3 ``consolidated_metadata`` (nested)."""
    if not isinstance(document, dict):
        return
    members = document.get("metadata")
    if isinstance(members, dict):
        yield from (str(name) for name in members)
    consolidated = document.get("consolidated_metadata")
    if isinstance(consolidated, dict):
        members = consolidated.get("metadata")
        if isinstance(members, dict):
            for name, member in members.items():
                yield str(name)
                yield from _member_names(member)
