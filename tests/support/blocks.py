"""Blocks that exist only for the test suite (loaded through ILIAD_BLOCK_MODULES)."""

import os
from pathlib import Path

from blocks.spec import Port, Quantity, Resources, block


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


@block(
    id="testing.leak_paths",
    version="1.0.0",
    title="Fails with server paths in its messages",
    category="utility",
    outputs=(Port("result", "json"),),
    parameters={
        "type": "object",
        "properties": {
            "source": {"type": "string", "default": "demo/sst.nc"},
            "where": {"enum": ["data", "library"], "default": "data"},
        },
        "additionalProperties": False,
    },
)
def leak_paths(ctx, inputs, params):
    """Reports progress and logs lines naming absolute server paths, then fails: with ``where``
    "data" by raising an error naming the absolute path of ``source`` in the data space, with
    "library" inside a library (opening a missing file in the installed jsonschema package)."""
    import jsonschema

    data_file = (ctx.data_dir / params["source"]).resolve()
    ctx.progress(0.1, f"reading {data_file}")
    ctx.log(f"scratch in {ctx.scratch_dir}, code in {Path(__file__).resolve()}")
    if params["where"] == "library":
        (Path(jsonschema.__file__).parent / "no-such-schema.json").read_text()
    raise RuntimeError(f"source: cannot use {data_file}")


@block(
    id="testing.si_currents_model",
    version="1.0.0",
    title="Currents model in SI units",
    category="model",
    inputs=(Port("currents", "dataset", "Currents", "Eastward and northward sea water velocity in m s-1.",
                 quantity=Quantity(kind="velocity", units="m s-1", match="standard_name",
                                   standard_names=("eastward_sea_water_velocity",
                                                   "northward_sea_water_velocity"))),),
    outputs=(Port("currents", "dataset", "Currents", "The currents it ran on."),),
)
def si_currents_model(ctx, inputs, params):
    """Stands for a numerical model with a fixed unit contract: it refuses velocities not in m s-1
    (declared on its input, so the portal catches them before a run and offers a conversion)."""
    dataset = inputs["currents"]
    for name, variable in dataset.data_vars.items():
        if variable.attrs.get("standard_name", "").endswith("sea_water_velocity"):
            if variable.attrs.get("units") != "m s-1":
                raise ValueError(f"currents: {name!r} is in {variable.attrs.get('units')!r}, not m s-1")
    return {"currents": dataset}


RECORD_PARAMETERS = {
    "type": "object",
    "properties": {
        "marker": {"type": "string"},
        "name": {"type": "string"},
        "add": {"type": "number", "default": 1},
        "fail_flag": {"type": "string", "default": ""},
        "sleep_s": {"type": "number", "default": 0},
    },
    "required": ["marker", "name"],
    "additionalProperties": False,
}


def _record(ctx, inputs, params):
    """Appends ``name`` to the file ``marker`` (one line per execution), fails while the file
    ``fail_flag`` exists, sleeps ``sleep_s``, then returns the upstream total plus ``add``."""
    import time

    with open(params["marker"], "a") as handle:
        handle.write(f"{params['name']}\n")
    if params["fail_flag"] and Path(params["fail_flag"]).exists():
        raise RuntimeError(f"{params['name']}: flag {params['fail_flag']} is set")
    time.sleep(params["sleep_s"])
    total = (inputs.get("previous") or {}).get("total", 0) + params["add"]
    return {"result": {"total": total}}


record = block(
    id="testing.record",
    version="1.0.0",
    title="Records its executions",
    category="utility",
    inputs=(Port("previous", "json", required=False),),
    outputs=(Port("result", "json"),),
    parameters=RECORD_PARAMETERS,
)(_record)
record_uncached = block(
    id="testing.record_uncached",
    version="1.0.0",
    title="Records its executions, never reused",
    category="utility",
    inputs=(Port("previous", "json", required=False),),
    outputs=(Port("result", "json"),),
    parameters=RECORD_PARAMETERS,
    cacheable=False,
)(_record)


@block(
    id="testing.hpc_job",
    version="1.0.0",
    title="Works like a cluster job",
    category="utility",
    inputs=(Port("previous", "json", required=False),),
    outputs=(Port("result", "json"),),
    parameters={
        "type": "object",
        "properties": {
            "add": {"type": "number", "default": 1},
            "lines": {"type": "integer", "default": 0},
            "interval_s": {"type": "number", "default": 0.5},
            "hog_mb": {"type": "integer", "default": 0},
            "stderr": {"type": "string", "default": ""},
            "fail": {"type": "boolean", "default": False},
        },
        "additionalProperties": False,
    },
    resources=Resources(memory_mb=200, walltime_s=600),
)
def hpc_job(ctx, inputs, params):
    """Logs ``lines`` lines ``interval_s`` apart (a model's progress), optionally writes ``stderr`` to
    its standard error and holds ``hog_mb`` MiB of memory (more than its 200 MiB hint: the cluster
    kills it), then returns the upstream total plus ``add`` and the Slurm job it ran in."""
    import sys
    import time

    if params["stderr"]:
        print(params["stderr"], file=sys.stderr, flush=True)
    hog = bytearray(params["hog_mb"] * 1024 * 1024)
    for index in range(0, len(hog), 4096):
        hog[index] = 1
    for line in range(params["lines"]):
        ctx.log(f"hpc line {line + 1} of {params['lines']}")
        time.sleep(params["interval_s"])
    if params["fail"]:
        raise RuntimeError("planned failure")
    total = (inputs.get("previous") or {}).get("total", 0) + params["add"]
    return {"result": {"total": total, "slurm_job": os.environ.get("SLURM_JOB_ID", "")}}


@block(
    id="testing.hang",
    version="1.0.0",
    title="Hangs past its walltime",
    category="utility",
    outputs=(Port("result", "json"),),
    parameters={
        "type": "object",
        "properties": {"marker": {"type": "string"}},
        "required": ["marker"],
        "additionalProperties": False,
    },
    resources=Resources(walltime_s=2),
)
def hang(ctx, inputs, params):
    """Writes its pid to ``marker``, ignores SIGTERM and sleeps for ever without a progress report:
    only its executor's walltime enforcement (or SIGKILL) ends it."""
    import signal
    import time

    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    Path(params["marker"]).write_text(f"{os.getpid()}\n")
    while True:
        time.sleep(1)


@block(
    id="testing.stages",
    version="1.0.0",
    title="Works in stages",
    category="utility",
    inputs=(Port("previous", "any", required=False),),
    outputs=(Port("result", "json"),),
    parameters={
        "type": "object",
        "properties": {
            "stages": {"type": "integer", "minimum": 1, "default": 4},
            "stage_s": {"type": "number", "minimum": 0, "default": 1},
        },
        "additionalProperties": False,
    },
)
def stages(ctx, inputs, params):
    """Spends ``stage_s`` seconds on each of ``stages`` stages, reporting its progress with a message
    ("stage 2 of 4") as a model does."""
    import time

    for stage in range(params["stages"]):
        ctx.progress(stage / params["stages"], f"stage {stage + 1} of {params['stages']}")
        time.sleep(params["stage_s"])
    return {"result": {"stages": params["stages"]}}
