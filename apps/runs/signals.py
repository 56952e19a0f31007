"""Signals other apps may connect to, sent by the run orchestration."""

from django.dispatch import Signal

run_finished = Signal()
"""Sent after commit, once per run, when a run reaches a finished state (succeeded, failed or
cancelled). Keyword arguments: ``sender=Run``, ``run_id`` (int), ``state`` (a ``RunState`` value).
Receivers run in the process that finished the run (a worker, or the web process for a cancel);
an exception in one is logged and does not affect the run or the other receivers."""
