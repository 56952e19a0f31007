"""Orchestration overhead of the portal's runs against raw Celery, on the same broker and worker.

    python -m bench.orchestration              # embedded default: temporary SQLite + embedded Redis
    python -m bench.orchestration --use-env    # DATABASE_URL / REDIS_URL as configured (PostgreSQL + Redis)

Measures, after a warm-up, ``--repeat`` times each (the median is reported):

* a pipeline of ``--chain-steps`` (100) ``utility.noop`` steps in a line, against a raw Celery chain of
  as many no-op tasks (``bench.noop``);
* a pipeline of ``--fanout-steps`` (200) independent ``utility.noop`` steps, against a raw Celery
  group of as many no-op tasks;

all on ONE ``celery worker --concurrency 2`` process started here, and prints the per-step time of
each and the ratio pipeline / raw Celery. Target: ratio <= 2 for the chain and for the fan-out.

Timing, the same for both sides: from the driver's ``time.time()`` just before sending
(``run_submit`` / ``apply_async``) to the end time the worker stamps once the last piece of work is
done, with the same clock: ``Run.finished_at`` (set by the portal's ``step_finish``) for a pipeline,
the Redis key that the last ``bench.noop`` task sets for raw Celery (see bench/tasks.py). The driver
only polls (every 10 ms) to learn that the end was stamped, so the polling rate does not enter the
figures and its load on the database is small.

See bench/README.md for the options and how to read the output.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 2.0
POLL_S = 0.01
SETTLE_S = 0.2
WORKER_START_TIMEOUT_S = 60.0
WORKER_STOP_TIMEOUT_S = 20.0
WARMUP_STEPS = 4


class BenchError(RuntimeError):
    """The benchmark cannot go on; the message says why."""


def log(message: str) -> None:
    print(f"[bench] {message}", flush=True)


# --------------------------------------------------------------------------------------------------
# environment: set up before Django is imported
# --------------------------------------------------------------------------------------------------


@dataclass
class Stack:
    """What the benchmark started; :meth:`stop` undoes it and is safe to call more than once."""

    home: Path
    own_home: bool
    keep_home: bool = False
    redis: Any = None  # iliad_portal.embedded.RedisServer when started here
    worker: subprocess.Popen | None = None
    worker_log: Any = None
    worker_name: str = ""

    @property
    def worker_log_path(self) -> Path:
        return self.home / "bench-worker.log"

    def worker_log_tail(self, chars: int = 3000) -> str:
        try:
            return self.worker_log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no worker log)"

    def stop(self) -> None:
        if self.worker is not None:
            stop_worker(self.worker)
            self.worker = None
        if self.worker_log is not None:
            self.worker_log.close()
            self.worker_log = None
        if self.redis is not None:
            self.redis.stop()
            self.redis = None
        if self.own_home and not self.keep_home:
            shutil.rmtree(self.home, ignore_errors=True)
            self.own_home = False


def describe_url(url: str) -> str:
    """A URL without its password, for printing."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def prepare_environment(args: argparse.Namespace) -> Stack:
    """Set ILIAD_HOME, DATABASE_URL, REDIS_URL, CELERY_BROKER_URL for this process and the worker."""
    from iliad_portal.embedded import check_services, start_redis

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "iliad_portal.settings")
    # One user's runs, one after another: the per-user limits would only refuse big --fanout-steps.
    # (Fair sharing, ILIAD_FAIR_STEPS_PER_USER, stays as configured: it is part of what is measured.)
    for name in ("ILIAD_LIMIT_ACTIVE_RUNS", "ILIAD_LIMIT_QUEUED_STEPS", "ILIAD_LIMIT_STORAGE_MB"):
        os.environ.setdefault(name, "0")
    if args.use_env:
        redis_url = os.environ.get("REDIS_URL") or os.environ.get("CELERY_BROKER_URL") or ""
        if not redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise BenchError(
                "--use-env needs REDIS_URL (or a Redis CELERY_BROKER_URL): the end of raw Celery work is "
                "signalled through it"
            )
        database_url = os.environ.get("DATABASE_URL", "")
        if database_url.startswith(("postgres://", "postgresql://")):
            problems = check_services(database_url, redis_url)  # creates the database if missing
            if problems:
                raise BenchError("; ".join(problems))
        if os.environ.get("ILIAD_HOME"):
            stack = Stack(home=Path(os.environ["ILIAD_HOME"]).resolve(), own_home=False)
        else:
            stack = Stack(home=Path(tempfile.mkdtemp(prefix="iliad-bench-")), own_home=True)
            os.environ.pop("ILIAD_ARTIFACT_ROOT", None)
        stack.keep_home = args.keep
        os.environ["ILIAD_HOME"] = str(stack.home)
        return stack

    stack = Stack(home=Path(tempfile.mkdtemp(prefix="iliad-bench-")), own_home=True, keep_home=args.keep)
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "ILIAD_ARTIFACT_ROOT"):
        os.environ.pop(name, None)
    os.environ["ILIAD_HOME"] = str(stack.home)
    os.environ["DATABASE_URL"] = f"sqlite:///{stack.home / 'db.sqlite3'}"
    try:
        stack.redis = start_redis(stack.home / "redis")
    except RuntimeError as error:  # no server binary, or it did not start
        stack.stop()
        raise BenchError(str(error)) from None
    except BaseException:
        stack.stop()
        raise
    os.environ["REDIS_URL"] = stack.redis.url
    os.environ["CELERY_BROKER_URL"] = stack.redis.url
    return stack


def setup_django() -> Any:
    """django.setup(), migrate, sync_catalog; returns the benchmark user."""
    import io

    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", interactive=False, verbosity=0)
    out = io.StringIO()
    call_command("sync_catalog", stdout=out, stderr=out)
    from django.contrib.auth import get_user_model

    user, _ = get_user_model().objects.get_or_create(username="bench")
    from django.db import connection

    if connection.vendor == "postgresql":
        # The database keeps the runs of earlier invocations: tables and indexes churned by them
        # (dead index entries, stale statistics) would be measured as if they were the portal's.
        with connection.cursor() as cursor:
            for table in ("runs_steprun", "runs_run", "runs_runevent", "runs_artifact"):
                cursor.execute(f"VACUUM ANALYZE {table}")
    return user


# --------------------------------------------------------------------------------------------------
# the worker
# --------------------------------------------------------------------------------------------------


def start_worker(stack: Stack, concurrency: int) -> None:
    """Start ONE celery worker process (prefork) on the same database and broker; wait for its ping."""
    from iliad_portal.celery import app

    with app.connection_for_write() as conn:
        dropped = app.control.purge(connection=conn)
    if dropped:
        log(f"purged {dropped} message(s) left in the broker queue")
    stack.worker_name = f"bench-{os.getpid()}@%h"
    stack.worker_log = open(stack.worker_log_path, "w")  # noqa: SIM115 - closed by Stack.stop
    stack.worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "iliad_portal", "worker",
         "--concurrency", str(concurrency), "--include", "bench.tasks",
         "--loglevel", "WARNING", "--without-gossip", "--without-mingle", "-n", stack.worker_name],
        cwd=REPO_ROOT, env=dict(os.environ), stdin=subprocess.DEVNULL, stdout=stack.worker_log,
        stderr=subprocess.STDOUT, process_group=0,  # a terminal Ctrl-C reaches only the driver
    )  # fmt: skip
    deadline = time.monotonic() + WORKER_START_TIMEOUT_S
    while True:
        replies = app.control.ping(timeout=0.5)
        names = [name for reply in replies for name in reply]
        ours = [name for name in names if name.startswith(f"bench-{os.getpid()}@")]
        if ours:
            others = sorted(set(names) - set(ours))
            if others:
                raise BenchError(
                    f"other workers consume this broker too ({', '.join(others)}): they would take the "
                    "benchmark's tasks. Use a broker (Redis database) of its own."
                )
            return
        if stack.worker.poll() is not None or time.monotonic() > deadline:
            raise BenchError(f"the celery worker did not start; its log:\n{stack.worker_log_tail()}")


def stop_worker(process: subprocess.Popen) -> None:
    """Warm shutdown (SIGTERM to the main process), then SIGKILL whatever is left of its group."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(WORKER_STOP_TIMEOUT_S)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)  # its own group (process_group=0): pool children too
    process.wait()


def check_worker(stack: Stack) -> None:
    if stack.worker is None or stack.worker.poll() is not None:
        raise BenchError(f"the celery worker process died; its log:\n{stack.worker_log_tail()}")


def wait_idle(stack: Stack, timeout: float = 30.0) -> None:
    """Let the previous measurement's tail (acks, commits) finish before the next one starts."""
    from iliad_portal.celery import app

    queue = app.conf.task_default_queue
    deadline = time.monotonic() + timeout
    with app.connection_for_write() as conn:
        while queued_messages(conn, queue) and time.monotonic() < deadline:
            check_worker(stack)
            time.sleep(POLL_S)
    time.sleep(SETTLE_S)


def queued_messages(conn, queue: str) -> int:
    """Messages waiting in the broker queue (Redis: the list's length; else a passive declare)."""
    channel = conn.default_channel
    client = getattr(channel, "client", None)
    if client is not None and hasattr(client, "llen"):
        return client.llen(queue)
    try:
        return channel.queue_declare(queue, passive=True).message_count
    except conn.channel_errors:
        return 0


# --------------------------------------------------------------------------------------------------
# the measurements
# --------------------------------------------------------------------------------------------------


@dataclass
class Sample:
    total_s: float  # driver's clock before sending -> worker's end stamp
    dispatch_s: float  # until run_submit / apply_async returned
    observed_s: float  # until the driver saw the end (polling every POLL_S)


def node(node_id: str, x: int, y: int) -> dict[str, Any]:
    position = {"x": x, "y": y}
    return {"id": node_id, "block": "utility.noop", "version": "1.0.0", "params": {}, "position": position}


def chain_document(steps: int) -> dict[str, Any]:
    nodes = [node(f"n{i}", 220 * i, 0) for i in range(steps)]
    edges = [
        {"source": f"n{i}", "source_port": "result", "target": f"n{i + 1}", "target_port": "trigger"}
        for i in range(steps - 1)
    ]
    return {"format": "iliad.pipeline", "version": 1, "nodes": nodes, "edges": edges}


def fanout_document(steps: int) -> dict[str, Any]:
    nodes = [node(f"n{i}", 220 * (i % 20), 120 * (i // 20)) for i in range(steps)]
    return {"format": "iliad.pipeline", "version": 1, "nodes": nodes, "edges": []}


def pipeline_make(user, name: str, document: dict[str, Any]):
    from apps.pipelines.services import pipeline_create

    return pipeline_create(owner=user, name=name, document=document)


def measure_pipeline(stack: Stack, pipeline, user, steps: int, timeout: float) -> Sample:
    from apps.runs.models import RUN_FINISHED, Run, RunState, StepState
    from apps.runs.services import run_submit

    started = time.time()
    # Without the step cache: every repeat runs the same no-op steps, which it would otherwise reuse.
    run = run_submit(pipeline=pipeline, user=user, cache=False)
    dispatched = time.time()
    deadline = time.monotonic() + timeout
    while True:
        state, finished_at = Run.objects.filter(pk=run.pk).values_list("state", "finished_at").get()
        if state in RUN_FINISHED and finished_at is not None:
            observed = time.time()
            break
        if time.monotonic() > deadline:
            raise BenchError(f"run {run.pk} did not finish within {timeout:g} s (state {state})")
        check_worker(stack)
        time.sleep(POLL_S)
    if state != RunState.SUCCEEDED:
        failed = run.steps.exclude(state=StepState.SUCCEEDED).values_list("node_id", "state", "error")
        raise BenchError(f"run {run.pk} ended {state}: {list(failed[:5])}")
    done = run.steps.filter(state=StepState.SUCCEEDED).count()
    if done != steps:
        raise BenchError(f"run {run.pk} succeeded with {done} of {steps} steps")
    return Sample(finished_at.timestamp() - started, dispatched - started, observed - started)


def measure_raw(stack: Stack, shape: str, steps: int, timeout: float) -> Sample:
    from celery import chain, group

    from bench.tasks import done_key, noop, signal_client

    token = uuid.uuid4().hex
    if shape == "chain":
        canvas = chain(*[noop.si() for _ in range(steps - 1)], noop.si(token=token))
    else:
        canvas = group(noop.si(token=token, total=steps) for _ in range(steps))
    client = signal_client()
    started = time.time()
    canvas.apply_async()
    dispatched = time.time()
    deadline = time.monotonic() + timeout
    while (stamp := client.get(done_key(token))) is None:
        if time.monotonic() > deadline:
            raise BenchError(f"raw Celery {shape} of {steps} did not finish within {timeout:g} s")
        check_worker(stack)
        time.sleep(POLL_S)
    observed = time.time()
    client.delete(done_key(token))
    return Sample(float(stamp) - started, dispatched - started, observed - started)


@dataclass
class Scenario:
    key: str
    label: str
    steps: int
    kind: str  # "pipeline" or "raw"
    shape: str  # "chain" or "group"
    baseline: str = ""  # key of the raw scenario a pipeline scenario is compared with
    samples: list[Sample] = field(default_factory=list)

    @property
    def total_s(self) -> float:
        return statistics.median(sample.total_s for sample in self.samples)

    @property
    def dispatch_s(self) -> float:
        return statistics.median(sample.dispatch_s for sample in self.samples)

    @property
    def per_step_ms(self) -> float:
        return self.total_s / self.steps * 1000


def run_scenario(stack: Stack, scenario: Scenario, pipelines: dict[str, Any], user, timeout: float) -> Sample:
    wait_idle(stack)
    if scenario.kind == "raw":
        return measure_raw(stack, scenario.shape, scenario.steps, timeout)
    return measure_pipeline(stack, pipelines[scenario.key], user, scenario.steps, timeout)


def benchmark(stack: Stack, user, args: argparse.Namespace) -> list[Scenario]:
    scenarios = [
        Scenario("raw-chain", "raw Celery chain", args.chain_steps, "raw", "chain"),
        Scenario("pipeline-chain", "pipeline chain", args.chain_steps, "pipeline", "chain", "raw-chain"),
        Scenario("raw-group", "raw Celery group", args.fanout_steps, "raw", "group"),
        Scenario("pipeline-fanout", "pipeline fan-out", args.fanout_steps, "pipeline", "group", "raw-group"),
    ]
    suffix = uuid.uuid4().hex[:8]
    pipelines = {
        "pipeline-chain": pipeline_make(user, f"bench chain {args.chain_steps} {suffix}",
                                        chain_document(args.chain_steps)),
        "pipeline-fanout": pipeline_make(user, f"bench fan-out {args.fanout_steps} {suffix}",
                                         fanout_document(args.fanout_steps)),
    }  # fmt: skip
    warm_pipelines = {
        "pipeline-chain": pipeline_make(user, f"bench warm-up chain {suffix}", chain_document(WARMUP_STEPS)),
        "pipeline-fanout": pipeline_make(user, f"bench warm-up fan-out {suffix}",
                                         fanout_document(WARMUP_STEPS)),
    }  # fmt: skip
    log(f"warm-up: every scenario with {WARMUP_STEPS} steps")
    for scenario in scenarios:
        warm = Scenario(scenario.key, scenario.label, WARMUP_STEPS, scenario.kind, scenario.shape)
        run_scenario(stack, warm, warm_pipelines, user, args.timeout)
    for repeat in range(args.repeat):
        # alternate the order so that a drift (database growth, a warming cache) hits both sides alike
        order = scenarios if repeat % 2 == 0 else [scenarios[1], scenarios[0], scenarios[3], scenarios[2]]
        for scenario in order:
            sample = run_scenario(stack, scenario, pipelines, user, args.timeout)
            scenario.samples.append(sample)
            log(f"repeat {repeat + 1}/{args.repeat}: {scenario.label} ({scenario.steps}): "
                f"{sample.total_s:.3f} s, {sample.total_s / scenario.steps * 1000:.2f} ms/step")  # fmt: skip
    return scenarios


# --------------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------------


def ratios(scenarios: list[Scenario]) -> dict[str, float]:
    by_key = {scenario.key: scenario for scenario in scenarios}
    return {
        scenario.key: scenario.per_step_ms / by_key[scenario.baseline].per_step_ms
        for scenario in scenarios
        if scenario.baseline
    }


def report(scenarios: list[Scenario], stack_info: dict[str, Any], repeat: int) -> str:
    ratio_of = ratios(scenarios)
    lines = [
        f"stack: database {stack_info['database']}, broker {stack_info['broker']}, channel layer "
        f"{stack_info['channel_layer']}, 1 worker x {stack_info['concurrency']} processes; "
        f"median of {repeat}",
        f"machine: {stack_info['cpus']} CPUs, 1-min load average {stack_info['load_before']} before, "
        f"{stack_info['load_after']} after (other work on the machine skews the figures)",
        "",
        f"{'scenario':<18} {'steps':>5} {'total s':>8} {'per-step ms':>11} {'dispatch s':>10} {'ratio':>6}",
    ]
    for scenario in scenarios:
        ratio = f"{ratio_of[scenario.key]:.2f}" if scenario.key in ratio_of else ""
        lines.append(
            f"{scenario.label:<18} {scenario.steps:>5} {scenario.total_s:>8.3f} "
            f"{scenario.per_step_ms:>11.2f} {scenario.dispatch_s:>10.3f} {ratio:>6}"
        )
    chain_ratio, fanout_ratio = ratio_of["pipeline-chain"], ratio_of["pipeline-fanout"]
    verdict = "MET" if chain_ratio <= TARGET_RATIO else "NOT MET"
    fanout_verdict = "MET" if fanout_ratio <= TARGET_RATIO else "NOT MET"
    lines += [
        "",
        "ratio = pipeline per-step ms / raw Celery per-step ms (chain vs chain, fan-out vs group);",
        "dispatch = time until run_submit / apply_async returned (included in total).",
        f"target ratio ≤ {TARGET_RATIO:g} for the chain: {verdict} ({chain_ratio:.2f})",
        f"target ratio ≤ {TARGET_RATIO:g} for the fan-out: {fanout_verdict} ({fanout_ratio:.2f})",
    ]
    return "\n".join(lines)


def figures(scenarios: list[Scenario], stack_info: dict[str, Any], args: argparse.Namespace) -> dict:
    ratio_of = ratios(scenarios)
    return {
        "benchmark": "orchestration",
        "stack": stack_info,
        "repeat": args.repeat,
        "target_ratio": TARGET_RATIO,
        "chain_ratio": ratio_of["pipeline-chain"],
        "target_met": ratio_of["pipeline-chain"] <= TARGET_RATIO,
        "fanout_ratio": ratio_of["pipeline-fanout"],
        "fanout_target_met": ratio_of["pipeline-fanout"] <= TARGET_RATIO,
        "scenarios": [
            {
                "key": scenario.key,
                "label": scenario.label,
                "steps": scenario.steps,
                "total_s": scenario.total_s,
                "per_step_ms": scenario.per_step_ms,
                "dispatch_s": scenario.dispatch_s,
                "ratio": ratio_of.get(scenario.key),
                "samples": [asdict(sample) for sample in scenario.samples],
            }
            for scenario in scenarios
        ],
    }


# --------------------------------------------------------------------------------------------------
# command
# --------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.orchestration",
        description="Per-step orchestration overhead of pipeline runs against raw Celery on the same worker.",
    )
    parser.add_argument("--use-env", action="store_true",
                        help="use DATABASE_URL / REDIS_URL (and CELERY_BROKER_URL, ILIAD_HOME) from the "
                             "environment instead of a temporary SQLite database and an embedded Redis")
    parser.add_argument("--repeat", type=int, default=3, help="measurements per scenario; the median counts")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures to PATH as JSON")
    parser.add_argument("--chain-steps", type=int, default=100, help="steps of the chain (default 100)")
    parser.add_argument("--fanout-steps", type=int, default=200, help="steps of the fan-out (default 200)")
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds one measurement may take")
    parser.add_argument("--keep", action="store_true", help="keep the temporary ILIAD_HOME (worker log, db)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    for name in ("chain_steps", "fanout_steps"):
        if not 2 <= getattr(args, name) <= 500:
            parser.error(f"--{name.replace('_', '-')} must be between 2 and 500 (the validator's node limit)")
    if args.concurrency < 1:
        parser.error("--concurrency must be at least 1")
    return args


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    stack: Stack | None = None
    try:
        stack = prepare_environment(args)
        log(f"ILIAD_HOME={stack.home}; setting up the database")
        user = setup_django()
        from django.conf import settings
        from django.db import connection

        stack_info = {
            "mode": "env" if args.use_env else "embedded",
            "database": connection.vendor,
            "database_url": describe_url(os.environ.get("DATABASE_URL", "")),
            "broker": describe_url(settings.CELERY_BROKER_URL),
            "channel_layer": settings.CHANNEL_LAYERS["default"]["BACKEND"].rsplit(".", 1)[-1],
            "concurrency": args.concurrency,
            "cpus": os.cpu_count(),
        }
        log(f"database {stack_info['database_url']}, broker {stack_info['broker']}; starting the worker")
        start_worker(stack, args.concurrency)
        started = time.monotonic()
        stack_info["load_before"] = round(os.getloadavg()[0], 2)
        scenarios = benchmark(stack, user, args)
        stack_info["load_after"] = round(os.getloadavg()[0], 2)
        log(f"measured in {time.monotonic() - started:.1f} s")
        print()
        print(report(scenarios, stack_info, args.repeat), flush=True)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(figures(scenarios, stack_info, args), indent=2) + "\n")
            log(f"figures written to {args.json}")
        return 0
    except BenchError as error:
        log(f"error: {error}")
        return 1
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if stack is not None:
            log("stopping the worker" + (" and the embedded Redis" if stack.redis is not None else ""))
            stack.stop()
            if stack.keep_home and stack.own_home:
                log(f"kept {stack.home}")


if __name__ == "__main__":
    sys.exit(main())
