"""Slurm through the portal against plain per-step ``sbatch``, on the real single-node test cluster.

    python -m bench.slurm                      # 200 independent no-op steps and a chain of 50
    python -m bench.slurm --fanout-steps 50 --chain-steps 20 --poll-s 2

Starts the test cluster if needed (tests/support/slurm/cluster.sh), an embedded stack (temporary
SQLite + embedded Redis), ONE celery worker (--concurrency 2) and celery beat, which has the worker
reconcile (poll the cluster) every ``--poll-s`` seconds (the portal's default is 5). Then, one after
the other, in this process:

* portal fan-out: a pipeline of ``--fanout-steps`` independent ``utility.noop`` steps on a Slurm
  target, submitted with ``run_submit``; the time is from submission to ``Run.finished_at`` (the
  portal recorded every result). The portal packs the ready steps into one job array.
* plain fan-out: the same steps as step manifests, each submitted with its own ``sbatch``; the time is
  from the first ``sbatch`` to the last result file written.
* portal chain: a line of ``--chain-steps`` no-op steps on the same target (packed into one job when
  their walltime hints allow it: the target's ``chain_max_walltime_s``, here 3600 s, the no-op
  block's hint).
* plain chain: as many ``sbatch --dependency=afterok:<previous>`` submissions.

Both sides run the same ``python -m blocks.runner`` per step with the same resources. For each, the
queue wait (Slurm's StartTime - SubmitTime) and run time (EndTime - StartTime) of its jobs are read
from ``scontrol show job`` (1 s resolution). Target: portal / plain <= 1.0 for both. The figures go
to bench/out/slurm.json as well.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.orchestration import BenchError, log, prepare_environment, setup_django, start_worker

REPO_ROOT = Path(__file__).resolve().parent.parent
CLUSTER = REPO_ROOT / "tests" / "support" / "slurm" / "cluster.sh"
TARGET_RATIO = 1.0


def scontrol_jobs() -> dict[str, dict[str, str]]:
    """Every job Slurm still remembers (``MinJobAge``), by ``<id>`` or ``<array id>_<task>``."""
    out = subprocess.run(["scontrol", "show", "job", "-o"], capture_output=True, text=True).stdout
    jobs = {}
    for line in out.splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        if "JobId" not in fields:
            continue
        task = fields.get("ArrayTaskId", "")
        key = f"{fields['ArrayJobId']}_{task}" if task.isdigit() else fields["JobId"]
        jobs[key] = fields
    return jobs


def _t(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def queue_stats(keys: set[str]) -> dict[str, Any]:
    """Queue wait and run time of these jobs (seconds; Slurm's 1 s resolution)."""
    jobs = scontrol_jobs()
    waits, runs, spans = [], [], []
    for key in keys:
        job = jobs.get(key)
        if job is None or job.get("StartTime") in (None, "Unknown", "None"):
            continue
        waits.append(_t(job["StartTime"]) - _t(job["SubmitTime"]))
        runs.append(_t(job["EndTime"]) - _t(job["StartTime"]))
        spans.append((_t(job["SubmitTime"]), _t(job["EndTime"])))
    if not waits:
        return {"jobs": 0}
    return {
        "jobs": len(waits),
        "queue_wait_s": {"mean": round(statistics.mean(waits), 2), "max": round(max(waits), 2),
                         "sum": round(sum(waits), 1)},
        "run_s": {"mean": round(statistics.mean(runs), 2), "max": round(max(runs), 2),
                  "sum": round(sum(runs), 1)},
        "first_submit_to_last_end_s": round(max(end for _, end in spans) - min(s for s, _ in spans), 1),
    }


# --- the portal side ---------------------------------------------------------------------------------


def portal_run(user, *, steps: int, chain: bool, target: str, timeout: float) -> dict[str, Any]:
    from apps.pipelines.services import pipeline_create
    from apps.runs.models import Run, RunEvent, StepRun
    from apps.runs.orchestration import run_submit

    nodes = [{"id": f"s{i}", "block": "utility.noop", "version": "1.0.0", "params": {},
              "position": {"x": 0, "y": 0}, "target": target} for i in range(steps)]
    edges = ([{"source": f"s{i}", "source_port": "result", "target": f"s{i + 1}", "target_port": "trigger"}
              for i in range(steps - 1)] if chain else [])
    document = {"format": "iliad.pipeline", "version": 1, "nodes": nodes, "edges": edges}
    pipeline = pipeline_create(owner=user, name=f"bench-slurm-{'chain' if chain else 'fanout'}-{time.time()}",
                               document=document)
    started = time.time()
    run = run_submit(pipeline=pipeline, user=user, target=target, cache=False)
    deadline = time.monotonic() + timeout
    while True:
        run = Run.objects.get(pk=run.pk)
        if run.finished_at is not None:
            break
        if time.monotonic() > deadline:
            states = sorted(StepRun.objects.filter(run=run).values_list("state", flat=True))
            raise BenchError(f"the portal run did not finish in {timeout} s: {states}")
        time.sleep(0.05)
    if run.state != "succeeded":
        raise BenchError(f"the portal run ended {run.state}")
    elapsed = run.finished_at.timestamp() - started
    ids = list(StepRun.objects.filter(run=run).values_list("external_id", flat=True))
    keys = {external.split("+", 1)[0] for external in ids}  # jobs and array tasks
    packing = list(RunEvent.objects.filter(run=run, kind="log", payload__message__startswith="packed")
                   .values_list("payload__message", flat=True))
    jobs = {key.split("_", 1)[0] for key in keys}
    return {"elapsed_s": round(elapsed, 2), "slurm_jobs": len(jobs), "slurm_tasks": len(keys),
            "packing": packing, "keys": keys}


# --- the plain sbatch side ---------------------------------------------------------------------------


def plain_manifests(root: Path, steps: int, name: str) -> list[Path]:
    from blocks.manifest import StepManifest, StepResources

    paths = []
    for i in range(steps):
        step_dir = root / name / f"s{i}"
        step_dir.mkdir(parents=True, exist_ok=True)
        manifest = StepManifest(
            run_id=name, step_id=f"s{i}", block_id="utility.noop", block_version="1.0.0", params={},
            inputs={}, output_dir=step_dir.as_uri(),
            resources=StepResources(cpus=1, memory_mb=1024, walltime_s=3600),
        )
        path = step_dir / "manifest.json"
        path.write_text(json.dumps(manifest.to_dict()))
        paths.append(path)
    return paths


def plain_script(manifest: Path) -> str:
    out = manifest.parent
    return "\n".join([
        "#!/bin/bash", "#SBATCH --job-name=plain", "#SBATCH --partition=debug", "#SBATCH --nodes=1",
        "#SBATCH --ntasks=1", "#SBATCH --cpus-per-task=1", "#SBATCH --mem=1024M", "#SBATCH --time=0-01:00:00",
        f"#SBATCH --chdir={out}", f"#SBATCH --output={out}/slurm.out", f"#SBATCH --error={out}/slurm.err",
        "unset DJANGO_SETTINGS_MODULE", f"export PYTHONPATH={REPO_ROOT}",
        f"exec {sys.executable} -m blocks.runner {manifest}", "",
    ])


def plain_run(root: Path, *, steps: int, chain: bool, timeout: float) -> dict[str, Any]:
    manifests = plain_manifests(root, steps, "chain" if chain else "fanout")
    started = time.time()
    ids: list[str] = []
    for manifest in manifests:
        command = ["sbatch", "--parsable"]
        if chain and ids:
            command.append(f"--dependency=afterok:{ids[-1]}")
        script = plain_script(manifest)
        done = subprocess.run(command, input=script, capture_output=True, text=True, check=True)
        ids.append(done.stdout.strip().split(";")[0])
    submitted = time.time() - started
    results = [manifest.parent / "_result.json" for manifest in manifests]
    deadline = time.monotonic() + timeout
    while not all(result.exists() for result in results):
        if time.monotonic() > deadline:
            raise BenchError(f"plain sbatch did not finish in {timeout} s")
        time.sleep(0.1)
    end = max(result.stat().st_mtime for result in results)
    return {"elapsed_s": round(end - started, 2), "submit_s": round(submitted, 2), "slurm_jobs": len(ids),
            "keys": set(ids)}


# --- main ----------------------------------------------------------------------------------------------


def wait_cluster_idle(timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while subprocess.run(["squeue", "-h", "-t", "PD,R,CG"], capture_output=True, text=True).stdout.strip():
        if time.monotonic() > deadline:
            raise BenchError("the cluster did not become idle")
        time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.slurm", description=__doc__.split("\n")[0])
    parser.add_argument("--fanout-steps", type=int, default=200)
    parser.add_argument("--chain-steps", type=int, default=50)
    parser.add_argument("--poll-s", type=int, default=5, help="the reconciler's cycle (ILIAD_RECONCILE_S)")
    parser.add_argument("--timeout", type=float, default=1200)
    parser.add_argument("--keep", action="store_true", help="keep the temporary home")
    parser.add_argument("--use-env", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    up = subprocess.run([str(CLUSTER), "up"], capture_output=True, text=True)
    if up.returncode != 0:
        raise BenchError(f"the Slurm test cluster did not come up:\n{up.stdout}\n{up.stderr}")
    log(up.stdout.strip())
    os.environ["ILIAD_RECONCILE_S"] = str(args.poll_s)
    stack = prepare_environment(args)
    beat = None
    try:
        user = setup_django()
        start_worker(stack, concurrency=2)
        beat = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "iliad_portal", "beat", "--loglevel", "WARNING",
             "--schedule", str(stack.home / "celerybeat-schedule")],
            cwd=REPO_ROOT, env=dict(os.environ), stdout=open(stack.home / "beat.log", "w"),  # noqa: SIM115
            stderr=subprocess.STDOUT, process_group=0,
        )
        from apps.compute.models import ComputeTarget

        work = Path(tempfile.mkdtemp(prefix="iliad-bench-slurm-"))
        ComputeTarget.objects.update_or_create(name="bench-hpc", defaults={
            "title": "Test cluster", "kind": "slurm",
            "config": {"workdir": str(work / "portal"), "python": sys.executable, "partition": "debug",
                       "setup": [f"export PYTHONPATH={REPO_ROOT}"], "chain_max_walltime_s": 3600},
        })
        wait_cluster_idle()
        figures: dict[str, Any] = {"poll_s": args.poll_s, "cpus": os.cpu_count(),
                                   "load_before": os.getloadavg()[0]}
        for name, steps, chain in (("fanout", args.fanout_steps, False), ("chain", args.chain_steps, True)):
            log(f"{name}: portal, {steps} steps")
            portal = portal_run(user, steps=steps, chain=chain, target="bench-hpc", timeout=args.timeout)
            portal["slurm"] = queue_stats(portal.pop("keys"))
            wait_cluster_idle()
            log(f"{name}: plain sbatch, {steps} steps")
            plain = plain_run(work / "plain", steps=steps, chain=chain, timeout=args.timeout)
            keys = plain.pop("keys")
            wait_cluster_idle()
            plain["slurm"] = queue_stats(keys)
            ratio = portal["elapsed_s"] / plain["elapsed_s"]
            figures[name] = {"steps": steps, "portal": portal, "plain_sbatch": plain,
                             "ratio": round(ratio, 3), "target_met": ratio <= TARGET_RATIO}
            log(f"{name}: portal {portal['elapsed_s']} s in {portal['slurm_jobs']} Slurm job(s), "
                f"plain sbatch {plain['elapsed_s']} s in {plain['slurm_jobs']} jobs: ratio {ratio:.2f} "
                f"(target <= {TARGET_RATIO}) {'MET' if ratio <= TARGET_RATIO else 'NOT MET'}")
            for side, data in (("portal", portal), ("plain", plain)):
                stats = data["slurm"]
                if stats.get("jobs"):
                    log(f"  {side}: queue wait mean {stats['queue_wait_s']['mean']} s "
                        f"(max {stats['queue_wait_s']['max']}), run time mean {stats['run_s']['mean']} s "
                        f"(sum {stats['run_s']['sum']} s)")
        figures["load_after"] = os.getloadavg()[0]
        out = REPO_ROOT / "bench" / "out"
        out.mkdir(parents=True, exist_ok=True)
        (out / "slurm.json").write_text(json.dumps(figures, indent=2, default=list))
        log(f"written to {out / 'slurm.json'}")
        return 0 if all(figures[n]["target_met"] for n in ("fanout", "chain")) else 1
    finally:
        if beat is not None and beat.poll() is None:
            os.killpg(beat.pid, signal.SIGTERM)
            beat.wait(20)
        stack.stop()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as error:
        log(f"error: {error}")
        sys.exit(2)
