"""Step manifest (what to run) and result manifest (what came out), both plain JSON.

A step manifest says everything needed to run one step anywhere: the block and its version, the
parameter values, the input artifacts by URI and the directory where outputs go. Every compute backend
hands exactly this document to :func:`blocks.runner.run_step`.

Example step manifest::

    {"manifest_version": 1, "run_id": "42", "step_id": "subset",
     "block": {"id": "ocean.subset", "version": "1.0.0"},
     "params": {"lat_min": 40},
     "inputs": {"dataset": {"uri": "file:///data/runs/42/source/dataset.nc", "type": "dataset"}},
     "output_dir": "file:///data/runs/42/subset"}
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

MANIFEST_VERSION = 1


class ManifestError(ValueError):
    """A manifest is malformed; the message names the field."""


def path_from_uri(uri: str) -> Path:
    """The local path of a ``file://`` URI (or a bare absolute path)."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return Path(unquote(parsed.path))
    raise ManifestError(f"unsupported artifact URI scheme {parsed.scheme!r} in {uri!r}")


def uri_from_path(path: Path) -> str:
    return Path(path).resolve().as_uri()


@dataclass(frozen=True)
class InputRef:
    uri: str
    type: str


@dataclass(frozen=True)
class StepManifest:
    run_id: str
    step_id: str
    block_id: str
    block_version: str
    params: dict[str, Any]
    inputs: dict[str, InputRef]
    output_dir: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "manifest_version": MANIFEST_VERSION,
            "run_id": self.run_id,
            "step_id": self.step_id,
            "block": {"id": self.block_id, "version": self.block_version},
            "params": self.params,
            "inputs": {name: asdict(ref) for name, ref in self.inputs.items()},
            "output_dir": self.output_dir,
        }

    @classmethod
    def from_dict(cls, data: Any) -> StepManifest:
        if not isinstance(data, dict):
            raise ManifestError("step manifest must be a JSON object")
        if data.get("manifest_version") != MANIFEST_VERSION:
            raise ManifestError(
                f"manifest_version must be {MANIFEST_VERSION}, got {data.get('manifest_version')!r}"
            )
        try:
            block = data["block"]
            inputs = {
                name: InputRef(uri=str(ref["uri"]), type=str(ref["type"]))
                for name, ref in dict(data.get("inputs") or {}).items()
            }
            return cls(
                run_id=str(data["run_id"]),
                step_id=str(data["step_id"]),
                block_id=str(block["id"]),
                block_version=str(block["version"]),
                params=dict(data.get("params") or {}),
                inputs=inputs,
                output_dir=str(data["output_dir"]),
            )
        except (KeyError, TypeError) as error:
            raise ManifestError(f"step manifest is missing or has a malformed field: {error}") from error

    @classmethod
    def load(cls, path: Path) -> StepManifest:
        try:
            return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
        except json.JSONDecodeError as error:
            raise ManifestError(f"{path}: not JSON ({error})") from error


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "manifest_version": MANIFEST_VERSION,
            "run_id": self.run_id,
            "step_id": self.step_id,
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
        )
