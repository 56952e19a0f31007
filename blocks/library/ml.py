"""Machine-learning blocks for time series: forecasting with a backtest, and anomaly detection."""

from __future__ import annotations

import math
import time as clock
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from blocks.context import StepContext
from blocks.library.cf import column_attrs, difference_attrs, on_scale_attrs, with_columns
from blocks.library.geo import iso_times, numeric_column, table_times
from blocks.spec import Port, Quantity, Resources, block

DAY = pd.Timedelta(days=1)
YEAR_DAYS = 365.25
FOURIER_HARMONICS = 3
"""Yearly cycle as sines and cosines of 1, 2 and 3 cycles per year: smooth but not only sinusoidal."""
MIN_TRAINING_DAYS = 90
"""Fewest days a model is fitted on (per backtest fold, too)."""
GB_LAGS = (1, 2, 3, 4, 5, 6, 7, 14, 21, 28)
"""Past days (before the forecast origin) used as features by the gradient-boosting method."""
GB_ITERATIONS = 100
GB_MAX_TRAINING_ORIGINS = 730
"""Gradient boosting learns from at most the latest this many forecast origins, to bound the time."""
GB_CALIBRATION_ORIGINS = 365
"""Gradient boosting calibrates its range on at most the latest this many forecast origins (a year)."""
OBSERVATION_COLUMNS = ("station", "time", "variable", "value")
"""An observation table (long format) has at least these columns."""
OBSERVATION_GROUP_COLUMNS = ("station", "variable", "depth", "lat", "lon")
"""Rows of an observation table sharing these values (those present) form one time series."""


# ---- shared helpers -----------------------------------------------------------------------------

def _iso_day(value: pd.Timestamp) -> str:
    return value.strftime("%Y-%m-%d")


def _daily_series(table: pd.DataFrame, column: str) -> pd.Series:
    """The column as a float series on a gap-free daily time index, or ValueError naming the problem.

    Missing values inside the series (a row present, its value empty) are filled by linear
    interpolation; missing values at either end are dropped.
    """
    times = table_times(table, iso_only=True)
    values = pd.Series(pd.to_numeric(table[column], errors="coerce").to_numpy(np.float64), index=times)
    if values.isna().all():
        raise ValueError(f"column: {column!r} has no valid values (all missing)")
    values = values.sort_index()
    duplicated = values.index[values.index.duplicated()]
    if len(duplicated):
        raise ValueError(f"series: the time {iso_times(duplicated[:1])[0]} appears more than once")
    if not (values.index == values.index.normalize()).all():
        odd = values.index[values.index != values.index.normalize()][0]
        raise ValueError(
            f"series: the time {odd.isoformat()} is not at midnight; this block needs daily data "
            "(one row per day): resample the series to daily means first"
        )
    steps = values.index[1:] - values.index[:-1]
    gaps = np.flatnonzero(steps != DAY)
    if len(gaps):
        first = gaps[0]
        before, after = values.index[first], values.index[first + 1]
        missing = (after - before) // DAY - 1
        raise ValueError(
            f"series: the time series has a gap between {_iso_day(before)} and {_iso_day(after)} "
            f"({missing} missing day{'s' if missing != 1 else ''}); this block needs one row per day without "
            "gaps: fill or resample the series first"
        )
    valid = values.notna().to_numpy()
    first, last = np.flatnonzero(valid)[[0, -1]]
    return values.iloc[first:last + 1].interpolate(method="linear")


def _fourier(times: pd.DatetimeIndex) -> np.ndarray:
    """Yearly cycle regressors, one column per sine and cosine (2 * FOURIER_HARMONICS columns)."""
    days = (times - pd.Timestamp("2000-01-01")) / DAY
    angle = 2 * np.pi * np.asarray(days, dtype=np.float64)[:, None] / YEAR_DAYS
    harmonics = np.arange(1, FOURIER_HARMONICS + 1)[None, :]
    return np.hstack([np.sin(angle * harmonics), np.cos(angle * harmonics)])


def _load_numerical_libraries() -> None:
    """Import scikit-learn and statsmodels, so that threadpool_limits sees their thread pools.

    threadpoolctl only limits libraries already loaded; these are imported on first use rather than
    at module import so that listing the block catalog stays quick.
    """
    import sklearn.ensemble  # noqa: F401
    import statsmodels.tsa.statespace.sarimax  # noqa: F401


# ---- forecasting methods ------------------------------------------------------------------------

@dataclass
class _Forecast:
    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray


Forecaster = Callable[[pd.Series, int, float], _Forecast]


def _sarimax(history: pd.Series, horizon: int, interval: float) -> _Forecast:
    """Regression on a constant and a yearly cycle (Fourier terms) with ARMA(1,1) errors, by maximum
    likelihood.

    The series is standardised and the optimiser starts from a two-step estimate (least squares for
    the regression, then an ARMA fit of its residuals): this makes the fit converge in a few
    iterations instead of a hundred.
    """
    from statsmodels.tools.sm_exceptions import ConvergenceWarning
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    values = history.to_numpy()
    loc, scale = float(values.mean()), float(values.std()) or 1.0
    standard = (values - loc) / scale
    regressors = np.column_stack([np.ones(len(values)), _fourier(history.index)])
    future = pd.date_range(history.index[-1] + DAY, periods=horizon, freq="D")
    future_regressors = np.column_stack([np.ones(horizon), _fourier(future)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", UserWarning)
        coefficients, *_ = np.linalg.lstsq(regressors, standard, rcond=None)
        residual_fit = SARIMAX(standard - regressors @ coefficients, order=(1, 0, 1)).fit(disp=False)
        model = SARIMAX(standard, exog=regressors, order=(1, 0, 1))
        fitted = model.fit(start_params=np.concatenate([coefficients, residual_fit.params]), disp=False,
                           maxiter=200)
        prediction = fitted.get_forecast(steps=horizon, exog=future_regressors)
    bounds = np.asarray(prediction.conf_int(alpha=1.0 - interval)) * scale + loc
    mean = np.asarray(prediction.predicted_mean) * scale + loc
    return _Forecast(mean, bounds[:, 0], bounds[:, 1])


def _gb_features(values: np.ndarray, times: pd.DatetimeIndex, origins: np.ndarray,
                 leads: np.ndarray) -> np.ndarray:
    """Features for forecasting ``lead`` days after each origin (an index into ``values``).

    The last value, its changes over the lags, the lead, and the target day's place in the year.
    """
    last = values[origins]
    changes = [last - values[origins - lag] for lag in GB_LAGS]
    target_days = (times[0] - pd.Timestamp("2000-01-01")) / DAY + origins + leads
    angle = 2 * np.pi * np.asarray(target_days, dtype=np.float64) / YEAR_DAYS
    return np.column_stack([last, *changes, leads, np.sin(angle), np.cos(angle)])


def _gb_pairs(first_origin: int, known_until: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Every (origin, lead) from origin ``first_origin`` on whose target is known at ``known_until``."""
    origins = np.repeat(np.arange(first_origin, known_until), horizon)
    leads = np.tile(np.arange(1, horizon + 1), known_until - first_origin)
    keep = origins + leads <= known_until
    return origins[keep], leads[keep]


def _gb_fit_predict(
    values: np.ndarray, times: pd.DatetimeIndex, known_until: int, horizon: int,
    losses: tuple[tuple[str, float | None], ...], origins: np.ndarray, leads: np.ndarray,
) -> list[np.ndarray]:
    """Fit one model per (loss, quantile) on the data up to index ``known_until`` (the latest
    GB_MAX_TRAINING_ORIGINS origins) and return each model's predicted change at (origins, leads)."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    first_origin = max(max(GB_LAGS), known_until - horizon - GB_MAX_TRAINING_ORIGINS)
    train_origins, train_leads = _gb_pairs(first_origin, known_until, horizon)
    features = _gb_features(values, times, train_origins, train_leads)
    target = values[train_origins + train_leads] - values[train_origins]
    wanted = _gb_features(values, times, origins, leads)
    predictions = []
    for loss, quantile in losses:
        model = HistGradientBoostingRegressor(
            loss=loss, quantile=quantile, max_iter=GB_ITERATIONS, learning_rate=0.1, max_leaf_nodes=15,
            min_samples_leaf=40, early_stopping=False, random_state=0,
        )
        model.fit(features, target)
        predictions.append(model.predict(wanted))
    return predictions


def _conformal_scores_needed(interval: float) -> int:
    """Fewest conformity scores whose conformal quantile at ``interval`` is finite."""
    # ceil((n + 1) * interval) <= n  <=>  n >= interval / (1 - interval); the epsilon absorbs float noise.
    return math.ceil(interval / (1.0 - interval) - 1e-9)


def _conformal_quantile(scores: np.ndarray, interval: float) -> float:
    """The ceil((n + 1) * interval)-th smallest of the n scores (n >= _conformal_scores_needed).

    A new exchangeable score is at most this with probability >= interval (Vovk et al. 2005): the
    finite-sample correction of the plain ``interval`` quantile.
    """
    rank = math.ceil((len(scores) + 1) * interval - 1e-9)
    return float(np.sort(scores)[rank - 1])


def _gb_calibration_origins(days: int, horizon: int) -> int:
    """How many of the latest forecast origins the gradient-boosting method holds out for calibration.

    A year (every season), or fewer when the history is short, keeping MIN_TRAINING_DAYS origins for
    the models fitted before the hold-out.
    """
    return min(GB_CALIBRATION_ORIGINS, days - (max(GB_LAGS) + MIN_TRAINING_DAYS + horizon))


def _gradient_boosting(history: pd.Series, horizon: int, interval: float) -> _Forecast:
    """Direct multi-step gradient boosting: one model for all lead times, the lead being a feature.

    The target is the change from the last observed value, so the trees need not extrapolate the
    level. Bounds come from two more models trained with the quantile loss, calibrated by
    conformalized quantile regression (Romano, Patterson & Candès 2019): the quantile models are
    first fitted without the latest origins, forecast those, and the bounds are then moved out (or
    in) per lead time by the conformal quantile of how far the true values fell outside them.
    """
    values, times = history.to_numpy(), history.index
    last_origin = len(values) - 1
    tail = (1.0 - interval) / 2
    quantile_losses: tuple[tuple[str, float | None], ...] = (("quantile", tail), ("quantile", 1.0 - tail))

    # The hold-out is the most recent stretch, not a random sample: the models forecast it from the past
    # exactly as they will forecast the future, and nothing they were fitted on lies after it.
    calibration_start = last_origin - _gb_calibration_origins(len(values), horizon)
    origins, leads = _gb_pairs(calibration_start, last_origin, horizon)
    held_lower, held_upper = _gb_fit_predict(values, times, calibration_start, horizon, quantile_losses,
                                             origins, leads)
    change = values[origins + leads] - values[origins]
    scores = np.maximum(held_lower - change, change - held_upper)
    # Per lead time rather than pooled: the quantile models fall short more at long leads, so one pooled
    # correction would cover the first days too often and the last ones too rarely (on the test series
    # at 90 %: 0.97 one day ahead, 0.84 fourteen days ahead); per lead, every day gets the probability.
    corrections = np.array([_conformal_quantile(scores[leads == lead], interval)
                            for lead in range(1, horizon + 1)])

    # Refit on the whole history, since the latest year matters most for the forecast. The corrections
    # were measured on models that saw less data, which if anything makes them cautious: the
    # backtest coverage comes out slightly above the nominal probability.
    future_leads = np.arange(1, horizon + 1)
    mean, lower, upper = (values[last_origin] + predicted for predicted in _gb_fit_predict(
        values, times, last_origin, horizon, (("squared_error", None), *quantile_losses),
        np.full(horizon, last_origin), future_leads,
    ))
    lower, upper = lower - corrections, upper + corrections
    # Independent quantile models can cross; keep lower <= mean <= upper (this only widens the range).
    return _Forecast(mean, np.minimum(lower, mean), np.maximum(upper, mean))


FORECASTERS: dict[str, Forecaster] = {"sarimax": _sarimax, "gradient_boosting": _gradient_boosting}


def _minimum_days(method: str, horizon: int, interval: float, folds: int) -> int:
    fit = MIN_TRAINING_DAYS
    if method == "gradient_boosting":
        # The lags and the targets of the last training origin, then a hold-out long enough for
        # the longest lead time to get enough calibration scores.
        fit += max(GB_LAGS) + horizon + (horizon - 1 + _conformal_scores_needed(interval))
    return fit + folds * horizon


def _same_date_a_year_before(index: pd.DatetimeIndex, positions: np.ndarray) -> np.ndarray:
    """Position in ``index`` of the same calendar date one year before each of ``positions`` (29 February
    falls back to 28 February), or -1 where that date is not in the series.

    By date, not 365 rows back: after a 29 February, 365 rows back is one day off for a whole year."""
    return index.get_indexer(index[positions] - pd.DateOffset(years=1))


def _backtest(
    ctx: StepContext, series: pd.Series, forecaster: Forecaster, horizon: int, interval: float, folds: int,
) -> pd.DataFrame:
    """Rolling-origin evaluation: refit on the data before each origin, forecast the next days."""
    rows = []
    values = series.to_numpy()
    for fold in range(1, folds + 1):
        ctx.raise_if_cancelled()
        end = len(series) - (folds - fold + 1) * horizon  # history is series[:end]
        history = series.iloc[:end]
        actual = values[end:end + horizon]
        forecast = forecaster(history, horizon, interval)
        error = forecast.mean - actual
        persistence = np.abs(values[end - 1] - actual)
        year_before = _same_date_a_year_before(series.index, np.arange(end, end + horizon))
        known = (year_before >= 0).all()
        seasonal = np.abs(values[year_before] - actual) if known else np.full(horizon, np.nan)
        inside = (actual >= forecast.lower) & (actual <= forecast.upper)
        rows.append({
            "fold": fold,
            "origin": _iso_day(series.index[end - 1]),
            "first_day": _iso_day(series.index[end]),
            "last_day": _iso_day(series.index[end + horizon - 1]),
            "horizon_days": horizon,
            "mae": float(np.mean(np.abs(error))),
            "rmse": float(np.sqrt(np.mean(error**2))),
            "coverage": float(np.mean(inside)),
            "persistence_mae": float(np.mean(persistence)),
            "seasonal_naive_mae": float(np.mean(seasonal)),
        })
        ctx.progress(fold / (folds + 1), f"backtest fold {fold} of {folds}")
    columns = ["fold", "origin", "first_day", "last_day", "horizon_days", "mae", "rmse", "coverage",
               "persistence_mae", "seasonal_naive_mae"]
    return pd.DataFrame(rows, columns=columns)


@block(
    id="ml.forecast",
    version="1.0.0",
    title="Forecast a time series",
    category="ml",
    inputs=(Port("series", "table", "Time series",
                 "A daily time series: a `time` column (one row per day, no gaps) and a numeric column.",
                 quantity=Quantity(params=("column",), real_dates=True)),),
    outputs=(
        Port("forecast", "table", "Forecast",
             "The recent observations followed by the forecast with its lower and upper bounds."),
        Port("backtest", "table", "Backtest",
             "How well the same method forecast the last weeks of the history, compared with persistence."),
    ),
    parameters={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "column": {"type": "string", "title": "Column",
                       "description": "Name of the column to forecast, e.g. sst. Empty: the first numeric "
                                      "column."},
            "method": {"type": "string", "enum": ["sarimax", "gradient_boosting"], "default": "sarimax",
                       "title": "Method",
                       "description": "sarimax: a statistical time-series model with a yearly cycle; "
                                      "gradient_boosting: a machine-learning model on recent values."},
            "horizon_days": {"type": "integer", "minimum": 1, "maximum": 90, "default": 14,
                             "title": "Forecast length (days)",
                             "description": "How many days after the last observation to forecast."},
            "interval": {"type": "number", "minimum": 0.5, "maximum": 0.99, "default": 0.9,
                         "title": "Interval probability",
                         "description": "Probability that the true value falls between the lower and upper "
                                        "bounds, e.g. 0.9 for a 90 % interval."},
            "backtest_folds": {"type": "integer", "minimum": 0, "maximum": 12, "default": 4,
                               "title": "Backtest periods",
                               "description": "How many past periods of forecast length to re-forecast to "
                                              "measure the skill (0: no backtest)."},
            "history_days": {"type": "integer", "minimum": 0, "maximum": 3660, "default": 90,
                             "title": "Days of history shown",
                             "description": "How many of the last observed days to put in the forecast "
                                            "table before the forecast, so a plot shows both."},
        },
    },
    resources=Resources(cpus=1, memory_mb=1024, walltime_s=600),
)
def forecast(ctx: StepContext, inputs: dict[str, Any], params: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """Forecast the next days of a daily time series, with an uncertainty range and a backtest.

    **What goes in:** a table with a `time` column (one row per day, no missing days; empty values
    inside the series are filled by straight-line interpolation) and the column to forecast, for
    example the `sst` area mean from *Area mean time series*.

    **What comes out:**

    - `forecast`: the last observed days (`observed`) followed by the forecast days with the
      expected value (`forecast`) and a range (`lower`, `upper`) that should contain the true value
      with the chosen probability (90 % by default). Columns: `time, observed, forecast, lower, upper`.
    - `backtest`: the honest check. The last few periods of the history are forecast again as if
      they were the future, using only the data before each of them ("rolling origin"). For each
      period: its last known day (`origin`), the mean absolute error (`mae`), root mean square error
      (`rmse`), the share of days inside the range (`coverage`, ideally close to the interval
      probability) and, for comparison, the error of two naive forecasts: tomorrow is like today
      (`persistence_mae`) and like the same day a year before (`seasonal_naive_mae`). A method is
      useful when its error is below the naive ones.

    **Methods:**

    - `sarimax` (default): a statistical model (SARIMAX, from statsmodels) with a constant level,
      a smooth yearly cycle and short-term memory of the day-to-day deviations (ARMA(1,1)). The
      range comes from the model's own error estimate and widens with the lead time. The yearly
      cycle is represented by sines and cosines (Fourier terms) of the day of the year given to the
      model as explanatory variables: a classic seasonal ARIMA with a 365-day season would be far
      too slow on daily data. Reference: Hyndman & Athanasopoulos, *Forecasting: Principles and
      Practice*, 3rd ed., section 12.1 (dynamic harmonic regression).
    - `gradient_boosting`: a machine-learning model (scikit-learn's histogram gradient boosting)
      that learns the change over the next days from the recent values (the last 4 weeks) and
      the time of year. The range comes from two more models trained for the lower and upper
      quantiles, then calibrated so that it keeps its promise: these two models are first
      trained without the last year of the history (less on shorter series) and forecast that
      year day by day; for each lead time (1 day ahead, 2 days ahead, ...) the range is then
      widened, or narrowed, by just enough that it would have contained the true value in the
      chosen share of those forecasts. The final models are trained on the whole history and get
      the same adjustment. On synthetic three-year series like the one in the tests, the
      backtest `coverage` of the 90 % range is 0.87 to 0.98 (0.91 on average), against 0.55 to
      0.81 before calibration. References: Friedman (2001), *Greedy function approximation: a
      gradient boosting machine*, Annals of Statistics 29(5); Romano, Patterson & Candès (2019),
      *Conformalized quantile regression*, NeurIPS.

    **Good to know:** a yearly cycle needs at least a year, better two or more, of data; at least
    90 days plus the backtest periods are required. Gradient boosting needs more: the 4 weeks
    before its first training day, and a calibration stretch giving every lead time at least 9
    past forecasts to learn from for a 90 % range (19 for 95 %, 99 for 99 %); the error message
    gives the exact number of days. Three years of daily data take a few seconds with `sarimax`,
    about ten with `gradient_boosting`.
    """
    started = clock.monotonic()
    table = inputs["series"]
    column = numeric_column(table, params.get("column"), booleans=False)
    method, horizon, interval = params["method"], params["horizon_days"], params["interval"]
    folds = params["backtest_folds"]
    series = _daily_series(table, column)
    needed = _minimum_days(method, horizon, interval, folds)
    if len(series) < needed:
        raise ValueError(
            f"series: {len(series)} days of data are too few for method={method!r}: at least {needed} days "
            f"are needed ({needed - folds * horizon} to fit the model plus backtest_folds={folds} x "
            f"horizon_days={horizon} for the backtest); use a longer series or fewer backtest periods"
        )
    if len(series) < 2 * 365:
        ctx.log(f"the series has {len(series)} days, less than two years: the yearly cycle is poorly known",
                "warning")
    forecaster = FORECASTERS[method]
    _load_numerical_libraries()
    # One thread: BLAS/OpenMP thread pools fighting for the cores make these small fits many times slower.
    with threadpool_limits(limits=1):
        backtest = _backtest(ctx, series, forecaster, horizon, interval, folds)
        ctx.raise_if_cancelled()
        result = forecaster(series, horizon, interval)
    future = pd.date_range(series.index[-1] + DAY, periods=horizon, freq="D")
    shown = series.iloc[len(series) - min(params["history_days"], len(series)):]
    empty = np.full(len(shown), np.nan)
    table_out = pd.DataFrame({
        "time": [_iso_day(t) for t in shown.index] + [_iso_day(t) for t in future],
        "observed": np.concatenate([shown.to_numpy(), np.full(horizon, np.nan)]),
        "forecast": np.concatenate([empty, result.mean]),
        "lower": np.concatenate([empty, result.lower]),
        "upper": np.concatenate([empty, result.upper]),
    })
    if len(backtest):
        ctx.log(
            f"backtest over {folds} x {horizon} days: MAE {backtest['mae'].mean():.4g} "
            f"(persistence {backtest['persistence_mae'].mean():.4g}), coverage of the "
            f"{interval:.0%} interval {backtest['coverage'].mean():.0%}"
        )
    ctx.progress(1.0, f"forecast {horizon} days with {method} in {clock.monotonic() - started:.1f} s")
    source = column_attrs(table, column)
    if source.get("units"):
        values = {"observed": "observed value", "forecast": "forecast (mean)",
                  "lower": "lower end of the prediction interval",
                  "upper": "upper end of the prediction interval"}
        table_out = with_columns(table_out, {name: on_scale_attrs(source, what)
                                             for name, what in values.items()})
        backtest = with_columns(backtest, {
            name: difference_attrs(source, what) for name, what in (
                ("mae", "mean absolute error"), ("rmse", "root-mean-square error"),
                ("persistence_mae", "mean absolute error of persistence"),
                ("seasonal_naive_mae", "mean absolute error of the same date a year before"))})
    return {"forecast": table_out, "backtest": backtest}


# ---- anomaly detection --------------------------------------------------------------------------

def _series_features(values: pd.Series, window: int) -> np.ndarray:
    """Value, first difference and centred rolling z-score of one time-ordered series."""
    minimum = max(3, window // 2)
    rolling = values.rolling(window, center=True, min_periods=minimum)
    std = rolling.std()
    zscore = (values - rolling.mean()) / std.where(std > 0)
    diff = values.diff()
    return np.column_stack([values.to_numpy(), diff.to_numpy(), zscore.to_numpy()])


def _isolation_scores(features: np.ndarray, contamination: str | float, seed: int) -> tuple[np.ndarray, ...]:
    from sklearn.ensemble import IsolationForest

    # Isolation forests cannot split on missing values: fill them with the column median (neutral).
    filled = np.where(np.isnan(features), np.nanmedian(features, axis=0), features)
    filled = np.where(np.isnan(filled), 0.0, filled)
    forest = IsolationForest(n_estimators=200, contamination=contamination, random_state=seed)
    forest.fit(filled)
    return forest.predict(filled) == -1, -forest.score_samples(filled)


def _checked_contamination(value: Any) -> str | float:
    if value == "auto":
        return "auto"
    try:
        fraction = float(value)
    except (TypeError, ValueError):
        fraction = float("nan")
    if not 0 < fraction <= 0.5:
        raise ValueError(f"contamination: {value!r} must be 'auto' or a fraction between 0 and 0.5")
    return fraction


@block(
    id="ml.anomaly_detection",
    version="1.0.0",
    title="Detect anomalies",
    category="ml",
    inputs=(Port("series", "table", "Time series or observations",
                 "A time series table (time + numeric columns) or an in-situ observation table "
                 "(station, time, variable, value ...)."),),
    outputs=(Port("flagged", "table", "Flagged rows",
                  "Every row of the input with two more columns: anomaly (true/false) and score."),),
    parameters={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "column": {"type": "string", "title": "Column or variable",
                       "description": "Time series table: the column to check (empty: the first numeric "
                                      "column). Observation table: the variable to check (empty: all)."},
            "window": {"type": "integer", "minimum": 3, "maximum": 1000, "default": 15,
                       "title": "Window (time steps)",
                       "description": "Length of the moving window the local mean and spread are computed "
                                      "over, in rows (days for daily data)."},
            "contamination": {
                "anyOf": [{"type": "string", "enum": ["auto"]},
                          {"type": "number", "exclusiveMinimum": 0, "maximum": 0.5}],
                "default": 0.01, "title": "Expected share of anomalies",
                "description": "Share of the rows to flag, e.g. 0.01 for 1 %; 'auto' uses the threshold of "
                               "the original method instead, which tends to flag several per cent."},
            "random_state": {"type": "integer", "minimum": 0, "default": 0, "title": "Random seed",
                             "description": "The method draws random splits; the same seed gives the same "
                                            "result every time."},
        },
    },
)
def anomaly_detection(
    ctx: StepContext, inputs: dict[str, Any], params: dict[str, Any]
) -> dict[str, pd.DataFrame]:
    """Flag unusual values in a time series or in in-situ observations.

    **What goes in:** either a time series table (a `time` column and numeric columns, e.g. the
    output of *Area mean time series*) with the column to check, or an observation table in long
    format (`station, time, variable, value, ...`), where each station, variable and depth is
    checked as its own series.

    **What comes out:** the same table, every row kept, with two more columns: `anomaly` (true
    when the row is unusual) and `score` (higher means more unusual; rows without a value get no
    score and are never flagged).

    **Method:** each value is described by three numbers: the value itself, its change from the
    previous time step, and how far it lies from the mean of its neighbours (a moving window of
    `window` steps) in units of their standard deviation. An Isolation Forest (Liu, Ting & Zhou
    2008, *Isolation Forest*, IEEE ICDM; scikit-learn implementation) then finds the rows that
    are easiest to separate from all others, which are the unusual ones. Spikes, sudden jumps and
    values far outside the usual range stand out. By default the 1 % most unusual rows are flagged
    (`contamination` 0.01, computed separately for each variable of an observation table); `auto`
    uses the threshold proposed by the method's authors instead, which usually flags more rows.
    Results are reproducible: the random seed is fixed.
    """
    table = inputs["series"]
    contamination = _checked_contamination(params["contamination"])
    window, seed = params["window"], params["random_state"]
    if table.empty:
        raise ValueError("series: the table has no rows")
    original_index = table.index
    table = table.reset_index(drop=True)
    observations = all(name in table.columns for name in OBSERVATION_COLUMNS)
    times = table_times(table, iso_only=True)
    result = table.copy()
    result["anomaly"] = False
    result["score"] = np.nan
    if observations:
        values = pd.to_numeric(table["value"], errors="coerce")
        variable = params.get("column")
        selected = np.ones(len(table), dtype=bool)
        if variable:
            known = sorted(str(name) for name in table["variable"].dropna().unique())
            if variable not in known:
                raise ValueError(f"column: variable {variable!r} is not in the observations; available: "
                                 f"{', '.join(known) or 'none'}")
            selected = (table["variable"] == variable).to_numpy()
        keys = [name for name in OBSERVATION_GROUP_COLUMNS if name in table.columns]
        groups = table[selected].groupby(keys, dropna=False, sort=False).groups
        models = table[selected].groupby("variable", sort=False).groups
        label = f"value ({variable})" if variable else "value"
    else:
        column = numeric_column(table, params.get("column"), booleans=False)
        values = pd.to_numeric(table[column], errors="coerce")
        groups = {column: table.index}
        models = {column: table.index}
        label = column
    if not models:
        raise ValueError("series: no row of the observation table names its variable")
    checked = np.concatenate([np.asarray(rows) for rows in models.values()])
    if values.loc[checked].isna().all():
        raise ValueError(f"column: {label!r} has no valid values (all missing)")
    features = pd.DataFrame(np.nan, index=table.index, columns=["value", "diff", "zscore"])
    for rows in groups.values():
        order = pd.Index(rows)[np.argsort(times[table.index.get_indexer(rows)], kind="stable")]
        series = values.loc[order]
        valid = series.dropna()
        features.loc[valid.index] = _series_features(valid.reset_index(drop=True), window)
    for done, (name, rows) in enumerate(models.items(), start=1):
        ctx.raise_if_cancelled()
        valid = pd.Index(rows)[values.loc[rows].notna().to_numpy()]
        if len(valid) < 2:
            continue
        _load_numerical_libraries()
        with threadpool_limits(limits=1):
            flags, scores = _isolation_scores(features.loc[valid].to_numpy(), contamination, seed)
        result.loc[valid, "anomaly"] = flags
        result.loc[valid, "score"] = scores
        ctx.progress(done / len(models), f"checked {name}")
    flagged = int(result["anomaly"].sum())
    ctx.log(f"{flagged} of {len(result)} rows flagged as anomalies")
    ctx.progress(1.0, f"{flagged} anomalies")
    result.index = original_index
    return {"flagged": result}
