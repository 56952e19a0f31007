"""What a running block may use besides its inputs: progress, log and a scratch directory."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

Emit = Callable[[dict[str, Any]], None]

PROGRESS_INTERVAL_S = 0.25
"""Progress events closer together than this are dropped (except the last one, at 100 %)."""


class StepCancelled(Exception):
    """Raised inside a block when its run was cancelled; the runner records the step as cancelled."""


class WalltimeExceeded(Exception):
    """Raised inside a block that ran longer than the walltime of its spec; the step fails with it."""


class StepContext:
    """Handed to every block function as its first argument.

    ``scratch_dir`` is private to the step and removed afterwards; ``data_dir`` is the local data
    space that relative paths in parameters refer to (None when the deployment has none).
    ``cancel_requested`` is asked at each progress report: True stops the block as cancelled; an
    exception it raises (e.g. :class:`WalltimeExceeded`) stops the block and fails the step with it.
    """

    def __init__(
        self,
        *,
        scratch_dir: Path,
        emit: Emit | None = None,
        cancel_requested: Callable[[], bool] | None = None,
        data_dir: Path | None = None,
        run_id: str | None = None,
    ) -> None:
        self._scratch_dir = Path(scratch_dir)
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.run_id = run_id  # whose data spaces a ``space:`` reference may open (see blocks.spaces)
        self._emit = emit or (lambda event: None)
        self._cancel_requested = cancel_requested or (lambda: False)
        self._last_progress_at = float("-inf")

    @property
    def scratch_dir(self) -> Path:
        """A directory private to this step, created on first use and removed when the step ends."""
        self._scratch_dir.mkdir(parents=True, exist_ok=True)
        return self._scratch_dir

    def progress(self, fraction: float, message: str = "") -> None:
        """Report how far the block is, ``fraction`` in [0, 1]; raises as ``raise_if_cancelled`` does."""
        fraction = min(max(float(fraction), 0.0), 1.0)
        now = time.monotonic()
        if fraction >= 1.0 or now - self._last_progress_at >= PROGRESS_INTERVAL_S:
            self._last_progress_at = now
            self._emit({"kind": "progress", "fraction": round(fraction, 4), "message": message})
            self.raise_if_cancelled()

    def log(self, message: str, level: str = "info") -> None:
        """Write a line to the step's log, which users read live on the run page."""
        self._emit({"kind": "log", "level": level, "message": str(message)})

    def raise_if_cancelled(self) -> None:
        """Long loops call this between iterations so a cancelled run, or a step out of time, stops
        promptly: raises StepCancelled, or whatever ``cancel_requested`` raised."""
        if self._cancel_requested():
            raise StepCancelled("the run was cancelled")
