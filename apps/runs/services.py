"""The run services, by module: this module only re-exports them for existing importers.

- ``apps.runs.orchestration``: submit, queue and dispatch, record a result, finish, cancel, rerun.
- ``apps.runs.manifests``: the run graph and step manifests.
- ``apps.runs.agent``: the in-worker agent (claim, heartbeat, cancel checks, local continuation).
- ``apps.runs.reconciler``: requeue lost launches, recover stalled steps, walltime, poll polled targets.
- ``apps.runs.transitions``: the step state machine.
"""

from apps.runs.agent import step_execute
from apps.runs.manifests import run_graph, step_manifest
from apps.runs.orchestration import (
    TARGETS,
    RunRejected,
    dispatch_steps,
    run_cancel,
    run_rerun,
    run_retry,
    run_submit,
    step_finish,
    steps_dispatch_held,
)
from apps.runs.reconciler import (
    WALLTIME_EXCEEDED,
    WORKER_LOST,
    step_fail_overdue,
    step_recover,
    steps_recover_stalled,
    steps_requeue_lost,
)
from apps.runs.transitions import ACTIVE_STEP_STATES

__all__ = [
    "ACTIVE_STEP_STATES",
    "TARGETS",
    "WALLTIME_EXCEEDED",
    "WORKER_LOST",
    "RunRejected",
    "dispatch_steps",
    "run_cancel",
    "run_graph",
    "run_rerun",
    "run_retry",
    "run_submit",
    "step_execute",
    "step_fail_overdue",
    "step_finish",
    "step_manifest",
    "step_recover",
    "steps_dispatch_held",
    "steps_recover_stalled",
    "steps_requeue_lost",
]
