"""Run a chain of steps inside one batch job: ``python -m blocks.chain CHAIN.json [--store-root DIR]``.

A chain is a line of steps where each one's only upstream is the one before it (a Slurm target packs
such a line of short steps into one job instead of one job per step, see the slurm executor). The
chain file lists them in order::

    {"steps": [
        {"manifest": "/…/runs/7/a/_manifest.json", "dir": "/…/runs/7/a"},
        {"template": "/…/runs/7/b/_chain_template.json", "dir": "/…/runs/7/b",
         "inputs": {"previous": "result"}},
        …]}

The first step's manifest is complete. Each later step's manifest is its template with its inputs
filled in from the result manifest of the step before it (``inputs``: its input port → that step's
output port) and is written next to it as ``_chain_manifest.json``. Each step runs in a child forked
from this process (the block library is imported once), exactly as ``python -m blocks.runner``
would run it; the first step writes to the job's standard output and error, each later step to
``_slurm.out`` and ``_slurm.err`` in its own directory. The chain stops at the first step that does
not succeed and exits with that step's exit code. SIGTERM (a cancel, the job's time limit) goes to
the running step, which ends as the runner ends it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from blocks.manifest import InputRef, ManifestError, ResultManifest, StepManifest, path_from_uri
from blocks.runner import EXIT_BAD_MANIFEST, EXIT_FAILED, EXIT_OK, execute

CHAIN_MANIFEST = "_chain_manifest.json"


def _manifest(entry: dict[str, Any], previous: ResultManifest | None) -> StepManifest:
    if "manifest" in entry:
        return StepManifest.load(Path(entry["manifest"]))
    template = StepManifest.load(Path(entry["template"]))
    if previous is None:
        raise ManifestError("a chain's later step needs the result of the step before it")
    outputs = {record.port: record for record in previous.artifacts}
    inputs = dict(template.inputs)
    for port, upstream_port in (entry.get("inputs") or {}).items():
        record = outputs.get(upstream_port)
        if record is None:
            raise ManifestError(f"the step before {template.step_id} has no output {upstream_port!r}")
        inputs[port] = InputRef(uri=record.uri, type=record.type)
    manifest = StepManifest.from_dict({**template.to_dict(), "inputs": {
        port: {"uri": ref.uri, "type": ref.type} for port, ref in inputs.items()
    }})
    path = Path(entry["dir"]) / CHAIN_MANIFEST
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(manifest.to_dict()))
    os.replace(partial, path)
    return manifest


def _run_forked(manifest: StepManifest, store_root: Path | None, out: Path | None) -> int:
    """The step in a forked child (its output to ``out``/_slurm.out and .err when given); TERM to this
    process goes on to the child. Returns the runner's exit code."""
    pid = os.fork()
    if pid == 0:  # the child: the same as `python -m blocks.runner MANIFEST`
        code = EXIT_FAILED
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            if out is not None:
                for fd, name in ((1, "_slurm.out"), (2, "_slurm.err")):
                    target = os.open(out / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                    os.dup2(target, fd)
                    os.close(target)
                sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
                sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
            code = execute(manifest, store_root=store_root, echo=sys.stdout)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    forward = signal.signal(signal.SIGTERM, lambda signum, frame: os.kill(pid, signal.SIGTERM))
    try:
        while True:
            try:
                _, status = os.waitpid(pid, 0)
                break
            except InterruptedError:
                continue
    finally:
        signal.signal(signal.SIGTERM, forward)
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def run_chain(chain: dict[str, Any], store_root: Path | None = None) -> int:
    """Run the chain's steps in order. With ``"independent": true`` (a batch of steps that do not
    wait for each other, packed into one task of a job array) each step has its complete manifest
    and a failing one does not stop the others; a stopped one (SIGTERM: cancel, time limit) does."""
    independent = bool(chain.get("independent"))
    previous: ResultManifest | None = None
    worst = EXIT_OK
    for position, entry in enumerate(chain["steps"]):
        out = None if position == 0 else Path(entry["dir"])
        try:
            manifest = _manifest(entry, previous)
            manifest.check_paths(store_root)
        except (ManifestError, OSError, KeyError) as error:
            message = json.dumps(
                {"kind": "log", "level": "error", "message": f"chain step {position}: {error}"}
            )
            if out is not None:
                (out / "_slurm.out").write_text(message + "\n")
            else:
                print(message, flush=True)
            if independent:
                worst = max(worst, EXIT_BAD_MANIFEST)
                continue
            return EXIT_BAD_MANIFEST
        code = _run_forked(manifest, store_root, out)
        if independent and code in (EXIT_OK, EXIT_FAILED):
            worst = max(worst, code)
            continue
        if code != EXIT_OK:
            return code
        try:
            previous = ResultManifest.load(path_from_uri(manifest.result_uri, store_root))
        except (ManifestError, OSError, ValueError, KeyError):
            return EXIT_FAILED
    return worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m blocks.chain", description=__doc__.split("\n")[0])
    parser.add_argument("chain", type=Path, help="the chain file (JSON)")
    parser.add_argument("--store-root", type=Path, default=None)
    args = parser.parse_args(argv)
    from blocks.registry import default_registry

    default_registry()  # imported once here: each step's child is forked with the library loaded
    return run_chain(json.loads(args.chain.read_text()), args.store_root)


if __name__ == "__main__":
    sys.exit(main())
