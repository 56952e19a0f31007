"""Take server paths out of text that users read: step error messages and a block's log lines.

Users name files relative to the data space, so that is how they get them back; where the portal
keeps its artifacts, where Python is installed or which scratch directory a library used is none of
their business (and tells an attacker how the server is laid out)::

    >>> scrub_paths("cannot open '/srv/iliad/data/demo/x.nc'", data_dir=Path("/srv/iliad/data"))
    "cannot open 'demo/x.nc'"

URLs (``https://host/a/b``, ``s3://bucket/key``), relative paths (``demo/x.nc``, ``./a``), dates
(``2024/01/31``, ``2024-01-31T00:00:00Z``) and units (``m/s``) are left alone.
"""

from __future__ import annotations

import functools
import posixpath
import re
from pathlib import Path
from urllib.parse import unquote

SERVER_PATH = "<server path>"
"""What any absolute path outside the data space, the step's output and the artifacts becomes."""
DATA_SPACE = "<data space>"
"""What the data space's own directory becomes; paths inside it become relative to it."""
STEP_OUTPUT = "<step output>"
"""Prefix of paths in the step's output directory (including its scratch directory)."""
ARTIFACTS = "<artifacts>"
"""Prefix of paths under the artifact root (e.g. the outputs of upstream steps)."""

# Characters that end a path: whitespace, quotes, brackets and the punctuation that separates a path
# from what follows it in messages ("/a/b.py:12", "(/a/b)", "'/a/b'", "/a, /b", "/a?x=1").
_STOP = r"""\s'"`<>()\[\]{},;:|*?#"""
# A path starts with "/" not preceded by a character that makes it part of something else: a word
# ("m/s", "2024/01/31", "demo/x.nc"), a relative path ("./a", "../a"), a URL ("https://host/a": the
# "//" is excluded below) or one of our own labels ("<artifacts>/runs/1").
_BEFORE = r"(?<![\w./>])"


@functools.lru_cache(maxsize=64)
def _pattern(roots: tuple[str, ...]) -> re.Pattern[str]:
    """The path pattern; the known roots are matched literally first, so that they may contain spaces."""
    known = "".join(f"{re.escape(root)}[^{_STOP}]*|" for root in roots)
    return re.compile(rf"{_BEFORE}(?P<prefix>file://|~)?(?P<path>{known}/[^/{_STOP}][^{_STOP}]*)")


@functools.lru_cache(maxsize=64)
def _forms(directory: Path | str | None) -> tuple[str, ...]:
    """A directory as given and with its symbolic links resolved (messages may carry either).
    Cached: a step's every log line names the same few directories."""
    if directory is None or str(directory) == "":
        return ()
    forms = {posixpath.normpath(str(Path(directory).resolve()))}
    if Path(directory).is_absolute():
        forms.add(posixpath.normpath(str(directory)))
    return tuple(form for form in forms if form != "/")


def scrub_paths(
    text: str,
    *,
    data_dir: Path | str | None = None,
    output_dir: Path | str | None = None,
    artifact_root: Path | str | None = None,
) -> str:
    """``text`` with every absolute path (or ``file://`` URI, or ``~/…`` path) replaced.

    Under ``data_dir``: the path relative to it (the data space itself: ``<data space>``). Under
    ``output_dir``: ``<step output>/…``. Under ``artifact_root``: ``<artifacts>/…``. Anything else:
    ``<server path>``. The most specific directory wins. Never raises; text without paths is
    returned unchanged.
    """
    if "/" not in text:  # every path this replaces has one; most messages have none
        return text
    places = sorted(
        [
            *((form, DATA_SPACE) for form in _forms(data_dir)),
            *((form, STEP_OUTPUT) for form in _forms(output_dir)),
            *((form, ARTIFACTS) for form in _forms(artifact_root)),
        ],
        key=lambda place: len(place[0]),
        reverse=True,
    )

    def replace(match: re.Match[str]) -> str:
        path, trailing = match["path"], ""
        while path.endswith(".") and not path.endswith("/.") and len(path) > 1:  # end of a sentence
            path, trailing = path[:-1], "." + trailing
        if match["prefix"] == "~":
            return SERVER_PATH + trailing
        if match["prefix"] == "file://":
            path = unquote(path)
        normal = posixpath.normpath(path)
        for root, label in places:
            if normal == root:
                return label + trailing
            if normal.startswith(root + "/"):
                relative = normal[len(root) + 1:]
                return (relative if label == DATA_SPACE else f"{label}/{relative}") + trailing
        return SERVER_PATH + trailing

    return _pattern(tuple(root for root, _ in places)).sub(replace, text)
