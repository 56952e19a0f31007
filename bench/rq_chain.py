"""Per-step cost of running a pipeline's steps through an RQ compute target, against raw RQ jobs.

    python -m bench.rq_chain              # embedded default: temporary SQLite + embedded Redis
    python -m bench.rq_chain --use-env    # DATABASE_URL / REDIS_URL as configured (PostgreSQL + Redis)

One ``rq worker`` (the portal's ``apps.compute.rq_jobs.PortalWorker``: Django loaded once, a forked
work horse per job) serves the RQ queue of a compute target ``bench-rq``. Measured, after a warm-up,
``--repeat`` times each (the median is reported), in the same run on the same worker:

* raw RQ: ``--chain-steps`` no-op jobs (``bench.rq_chain.noop``) enqueued at once, run one after the
  other by the one worker; the last stamps the end time in Redis;
* a pipeline chain of as many ``utility.noop`` steps on target ``bench-rq`` (the agent in the job
  goes on with each next step itself, up to ``ILIAD_LOCAL_STEPS`` per job);
* a pipeline fan-out of ``--fanout-steps`` independent ``utility.noop`` steps on ``bench-rq`` (one job
  per step), against as many raw no-op jobs.

Timing as in bench/orchestration.py: the driver's ``time.time()`` before sending to the end time the
worker stamps (``Run.finished_at``, or the Redis key of the last raw job).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

from bench.orchestration import (
    POLL_S,
    REPO_ROOT,
    WARMUP_STEPS,
    BenchError,
    Stack,
    chain_document,
    fanout_document,
    log,
    pipeline_make,
    prepare_environment,
    setup_django,
    stop_worker,
)

TARGET = "bench-rq"
DONE_KEY = "iliad-bench-rq:{token}:done"


def noop(token: str = "") -> None:
    """The raw side: does nothing; with ``token`` (the last job) stamps the end time in Redis."""
    if token:
        from rq import get_current_job

        get_current_job().connection.set(DONE_KEY.format(token=token), repr(time.time()), ex=3600)


def start_rq_worker(stack: Stack) -> subprocess.Popen:
    from redis import Redis
    from rq import Worker

    name = f"bench-rq-{os.getpid()}"
    stack.worker_log = open(stack.home / "bench-rq-worker.log", "w")  # noqa: SIM115 - closed by Stack.stop
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "rq"), "worker", "--url", os.environ["REDIS_URL"], "--name", name,
         "--worker-class", "apps.compute.rq_jobs.PortalWorker", "--logging_level", "WARNING", TARGET],
        cwd=REPO_ROOT, env=dict(os.environ), stdin=subprocess.DEVNULL, stdout=stack.worker_log,
        stderr=subprocess.STDOUT, process_group=0,
    )  # fmt: skip
    stack.worker = process
    connection = Redis.from_url(os.environ["REDIS_URL"])
    deadline = time.monotonic() + 60
    while name not in {worker.name for worker in Worker.all(connection=connection)}:
        if process.poll() is not None or time.monotonic() > deadline:
            raise BenchError(f"the rq worker did not start; its log:\n{stack.worker_log_tail()}")
        time.sleep(0.1)
    return process


def check_worker(stack: Stack) -> None:
    if stack.worker is None or stack.worker.poll() is not None:
        raise BenchError(f"the rq worker process died; its log:\n{stack.worker_log_tail()}")


def measure_raw(stack: Stack, steps: int, timeout: float) -> float:
    from redis import Redis
    from rq import Queue

    connection = Redis.from_url(os.environ["REDIS_URL"])
    token = uuid.uuid4().hex
    jobs = [
        Queue.prepare_data("bench.rq_chain.noop", kwargs={"token": token if i == steps - 1 else ""},
                           result_ttl=0)
        for i in range(steps)
    ]  # fmt: skip
    started = time.time()
    Queue(TARGET, connection=connection).enqueue_many(jobs)
    deadline = time.monotonic() + timeout
    key = DONE_KEY.format(token=token)
    while (stamp := connection.get(key)) is None:
        if time.monotonic() > deadline:
            raise BenchError(f"raw RQ jobs ({steps}) did not finish within {timeout:g} s")
        check_worker(stack)
        time.sleep(POLL_S)
    return float(stamp) - started


def measure_pipeline(stack: Stack, pipeline, user, steps: int, timeout: float) -> float:
    from apps.runs.models import RUN_FINISHED, Run, RunState, StepState

    try:
        from apps.runs.orchestration import run_submit
    except ImportError:
        from apps.runs.services import run_submit

    started = time.time()
    run = run_submit(pipeline=pipeline, user=user, target=TARGET, cache=False)
    deadline = time.monotonic() + timeout
    while True:
        state, finished_at = Run.objects.filter(pk=run.pk).values_list("state", "finished_at").get()
        if state in RUN_FINISHED and finished_at is not None:
            break
        if time.monotonic() > deadline:
            raise BenchError(f"run {run.pk} did not finish within {timeout:g} s (state {state})")
        check_worker(stack)
        time.sleep(POLL_S)
    if state != RunState.SUCCEEDED:
        failed = run.steps.exclude(state=StepState.SUCCEEDED).values_list("node_id", "state", "error")
        raise BenchError(f"run {run.pk} ended {state}: {list(failed[:5])}")
    return finished_at.timestamp() - started


def wait_idle(timeout: float = 30.0) -> None:
    from redis import Redis
    from rq import Queue

    queue = Queue(TARGET, connection=Redis.from_url(os.environ["REDIS_URL"]))
    deadline = time.monotonic() + timeout
    while (queue.count or queue.started_job_registry.count) and time.monotonic() < deadline:
        time.sleep(POLL_S)
    time.sleep(0.2)


def benchmark(stack: Stack, user, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    from apps.compute.models import ComputeTarget

    ComputeTarget.objects.update_or_create(
        name=TARGET, defaults={"title": "Benchmark RQ queue", "kind": "rq", "public": True, "enabled": True}
    )
    suffix = uuid.uuid4().hex[:8]
    shapes = {"chain": (args.chain_steps, chain_document), "fanout": (args.fanout_steps, fanout_document)}
    pipelines = {shape: pipeline_make(user, f"bench rq {shape} {suffix}", make(steps))
                 for shape, (steps, make) in shapes.items()}  # fmt: skip
    warm = {shape: pipeline_make(user, f"bench rq warm {shape} {suffix}", make(WARMUP_STEPS))
            for shape, (_, make) in shapes.items()}  # fmt: skip
    log(f"warm-up: {WARMUP_STEPS} steps each")
    for shape in shapes:
        wait_idle()
        measure_pipeline(stack, warm[shape], user, WARMUP_STEPS, args.timeout)
        wait_idle()
        measure_raw(stack, WARMUP_STEPS, args.timeout)
    samples: dict[str, list[float]] = {
        f"{side}-{shape}": [] for shape in shapes for side in ("raw", "pipeline")
    }
    for repeat in range(args.repeat):
        for shape, (steps, _) in shapes.items():
            sides = ("raw", "pipeline") if repeat % 2 == 0 else ("pipeline", "raw")
            for side in sides:
                wait_idle()
                if side == "raw":
                    total = measure_raw(stack, steps, args.timeout)
                else:
                    total = measure_pipeline(stack, pipelines[shape], user, steps, args.timeout)
                samples[f"{side}-{shape}"].append(total)
                log(f"repeat {repeat + 1}/{args.repeat}: {side} {shape} ({steps}): {total:.3f} s, "
                    f"{total / steps * 1000:.2f} ms/step")  # fmt: skip
    figures = {}
    for shape, (steps, _) in shapes.items():
        raw = statistics.median(samples[f"raw-{shape}"]) / steps * 1000
        pipeline = statistics.median(samples[f"pipeline-{shape}"]) / steps * 1000
        figures[shape] = {
            "steps": steps,
            "raw_ms_per_step": round(raw, 2),
            "pipeline_ms_per_step": round(pipeline, 2),
            "ratio": round(pipeline / raw, 2),
        }
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--use-env", action="store_true", help="use DATABASE_URL / REDIS_URL as configured")
    parser.add_argument("--repeat", type=int, default=3, help="measurements per scenario; the median counts")
    parser.add_argument("--chain-steps", type=int, default=100, help="steps of the chain (default 100)")
    parser.add_argument("--fanout-steps", type=int, default=50, help="steps of the fan-out (default 50)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds one measurement may take")
    parser.add_argument("--keep", action="store_true", help="keep the temporary ILIAD_HOME")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures to PATH as JSON")
    args = parser.parse_args(argv)
    os.environ.setdefault("ILIAD_FAIR_STEPS_PER_USER", "0")
    stack = prepare_environment(args)
    try:
        user = setup_django()
        start_rq_worker(stack)
        figures = benchmark(stack, user, args)
    except BenchError as error:
        log(f"error: {error}")
        return 1
    finally:
        if stack.worker is not None:
            stop_worker(stack.worker)
            stack.worker = None
        stack.stop()
    for shape, row in figures.items():
        print(f"{shape:7} {row['steps']:4} steps: pipeline {row['pipeline_ms_per_step']:7.2f} ms/step, "
              f"raw RQ {row['raw_ms_per_step']:7.2f} ms/step, ratio {row['ratio']:.2f}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
