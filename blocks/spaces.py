"""Files in the portal's data spaces, named in parameters as ``space:<name>/<path>``.

Blocks stay free of the portal: the portal installs a resolver (``apps.dataspaces.resolve``) in
every process that runs steps with it. :func:`resolve` gives either a file on this machine (a local
space's own file, or a copy of a remote one in the step's scratch folder) or an http(s) URL the block
fetches itself through :mod:`blocks.netguard` (HTTP, OPeNDAP and STAC spaces).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PREFIX = "space:"


@dataclass(frozen=True)
class Resolved:
    """Where a space reference's bytes are: ``path`` (with ``root``, the folder it may not leave)
    or ``url``."""

    path: Path | None = None
    root: Path | None = None
    url: str | None = None


Resolver = Callable[..., Resolved]
_resolver: Resolver | None = None


def is_reference(source: str) -> bool:
    return isinstance(source, str) and source.strip().lower().startswith(PREFIX)


def split(source: str) -> tuple[str, str]:
    """``(space name, path)`` of ``space:<name>/<path>``; ValueError naming ``source`` otherwise."""
    rest = source.strip()[len(PREFIX) :]
    name, _, path = rest.partition("/")
    if not name or not path.strip("/"):
        raise ValueError(
            f"source: {source!r} must look like space:<name>/<path>, e.g. space:shared/demo/biscay_ocean.nc"
        )
    return name, path


def install(resolver: Resolver | None) -> None:
    """Set the function that opens references: ``resolver(name=, path=, scratch_dir=, max_bytes=,
    run_id=)`` returns a :class:`Resolved` or raises ValueError."""
    global _resolver
    _resolver = resolver


def resolve(source: str, *, scratch_dir: Path, max_bytes: int, run_id: str | None = None) -> Resolved:
    """Where ``source`` (a ``space:`` reference) can be read; ValueError saying why not."""
    name, path = split(source)
    if _resolver is None:
        raise ValueError(
            f"source: {source!r} names a data space, but this worker is not connected to the "
            "portal's data spaces; give a path in the local data space or a URL"
        )
    return _resolver(name=name, path=path, scratch_dir=scratch_dir, max_bytes=max_bytes, run_id=run_id)
