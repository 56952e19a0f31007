"""The Slurm target through the portal, on the real single-node cluster (tests/support/slurm/cluster.sh),
locally and over SSH to the cluster's sshd on loopback: pipelines are submitted through the API, a
real Celery worker runs the other steps and real Celery beat has it poll the cluster (the reconciler).

Marked ``slurm``: these run once, in the embedded pass (SQLite + embedded Redis), not again on
PostgreSQL; the cluster is the same in both passes and these tests are slow.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from apps.runs.models import Artifact, RunEvent, StepRun
from blocks.manifest import path_from_uri
from tests.conftest import REPO_ROOT, _database_url_for_worker, document, edge, node, wait_for_run

pytestmark = pytest.mark.slurm

CLUSTER = REPO_ROOT / "tests" / "support" / "slurm" / "cluster.sh"
SLURM_HOME = Path("/tmp/iliad-slurm")
SSH_PORT = 2222


@pytest.fixture(scope="module")
def cluster():
    """The test cluster, started if it is not running; a cluster that does not come up fails."""
    done = subprocess.run([str(CLUSTER), "up"], capture_output=True, text=True, timeout=240,
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "SLURM_HOME": str(SLURM_HOME),
                               "ILIAD_TEST_SSH_PORT": str(SSH_PORT)})
    assert done.returncode == 0, f"the Slurm test cluster did not come up:\n{done.stdout}\n{done.stderr}"
    return SLURM_HOME


def _start_beat(tmp: Path) -> subprocess.Popen:
    """Real Celery beat, having the workers reconcile (poll the cluster) every second."""
    log = open(tmp / "beat.log", "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "iliad_portal", "beat", "--loglevel", "INFO",
         "--schedule", str(tmp / "celerybeat-schedule")],
        cwd=REPO_ROOT,
        env={**os.environ, "DATABASE_URL": _database_url_for_worker(), "ILIAD_RECONCILE_S": "1"},
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )


@pytest.fixture
def beat(worker, tmp_path):
    process = _start_beat(tmp_path)
    yield process
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(20)


@pytest.fixture
def staff(django_user_model):
    from rest_framework.test import APIClient

    admin = django_user_model.objects.create_user(
        username="hpc-admin", password="x-admin-pw-1", is_staff=True
    )
    client = APIClient()
    client.force_authenticate(admin)
    return client


def slurm_target(staff, tmp_path: Path, cluster: Path, *, name: str, ssh: bool, **config) -> dict:
    """Create a Slurm target through the API, as an administrator would."""
    workdir = tmp_path / f"{name}-work"
    body = {
        "name": name, "title": f"Test cluster ({'SSH' if ssh else 'local'})", "kind": "slurm",
        "description": "The single-node test cluster. Limits: 2 cores. Expected queue wait: seconds.",
        "config": {
            "workdir": str(workdir), "python": sys.executable, "partition": "debug",
            "setup": [f"export PYTHONPATH={REPO_ROOT}", "export ILIAD_BLOCK_MODULES=tests.support.blocks"],
            **config,
        },
    }
    if ssh:
        body["config"].update(transport="ssh", host="127.0.0.1", port=SSH_PORT, user="root",
                              known_hosts=(cluster / "ssh" / "known_hosts").read_text(),
                              shared_filesystem=False, store_root=str(tmp_path / f"{name}-store"))
        body["secrets"] = {"ssh_private_key": (cluster / "ssh" / "client_ed25519").read_text()}
    response = staff.post("/api/compute-targets/", body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def three_steps(tmp_path: Path, target: str, **middle) -> dict:
    marker = str(tmp_path / "calls.txt")
    nodes = [
        node("first", "testing.record", marker=marker, name="first", add=1),
        {**node("model", "testing.hpc_job", add=10, **middle), "target": target},
        node("last", "testing.record", marker=marker, name="last", add=100),
    ]
    edges = [edge("first", "result", "model", "previous"), edge("model", "result", "last", "previous")]
    return document(nodes, edges)


def submit(api, doc: dict) -> int:
    response = api.post("/api/pipelines/", {"name": "hpc", "document": doc}, format="json")
    assert response.status_code == 201, response.json()
    response = api.post(f"/api/pipelines/{response.json()['id']}/runs/", {"cache": False}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()["id"]


def step(run_id: int, node_id: str) -> StepRun:
    return StepRun.objects.get(run_id=run_id, node_id=node_id)


def wait_until(condition, timeout: float, what: str, run_id: int):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    states = dict(StepRun.objects.filter(run_id=run_id).values_list("node_id", "state"))
    pytest.fail(f"{what} did not happen within {timeout} s; steps: {states}")


def output(run_id: int, node_id: str) -> dict:
    artifact = Artifact.objects.get(run_id=run_id, step__node_id=node_id, port="result")
    return json.loads(path_from_uri(artifact.uri, settings.ILIAD_ARTIFACT_ROOT).read_text())


def log_messages(run_id: int, node_id: str) -> list[str]:
    return list(
        RunEvent.objects.filter(run_id=run_id, node_id=node_id, kind="log")
        .order_by("seq")
        .values_list("payload__message", flat=True)
    )


@pytest.mark.parametrize("ssh", [False, True], ids=["local", "ssh"])
def test_a_pipeline_with_its_middle_step_on_slurm_runs_through_the_portal_with_live_logs(
    cluster, beat, api, staff, tmp_path, ssh
):
    name = "hpc-ssh" if ssh else "hpc-local"  # a name per test: workers remember a target a few seconds
    slurm_target(staff, tmp_path, cluster, name=name, ssh=ssh)
    run_id = submit(api, three_steps(tmp_path, name, lines=8, interval_s=0.75))

    def live_line():  # read as the run page does: the events API, while the job still runs
        events = api.get(f"/api/runs/{run_id}/events/").json()["events"]
        lines = [e for e in events if e["kind"] == "log" and e["node"] == "model"
                 and "hpc line" in e["message"]]
        detail = api.get(f"/api/runs/{run_id}/").json()
        model = next(s for s in detail["steps"] if s["node"] == "model")
        return lines if lines and model["state"] == "running" else None

    shown = wait_until(live_line, 60, "a log line of the job on the run page while it runs", run_id)
    assert shown[0]["message"] == "hpc line 1 of 8"
    run = wait_for_run(run_id, timeout=90, expect="succeeded")

    model = step(run.pk, "model")
    job = model.external_id
    assert job.isdigit() and model.target == name and model.worker == name
    assert output(run.pk, "model") == {"total": 11, "slurm_job": job}  # it ran inside that Slurm job
    assert output(run.pk, "last")["total"] == 111  # and the Celery worker went on with its output
    assert "@" in step(run.pk, "first").worker and "@" in step(run.pk, "last").worker
    messages = log_messages(run.pk, "model")
    assert [m for m in messages if m.startswith("hpc line")] == [f"hpc line {i} of 8" for i in range(1, 9)]
    assert f"submitted as Slurm job {job} on {name}" in messages
    states = list(RunEvent.objects.filter(run=run, node_id="model", kind="state").order_by("seq")
                  .values_list("payload__state", flat=True))
    assert states == ["queued", "submitted", "running", "succeeded"]
    submitted = RunEvent.objects.get(run=run, node_id="model", kind="state", payload__state="submitted")
    assert submitted.payload["reason"] == f"job {job} on {name}"
    if ssh:  # it ran in the cluster's own store, and its files were fetched home
        assert list((tmp_path / "hpc-ssh-store").rglob("model/_result.json"))
    step_dir = path_from_uri(Artifact.objects.get(step=model).uri, settings.ILIAD_ARTIFACT_ROOT).parent
    assert (step_dir / "_result.json").is_file()
    assert not list(REPO_ROOT.glob("slurm-*.out")) and not list(Path.cwd().glob("slurm-*.out"))


def test_a_job_over_its_time_limit_fails_its_step_as_timeout_with_its_stderr(
    cluster, beat, api, staff, tmp_path
):
    slurm_target(staff, tmp_path, cluster, name="short", ssh=False, max_walltime_s=60)
    run_id = submit(api, three_steps(tmp_path, "short", lines=400, interval_s=0.5, stderr="model warming up"))
    run = wait_for_run(run_id, timeout=150, expect="failed")
    model = step(run.pk, "model")
    assert model.state == "failed" and model.error["type"] == "WalltimeExceeded", model.error
    assert "walltime exceeded on the cluster" in model.error["message"]
    assert step(run.pk, "last").state == "skipped"
    stderr = [m for m in log_messages(run.pk, "model") if m.startswith("[stderr]")]
    assert "[stderr] model warming up" in stderr
    assert any("DUE TO TIME LIMIT" in line for line in stderr), stderr  # Slurm's own words


def test_a_job_over_its_memory_fails_its_step_as_out_of_memory_with_its_stderr(
    cluster, beat, api, staff, tmp_path
):
    plugins = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True).stdout
    assert re.search(r"TaskPlugin\s*=\s*task/cgroup", plugins), (
        "the test cluster enforces no memory limits (cluster.sh uses task/cgroup only where the cgroup v1 "
        "memory controller is writable): a job over its memory cannot end OUT_OF_MEMORY here"
    )
    slurm_target(staff, tmp_path, cluster, name="hpc-oom", ssh=False)
    run_id = submit(api, three_steps(tmp_path, "hpc-oom", hog_mb=600, lines=20, interval_s=0.5))
    run = wait_for_run(run_id, timeout=90, expect="failed")
    model = step(run.pk, "model")
    assert model.state == "failed" and model.error["type"] == "OutOfMemory", model.error
    assert "out of memory on the cluster" in model.error["message"]
    stderr = [m for m in log_messages(run.pk, "model") if m.startswith("[stderr]")]
    assert any("oom-kill" in line for line in stderr), stderr
    assert step(run.pk, "last").state == "skipped"


def test_scancel_from_outside_cancels_the_step_and_cancelling_the_run_cancels_the_job(
    cluster, beat, api, staff, tmp_path
):
    slurm_target(staff, tmp_path, cluster, name="hpc-cancel", ssh=False)
    run_id = submit(api, three_steps(tmp_path, "hpc-cancel", lines=200, interval_s=0.5))
    running = wait_until(lambda: step(run_id, "model").state == "running", 60, "the job running", run_id)
    assert running
    job = step(run_id, "model").external_id
    subprocess.run(["scancel", job], check=True)
    run = wait_for_run(run_id, timeout=30, expect="cancelled")
    assert step(run.pk, "model").state == "cancelled"
    assert step(run.pk, "last").state == "cancelled"
    assert any("cancelled on hpc-cancel from outside the portal" in m for m in log_messages(run.pk, "model"))

    run_id = submit(api, three_steps(tmp_path, "hpc-cancel", lines=200, interval_s=0.5))
    wait_until(lambda: step(run_id, "model").state == "running", 60, "the job running", run_id)
    job = step(run_id, "model").external_id
    response = api.post(f"/api/runs/{run_id}/cancel/")
    assert response.status_code in (200, 202), response.content
    cancelled_at = time.monotonic()

    def job_state():
        out = subprocess.run(["scontrol", "show", "job", "-o", job], capture_output=True, text=True).stdout
        return "JobState=CANCELLED" in out
    wait_until(job_state, 15, "the Slurm job cancelled", run_id)
    assert time.monotonic() - cancelled_at < 15
    run = wait_for_run(run_id, timeout=30, expect="cancelled")
    assert step(run.pk, "model").state == "cancelled"


def test_a_portal_restart_while_a_job_runs_reattaches_to_it_by_job_id(
    cluster, killable_worker, api, staff, tmp_path
):
    """The portal (its worker and beat) is killed while the Slurm job runs; a new one finds the job
    by the id in the database and records its result: the job is neither lost nor run twice."""
    slurm_target(staff, tmp_path, cluster, name="hpc-restart", ssh=False)
    first = killable_worker("portal-a")
    beat_process = _start_beat(tmp_path)
    try:
        run_id = submit(api, three_steps(tmp_path, "hpc-restart", lines=16, interval_s=0.5))
        wait_until(lambda: step(run_id, "model").state == "running", 60, "the job running", run_id)
        job = step(run_id, "model").external_id
        os.killpg(first.pid, signal.SIGKILL)
        os.killpg(beat_process.pid, signal.SIGKILL)
        first.wait(10)
        beat_process.wait(10)
        time.sleep(2)
        assert step(run_id, "model").state == "running"  # nobody polls: the job goes on alone
        killable_worker("portal-b")  # its start-up reconciles: it re-attaches to job `job`
        beat_process = _start_beat(tmp_path)
        run = wait_for_run(run_id, timeout=90, expect="succeeded")
    finally:
        if beat_process.poll() is None:
            os.killpg(beat_process.pid, signal.SIGTERM)
            beat_process.wait(20)
    model = step(run.pk, "model")
    assert (model.external_id, model.attempts) == (job, 1)
    assert output(run.pk, "model")["slurm_job"] == job
    assert output(run.pk, "last")["total"] == 111
    lines = [m for m in log_messages(run.pk, "model") if m.startswith("hpc line")]
    assert lines == [f"hpc line {i} of 16" for i in range(1, 17)]  # each once: read on from its offset


def test_independent_ready_steps_go_out_as_one_job_array_written_in_the_runs_events(
    cluster, beat, api, staff, tmp_path
):
    slurm_target(staff, tmp_path, cluster, name="hpc-array", ssh=False)
    nodes = [{**node(f"m{i}", "testing.hpc_job", add=i), "target": "hpc-array"} for i in range(6)]
    run_id = submit(api, document(nodes, []))  # 6 ready at once: more than the user's fair share of 4
    run = wait_for_run(run_id, timeout=90, expect="succeeded")
    jobs = {step.node_id: step.external_id for step in StepRun.objects.filter(run=run)}
    array = jobs["m0"].split("_")[0]
    assert sorted(jobs.values()) == sorted(f"{array}_{task}" for task in range(6)), jobs
    assert {output(run.pk, f"m{i}")["slurm_job"] for i in range(6)} <= {
        str(int(array) + task) for task in range(7)}  # each task is a job of its own id in the array
    packed = list(RunEvent.objects.filter(run=run, kind="log", payload__message__startswith="packed")
                  .values_list("payload__message", flat=True))
    assert packed == [f"packed 6 steps into Slurm job array {array} on hpc-array "
                      "(ready together, same resources)"]
    assert [output(run.pk, f"m{i}")["total"] for i in range(6)] == list(range(6))


def chain_document(tmp_path: Path, target: str, links: int) -> dict:
    marker = str(tmp_path / "calls.txt")
    nodes = [node("first", "testing.record", marker=marker, name="first", add=1)]
    nodes += [{**node(f"c{i}", "testing.hpc_job", add=10, lines=2, interval_s=0.1), "target": target}
              for i in range(links)]
    nodes.append(node("last", "testing.record", marker=marker, name="last", add=100))
    names = [n["id"] for n in nodes]
    ports = {"first": "result", "last": "previous"}
    edges = [edge(a, "result", b, ports.get(b, "previous")) for a, b in zip(names, names[1:], strict=False)]
    return document(nodes, edges)


def test_a_chain_of_short_steps_runs_inside_one_job(cluster, beat, api, staff, tmp_path):
    slurm_target(staff, tmp_path, cluster, name="hpc-chain", ssh=False, chain_max_walltime_s=600)
    run_id = submit(api, chain_document(tmp_path, "hpc-chain", 5))
    run = wait_for_run(run_id, timeout=90, expect="succeeded")
    chain = [step(run.pk, f"c{i}") for i in range(5)]
    job = chain[0].external_id.split("+")[0]
    assert [s.external_id for s in chain] == [f"{job}+{i}" for i in range(5)]
    assert [output(run.pk, f"c{i}") for i in range(5)] == [
        {"total": 1 + 10 * (i + 1), "slurm_job": job} for i in range(5)]  # all inside the one job
    assert output(run.pk, "last")["total"] == 151
    assert [m for m in log_messages(run.pk, "c3") if m.startswith("hpc line")] == [
        "hpc line 1 of 2", "hpc line 2 of 2"]  # each step's own log, read from its own directory
    packed = RunEvent.objects.get(run=run, kind="log", payload__message__startswith="packed")
    assert packed.payload["message"].startswith(f"packed a chain of 5 steps into Slurm job {job} on ")
    assert packed.node_id == "c0"


def test_steps_with_long_walltime_hints_are_not_chained(cluster, beat, api, staff, tmp_path):
    slurm_target(staff, tmp_path, cluster, name="hpc-nochain", ssh=False)  # chains of hints <= 300 s only
    run_id = submit(api, chain_document(tmp_path, "hpc-nochain", 2))
    run = wait_for_run(run_id, timeout=90, expect="succeeded")
    jobs = [step(run.pk, f"c{i}").external_id for i in range(2)]
    assert all(job.isdigit() for job in jobs) and jobs[0] != jobs[1]  # the 600 s hint: a job each
    assert output(run.pk, "last")["total"] == 121


def test_short_independent_steps_run_several_to_a_task_of_the_job_array(cluster, beat, api, staff, tmp_path):
    slurm_target(staff, tmp_path, cluster, name="hpc-batch", ssh=False, chain_max_walltime_s=600,
                 steps_per_task=3)
    nodes = [{**node(f"m{i}", "testing.hpc_job", add=i, lines=1, interval_s=0.1, fail=i == 4),
              "target": "hpc-batch"} for i in range(7)]
    run_id = submit(api, document(nodes, []))
    run = wait_for_run(run_id, timeout=120, expect="failed")
    steps = {step.node_id: step for step in StepRun.objects.filter(run=run)}
    array = steps["m0"].external_id.split("_")[0]
    places = ((0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (2, 0))
    assert [steps[f"m{i}"].external_id for i in range(7)] == [f"{array}_{t}+{k}" for t, k in places]
    unsucceeded = {node_id: step.state for node_id, step in steps.items() if step.state != "succeeded"}
    assert unsucceeded == {"m4": "failed"}
    assert "planned failure" in steps["m4"].error["message"]  # a failing step did not stop its task
    assert [output(run.pk, f"m{i}")["total"] for i in (0, 1, 2, 3, 5, 6)] == [0, 1, 2, 3, 5, 6]
    assert [m for m in log_messages(run.pk, "m5") if m.startswith("hpc line")] == ["hpc line 1 of 1"]
    packed = list(RunEvent.objects.filter(run=run, kind="log", payload__message__startswith="packed")
                  .values_list("payload__message", flat=True))
    assert packed == [f"packed 7 steps into Slurm job array {array} on hpc-batch (3 tasks of up to 3 steps: "
                      "ready together, same resources, walltime hints at most 600 s)"]


HPC_DESCRIPTION = (
    "For ocean models and long analyses. Limits: 2 cores and 22 GB per step, 10 minutes on this partition. "
    "Expected queue wait: under a minute when the cluster is idle, hours when it is full."
)


def test_users_see_what_each_hpc_target_is_for_where_they_pick_it(api, staff, tmp_path, cluster):
    created = slurm_target(staff, tmp_path, cluster, name="hpc-described", ssh=True,
                           max_walltime_s=600)
    assert created["secret_keys"] == ["ssh_private_key"]
    body = {"description": HPC_DESCRIPTION}
    response = staff.patch("/api/compute-targets/hpc-described/", body, format="json")
    assert response.status_code == 200, response.json()
    listed = api.get("/api/compute-targets/?limit=1000").json()["results"]  # what the TargetPicker loads
    shown = next(target for target in listed if target["name"] == "hpc-described")
    assert shown["kind"] == "slurm" and shown["description"] == HPC_DESCRIPTION
    assert shown["config"] is None and shown["secret_keys"] is None  # a user sees no options or keys
    response = staff.post("/api/compute-targets/", {
        "name": "hpc-broken", "title": "Broken", "kind": "slurm",
        "config": {"workdir": "relative/dir", "transport": "ssh", "partition": "debug; rm -rf /"},
    }, format="json")
    assert response.status_code == 400
    assert "an absolute directory on the cluster" in str(response.json()["fields"]["config"])  # names it
