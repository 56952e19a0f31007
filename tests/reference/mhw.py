"""Call the published marine-heatwave reference (tests/reference/mhw_detect_cli.py) from the tests.

It runs in its own virtualenv, ``.venv-mhw`` (``make reference-env``), or the interpreter named by
``ILIAD_MHW_REFERENCE_PYTHON``. A missing reference is a test failure, never a skip.
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import date
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
CLI = Path(__file__).with_name("mhw_detect_cli.py")


def reference_python() -> Path:
    configured = os.environ.get("ILIAD_MHW_REFERENCE_PYTHON")
    path = Path(configured) if configured else REPO_ROOT / ".venv-mhw" / "bin" / "python"
    if not path.exists():
        pytest.fail(f"the marine-heatwave reference interpreter {path} is missing: run `make reference-env`")
    return path


def detect_options(*, percentile: float = 90.0, window_half_width: int = 5, smooth_width: int = 31,
                   min_duration: int = 5, join_gaps: bool = True, max_gap: int = 2,
                   baseline_years: tuple[int, int] | None = None) -> dict[str, Any]:
    """The reference's keyword arguments for the block's parameters of the same meaning."""
    options = {
        "pctile": percentile, "windowHalfWidth": window_half_width,
        "smoothPercentile": smooth_width > 0, "smoothPercentileWidth": max(smooth_width, 1),
        "minDuration": min_duration, "joinAcrossGaps": join_gaps, "maxGap": max_gap,
    }
    if baseline_years:
        options["climatologyPeriod"] = list(baseline_years)
    return options


def reference_events(cases: list[tuple[list[date], list[float], dict[str, Any]]]) -> list[list[dict]]:
    """Events of each (days, temperatures, detect options) case, as the reference reports them."""
    payload = [
        {"t": [day.toordinal() for day in days],
         "temp": [None if value != value else value for value in temps],
         "options": options}
        for days, temps, options in cases
    ]
    done = subprocess.run(
        [str(reference_python()), str(CLI)], input=json.dumps(payload), capture_output=True, text=True,
        timeout=600, cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": ""},
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout)
