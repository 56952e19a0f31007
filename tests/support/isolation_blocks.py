"""Blocks for the isolation and ``local`` executor tests: a snoop that looks for the portal's secrets,
a block that sleeps, one that ignores SIGTERM and SIGALRM, and one that logs many lines."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from blocks.spec import Port, block


def _attempt_read(path: str) -> str:
    """The file's content, or ``"denied: <error>"``."""
    try:
        return Path(path).read_bytes().decode("utf-8", "replace")
    except OSError as error:
        return f"denied: {type(error).__name__}"


@block(
    id="isolation.snoop",
    version="1.0.0",
    title="Looks for the portal's secrets",
    category="utility",
    outputs=(Port("result", "json"),),
    parameters={
        "type": "object",
        "properties": {
            "paths": {"type": "array", "items": {"type": "string"}, "default": []},
            "pids": {"type": "array", "items": {"type": "integer"}, "default": []},
        },
        "additionalProperties": False,
    },
)
def snoop(ctx, inputs, params):
    """Report the environment, the given files, the given processes' environments and what this
    process can see of itself."""
    targets = [int(pid) for pid in params["pids"]] + [os.getppid(), 1]
    return {"result": {
        "environ": dict(os.environ),
        "files": {path: _attempt_read(path) for path in params["paths"]},
        "proc_environ": {str(pid): _attempt_read(f"/proc/{pid}/environ") for pid in targets},
        "proc_root": {str(pid): _attempt_read(f"/proc/{pid}/root{path}")
                      for pid in targets for path in params["paths"]},
        "django_loaded": any(name == "django" or name.startswith("django.") for name in sys.modules),
        "uid": os.getuid(),
        "cwd": os.getcwd(),
        "fds": sorted(os.listdir("/proc/self/fd")),
    }}


@block(
    id="isolation.sleep",
    version="1.0.0",
    title="Sleeps",
    category="utility",
    outputs=(Port("result", "json"),),
    parameters={"type": "object", "properties": {"seconds": {"type": "number", "default": 30}},
                "additionalProperties": False},
)
def sleep(ctx, inputs, params):
    """Sleep ``seconds`` in one call (no progress reports), leaving a file in its scratch directory."""
    (ctx.scratch_dir / "busy").write_text("x")
    ctx.log(f"sleeping in {os.getpid()}")
    time.sleep(params["seconds"])
    return {"result": {"slept": params["seconds"]}}


@block(
    id="isolation.hang",
    version="1.0.0",
    title="Ignores being asked to stop",
    category="utility",
    outputs=(Port("result", "json"),),
)
def hang(ctx, inputs, params):
    """Ignore SIGTERM, SIGINT and SIGALRM, then sleep for ever: only SIGKILL (or the runner's own
    watchdog thread) ends it."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM):
        signal.signal(sig, signal.SIG_IGN)
    ctx.log("hanging")
    while True:
        time.sleep(1)


@block(
    id="isolation.chatty",
    version="1.0.0",
    title="Logs numbered lines",
    category="utility",
    outputs=(Port("result", "json"),),
    parameters={"type": "object", "properties": {"lines": {"type": "integer", "default": 50},
                                                 "pause_s": {"type": "number", "default": 0.0}},
                "additionalProperties": False},
)
def chatty(ctx, inputs, params):
    """Log ``lines`` numbered lines, ``pause_s`` apart."""
    for number in range(params["lines"]):
        ctx.log(f"line {number}")
        if params["pause_s"]:
            time.sleep(params["pause_s"])
    return {"result": {"lines": params["lines"]}}


@block(
    id="isolation.plant_links",
    version="1.0.0",
    title="Leaves symbolic links where the portal reads and writes",
    category="utility",
    outputs=(Port("result", "json"),),
    parameters={"type": "object", "properties": {"target": {"type": "string"}},
                "required": ["target"], "additionalProperties": False},
)
def plant_links(ctx, inputs, params):
    """Replace the step's events file, and its scratch directory's parent entries the next attempt
    will touch, with links to ``target``."""
    output_dir = ctx.scratch_dir.parent
    for name in ("_events.jsonl", "_runner.log", "stale-output.json"):
        link = output_dir / f".{name}.link"
        link.symlink_to(params["target"])
        os.replace(link, output_dir / name)
    return {"result": {"planted": True}}


@block(
    id="isolation.connect",
    version="1.0.0",
    title="Tries to reach a TCP port",
    category="utility",
    outputs=(Port("result", "json"),),
    parameters={"type": "object", "properties": {"host": {"type": "string"}, "port": {"type": "integer"}},
                "required": ["host", "port"], "additionalProperties": False},
)
def connect(ctx, inputs, params):
    """Open a TCP connection to ``host:port``; report whether it worked."""
    import socket

    try:
        socket.create_connection((params["host"], params["port"]), timeout=2).close()
    except OSError as error:
        return {"result": {"connected": False, "error": type(error).__name__}}
    return {"result": {"connected": True}}


@block(
    id="isolation.late_import",
    version="1.0.0",
    title="Imports a module only when it runs",
    category="utility",
    outputs=(Port("result", "json"),),
    parameters={
        "type": "object",
        "properties": {"module": {"type": "string", "default": "tabnanny"}},
        "additionalProperties": False,
    },
)
def late_import(ctx, inputs, params):
    """Imports ``module`` (a standard-library module nothing else loads) as a block that needs it only
    when it runs does; returns where it came from and the user it ran as."""
    import importlib

    module = importlib.import_module(params["module"])
    return {"result": {"file": module.__file__, "uid": os.getuid()}}
