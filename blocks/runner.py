"""Run one step from a step manifest: the application package every compute backend executes.

In-process (Celery worker)::

    result = run_step(StepManifest.from_dict(document), emit=on_event)

As a command (Slurm job, shell)::

    python -m blocks.runner step.json

    python -m blocks.runner step.json --store-root /srv/iliad/artifacts

The command appends progress and log events as JSON lines to the manifest's events file and prints them
on stdout, writes the result manifest (``_result.json`` in the output directory unless the manifest says
otherwise) and exits 0 when the block succeeded, 1 when it failed, 2 when the manifest is bad, 3 when
it was stopped by SIGTERM (the block is interrupted, the result says ``cancelled``, its scratch
directory is removed) and 4 when it ran past its walltime (see :func:`execute`).
Tracebacks go to the server log (logger ``blocks.runner``; stderr for the command), never into events:
what users read carries no server paths (see :mod:`blocks.scrub`).
"""

from __future__ import annotations

import _thread
import argparse
import hashlib
import json
import logging
import os
import shutil
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jsonschema

from blocks.context import Emit, StepCancelled, StepContext, WalltimeExceeded
from blocks.manifest import RESULT_FILE as RESULT_FILE  # its home was here; importers still find it
from blocks.manifest import (
    ArtifactRecord,
    ManifestError,
    ResultManifest,
    StepManifest,
    is_store_relative,
    path_from_uri,
    store_uri,
    uri_from_path,
)
from blocks.registry import Registry, RegistryError, default_registry
from blocks.scrub import scrub_paths
from blocks.spec import BlockSpec
from blocks.types import ANY, PORT_TYPES

logger = logging.getLogger(__name__)

# RESULT_FILE: name of the result manifest in the output directory; port names cannot start with "_",
# so an output port (e.g. ``result`` of type json, saved as ``result.json``) never overwrites it.


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


def _open_inputs(
    spec: BlockSpec, manifest: StepManifest, opened: dict[str, Any], store_root: Path | None = None
) -> None:
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
        opened[port.name] = port_type.open(path_from_uri(ref.uri, store_root))


def _save_outputs(
    spec: BlockSpec, outputs: Mapping[str, Any] | None, output_dir: Path,
    name_uri: Callable[[Path], str] = uri_from_path,
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
                uri=name_uri(path),
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
    store_root: Path | None = None,
) -> ResultManifest:
    """Run the block a manifest names and return (and write) its result manifest.

    ``data_dir`` is the local data space blocks may read from; default ``$ILIAD_DATA_DIR``.
    ``artifact_root`` (default ``$ILIAD_ARTIFACT_ROOT``) only serves to name artifact paths in
    messages. ``store_root`` resolves the manifest's store-relative URIs (default
    ``$ILIAD_STORE_ROOT``, then ``$ILIAD_ARTIFACT_ROOT``); when the output directory is
    store-relative, so are the artifact URIs of the result. ``cancel_requested`` is asked at each
    progress report: True ends the step as cancelled (error type ``cancelled``); an exception it
    raises, e.g. WalltimeExceeded, fails it with that error.
    Never raises for a failing block: the result has ``ok=False`` and ``error`` with ``type``,
    ``message`` and ``traceback``. The message, and the ``message`` of every emitted event, has its
    server paths replaced (:func:`blocks.scrub.scrub_paths`); the traceback is for administrators
    only: it is logged, and emitted events carry just ``"<type>: <message>"``. Raises ManifestError
    when a URI of the manifest cannot be resolved safely.
    """
    registry = registry if registry is not None else default_registry()
    manifest.check_paths(store_root)
    output_dir = path_from_uri(manifest.output_dir, store_root)
    result_path = path_from_uri(manifest.result_uri, store_root)
    if data_dir is None and os.environ.get("ILIAD_DATA_DIR"):
        data_dir = Path(os.environ["ILIAD_DATA_DIR"])
    if artifact_root is None and os.environ.get("ILIAD_ARTIFACT_ROOT"):
        artifact_root = Path(os.environ["ILIAD_ARTIFACT_ROOT"])
    if artifact_root is None and store_root is not None:
        artifact_root = store_root

    def scrub(text: str) -> str:
        return scrub_paths(text, data_dir=data_dir, output_dir=output_dir, artifact_root=artifact_root)

    if is_store_relative(manifest.output_dir):
        root = store_root or path_from_uri("store:", store_root)

        def name_uri(path: Path) -> str:
            return store_uri(path, root)
    else:
        name_uri = uri_from_path

    emit = _scrubbing(emit or (lambda event: None), scrub)
    output_dir.mkdir(parents=True, exist_ok=True)
    scratch_dir = output_dir / ".scratch"
    result = ResultManifest(
        run_id=manifest.run_id,
        step_id=manifest.step_id,
        block_id=manifest.block_id,
        block_version=manifest.block_version,
        ok=False,
        attempt=manifest.attempt,
    )
    started = time.monotonic()
    inputs: dict[str, Any] = {}
    try:
        block = registry.get(manifest.block_id, manifest.block_version)
        params = validated_params(block.spec, manifest.params)
        _open_inputs(block.spec, manifest, inputs, store_root)
        context = StepContext(
            scratch_dir=scratch_dir, emit=emit, cancel_requested=cancel_requested, data_dir=data_dir,
            run_id=manifest.run_id,
        )
        outputs = block.function(context, inputs, params)
        result.artifacts = _save_outputs(block.spec, outputs, output_dir, name_uri)
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
    result_path.parent.mkdir(parents=True, exist_ok=True)
    result.write(result_path)
    return result


# --- running a step as a process of its own -------------------------------------------------------

EXIT_OK = 0
"""The block succeeded; the result manifest is written."""
EXIT_FAILED = 1
"""The block failed; the result manifest (``ok: false``) says why."""
EXIT_BAD_MANIFEST = 2
"""The manifest could not be read or names an unsafe path; nothing ran, no result."""
EXIT_CANCELLED = 3
"""Stopped by SIGTERM (or SIGINT): the block was interrupted, the result has error type ``cancelled``."""
EXIT_WALLTIME = 4
"""Ran past ``resources.walltime_s``: the block was interrupted and the result says WalltimeExceeded;
or, when the block did not give way within ``WALLTIME_GRACE_S``, the process ended without a result."""

WALLTIME_GRACE_S = 5.0
"""After the walltime, the block has this long to give way before the process ends without a result."""


class StepTerminated(StepCancelled):
    """Raised in the block when the step process is asked to stop (SIGTERM)."""


class EventFile:
    """Appends events as JSON lines to a file (each line written with one ``write``), and to
    ``echo`` (e.g. stdout) too. Events get a ``ts`` (Unix time) when they have none."""

    def __init__(self, path: Path | None, *, echo: Any = None) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644) if path else None
        self._echo = echo

    def __call__(self, event: dict[str, Any]) -> None:
        line = json.dumps({"ts": round(time.time(), 6), **event}) + "\n"
        if self._fd is not None:
            os.write(self._fd, line.encode("utf-8"))
        if self._echo is not None:
            self._echo.write(line)
            self._echo.flush()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def execute(
    manifest: StepManifest,
    *,
    store_root: Path | None = None,
    echo: Any = None,
    walltime_s: float | None = None,
    walltime_grace_s: float = WALLTIME_GRACE_S,
    registry: Registry | None = None,
) -> int:
    """Run a step as the whole of this process: events to the manifest's events file (and ``echo``),
    result to its result file, and an exit code (``EXIT_*``) to return from the process.

    Installs handlers for SIGTERM/SIGINT (the block is interrupted with StepTerminated: result
    ``cancelled``) and SIGALRM at ``walltime_s`` (default ``manifest.resources.walltime_s``; the block
    is interrupted with WalltimeExceeded). A block that does not give way within ``WALLTIME_GRACE_S``
    of its walltime (stuck in C code, or blocking signals) ends the process with EXIT_WALLTIME and no
    result (``walltime_grace_s``, default ``WALLTIME_GRACE_S``). Call it in the main thread only.
    """
    try:
        manifest.check_paths(store_root)
        events_path = path_from_uri(manifest.events_uri, store_root)
        events_path.parent.mkdir(parents=True, exist_ok=True)
    except (ManifestError, OSError) as error:
        logger.error("cannot run step %s: %s", manifest.step_id, error)
        return EXIT_BAD_MANIFEST
    emit = EventFile(events_path, echo=echo)
    limit = float(walltime_s if walltime_s is not None else manifest.resources.walltime_s)
    state = {"armed": True, "stopped": ""}

    def on_terminate(signum: int, frame: Any) -> None:
        if state["armed"] and not state["stopped"]:
            state["stopped"] = "terminated"
            raise StepTerminated(f"the step was stopped ({signal.Signals(signum).name})")

    def on_walltime(signum: int, frame: Any) -> None:
        if state["armed"] and not state["stopped"]:
            state["stopped"] = "walltime"
            raise WalltimeExceeded(f"step ran longer than its walltime of {limit:g} s; it was stopped")

    def hard_stop() -> None:
        emit({"kind": "log", "level": "error",
              "message": f"walltime of {limit:g} s exceeded and the block did not stop; process ended"})
        os._exit(EXIT_WALLTIME)

    previous = {sig: signal.signal(sig, on_terminate) for sig in (signal.SIGTERM, signal.SIGINT)}
    previous[signal.SIGALRM] = signal.signal(signal.SIGALRM, on_walltime)
    watchdog = _Watchdog(limit + walltime_grace_s, hard_stop)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        try:
            result = run_step(manifest, registry=registry, emit=emit, store_root=store_root)
        except StepCancelled as error:  # arrived outside the block, while the runner saved or cleaned up
            result = _interrupted_result(manifest, "cancelled", str(error))
        except WalltimeExceeded as error:
            result = _interrupted_result(manifest, "WalltimeExceeded", str(error))
        finally:
            state["armed"] = False
            signal.setitimer(signal.ITIMER_REAL, 0)
            watchdog.cancel()
        if not path_from_uri(manifest.result_uri, store_root).exists():
            result.write(path_from_uri(manifest.result_uri, store_root))
        emit({"kind": "result", "ok": result.ok, "result": manifest.result_uri})
    finally:
        emit.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if result.ok:
        return EXIT_OK
    kind = (result.error or {}).get("type")
    if state["stopped"] == "terminated" or (kind == "cancelled" and state["stopped"]):
        return EXIT_CANCELLED
    if kind == "WalltimeExceeded":
        return EXIT_WALLTIME
    return EXIT_FAILED


class _Watchdog:
    """Calls ``action`` from a thread of its own after ``delay_s`` unless cancelled first; like
    ``threading.Timer``, but its start does not wait for the new thread to be scheduled (in a freshly
    forked step process on a busy machine, that wait alone cost ~10 ms a step)."""

    def __init__(self, delay_s: float, action: Callable[[], None]) -> None:
        self._cancelled = threading.Event()
        _thread.start_new_thread(self._run, (delay_s, action))

    def _run(self, delay_s: float, action: Callable[[], None]) -> None:
        if not self._cancelled.wait(delay_s):
            action()

    def cancel(self) -> None:
        self._cancelled.set()


def _interrupted_result(manifest: StepManifest, kind: str, message: str) -> ResultManifest:
    return ResultManifest(
        run_id=manifest.run_id, step_id=manifest.step_id, block_id=manifest.block_id,
        block_version=manifest.block_version, ok=False, attempt=manifest.attempt,
        error={"type": kind, "message": message, "traceback": ""},
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m blocks.runner MANIFEST [--store-root DIR] [--walltime-s N]``.

    Prints events as JSON lines on stdout and appends them to the manifest's events file; writes the
    result manifest; exits with one of the ``EXIT_*`` codes: 0 ok, 1 the block failed, 2 bad
    manifest, 3 stopped by SIGTERM/SIGINT (cancelled), 4 walltime exceeded.
    """
    parser = argparse.ArgumentParser(prog="python -m blocks.runner", description=__doc__.split("\n")[0])
    parser.add_argument("manifest", type=Path, help="path of the step manifest (JSON)")
    parser.add_argument("--store-root", type=Path, default=None,
                        help="directory that store-relative URIs resolve under (default $ILIAD_STORE_ROOT)")
    parser.add_argument("--walltime-s", type=float, default=None,
                        help="override the manifest's resources.walltime_s")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        manifest = StepManifest.load(args.manifest)
        manifest.check_paths(args.store_root)
    except (ManifestError, OSError) as error:
        logger.error("cannot load the step manifest %s: %s", args.manifest, error)
        print(json.dumps({"kind": "log", "level": "error", "message": scrub_paths(str(error))}), flush=True)
        return EXIT_BAD_MANIFEST
    return execute(manifest, store_root=args.store_root, echo=sys.stdout, walltime_s=args.walltime_s)


if __name__ == "__main__":
    sys.exit(main())
