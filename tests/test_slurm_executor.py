"""The slurm executor on a real single-node Slurm cluster (tests/support/slurm/cluster.sh starts it,
with an sshd on loopback for the SSH transport): submit, job arrays, poll, logs, cancel, a job that
dies before its runner, staging over SFTP when nothing is shared, host-key checking."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from apps.compute.backends.slurm.executor import SlurmExecutor
from apps.compute.base import BackendError, JobState, Launch, Resources
from blocks.manifest import ResultManifest, StepManifest, StepResources, path_from_uri

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "tests" / "support" / "slurm" / "cluster.sh"
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


def config(tmp_path: Path, **extra) -> dict:
    workdir = tmp_path / "cluster-work"
    workdir.mkdir(exist_ok=True)
    return {"workdir": str(workdir), "python": sys.executable, "partition": "debug",
            "setup": [f"export PYTHONPATH={REPO}"], "store_root": str(tmp_path / "store"),
            "local_store_root": str(tmp_path / "store"), **extra}


def launch(store: Path, step: str, *, params=None, block="utility.noop", attempt=1) -> Launch:
    manifest = StepManifest(
        run_id="7", step_id=step, block_id=block, block_version="1.0.0", params=params or {}, inputs={},
        output_dir=f"store:runs/7/{step}", attempt=attempt,
        resources=StepResources(cpus=1, memory_mb=256, walltime_s=120),
    )
    path = store / "runs" / "7" / f"{step}.manifest.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest.to_dict()))
    return Launch(step_id=len(step), attempt=attempt, manifest_uri=f"store:runs/7/{step}.manifest.json",
                  resources=Resources(cpus=1, memory_mb=256, walltime_s=120))


def wait_for(executor, ids, states, timeout=60.0):
    deadline = time.monotonic() + timeout
    while True:
        statuses = executor.poll(ids)
        if all(status.state in states for status in statuses.values()):
            return statuses
        assert time.monotonic() < deadline, f"still {statuses} after {timeout} s"
        time.sleep(0.5)


def ssh_config(tmp_path: Path, cluster: Path, **extra) -> dict:
    return config(tmp_path, transport="ssh", host="127.0.0.1", port=SSH_PORT, user="root",
                  ssh_private_key=(cluster / "ssh" / "client_ed25519").read_text(),
                  known_hosts=(cluster / "ssh" / "known_hosts").read_text(), **extra)


def test_independent_steps_go_out_as_one_job_array_and_finish(cluster, tmp_path):
    executor = SlurmExecutor(name="hpc", config=config(tmp_path, steps_per_task=1))  # a task per step
    launches = [launch(tmp_path / "store", f"s{i}", params={"sleep_s": 0}) for i in range(3)]
    ids = executor.submit(launches)
    assert len({external.split("_")[0] for external in ids}) == 1 and ids[0].endswith("_0")
    packing = executor.last_packing[0]
    assert packing["how"] == "array" and packing["job"] == ids[0].split("_")[0]
    assert packing["message"].startswith(f"packed 3 steps into Slurm job array {packing['job']}")
    statuses = wait_for(executor, ids, {JobState.DONE, JobState.DIED})
    assert {status.state for status in statuses.values()} == {JobState.DONE}, statuses
    for step in ("s0", "s1", "s2"):
        result = ResultManifest.load(path_from_uri(f"store:runs/7/{step}/_result.json", tmp_path / "store"))
        assert result.ok
    for step in ("s0", "s1", "s2"):  # Slurm wrote each task's output into its step's directory
        out = tmp_path / "store" / "runs" / "7" / step / "_slurm.out"
        assert '"kind": "result"' in out.read_text()
        assert (out.parent / "_slurm.err").exists()
    assert not list(Path.cwd().glob("slurm-*.out")) and not list(REPO.glob("slurm-*.out"))
    events, offset = executor.logs(ids[1])
    assert events[-1]["kind"] == "result" and events[-1]["ok"] is True
    assert executor.logs(ids[1], offset=offset) == ([], offset)  # nothing new after the offset


def test_cancel_ends_a_running_job(cluster, tmp_path):
    executor = SlurmExecutor(name="hpc", config=config(tmp_path))
    (external,) = executor.submit([launch(tmp_path / "store", "long", params={"sleep_s": 60})])
    wait_for(executor, [external], {JobState.RUNNING})
    started = time.monotonic()
    executor.cancel(external)
    statuses = wait_for(executor, [external], {JobState.CANCELLED, JobState.DONE, JobState.DIED}, timeout=15)
    assert statuses[external].state is JobState.CANCELLED, statuses
    assert time.monotonic() - started < 5
    executor.cancel(external)  # idempotent


def test_a_job_that_dies_before_its_runner_is_died_with_the_reason(cluster, tmp_path):
    executor = SlurmExecutor(name="hpc", config=config(tmp_path, python="/nonexistent/python3"))
    (external,) = executor.submit([launch(tmp_path / "store", "broken")])
    status = wait_for(executor, [external], {JobState.DONE, JobState.DIED})[external]
    assert status.state is JobState.DIED and "before the step's runner wrote a result" in status.reason
    assert "No such file or directory" in status.reason and "/nonexistent" not in status.reason  # scrubbed


def test_an_unknown_partition_is_a_permanent_error(cluster, tmp_path):
    executor = SlurmExecutor(name="hpc", config=config(tmp_path, partition="nosuchpartition"))
    with pytest.raises(BackendError) as raised:
        executor.submit([launch(tmp_path / "store", "p")])
    assert raised.value.permanent and "partition" in str(raised.value).lower()


def test_a_job_the_cluster_never_heard_of_is_unknown(cluster, tmp_path):
    executor = SlurmExecutor(name="hpc", config=config(tmp_path))
    assert executor.poll(["999999"])["999999"].state is JobState.UNKNOWN


def test_over_ssh_with_staging_when_nothing_is_shared(cluster, tmp_path):
    remote_store = tmp_path / "cluster-store"
    executor = SlurmExecutor(name="hpc-ssh", config=ssh_config(
        tmp_path, cluster, shared_filesystem=False, store_root=str(remote_store)))
    (external,) = executor.submit([launch(tmp_path / "store", "remote", params={"sleep_s": 0})])
    assert (tmp_path / "cluster-work" / "manifests").is_dir()  # the manifest went over SFTP
    status = wait_for(executor, [external], {JobState.DONE, JobState.DIED})[external]
    assert status.state is JobState.DONE, status
    assert (remote_store / "runs" / "7" / "remote" / "_result.json").is_file()  # ran in the cluster's store
    home = path_from_uri("store:runs/7/remote/_result.json", tmp_path / "store")
    assert ResultManifest.load(home).ok  # and was fetched back before DONE was reported


def test_ssh_refuses_a_login_node_with_another_host_key(cluster, tmp_path):
    other = subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")],
                           check=True)
    assert other.returncode == 0
    wrong = f"[127.0.0.1]:{SSH_PORT} " + " ".join((tmp_path / "k.pub").read_text().split()[:2])
    executor = SlurmExecutor(name="hpc-ssh", config=ssh_config(tmp_path, cluster) | {"known_hosts": wrong})
    with pytest.raises(BackendError) as raised:
        executor.submit([launch(tmp_path / "store", "x")])
    assert raised.value.permanent and "host key" in str(raised.value)
