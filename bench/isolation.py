"""Per-step cost of running a step isolated, against running it in the worker's own process.

    python -m bench.isolation [--steps 50] [--json out.json]

Runs the same trivial block (``utility.noop``, no sleep) ``--steps`` times each way, in one process,
after a warm-up (the fork server is started before timing: its start is paid once per worker):

* ``in-process``: :func:`blocks.runner.run_step`, what the Celery agent does without isolation;
* ``run_isolated``: :func:`apps.compute.isolation.run_isolated`, a child forked from the preloaded
  launcher with the scrubbed environment (and, as root, its own mount namespace and user);
* ``local executor``: ``LocalExecutor.submit`` of a version 2 manifest, then ``poll`` every 2 ms until
  DONE (what the reconciler would see with an instant poll);
* ``python -m blocks.runner``: a fresh interpreter per step, for reference (``--cli-steps``, 3).

Prints the median wall time per step of each, the overhead over in-process (target <= 25 ms a step),
the ratio, and the CPU time per step (this process, the launchers and their step processes: what the
machine pays, whatever else runs on it; wall times grow with the load average, which is printed too).
Exits 0 whether or not the target is met.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
TARGET_OVERHEAD_MS = 25.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.isolation", description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--cli-steps", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)

    os.environ.setdefault("ILIAD_HOME", tempfile.mkdtemp(prefix="iliad-bench-isolation-"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "iliad_portal.settings")
    sys.path.insert(0, str(REPO_ROOT))
    import django

    django.setup()
    from django.conf import settings

    from apps.compute.backends.local import LocalExecutor
    from apps.compute.base import JobState, Launch
    from apps.compute.isolation import default_launcher, protections, run_isolated
    from blocks.manifest import StepManifest, uri_from_path
    from blocks.runner import run_step

    root = settings.ILIAD_ARTIFACT_ROOT

    def manifest(label: str, number: int) -> StepManifest:
        return StepManifest(run_id=label, step_id=f"s{number}", block_id="utility.noop",
                            block_version="1.0.0", params={"sleep_s": 0}, inputs={},
                            output_dir=uri_from_path(root / "runs" / label / f"s{number}"))

    ticks_per_s = os.sysconf("SC_CLK_TCK")

    def launcher_cpu_s() -> float:
        """CPU time of both launchers and of the step processes they reaped."""
        total = 0.0
        for server in (default_launcher(), executor.launcher):
            if server.server_pid:
                stat = Path(f"/proc/{server.server_pid}/stat").read_text()
                fields = stat[stat.rindex(")") + 2:].split()
                total += sum(int(value) for value in fields[11:15]) / ticks_per_s
        return total

    cpu_per_step: dict[str, float] = {}

    def timed(function, count: int, name: str = "") -> list[float]:
        durations = []
        cpu_started = time.process_time() + launcher_cpu_s()
        for number in range(count):
            started = time.perf_counter()
            function(number)
            durations.append(time.perf_counter() - started)
        if name:
            cpu_per_step[name] = (time.process_time() + launcher_cpu_s() - cpu_started) / count
        return durations

    def in_process(number: int) -> None:
        assert run_step(manifest("inproc", number)).ok

    def isolated(number: int) -> None:
        assert run_isolated(manifest("isolated", number)).ok

    executor = LocalExecutor(name="bench-local", config={})

    def local(number: int) -> None:
        document = manifest("local", number).to_dict()
        path = root / "runs" / "local" / "_manifests" / f"s{number}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document))
        [external_id] = executor.submit([Launch(step_id=number, attempt=1, manifest_uri=uri_from_path(path))])
        while executor.poll([external_id])[external_id].state != JobState.DONE:
            time.sleep(0.002)

    def command(number: int) -> None:
        path = root / "runs" / "cli" / f"s{number}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(manifest("cli", number).to_dict()))
        subprocess.run([sys.executable, "-m", "blocks.runner", str(path)], cwd=REPO_ROOT, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    print(f"[bench] starting the launchers (preload of the block library); protections: {protections()}",
          flush=True)
    started = time.perf_counter()
    default_launcher()._ensure()
    executor.launcher._ensure()
    launcher_start_s = time.perf_counter() - started
    for function in (in_process, isolated, local):  # warm-up: imports, first forks
        timed(lambda number, function=function: function(10_000 + number), 3)

    figures = {
        "in-process": timed(in_process, args.steps, "in-process"),
        "run_isolated": timed(isolated, args.steps, "run_isolated"),
        "local executor": timed(local, args.steps, "local executor"),
        "python -m blocks.runner": timed(command, args.cli_steps),
    }
    load = os.getloadavg()[0]
    executor.close()
    default_launcher().close()

    base = statistics.median(figures["in-process"]) * 1000
    report = {"launcher_start_s": round(launcher_start_s, 3), "steps": args.steps, "rows": {}}
    print(f"\nlauncher start (once per worker process): {launcher_start_s:.2f} s; "
          f"load average during the run: {load:.1f} on {os.cpu_count()} cpus")
    print(f"{'scenario':<26}{'median ms/step':>16}{'overhead ms':>14}{'ratio':>9}{'cpu ms/step':>13}")
    for name, durations in figures.items():
        median_ms = statistics.median(durations) * 1000
        overhead = median_ms - base
        ratio = median_ms / base if base else float("nan")
        cpu_ms = cpu_per_step.get(name, float("nan")) * 1000
        report["rows"][name] = {"median_ms": round(median_ms, 3), "overhead_ms": round(overhead, 3),
                                "ratio": round(ratio, 2), "cpu_ms": round(cpu_ms, 3), "n": len(durations)}
        print(f"{name:<26}{median_ms:>16.2f}{overhead:>14.2f}{ratio:>9.1f}{cpu_ms:>13.2f}")
    report["load_average"] = round(load, 2)
    worst = max(report["rows"][name]["overhead_ms"] for name in ("run_isolated", "local executor"))
    verdict = "MET" if worst <= TARGET_OVERHEAD_MS else "NOT MET"
    print(f"\ntarget: isolated overhead <= {TARGET_OVERHEAD_MS:g} ms a step: {verdict} "
          f"(worst {worst:.1f} ms)")
    report["target_met"] = worst <= TARGET_OVERHEAD_MS
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
