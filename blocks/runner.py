"""Run one step from a step manifest: the application package every compute backend executes.

In-process (Celery worker)::

    result = run_step(StepManifest.from_dict(document), emit=on_event)

As a command (Slurm job, shell)::

    python -m blocks.runner step.json

The command prints progress and log events as JSON lines on stdout, writes ``_result.json`` into the
output directory and exits 0 when the block succeeded, 1 when it failed, 2 when the manifest is bad.
Tracebacks go to the server log (logger ``blocks.runner``; stderr for the command), never into events:
what users read carries no server paths (see :mod:`blocks.scrub`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jsonschema

from blocks.context import Emit, StepCancelled, StepContext
from blocks.manifest import (
    ArtifactRecord,
    ManifestError,
    ResultManifest,
    StepManifest,
    path_from_uri,
    uri_from_path,
)
from blocks.registry import Registry, RegistryError, default_registry
from blocks.scrub import scrub_paths
from blocks.spec import BlockSpec
from blocks.types import ANY, PORT_TYPES

logger = logging.getLogger(__name__)

RESULT_FILE = "_result.json"
"""Name of the result manifest in the output directory; port names cannot start with "_", so an output
port (e.g. ``result`` of type json, saved as ``result.json``) never overwrites it."""


class BlockInputError(ValueError):
    """Inputs, parameters or outputs do not match the block's spec."""


def with_defaults(schema: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with each missing top-level property's schema ``default`` filled in."""
    filled = dict(params)
    for name, prop in (schema.get("properties") or {}).items():
        if name not in filled and isinstance(prop, Mapping) and "default" in prop:
            filled[name] = prop["default"]
    return filled


def validated_params(spec: BlockSpec, params: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters with defaults, or BlockInputError listing every violation with its location."""
    filled = with_defaults(spec.parameters, params)
    validator = jsonschema.Draft202012Validator(
        spec.parameters, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    problems = [
        f"params/{'/'.join(str(part) for part in error.absolute_path) or '(root)'}: {error.message}"
        for error in sorted(validator.iter_errors(filled), key=lambda error: list(error.absolute_path))
    ]
    if problems:
        raise BlockInputError("invalid parameters: " + "; ".join(problems))
    return filled


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _open_inputs(spec: BlockSpec, manifest: StepManifest, opened: dict[str, Any]) -> None:
    """Open the manifest's inputs into ``opened`` (filled as it goes, so the caller can close them)."""
    unknown = sorted(set(manifest.inputs) - {port.name for port in spec.inputs})
    if unknown:
        raise BlockInputError(f"inputs {unknown} are not ports of {spec.id}@{spec.version}")
    for port in spec.inputs:
        ref = manifest.inputs.get(port.name)
        if ref is None:
            if port.required:
                raise BlockInputError(f"input port {port.name!r} is required but not connected")
            continue
        port_type = PORT_TYPES.get(ref.type)
        if port_type is None or (port.type != ANY and port.type != ref.type):
            raise BlockInputError(
                f"input port {port.name!r} expects {port.type!r}, the artifact is {ref.type!r}"
            )
        opened[port.name] = port_type.open(path_from_uri(ref.uri))


def _save_outputs(
    spec: BlockSpec, outputs: Mapping[str, Any] | None, output_dir: Path
) -> list[ArtifactRecord]:
    if not isinstance(outputs, Mapping):
        raise BlockInputError(
            f"block {spec.id} returned {type(outputs).__name__}, expected a mapping of port name to value"
        )
    unknown = sorted(set(outputs) - {port.name for port in spec.outputs})
    if unknown:
        raise BlockInputError(f"block {spec.id} returned unknown output ports {unknown}")
    records = []
    for port in spec.outputs:
        if port.name not in outputs or outputs[port.name] is None:
            if port.required:
                raise BlockInputError(f"block {spec.id} did not return its output {port.name!r}")
            continue
        port_type = PORT_TYPES[port.type]
        path = output_dir / f"{port.name}{port_type.extension}"
        port_type.save(outputs[port.name], path)
        records.append(
            ArtifactRecord(
                port=port.name,
                uri=uri_from_path(path),
                type=port.type,
                media_type=port_type.media_type,
                sha256=_sha256(path),
                size=path.stat().st_size,
            )
        )
    return records


def _close(values: Mapping[str, Any]) -> None:
    for value in values.values():
        close = getattr(value, "close", None)
        if callable(close):
            close()


def _scrubbing(emit: Emit, scrub: Callable[[str], str]) -> Emit:
    """``emit`` with server paths taken out of each event's ``message``."""

    def scrubbed(event: dict[str, Any]) -> None:
        message = event.get("message")
        emit({**event, "message": scrub(message)} if isinstance(message, str) else event)

    return scrubbed


def run_step(
    manifest: StepManifest,
    *,
    registry: Registry | None = None,
    emit: Emit | None = None,
    cancel_requested: Callable[[], bool] | None = None,
    data_dir: Path | None = None,
    artifact_root: Path | None = None,
) -> ResultManifest:
    """Run the block a manifest names and return (and write) its result manifest.

    ``data_dir`` is the local data space blocks may read from; default ``$ILIAD_DATA_DIR``.
    ``artifact_root`` (default ``$ILIAD_ARTIFACT_ROOT``) only serves to name artifact paths in
    messages. ``cancel_requested`` is asked at each progress report: True ends the step as cancelled
    (error type ``cancelled``); an exception it raises, e.g. WalltimeExceeded, fails it with that error.
    Never raises for a failing block: the result has ``ok=False`` and ``error`` with ``type``,
    ``message`` and ``traceback``. The message, and the ``message`` of every emitted event, has its
    server paths replaced (:func:`blocks.scrub.scrub_paths`); the traceback is for administrators
    only: it is logged, and emitted events carry just ``"<type>: <message>"``.
    """
    registry = registry if registry is not None else default_registry()
    output_dir = path_from_uri(manifest.output_dir)
    if data_dir is None and os.environ.get("ILIAD_DATA_DIR"):
        data_dir = Path(os.environ["ILIAD_DATA_DIR"])
    if artifact_root is None and os.environ.get("ILIAD_ARTIFACT_ROOT"):
        artifact_root = Path(os.environ["ILIAD_ARTIFACT_ROOT"])

    def scrub(text: str) -> str:
        return scrub_paths(text, data_dir=data_dir, output_dir=output_dir, artifact_root=artifact_root)

    emit = _scrubbing(emit or (lambda event: None), scrub)
    output_dir.mkdir(parents=True, exist_ok=True)
    scratch_dir = output_dir / ".scratch"
    result = ResultManifest(
        run_id=manifest.run_id,
        step_id=manifest.step_id,
        block_id=manifest.block_id,
        block_version=manifest.block_version,
        ok=False,
    )
    started = time.monotonic()
    inputs: dict[str, Any] = {}
    try:
        block = registry.get(manifest.block_id, manifest.block_version)
        params = validated_params(block.spec, manifest.params)
        _open_inputs(block.spec, manifest, inputs)
        context = StepContext(
            scratch_dir=scratch_dir, emit=emit, cancel_requested=cancel_requested, data_dir=data_dir
        )
        outputs = block.function(context, inputs, params)
        result.artifacts = _save_outputs(block.spec, outputs, output_dir)
        result.ok = True
    except Exception as error:  # the block's failure is the step's result, not the runner's crash
        kind = "cancelled" if isinstance(error, StepCancelled) else type(error).__name__
        if isinstance(error, RegistryError):
            kind = "BlockNotFound"
        if kind == "cancelled":
            logger.info("step %s of run %s was cancelled", manifest.step_id, manifest.run_id)
        else:
            logger.error(
                "step %s of run %s (%s@%s) failed", manifest.step_id, manifest.run_id,
                manifest.block_id, manifest.block_version, exc_info=True,
            )
        message = scrub(str(error))
        result.error = {"type": kind, "message": message, "traceback": traceback.format_exc()}
        emit({"kind": "log", "level": "error", "message": f"{kind}: {message}"})
    finally:
        _close(inputs)
        shutil.rmtree(scratch_dir, ignore_errors=True)
    result.duration_s = round(time.monotonic() - started, 6)
    (output_dir / RESULT_FILE).write_text(json.dumps(result.to_dict()), encoding="utf-8")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m blocks.runner", description=__doc__.split("\n")[0])
    parser.add_argument("manifest", type=Path, help="path of the step manifest (JSON)")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    def print_event(event: dict[str, Any]) -> None:
        print(json.dumps({"ts": time.time(), **event}), flush=True)

    try:
        manifest = StepManifest.load(args.manifest)
    except (ManifestError, OSError) as error:
        logger.error("cannot load the step manifest %s: %s", args.manifest, error)
        print(json.dumps({"kind": "log", "level": "error", "message": scrub_paths(str(error))}), flush=True)
        return 2
    result = run_step(manifest, emit=print_event)
    print_event({"kind": "result", "ok": result.ok, "result": uri_from_path(
        path_from_uri(manifest.output_dir) / RESULT_FILE)})
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
