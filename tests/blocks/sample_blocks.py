"""Blocks that exist only for the tests, plus a helper to call any block the way the runner does."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from blocks.context import Emit, StepContext
from blocks.runner import validated_params
from blocks.spec import Block, Port, block

FAILURE_MESSAGE = "the sample block failed on purpose"


@block(id="tests.fail", version="1.0.0", title="Always fails", category="utility",
       outputs=(Port("result", "json"),))
def fail(ctx: StepContext, inputs: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """Raise an error, to test how failures are reported."""
    ctx.log("about to fail")
    raise RuntimeError(FAILURE_MESSAGE)


@block(id="tests.echo", version="0.1.0", title="Echo", category="utility",
       inputs=(Port("value", "any", required=False),), outputs=(Port("result", "json"),))
def echo(ctx: StepContext, inputs: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """Return the type name of whatever came in, to test ``any`` inputs."""
    return {"result": {"received": type(inputs["value"]).__name__ if "value" in inputs else None}}


def call(
    target: Block, inputs: Mapping[str, Any], params: Mapping[str, Any], scratch_dir: Path,
    emit: Emit | None = None,
) -> dict[str, Any]:
    """Run a block function in-process with validated parameters, as the runner would."""
    context = StepContext(scratch_dir=scratch_dir, emit=emit)
    return dict(target.function(context, dict(inputs), validated_params(target.spec, params)))
