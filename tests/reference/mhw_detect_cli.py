"""Run the published marine-heatwave detection (mhw-detect's marineHeatWavesOpt.detect, a numba port
of Hobday/Oliver's marineHeatWaves) on JSON cases from stdin; print the events as JSON.

Runs under the reference interpreter (.venv-mhw), never the portal's: stdlib + numpy only here.
Input: ``[{"t": [ordinal days], "temp": [float|null], "options": {detect keyword arguments}}, ...]``.
Output: one list of events per case, each event a dict of the reference's per-event fields.
"""

import json
import sys

import numpy as np
from src.mhw_detect.detection import marineHeatWavesOpt

# Per-event fields of ``detect``; its ``date_peak`` is left out because mhw-detect 0.2.3 computes it
# with the last event's peak offset for every event (``time_peak`` is right and is used instead).
FIELDS = (
    "time_start", "time_end", "time_peak", "duration", "intensity_max", "intensity_mean", "intensity_var",
    "intensity_cumulative", "intensity_max_relThresh", "intensity_mean_relThresh",
    "intensity_cumulative_relThresh", "intensity_max_abs", "intensity_mean_abs", "category",
    "duration_moderate", "duration_strong", "duration_severe", "duration_extreme", "rate_onset",
    "rate_decline",
)


def detect(case: dict) -> list[dict]:
    t = np.asarray(case["t"], dtype=np.int64)
    # float32: the numba kernel is typed for float32 temperatures (as read from NetCDF).
    temp = np.asarray([np.nan if v is None else v for v in case["temp"]], dtype=np.float32)
    options = {"climatologyPeriod": [None, None], **case.get("options", {})}
    # A fresh list each call: detect() fills its mutable default in place, so a second series would
    # otherwise get the first one's baseline years.
    mhw, _dates, _categories = marineHeatWavesOpt.detect(t, temp, **options)
    count = len(mhw["time_start"])
    return [{name: float(mhw[name][k]) for name in FIELDS} for k in range(count)]


if __name__ == "__main__":
    json.dump([detect(case) for case in json.load(sys.stdin)], sys.stdout)
