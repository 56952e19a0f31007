"""Blocks that exist only for the test suite (loaded through ILIAD_BLOCK_MODULES)."""

import os
from pathlib import Path

from blocks.spec import Port, Resources, block


@block(
    id="testing.fail",
    version="1.0.0",
    title="Always fails",
    category="utility",
    inputs=(Port("dataset", "dataset"),),
    outputs=(Port("dataset", "dataset"),),
    parameters={
        "type": "object",
        "properties": {"message": {"type": "string", "default": "planned failure"}},
    },
)
def fail(ctx, inputs, params):
    """Logs a line, then raises: for testing how failures travel through a run."""
    ctx.log("about to fail")
    raise RuntimeError(params["message"])


@block(
    id="testing.count_calls",
    version="1.0.0",
    title="Counts its executions",
    category="utility",
    outputs=(Port("result", "json"),),
    parameters={
        "type": "object",
        "properties": {
            "marker": {"type": "string"},
            "sleep_s": {"type": "number", "default": 0},
            "first_call_only": {"type": "boolean", "default": False},
        },
        "required": ["marker"],
        "additionalProperties": False,
    },
)
def count_calls(ctx, inputs, params):
    """Appends one line (its pid) to the file ``marker`` per execution, then sleeps ``sleep_s``
    (with ``first_call_only``, only when the file was empty: a retry finishes at once)."""
    import time

    marker = Path(params["marker"])
    first_call = not marker.exists() or not marker.read_text()
    with open(marker, "a") as handle:
        handle.write(f"{os.getpid()}\n")
    sleep_s = params["sleep_s"] if first_call or not params["first_call_only"] else 0
    deadline = time.monotonic() + sleep_s
    while time.monotonic() < deadline:
        ctx.progress(1 - (deadline - time.monotonic()) / max(sleep_s, 1e-9))
        time.sleep(0.05)
    return {"result": {"calls_file": str(marker)}}


@block(
    id="testing.join",
    version="1.0.0",
    title="Joins two branches",
    category="utility",
    inputs=(Port("left", "any"), Port("right", "any")),
    outputs=(Port("result", "json"),),
)
def join(ctx, inputs, params):
    """Waits for two upstream branches; returns which types it received."""
    return {"result": {name: type(value).__name__ for name, value in sorted(inputs.items())}}


@block(
    id="testing.overrun",
    version="1.0.0",
    title="Overruns its walltime",
    category="utility",
    outputs=(Port("result", "json"),),
    parameters={
        "type": "object",
        "properties": {"seconds": {"type": "number", "default": 10}},
        "additionalProperties": False,
    },
    resources=Resources(walltime_s=1),
)
def overrun(ctx, inputs, params):
    """Reports progress every 50 ms for ``seconds`` (longer than its 1 s walltime), then returns."""
    import time

    deadline = time.monotonic() + params["seconds"]
    while time.monotonic() < deadline:
        ctx.progress(0.5, "still busy")
        time.sleep(0.05)
    return {"result": {"seconds": params["seconds"]}}
