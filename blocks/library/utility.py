"""Small blocks for building and testing pipelines."""

from __future__ import annotations

import time
from typing import Any

from blocks.context import StepContext
from blocks.spec import Port, block

SLEEP_SLICE_S = 0.05
"""Sleep in slices this short so progress and cancellation are noticed promptly."""


@block(
    id="utility.noop",
    version="1.0.0",
    title="No-op (wait and pass)",
    category="utility",
    inputs=(Port("trigger", "json", "Trigger", "Any JSON result to wait for; optional.", required=False),),
    outputs=(Port("result", "json", "Result", "{\"ok\": true, \"received\": <whether a trigger came in>}"),),
    parameters={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "sleep_s": {"type": "number", "minimum": 0, "maximum": 60, "default": 0,
                        "title": "Wait (seconds)",
                        "description": "How long to wait before finishing, reporting progress meanwhile."},
        },
    },
)
def noop(ctx: StepContext, inputs: dict[str, Any], params: dict[str, Any]) -> dict[str, dict[str, bool]]:
    """Do nothing, optionally for a while: a building block for testing pipelines and benchmarks.

    **What goes in:** optionally any JSON result of another step, to make this step wait for it.

    **What comes out:** a small JSON document `{"ok": true, "received": ...}` where `received` says
    whether something came in.

    **Use it** to check that pipelines, schedulers and compute backends run steps in the right order,
    or to measure their overhead: set *Wait* to make the step last that many seconds while it reports
    its progress (and stops promptly if the run is cancelled).
    """
    duration = float(params.get("sleep_s", 0))
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < duration:
        ctx.progress(elapsed / duration, f"waited {elapsed:.1f} of {duration:g} s")
        time.sleep(min(SLEEP_SLICE_S, duration - elapsed))
    ctx.progress(1.0, "done")
    return {"result": {"ok": True, "received": "trigger" in inputs}}
