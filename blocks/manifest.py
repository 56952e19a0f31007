"""Step manifest (what to run) and result manifest (what came out), both plain JSON.

A step manifest says everything needed to run one step anywhere: the block and its version, the
parameter values, the input artifacts by URI and the directory where outputs go. Every compute backend
hands exactly this document to :func:`blocks.runner.run_step` (in-process) or to
``python -m blocks.runner MANIFEST`` (a child process, a batch job on another machine).

Version 2 (written by :meth:`StepManifest.to_dict`) is portable::

    {"manifest_version": 2, "run_id": "42", "step_id": "subset", "attempt": 1,
     "block": {"id": "ocean.subset", "version": "1.0.0"},
     "params": {"lat_min": 40, "lat_max": 50},
     "inputs": {"dataset": {"uri": "store:runs/42/source/dataset.nc", "type": "dataset"}},
     "output_dir": "store:runs/42/subset",
     "resources": {"cpus": 1, "memory_mb": 1024, "walltime_s": 3600, "gpus": 0},
     "events": "store:runs/42/subset/_events.jsonl",
     "result": "store:runs/42/subset/_result.json"}

- **URIs.** ``store:<relative path>`` (or a bare relative path) names a place under the *artifact
  store root*, which each machine resolves for itself: the ``store_root`` argument (the runner's
  ``--store-root``), else ``$ILIAD_STORE_ROOT``, else ``$ILIAD_ARTIFACT_ROOT``. A relative URI never
  leaves the store root: ``..``, an absolute path after ``store:`` or a symbolic link pointing out of
  it is refused with :class:`ManifestError`. ``file:///absolute/path`` URIs (the only kind version 1
  has) still work on the machine that wrote them.
- **params** are frozen when the step is submitted, with the block's defaults filled in, so a run can
  be repeated exactly after a block's defaults change (the runner fills in defaults again only for
  what is missing, which a frozen manifest never has).
- **attempt** (default 1) numbers the tries of the step; **resources** (defaults: 1 cpu, 1024 MB,
  3600 s, no gpu) is what this attempt may use; the runner enforces ``walltime_s`` itself.
- **events** (default ``<output_dir>/_events.jsonl``): the runner appends one JSON object a line:
  ``{"ts": <unix time>, "kind": "progress", "fraction": 0.5, "message": "..."}``,
  ``{"ts": ..., "kind": "log", "level": "info", "message": "..."}`` and, last,
  ``{"ts": ..., "kind": "result", "ok": true, "result": "<result URI>"}``.
- **result** (default ``<output_dir>/_result.json``): where the result manifest is written (atomically:
  it exists only once complete).

Version 1 documents (no attempt, resources, events or result; ``file://`` URIs) are still read, with
the defaults above.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

MANIFEST_VERSION = 2
READABLE_VERSIONS = (1, 2)
STORE_SCHEME = "store"
STORE_ROOT_ENV = "ILIAD_STORE_ROOT"
EVENTS_FILE = "_events.jsonl"
RESULT_FILE = "_result.json"


class ManifestError(ValueError):
    """A manifest is malformed; the message names the field."""


def store_root_from_env() -> Path | None:
    """``$ILIAD_STORE_ROOT``, else ``$ILIAD_ARTIFACT_ROOT``, else None."""
    value = os.environ.get(STORE_ROOT_ENV) or os.environ.get("ILIAD_ARTIFACT_ROOT")
    return Path(value) if value else None


def is_store_relative(uri: str) -> bool:
    """True for ``store:…`` URIs and bare relative paths."""
    parsed = urlparse(uri)
    return parsed.scheme == STORE_SCHEME or (parsed.scheme == "" and not uri.startswith("/"))


def path_from_uri(uri: str, store_root: Path | str | None = None) -> Path:
    """The local path of a ``file://`` URI, a bare absolute path, or a store-relative URI.

    Store-relative URIs resolve under ``store_root`` (default :func:`store_root_from_env`); they must
    stay inside it after following symbolic links. Raises ManifestError otherwise.
    """
    parsed = urlparse(uri)
    if parsed.scheme == "file" or (parsed.scheme == "" and uri.startswith("/")):
        return Path(unquote(parsed.path))
    if not is_store_relative(uri):
        raise ManifestError(f"unsupported artifact URI scheme {parsed.scheme!r} in {uri!r}")
    relative = unquote(uri[len(STORE_SCHEME) + 1:] if parsed.scheme == STORE_SCHEME else uri)
    root = Path(store_root) if store_root is not None else store_root_from_env()
    if root is None:
        raise ManifestError(
            f"{uri!r} is relative to the artifact store, but no store root is known "
            f"(pass --store-root or set {STORE_ROOT_ENV})"
        )
    if relative.startswith("/") or relative.startswith("\\"):
        raise ManifestError(f"{uri!r}: a store URI must be relative, not absolute")
    if ".." in Path(relative).parts:
        raise ManifestError(f"{uri!r}: a store URI must not contain '..'")
    real_root = Path(os.path.realpath(root))
    real = Path(os.path.realpath(real_root / relative))
    if real != real_root and not real.is_relative_to(real_root):
        raise ManifestError(f"{uri!r} leaves the artifact store (through a symbolic link)")
    return real_root / relative


def uri_from_path(path: Path) -> str:
    return Path(path).resolve().as_uri()


def store_uri(path: Path, store_root: Path | str) -> str:
    """``store:<path relative to store_root>``; ManifestError when ``path`` is outside it."""
    real_root = Path(os.path.realpath(store_root))
    real = Path(os.path.realpath(path))
    if not real.is_relative_to(real_root):
        raise ManifestError(f"{path} is not inside the artifact store")
    return f"{STORE_SCHEME}:{real.relative_to(real_root).as_posix()}"


@dataclass(frozen=True)
class InputRef:
    uri: str
    type: str


@dataclass(frozen=True)
class StepResources:
    """What one attempt may use (the same fields as ``apps.compute.base.Resources``)."""

    cpus: int = 1
    memory_mb: int = 1024
    walltime_s: int = 3600
    gpus: int = 0

    @classmethod
    def from_dict(cls, data: Any) -> StepResources:
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise ManifestError("resources must be an object")
        unknown = sorted(set(data) - {"cpus", "memory_mb", "walltime_s", "gpus"})
        if unknown:
            raise ManifestError(f"resources has unknown fields {unknown}")
        values = {}
        for name, value in data.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ManifestError(f"resources.{name} must be a non-negative integer, got {value!r}")
            values[name] = value
        if values.get("walltime_s", 1) < 1:
            raise ManifestError("resources.walltime_s must be at least 1")
        return cls(**values)


@dataclass(frozen=True)
class StepManifest:
    run_id: str
    step_id: str
    block_id: str
    block_version: str
    params: dict[str, Any]
    inputs: dict[str, InputRef]
    output_dir: str
    attempt: int = 1
    resources: StepResources = field(default_factory=StepResources)
    events: str = ""
    """URI of the events file; empty: ``<output_dir>/_events.jsonl``."""
    result: str = ""
    """URI of the result manifest; empty: ``<output_dir>/_result.json``."""

    @property
    def events_uri(self) -> str:
        return self.events or _joined(self.output_dir, EVENTS_FILE)

    @property
    def result_uri(self) -> str:
        return self.result or _joined(self.output_dir, RESULT_FILE)

    def to_dict(self) -> dict[str, Any]:
        return {
            "manifest_version": MANIFEST_VERSION,
            "run_id": self.run_id,
            "step_id": self.step_id,
            "attempt": self.attempt,
            "block": {"id": self.block_id, "version": self.block_version},
            "params": self.params,
            "inputs": {name: asdict(ref) for name, ref in self.inputs.items()},
            "output_dir": self.output_dir,
            "resources": asdict(self.resources),
            "events": self.events_uri,
            "result": self.result_uri,
        }

    @classmethod
    def from_dict(cls, data: Any) -> StepManifest:
        if not isinstance(data, dict):
            raise ManifestError("step manifest must be a JSON object")
        version = data.get("manifest_version")
        if version not in READABLE_VERSIONS:
            raise ManifestError(
                f"manifest_version must be one of {list(READABLE_VERSIONS)}, got {version!r}"
            )
        try:
            block = data["block"]
            inputs = {
                name: InputRef(uri=str(ref["uri"]), type=str(ref["type"]))
                for name, ref in dict(data.get("inputs") or {}).items()
            }
            attempt = data.get("attempt", 1)
            if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 1:
                raise ManifestError(f"attempt must be a positive integer, got {attempt!r}")
            return cls(
                run_id=str(data["run_id"]),
                step_id=str(data["step_id"]),
                block_id=str(block["id"]),
                block_version=str(block["version"]),
                params=dict(data.get("params") or {}),
                inputs=inputs,
                output_dir=str(data["output_dir"]),
                attempt=attempt,
                resources=StepResources.from_dict(data.get("resources")),
                events=str(data.get("events") or ""),
                result=str(data.get("result") or ""),
            )
        except (KeyError, TypeError, AttributeError) as error:
            raise ManifestError(f"step manifest is missing or has a malformed field: {error}") from error

    @classmethod
    def load(cls, path: Path) -> StepManifest:
        try:
            return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
        except json.JSONDecodeError as error:
            raise ManifestError(f"{path}: not JSON ({error})") from error

    def check_paths(self, store_root: Path | str | None = None) -> None:
        """Resolve every URI of the manifest once, so that an unsafe or unresolvable one is refused
        (ManifestError naming it) before anything runs."""
        for name, ref in self.inputs.items():
            try:
                path_from_uri(ref.uri, store_root)
            except ManifestError as error:
                raise ManifestError(f"inputs.{name}: {error}") from None
        for label, uri in (("output_dir", self.output_dir), ("events", self.events_uri),
                           ("result", self.result_uri)):
            try:
                path_from_uri(uri, store_root)
            except ManifestError as error:
                raise ManifestError(f"{label}: {error}") from None


def _joined(directory_uri: str, name: str) -> str:
    return directory_uri.rstrip("/") + "/" + name


@dataclass(frozen=True)
class ArtifactRecord:
    """One output file: which port produced it and what it is."""

    port: str
    uri: str
    type: str
    media_type: str
    sha256: str
    size: int


@dataclass
class ResultManifest:
    """What a step produced. ``ok`` is False when the block raised; ``error`` then says why."""

    run_id: str
    step_id: str
    block_id: str
    block_version: str
    ok: bool
    artifacts: list[ArtifactRecord] = field(default_factory=list)
    error: dict[str, str] | None = None
    duration_s: float = 0.0
    attempt: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "manifest_version": MANIFEST_VERSION,
            "run_id": self.run_id,
            "step_id": self.step_id,
            "attempt": self.attempt,
            "block": {"id": self.block_id, "version": self.block_version},
            "ok": self.ok,
            "artifacts": [asdict(artifact) for artifact in self.artifacts],
            "error": self.error,
            "duration_s": self.duration_s,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResultManifest:
        return cls(
            run_id=str(data["run_id"]),
            step_id=str(data["step_id"]),
            block_id=data["block"]["id"],
            block_version=data["block"]["version"],
            ok=bool(data["ok"]),
            artifacts=[ArtifactRecord(**artifact) for artifact in data.get("artifacts", [])],
            error=data.get("error"),
            duration_s=float(data.get("duration_s", 0.0)),
            attempt=int(data.get("attempt", 1)),
        )

    @classmethod
    def load(cls, path: Path) -> ResultManifest:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    def write(self, path: Path) -> None:
        """Write atomically: readers see either no file or the whole document."""
        path = Path(path)
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        partial.write_text(json.dumps(self.to_dict()), encoding="utf-8")
        os.replace(partial, path)
