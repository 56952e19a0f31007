"""Slurm's command-line text, built and parsed by pure functions; the parsers are fed output
captured from the Slurm 22.05 the test cluster runs (tests/support/slurm/captured/)."""

from pathlib import Path

import pytest

from apps.compute.backends.slurm import dialect
from apps.compute.base import BackendError, JobState, Resources

CAPTURED = Path(__file__).parent / "support" / "slurm" / "captured"


def captured(name: str) -> str:
    return (CAPTURED / name).read_text()


OPTIONS = dialect.BatchOptions(workdir="/scratch/iliad", python="/opt/iliad/bin/python", partition="short",
                               account="ocean-01", modules=("python/3.11",), store_root="/scratch/store")


def test_one_manifest_is_one_job_with_the_steps_resources():
    script = dialect.batch_script(name="iliad-hpc", manifests=["/scratch/iliad/m 1.json"],
                                  resources=Resources(cpus=4, memory_mb=8000, walltime_s=3601, gpus=1),
                                  options=OPTIONS, log_dir="/scratch/iliad/jobs/t1")
    assert script.startswith("#!/bin/bash\n")
    for line in ("#SBATCH --partition=short", "#SBATCH --account=ocean-01", "#SBATCH --cpus-per-task=4",
                 "#SBATCH --mem=8000M", "#SBATCH --time=0-01:01:00", "#SBATCH --gres=gpu:1",
                 "#SBATCH --output=/scratch/iliad/jobs/t1/0/_slurm.out",
                 "#SBATCH --error=/scratch/iliad/jobs/t1/0/_slurm.err", "#SBATCH --no-requeue",
                 "module load python/3.11",
                 "MANIFESTS=('/scratch/iliad/m 1.json')",
                 'exec /opt/iliad/bin/python -m blocks.runner "$MANIFEST" --store-root /scratch/store'):
        assert line in script.splitlines(), line
    assert "--array" not in script


def test_several_manifests_are_one_job_array():
    script = dialect.batch_script(name="iliad-hpc", manifests=["a.json", "b.json", "c.json"],
                                  resources=Resources(), options=OPTIONS, log_dir="/scratch/iliad/jobs/t2")
    assert "#SBATCH --array=0-2" in script.splitlines()
    assert "#SBATCH --output=/scratch/iliad/jobs/t2/%a/_slurm.out" in script.splitlines()
    assert "#SBATCH --error=/scratch/iliad/jobs/t2/%a/_slurm.err" in script.splitlines()
    assert "MANIFEST=${MANIFESTS[${SLURM_ARRAY_TASK_ID:-0}]}" in script


@pytest.mark.parametrize("field", ["partition", "account", "qos"])
def test_option_values_with_shell_syntax_are_refused(field):
    options = dialect.BatchOptions(workdir="/w", **{field: "debug\n#SBATCH --uid=0"})
    with pytest.raises(BackendError) as raised:
        dialect.batch_script(name="x", manifests=["m.json"], resources=Resources(), options=options,
                             log_dir="/w/jobs/t")
    assert raised.value.permanent and field in str(raised.value)


def test_a_job_never_writes_its_output_where_it_was_submitted_from():
    for manifests in (["a.json"], ["a.json", "b.json"]):
        script = dialect.batch_script(name="x", manifests=manifests, resources=Resources(), options=OPTIONS,
                                      log_dir="/scratch/iliad/jobs/t3")
        lines = [line for line in script.splitlines() if line.startswith("#SBATCH")]
        flags = [line.split()[1].split("=", 1)[0] for line in lines]
        assert "--output" in flags and "--error" in flags and "--chdir" in flags
        outputs = [line for line in lines if line.startswith(("#SBATCH --output", "#SBATCH --error"))]
        assert all("=/scratch/iliad/jobs/t3/" in line for line in outputs), outputs


def test_the_targets_time_limit_caps_what_a_job_asks_for():
    options = dialect.BatchOptions(workdir="/w", max_walltime_s=60)
    script = dialect.batch_script(name="x", manifests=["m.json"], resources=Resources(walltime_s=3600),
                                  options=options, log_dir="/w/jobs/t")
    assert "#SBATCH --time=0-00:01:00" in script.splitlines()
    assert dialect.options_from({"workdir": "/w", "max_walltime_s": 600}).max_walltime_s == 600


@pytest.mark.parametrize(("seconds", "expected"), [(1, "0-00:01:00"), (60, "0-00:01:00"), (61, "0-00:02:00"),
                                                    (86400 + 3600, "1-01:00:00")])
def test_walltime_rounds_up_to_whole_minutes(seconds, expected):
    assert dialect.walltime(seconds) == expected


def test_sbatch_answer_is_the_job_id():
    assert dialect.parse_sbatch(captured("sbatch_parsable.txt")) == "14"
    assert dialect.parse_sbatch("812;cluster-a\n") == "812"
    with pytest.raises(BackendError):
        dialect.parse_sbatch("sbatch: error: Batch job submission failed: Invalid partition name specified")
    assert dialect.external_ids("14", 1) == ["14"]
    assert dialect.external_ids("14", 3) == ["14_0", "14_1", "14_2"]


def test_squeue_lists_each_array_task():
    running = dialect.parse_squeue(captured("squeue_array.txt"))
    assert running == {"14_0": ("RUNNING", "None"), "14_1": ("RUNNING", "None"),
                       "14_2": ("PENDING", "None"), "14_3": ("PENDING", "None")}
    finished = dialect.parse_squeue(captured("squeue_array_finished.txt"))
    assert finished["14_0"][0] == "COMPLETED" and finished["14_3"] == ("FAILED", "JobLaunchFailure")


def test_scontrol_names_array_tasks_by_array_id():
    records = dialect.parse_scontrol(captured("scontrol_array_completed.txt"))
    assert set(records) == {"2_0", "2_1", "2_2"}
    assert {state for state, _, _ in records.values()} == {"COMPLETED"}
    state, reason, code = dialect.parse_scontrol(captured("scontrol_failed.txt")).popitem()[1]
    assert (state, reason, code) == ("FAILED", "NonZeroExitCode", "3:0")
    assert next(iter(dialect.parse_scontrol(captured("scontrol_timeout.txt")).values()))[0] == "TIMEOUT"
    assert next(iter(dialect.parse_scontrol(captured("scontrol_cancelled.txt")).values()))[0] == "CANCELLED"
    state, reason, _ = dialect.parse_scontrol(captured("scontrol_out_of_memory.txt")).popitem()[1]
    assert (state, reason) == ("OUT_OF_MEMORY", "OutOfMemory")  # cgroup memory limit (task/cgroup)
    status = dialect.status_of(state, reason)
    assert status.state is JobState.DIED and "OUT_OF_MEMORY" in status.reason and not status.retry


def test_sacct_without_accounting_has_nothing_and_with_it_keeps_the_first_word():
    assert dialect.parse_sacct(captured("sacct_unavailable.txt")) == {}
    assert dialect.parse_sacct("77|CANCELLED by 0|0:15\n78_1|OUT_OF_MEMORY|0:125\n") == {
        "77": ("CANCELLED", "", "0:15"), "78_1": ("OUT_OF_MEMORY", "", "0:125")}


@pytest.mark.parametrize(("state", "expected", "retry"), [
    ("PENDING", JobState.PENDING, False), ("RUNNING", JobState.RUNNING, False),
    ("COMPLETING", JobState.RUNNING, False), ("COMPLETED", JobState.DONE, False),
    ("FAILED", JobState.DONE, False), ("TIMEOUT", JobState.DIED, False),
    ("OUT_OF_MEMORY", JobState.DIED, False), ("NODE_FAIL", JobState.DIED, True),
    ("PREEMPTED", JobState.DIED, True), ("BOOT_FAIL", JobState.DIED, True),
    ("DEADLINE", JobState.DIED, False), ("CANCELLED", JobState.CANCELLED, False),
    ("CANCELLED+", JobState.CANCELLED, False),
])
def test_every_slurm_state_maps_explicitly(state, expected, retry):
    status = dialect.status_of(state)
    assert status.state is expected and status.retry is retry
    if expected is JobState.DIED:
        assert status.reason  # the user reads why


def test_an_unknown_state_is_reported_not_guessed():
    status = dialect.status_of("WEIRD_NEW_STATE")
    assert status.state is JobState.UNKNOWN and "WEIRD_NEW_STATE" in status.reason
    assert "QOSMaxJobsPerUserLimit" in dialect.status_of("PENDING", "QOSMaxJobsPerUserLimit").reason


def test_a_target_without_an_absolute_workdir_is_refused():
    with pytest.raises(BackendError) as raised:
        dialect.options_from({"workdir": "relative"})
    assert raised.value.permanent
