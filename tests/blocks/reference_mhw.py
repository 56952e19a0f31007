"""TEST ORACLE — not used by the portal. A deliberately plain, loop-based marine heatwave detector.

Written from the definition of Hobday et al. (2016, Progress in Oceanography 141, 227-238) and the
categories of Hobday et al. (2018, Oceanography 31(2), 162-173), with the conventions of the published
reference implementation (``detect()`` in ecjoliver/marineHeatWaves), one step at a time in pure
Python (dates from :mod:`datetime`, lists, ``math.fsum``), so that each step can be checked by eye.
It shares no code with :mod:`blocks.library.heatwaves`; the tests require both to agree.

Conventions (the reference's):

1. Day of year on a 366-day calendar: 1 Jan = 1, 28 Feb = 59, 29 Feb = 60, 1 Mar = 61 (every year),
   31 Dec = 366.
2. For each day of year d (except 60), for every day i of the baseline whose day of year is d, the
   values of days i-w .. i+w of the series (w = window half-width; days outside the series are skipped,
   missing values are skipped) are pooled. Climatology = mean of the pool; threshold = the given
   percentile of the pool, interpolating linearly between order statistics.
3. Day 60 (29 Feb) = mean of days 59 and 61. Then both curves are smoothed with a centred running mean
   of ``smooth_width`` days, wrapping around the end of the year (a periodic year of 366 days).
4. Missing temperatures are replaced by the climatology of their day.
5. Runs of consecutive days with temperature strictly above the threshold lasting at least
   ``min_duration`` days are events; consecutive events separated by at most ``max_gap`` days are
   merged (the gap days become part of the event).
6. Per event: anomaly = temperature - climatology on each day; peak = first day of largest anomaly;
   intensity max/mean/var (population std)/cumulative; the same for temperature - threshold (taken
   at the peak day for the max) and for the temperature itself; onset/decline rates with the event
   starting/ending half a day before/after its first/last day, taking the value there as the average
   of the first/last day and the day outside; at an end of the series the first/last day itself,
   with the time counted in whole days and at least one day.
7. Category: each day's anomaly divided by (threshold - climatology); an event's category is the
   floor of the largest such multiple, capped at 4 (1 Moderate, 2 Strong, 3 Severe, 4 Extreme); day
   counts per category count the days (above the threshold) whose own floor equals it (4: or more).
"""

from __future__ import annotations

import math
from datetime import date, timedelta


def day_of_year_366(day: date) -> int:
    """1..366 with 1 March always 61."""
    count = 0
    for month in range(1, day.month):
        count += [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
    return count + day.day


def percentile_linear(values: list[float], percentile: float) -> float:
    ordered = sorted(values)
    position = percentile / 100.0 * (len(ordered) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    fraction = position - below
    return ordered[below] + (ordered[above] - ordered[below]) * fraction


def oracle_detect(
    days: list[date], temps: list[float], *, baseline: tuple[date, date] | None = None,
    percentile: float = 90.0, window_half_width: int = 5, smooth_width: int = 31, min_duration: int = 5,
    join_gaps: bool = True, max_gap: int = 2,
) -> tuple[list[dict], list[float], list[float]]:
    """Events (list of dicts), climatology and threshold per day, for consecutive daily ``days``."""
    for earlier, later in zip(days, days[1:], strict=False):
        assert later - earlier == timedelta(days=1), "the oracle needs consecutive days"
    count = len(days)
    if baseline is None:
        baseline = (days[0], days[-1])
    doys = [day_of_year_366(day) for day in days]

    # Step 2: pools per day of year.
    pools: dict[int, list[float]] = {d: [] for d in range(1, 367)}
    for i in range(count):
        if not baseline[0] <= days[i] <= baseline[1] or doys[i] == 60:
            continue
        for j in range(i - window_half_width, i + window_half_width + 1):
            if 0 <= j < count and not math.isnan(temps[j]):
                pools[doys[i]].append(temps[j])
    seas_year = [0.0] * 366
    thresh_year = [0.0] * 366
    for d in range(1, 367):
        if d == 60:
            continue
        seas_year[d - 1] = math.fsum(pools[d]) / len(pools[d])
        thresh_year[d - 1] = percentile_linear(pools[d], percentile)
    # Step 3: 29 February, then circular smoothing.
    seas_year[59] = 0.5 * (seas_year[58] + seas_year[60])
    thresh_year[59] = 0.5 * (thresh_year[58] + thresh_year[60])
    if smooth_width > 1:
        half = smooth_width // 2
        seas_year = [math.fsum(seas_year[(k + o) % 366] for o in range(-half, half + 1)) / smooth_width
                     for k in range(366)]
        thresh_year = [math.fsum(thresh_year[(k + o) % 366] for o in range(-half, half + 1)) / smooth_width
                       for k in range(366)]
    seas = [seas_year[d - 1] for d in doys]
    thresh = [thresh_year[d - 1] for d in doys]

    # Step 4.
    filled = [seas[i] if math.isnan(temps[i]) else temps[i] for i in range(count)]

    # Step 5: runs above the threshold.
    runs: list[list[int]] = []
    i = 0
    while i < count:
        if filled[i] > thresh[i]:
            j = i
            while j + 1 < count and filled[j + 1] > thresh[j + 1]:
                j += 1
            if j - i + 1 >= min_duration:
                runs.append([i, j])
            i = j + 1
        else:
            i += 1
    if join_gaps:
        merged: list[list[int]] = []
        for run in runs:
            if merged and run[0] - merged[-1][1] - 1 <= max_gap:
                merged[-1][1] = run[1]
            else:
                merged.append(list(run))
        runs = merged

    # Step 6 and 7.
    events = []
    for number, (s, e) in enumerate(runs, start=1):
        anomaly = [filled[k] - seas[k] for k in range(s, e + 1)]
        over = [filled[k] - thresh[k] for k in range(s, e + 1)]
        absolute = [filled[k] for k in range(s, e + 1)]
        multiple = [(filled[k] - seas[k]) / (thresh[k] - seas[k]) for k in range(s, e + 1)]
        peak = 0
        for k in range(len(anomaly)):
            if anomaly[k] > anomaly[peak]:
                peak = k
        mean = math.fsum(anomaly) / len(anomaly)
        var = math.sqrt(math.fsum((a - mean) ** 2 for a in anomaly) / len(anomaly))
        if s > 0:
            start_value = 0.5 * (anomaly[0] + filled[s - 1] - seas[s - 1])
            onset = (anomaly[peak] - start_value) / (peak + 0.5)
        else:
            onset = (anomaly[peak] - anomaly[0]) / max(peak, 1)
        last = len(anomaly) - 1
        if e < count - 1:
            end_value = 0.5 * (anomaly[-1] + filled[e + 1] - seas[e + 1])
            decline = (anomaly[peak] - end_value) / (last - peak + 0.5)
        else:
            decline = (anomaly[peak] - anomaly[-1]) / max(last - peak, 1)
        category = min(math.floor(max(multiple)), 4)
        day_levels = [min(math.floor(multiple[k]), 4) for k in range(len(anomaly)) if over[k] > 0]
        events.append({
            "event": number,
            "start": days[s].isoformat(),
            "end": days[e].isoformat(),
            "peak": days[s + peak].isoformat(),
            "duration_days": e - s + 1,
            "intensity_max": anomaly[peak],
            "intensity_mean": mean,
            "intensity_var": var,
            "intensity_cumulative": math.fsum(anomaly),
            "intensity_max_rel_thresh": over[peak],
            "intensity_mean_rel_thresh": math.fsum(over) / len(over),
            "intensity_cumulative_rel_thresh": math.fsum(over),
            "intensity_max_abs": absolute[peak],
            "intensity_mean_abs": math.fsum(absolute) / len(absolute),
            "intensity_max_norm": multiple[peak],
            "rate_onset": onset,
            "rate_decline": decline,
            "category_number": category,
            "days_moderate": sum(1 for level in day_levels if level == 1),
            "days_strong": sum(1 for level in day_levels if level == 2),
            "days_severe": sum(1 for level in day_levels if level == 3),
            "days_extreme": sum(1 for level in day_levels if level == 4),
            "missing_days": sum(1 for k in range(s, e + 1) if math.isnan(temps[k])),
        })
    return events, seas, thresh
