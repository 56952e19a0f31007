"""Blocks that turn tables into figures: time series, forecasts, heatwave calendars, Taylor diagrams.

Every plotly figure shares one look (:func:`_style`), keeps its JSON small (long series are thinned by
keeping each bucket's lowest and highest value, :func:`_minmax_indices`, and the subtitle says so) and
shows values with units on hover. ``plot.explorer`` writes a standalone bokeh page instead.
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from blocks.context import StepContext
from blocks.library.cf import column_attrs, pretty_units
from blocks.library.geo import TIME_COLUMN, column_list, iso_column, numeric_column, numeric_columns
from blocks.spec import Port, block

MAX_LINE_POINTS = 10_000
"""Plotly line traces longer than this are thinned (min/max per bucket) to keep figures light."""

FONT_FAMILY = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
INK = "#1f2933"
MUTED = "#6b7785"

HEATWAVE_CATEGORIES = ("I Moderate", "II Strong", "III Severe", "IV Extreme")
HEATWAVE_COLOURS = ("#ffc866", "#ff6900", "#9e0000", "#2d0000")
"""Hobday et al. (2018) category colours, moderate to extreme."""
NO_HEATWAVE_COLOUR = "#dfe7ee"

STATION_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b",
                   "#e377c2", "#7f7f7f", "#bcbd22")


# ---- shared helpers ------------------------------------------------------------------------------

def _require_columns(table: pd.DataFrame, required: tuple[str, ...], what: str) -> None:
    missing = [name for name in required if name not in table.columns]
    if missing:
        raise ValueError(
            f"the {what} table lacks the column{'s' if len(missing) > 1 else ''} {', '.join(missing)}; "
            f"it has: {column_list(table)}"
        )
    if table.empty:
        raise ValueError(f"the {what} table is empty")


def _times(table: pd.DataFrame) -> pd.Series:
    """The `time` column as naive UTC timestamps, or ValueError naming the first value that is no time."""
    if TIME_COLUMN not in table.columns:
        raise ValueError(f"the table has no {TIME_COLUMN!r} column; columns: {column_list(table)}")
    raw = table[TIME_COLUMN]
    times = pd.to_datetime(raw, errors="coerce", utc=True, format="ISO8601")
    bad = times.isna() & raw.notna()
    if bad.any():
        value = raw[bad].iloc[0]
        raise ValueError(f"time: {value!r} is not a date or time (expected ISO 8601, e.g. 2021-07-18)")
    return times.dt.tz_localize(None)


def _minmax_indices(values: np.ndarray, max_points: int) -> np.ndarray:
    """Positions of at most ``max_points`` finite values that keep every bucket's lowest and highest.

    The finite values are split into ``max_points // 2`` consecutive buckets of (almost) equal count;
    each bucket keeps the position of its minimum and of its maximum, in time order. Peaks and troughs
    therefore survive the thinning, and the global minimum and maximum are always kept.
    """
    valid = np.flatnonzero(np.isfinite(values))
    count = valid.size
    if count <= max_points:
        return valid
    buckets = max(max_points // 2, 1)
    bucket = (np.arange(count, dtype=np.int64) * buckets) // count
    order = np.lexsort((values[valid], bucket))  # by bucket, then by value (stable)
    ends = np.cumsum(np.bincount(bucket, minlength=buckets))
    starts = ends - np.bincount(bucket, minlength=buckets)
    keep = np.unique(np.concatenate([order[starts], order[ends - 1]]))
    return valid[keep]


def _thinned(times: pd.Series, values: pd.Series, max_points: int = MAX_LINE_POINTS
             ) -> tuple[pd.Series, pd.Series, bool]:
    """The series itself when short, else its min/max-per-bucket thinning (and True)."""
    array = values.to_numpy(dtype=np.float64, na_value=np.nan)
    if np.isfinite(array).sum() <= max_points:
        return times, values, False
    keep = _minmax_indices(array, max_points)
    return times.iloc[keep], values.iloc[keep], True


def _thinning_note(kept: int, total: int) -> str:
    return (f"Showing {kept:,} of {total:,} points: each time bucket keeps its lowest and highest value, "
            "so peaks survive.")


def _floats(values: pd.Series | np.ndarray) -> list[float | None]:
    """Plain floats with None for gaps, so the saved JSON is readable and exact."""
    array = np.asarray(values, dtype=np.float64)
    return [None if not np.isfinite(value) else float(value) for value in array]


def _style(figure: go.Figure, title: str, subtitle: str = "", **layout: Any) -> go.Figure:
    """The portal's common look: white background, left-aligned title with a grey subtitle."""
    heading: dict[str, Any] = {"text": title, "x": 0.01, "xanchor": "left", "font": {"size": 18}}
    if subtitle:
        heading["subtitle"] = {"text": subtitle, "font": {"size": 12, "color": MUTED}}
    figure.update_layout(
        template="plotly_white",
        title=heading,
        font={"family": FONT_FAMILY, "size": 13, "color": INK},
        margin={"l": 70, "r": 30, "t": 90 if subtitle else 70, "b": 60},
        hoverlabel={"namelength": -1, "font": {"family": FONT_FAMILY}},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1.0},
        autosize=True,
        **layout,
    )
    return figure


def _with_unit(label: str, units: str) -> str:
    return f"{label} ({units})" if units else label


# ---- plot.timeseries -----------------------------------------------------------------------------

@block(
    id="plot.timeseries",
    version="1.0.0",
    title="Time series plot",
    category="visualise",
    inputs=(Port("table", "table", "Table", "A table with a 'time' column and numeric columns."),),
    outputs=(Port("figure", "figure", "Figure", "An interactive line chart."),),
    parameters={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "column": {"type": "string", "minLength": 1, "title": "Column",
                       "description": "Column to plot. Empty: the first numeric column."},
            "title": {"type": "string", "title": "Title",
                      "description": "Title above the chart. Empty: the column name."},
            "y_label": {"type": "string", "title": "Vertical axis label",
                        "description": "Vertical axis label, e.g. 'SST (°C)'. Empty: the column name."},
        },
    },
)
def timeseries(ctx: StepContext, inputs: dict[str, Any], params: dict[str, Any]) -> dict[str, go.Figure]:
    """Draw one column of a table as a line over time.

    **What goes in:** a table with a `time` column (dates or date-times) and at least one column of
    numbers, such as the output of *Area mean time series*.

    **What comes out:** an interactive line chart (zoom, pan, hover to read values) with time along
    the bottom and the chosen column up the side. Choose the column, the title and the axis label
    (e.g. `SST (°C)`), or leave them empty to plot the first numeric column labelled with its name and
    the units the table records for it (e.g. `sst (°C)`).

    **Long series:** above 10,000 points the line is thinned so the figure stays quick to open: the
    series is cut into equal time buckets and each keeps its lowest and highest value, so peaks and
    troughs stay visible. The subtitle says when this happened. Use *Time series explorer* to zoom
    into long series.
    """
    table = inputs["table"]
    if TIME_COLUMN not in table.columns:
        raise ValueError(f"the table has no {TIME_COLUMN!r} column; columns: {column_list(table)}")
    # A named column may hold true/false values; the default is the first column of real numbers.
    column = numeric_column(table, params.get("column"), booleans=bool(params.get("column")))
    recorded = pretty_units(column_attrs(table, column).get("units", ""))
    y_label = params.get("y_label") or _with_unit(column, recorded)
    values = table[column].astype(float)
    times, shown, thinned = _thinned(table[TIME_COLUMN], values)
    # Plain lists keep the saved JSON readable without plotly's binary array encoding.
    figure = go.Figure(go.Scatter(
        x=times.astype(str).tolist(),
        y=shown.tolist(),
        mode="lines",
        name=column,
        line={"width": 1.8, "color": STATION_COLOURS[0]},
        hovertemplate=f"{html.escape(y_label)}: %{{y:.4~g}}<extra></extra>",
    ))
    note = _thinning_note(len(shown), int(values.notna().sum())) if thinned else ""
    _style(figure, params.get("title") or column, note, hovermode="x unified", showlegend=False)
    figure.update_layout(xaxis_title="Time", yaxis_title=y_label)
    ctx.progress(1.0, f"plotted {len(table)} points of {column}")
    return {"figure": figure}


# ---- plot.forecast -------------------------------------------------------------------------------

@block(
    id="plot.forecast",
    version="1.0.0",
    title="Forecast plot",
    category="visualise",
    inputs=(Port("forecast", "table", "Forecast",
                 "Columns time, observed, forecast, lower and upper, e.g. from the forecast block."),),
    outputs=(Port("figure", "figure", "Figure",
                  "Observations, forecast and its prediction band over time."),),
    parameters={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "title": {"type": "string", "title": "Title", "default": "Forecast",
                      "description": "Title above the chart."},
            "y_label": {"type": "string", "title": "Vertical axis label", "default": "",
                        "description": "Vertical axis label with units, e.g. 'SST (°C)'. "
                                       "Empty: 'Value'."},
            "band_label": {"type": "string", "title": "Band label", "default": "Prediction interval",
                           "description": "Legend name of the shaded band, e.g. '95 % prediction "
                                          "interval'."},
        },
    },
)
def forecast(ctx: StepContext, inputs: dict[str, Any], params: dict[str, Any]) -> dict[str, go.Figure]:
    """Show a forecast next to the observations, with its uncertainty as a shaded band.

    **What goes in:** a table with a `time` column and the columns `forecast` (the predicted value),
    `observed` (the measured value, empty where none yet) and `lower` / `upper` (the edges of the
    prediction interval), as made by *Forecast*. `observed`, `lower` and `upper` may be left out.

    **What comes out:** an interactive chart: observations as a dark line, the forecast as a dashed
    blue line, the prediction interval as a light blue band, and a dotted vertical line where the
    observations end and the forecast begins. Hover to read all values at a date.
    """
    table = inputs["forecast"]
    _require_columns(table, (TIME_COLUMN, "forecast"), "forecast")
    has_band = [name in table.columns for name in ("lower", "upper")]
    if any(has_band) and not all(has_band):
        missing = "upper" if has_band[0] else "lower"
        raise ValueError(f"the forecast table has a band edge but lacks the column {missing}; "
                         f"it has: {column_list(table)}")
    for name in ("forecast", "observed", "lower", "upper"):
        if name in table.columns:
            numeric_column(table, name, "forecast table column")
    table = table.assign(**{TIME_COLUMN: _times(table)}).sort_values(TIME_COLUMN)
    if table["forecast"].isna().all():
        raise ValueError("the forecast column has no values (all empty)")
    y_label = params.get("y_label") or "Value"
    value = "%{y:.4~g}"
    figure = go.Figure()
    notes = []
    if all(has_band):
        band = table.dropna(subset=["lower", "upper"])
        x = iso_column(band[TIME_COLUMN]).tolist()
        figure.add_trace(go.Scatter(x=x, y=_floats(band["lower"]), mode="lines", line={"width": 0},
                                    showlegend=False, name="lower", hovertemplate=value,
                                    legendgroup="band"))
        figure.add_trace(go.Scatter(x=x, y=_floats(band["upper"]), mode="lines", line={"width": 0},
                                    fill="tonexty", fillcolor="rgba(31, 119, 180, 0.18)",
                                    name=params.get("band_label") or "Prediction interval",
                                    hovertemplate=value, legendgroup="band"))
    last_observed = None
    if "observed" in table.columns and table["observed"].notna().any():
        present = np.flatnonzero(table["observed"].notna().to_numpy())
        span = table.iloc[present[0]:present[-1] + 1]  # gaps inside stay gaps, none after the end
        times, observed, thinned = _thinned(span[TIME_COLUMN], span["observed"].astype(float))
        if thinned:
            total = int(table["observed"].notna().sum())
            notes.append("Observations: " + _thinning_note(len(observed), total))
        figure.add_trace(go.Scatter(x=iso_column(times).tolist(), y=_floats(observed), mode="lines",
                                    name="Observed", line={"color": INK, "width": 1.6},
                                    hovertemplate=value))
        last_observed = table.loc[table["observed"].notna(), TIME_COLUMN].max()
    predicted = table.dropna(subset=["forecast"])
    times, values, thinned = _thinned(predicted[TIME_COLUMN], predicted["forecast"].astype(float))
    if thinned:
        notes.append("Forecast: " + _thinning_note(len(values), len(predicted)))
    figure.add_trace(go.Scatter(x=iso_column(times).tolist(), y=_floats(values), mode="lines",
                                name="Forecast", line={"color": "#1f77b4", "width": 2, "dash": "dash"},
                                hovertemplate=value))
    if last_observed is not None and predicted[TIME_COLUMN].max() > last_observed:
        figure.add_vline(x=last_observed.isoformat(), line={"color": MUTED, "width": 1, "dash": "dot"})
        figure.add_annotation(x=last_observed.isoformat(), y=0, yref="paper", text=" forecast →",
                              showarrow=False, xanchor="left", yanchor="bottom",
                              font={"size": 11, "color": MUTED})
    _style(figure, params.get("title") or "Forecast", " ".join(notes), hovermode="x unified")
    figure.update_layout(xaxis_title="Time", yaxis_title=y_label)
    ctx.progress(1.0, f"plotted {len(predicted)} forecast values")
    return {"figure": figure}


# ---- plot.heatwave_calendar ----------------------------------------------------------------------

def _category_levels(categories: pd.Series) -> np.ndarray:
    """0 for no heatwave, 1-4 for moderate-extreme; ValueError naming an unknown category."""
    words = ("moderate", "strong", "severe", "extreme")
    levels = {}
    for value in categories.dropna().unique():
        text = str(value).strip().lower()
        if text in ("", "none", "0", "0.0", "nan", "false"):
            levels[value] = 0
            continue
        found = [level for level, word in enumerate(words, start=1) if word in text]
        if not found:
            raise ValueError(f"category: unknown value {value!r}; expected one of "
                             f"{', '.join(HEATWAVE_CATEGORIES)} or empty")
        levels[value] = found[0]
    return categories.map(levels).fillna(0).to_numpy(dtype=np.int64)


def _count_events(table: pd.DataFrame, levels: np.ndarray, times: pd.Series) -> int:
    """Events numbered in the `event` column when it numbers them, else runs of consecutive heatwave days."""
    if "event" in table.columns and not pd.api.types.is_bool_dtype(table["event"]):
        ids = table["event"].dropna().astype(str).str.strip()
        ids = ids[~ids.str.lower().isin(("", "0", "0.0", "false", "none", "nan"))]
        if not ids.empty or not (levels > 0).any():
            return int(ids.nunique())
    flags = table["event"].to_numpy(dtype=bool) if "event" in table.columns \
        and pd.api.types.is_bool_dtype(table["event"]) else levels > 0
    days = times.to_numpy(dtype="datetime64[D]")
    joined = np.r_[False, flags[:-1] & (np.diff(days).astype(np.int64) == 1)]
    return int((flags & ~joined).sum())


def _calendar_column(times: pd.Series) -> np.ndarray:
    """Day-of-year column 0..365 in a leap-year layout, so 1 March is always column 60."""
    day = times.dt.day_of_year.to_numpy() - 1
    late_in_common_year = (~times.dt.is_leap_year.to_numpy()) & (times.dt.month.to_numpy() > 2)
    return day + late_in_common_year


def _discrete_scale() -> list[list[Any]]:
    colours = (NO_HEATWAVE_COLOUR, *HEATWAVE_COLOURS)
    scale = []
    for level, colour in enumerate(colours):
        scale += [[level / len(colours), colour], [(level + 1) / len(colours), colour]]
    return scale


def _temperature_units(ctx: StepContext, table: pd.DataFrame, given: str) -> str:
    """The units of the daily table's temperatures: those recorded with the table (e.g. °F from a series
    in °F) win over the ``units`` parameter, which only fills in for tables without metadata."""
    recorded = pretty_units(column_attrs(table, "temperature").get("units", ""))
    default = heatwave_calendar.spec.parameters["properties"]["units"]["default"]
    if recorded and given not in ("", default, recorded):
        ctx.log(f"units: the table records its temperatures in {recorded}, not {given}; showing {recorded}",
                level="warning")
    return recorded or given


@block(
    id="plot.heatwave_calendar",
    version="1.0.0",
    title="Marine heatwave calendar",
    category="visualise",
    inputs=(Port("daily", "table", "Daily heatwave table",
                 "One row per day: time, temperature, climatology, threshold, event, category "
                 "(from Marine heatwaves)."),),
    outputs=(Port("figure", "figure", "Figure",
                  "A calendar of heatwave days by category and the temperature of one year."),),
    parameters={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "year": {"type": "integer", "minimum": 1000, "maximum": 9999, "title": "Year in detail",
                     "description": "Year drawn in the lower panel. Empty: the most recent year."},
            "units": {"type": "string", "title": "Temperature units", "default": "°C",
                      "description": "Units of the temperatures, shown on the axis and on hover."},
            "title": {"type": "string", "title": "Title", "default": "Marine heatwaves",
                      "description": "Title above the figure."},
        },
    },
)
def heatwave_calendar(ctx: StepContext, inputs: dict[str, Any], params: dict[str, Any]
                      ) -> dict[str, go.Figure]:
    """Show when marine heatwaves happened, and how strong they were, as a calendar.

    **What goes in:** the daily table made by *Marine heatwaves*: `time`, `temperature`,
    `climatology` (the usual temperature for that day of the year), `threshold` (the 90th
    percentile, above which a day is unusually warm), `event` and `category`.

    **What comes out:** a figure with two panels.

    - *Calendar* (top): one row per year, one small square per day from January to December,
      coloured by the heatwave category of that day, using the colours of Hobday et al. (2018):
      moderate (yellow), strong (orange), severe (red), extreme (dark brown); grey-blue means no
      heatwave, blank means no data.
    - *One year in detail* (bottom): the temperature (dark line), the climatology (grey) and the
      threshold (green dashed) through the chosen year, with heatwave days filled between the
      threshold and the temperature in the colour of their category.

    The subtitle counts events and heatwave days. **Reference:** Hobday, A. J. et al. (2018),
    *Categorizing and naming marine heatwaves*, Oceanography 31(2), 162-173.
    """
    table = inputs["daily"]
    _require_columns(table, ("time", "temperature", "climatology", "threshold", "category"), "daily")
    for name in ("temperature", "climatology", "threshold"):
        numeric_column(table, name, "daily table column")
    table = table.assign(time=_times(table)).sort_values(TIME_COLUMN).reset_index(drop=True)
    times = table[TIME_COLUMN].dt.normalize()
    levels = _category_levels(table["category"])
    units = _temperature_units(ctx, table, params.get("units", ""))
    ctx.progress(0.3, "building the calendar")

    years = np.arange(times.dt.year.min(), times.dt.year.max() + 1)
    rows = times.dt.year.to_numpy() - years[0]
    columns = _calendar_column(times)
    grid = np.full((years.size, 366), np.nan)
    grid[rows, columns] = levels
    hover = np.full((years.size, 366), "", dtype=object)
    temperature = table["temperature"].to_numpy(dtype=np.float64)
    threshold = table["threshold"].to_numpy(dtype=np.float64)
    for row, column, level, temp, limit in zip(rows, columns, levels, temperature, threshold, strict=True):
        name = HEATWAVE_CATEGORIES[level - 1] if level else "no heatwave"
        hover[row, column] = f"{name}<br>{temp:.2f} {units} (threshold {limit:.2f})"
    reference_days = pd.date_range("2000-01-01", "2000-12-31", freq="D").strftime("%Y-%m-%d").tolist()

    year = params.get("year") or int(years[-1])
    if year not in years:
        raise ValueError(f"year: {year} is not in the table; it covers "
                         f"{times.min():%Y-%m-%d} to {times.max():%Y-%m-%d}")
    calendar_height = int(min(max(28 * years.size, 120), 900))
    detail_height = 330
    figure = make_subplots(
        rows=2, cols=1, vertical_spacing=0.22 * 330 / (calendar_height + detail_height),
        row_heights=[calendar_height, detail_height],
        subplot_titles=(f"Heatwave days by category, {years[0]}–{years[-1]}",
                        f"{year} in detail: temperature, climatology and threshold"),
    )
    figure.add_trace(go.Heatmap(
        x=reference_days, y=years.tolist(), z=grid, text=hover.tolist(), xgap=1, ygap=3,
        colorscale=_discrete_scale(), zmin=-0.5, zmax=4.5, hoverongaps=False,
        hovertemplate="%{x|%d %b} %{y}<br>%{text}<extra></extra>",
        colorbar={"tickvals": [0, 1, 2, 3, 4], "ticktext": ["None", *HEATWAVE_CATEGORIES],
                  "len": calendar_height / (calendar_height + detail_height), "y": 1.0, "yanchor": "top",
                  "thickness": 14, "outlinewidth": 0, "title": {"text": "Category"}},
        name="calendar",
    ), row=1, col=1)

    chosen = table[table[TIME_COLUMN].dt.year == year]
    chosen_levels = levels[(table[TIME_COLUMN].dt.year == year).to_numpy()]
    x = iso_column(chosen[TIME_COLUMN]).tolist()
    value = f"%{{y:.2f}} {html.escape(units)}<extra>%{{fullData.name}}</extra>"
    for level, (name, colour) in enumerate(zip(HEATWAVE_CATEGORIES, HEATWAVE_COLOURS, strict=True), start=1):
        days = chosen_levels == level
        if not days.any():
            continue
        part = chosen[days]
        excess = np.maximum(part["temperature"] - part["threshold"], 0.0)
        figure.add_trace(go.Bar(
            x=iso_column(part[TIME_COLUMN]).tolist(), y=_floats(excess), base=_floats(part["threshold"]),
            width=86_400_000, marker={"color": colour, "line": {"width": 0}}, name=name, legendgroup=name,
            hovertemplate=f"{name}: %{{customdata:.2f}} {html.escape(units)} above threshold<extra></extra>",
            customdata=_floats(excess),
        ), row=2, col=1)
    for column, name, line in (
        ("climatology", "Climatology", {"color": "#8a96a3", "width": 1.5}),
        ("threshold", "Threshold (90th percentile)", {"color": "#2ca02c", "width": 1.3, "dash": "dash"}),
        ("temperature", "Temperature", {"color": INK, "width": 1.6}),
    ):
        figure.add_trace(go.Scatter(x=x, y=_floats(chosen[column]), mode="lines", name=name, line=line,
                                    hovertemplate=value), row=2, col=1)

    events = _count_events(table, levels, times)
    heatwave_days = int((levels > 0).sum())
    worst = HEATWAVE_CATEGORIES[levels.max() - 1] if levels.max() else "none"
    subtitle = (f"{events} event{'s' if events != 1 else ''}, {heatwave_days} heatwave day"
                f"{'s' if heatwave_days != 1 else ''} from {times.min():%Y-%m-%d} to {times.max():%Y-%m-%d}; "
                f"strongest category: {worst}. Colours: Hobday et al. (2018).")
    _style(figure, params.get("title") or "Marine heatwaves", subtitle,
           height=calendar_height + detail_height + 190, bargap=0, barmode="overlay")
    figure.update_layout(margin={"t": 120})
    figure.update_layout(legend={"y": -0.08, "yanchor": "top", "x": 0, "xanchor": "left"})
    figure.update_xaxes(row=1, col=1, tickformat="%b", dtick="M1", ticklabelmode="period", showgrid=False,
                        range=["1999-12-31T12:00", "2000-12-31T12:00"])
    figure.update_yaxes(row=1, col=1, autorange="reversed", showgrid=False,
                        dtick=1 if years.size <= 30 else 5, title_text="Year")
    figure.update_xaxes(row=2, col=1, range=[f"{year}-01-01", f"{year}-12-31"], tickformat="%b",
                        dtick="M1", ticklabelmode="period")
    figure.update_yaxes(row=2, col=1, title_text=_with_unit("Temperature", units))
    ctx.progress(1.0, f"{events} events over {years.size} years")
    return {"figure": figure}


# ---- plot.taylor ---------------------------------------------------------------------------------

CORRELATION_TICKS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
TAYLOR_LABEL_LIMIT = 20
"""Above this many stations, names are shown on hover only, to keep the diagram readable."""


def _angle(correlation: np.ndarray | float) -> np.ndarray:
    return np.degrees(np.arccos(np.clip(correlation, -1.0, 1.0)))


def _rms_isolines(r_max: float, sector: float) -> tuple[list[float | None], list[float | None],
                                                          list[float], list[float], list[str]]:
    """Arcs of equal centred RMS difference around the reference point (1, 0), clipped to the diagram."""
    step = 0.25 if r_max <= 2 else 0.5
    radii, thetas, label_r, label_theta, labels = [], [], [], [], []
    phi = np.linspace(0, np.pi, 181)
    for level in np.arange(step, r_max + 1, step):
        x, y = 1 + level * np.cos(phi), level * np.sin(phi)
        r, theta = np.hypot(x, y), np.degrees(np.arctan2(y, x))
        inside = (r <= r_max) & (theta <= sector)
        if inside.sum() < 2:
            continue
        radii += [float(v) if ok else None for v, ok in zip(r, inside, strict=True)] + [None]
        thetas += [float(v) if ok else None for v, ok in zip(theta, inside, strict=True)] + [None]
        shown = np.flatnonzero(inside)
        middle = shown[len(shown) // 2]
        label_r.append(float(r[middle]))
        label_theta.append(float(theta[middle]))
        labels.append(f"{level:g}")
    return radii, thetas, label_r, label_theta, labels


@block(
    id="plot.taylor",
    version="1.0.0",
    title="Taylor diagram",
    category="visualise",
    inputs=(Port("skill", "table", "Skill scores",
                 "One row per station with correlation and standard deviations (from Model skill)."),),
    outputs=(Port("figure", "figure", "Figure", "A Taylor diagram with one point per station."),),
    parameters={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "title": {"type": "string", "title": "Title", "default": "Model skill (Taylor diagram)",
                      "description": "Title above the diagram."},
            "reference_label": {"type": "string", "title": "Reference name", "default": "Observations",
                                "description": "Name of the reference point (what the model is compared "
                                               "with)."},
        },
    },
)
def taylor(ctx: StepContext, inputs: dict[str, Any], params: dict[str, Any]) -> dict[str, go.Figure]:
    """Summarise how well a model matches observations at each station in one Taylor diagram.

    **What goes in:** the skill table made by *Model skill*: one row per `station` with the
    `correlation` between model and observations and the `normalised_std` (the model's standard
    deviation divided by the observations'; computed from `std_modelled` / `std_observed` when
    absent). Other scores (bias, rmse, crmsd, n, willmott) are shown on hover when present.

    **How to read it:** each station is a point. Its angle from the horizontal axis gives the
    correlation (labelled around the arc: horizontal = perfect correlation 1, vertical = 0), its
    distance from the corner gives the normalised standard deviation (1 = the model varies as much
    as the observations; the dashed arc). The star on the horizontal axis at 1 is the observations
    themselves: the closer a station is to the star, the better. The grey arcs around the star are
    lines of equal centred root-mean-square difference (also normalised). Negative correlations
    extend the diagram to a half circle.

    **Reference:** Taylor, K. E. (2001), *Summarizing multiple aspects of model performance in a
    single diagram*, J. Geophys. Res. 106(D7), 7183-7192.
    """
    table = inputs["skill"]
    _require_columns(table, ("station", "correlation"), "skill")
    if "normalised_std" not in table.columns:
        missing = [name for name in ("std_observed", "std_modelled") if name not in table.columns]
        if missing:
            raise ValueError(
                "the skill table lacks the column normalised_std (or both std_observed and std_modelled "
                f"to compute it); it has: {column_list(table)}")
        table = table.assign(normalised_std=table["std_modelled"] / table["std_observed"])
    for name in ("correlation", "normalised_std"):
        numeric_column(table, name, "skill table column")
    usable = table.dropna(subset=["correlation", "normalised_std"])
    if usable.empty:
        raise ValueError("the skill table has no station with both a correlation and a normalised_std")
    outside = usable[(usable["correlation"].abs() > 1 + 1e-9) | (usable["normalised_std"] < 0)]
    if not outside.empty:
        row = outside.iloc[0]
        raise ValueError(f"station {row['station']!r}: correlation {row['correlation']:g} must lie within "
                         f"-1..1 and normalised_std {row['normalised_std']:g} must not be negative")
    dropped = len(table) - len(usable)
    correlation = usable["correlation"].to_numpy(dtype=np.float64)
    ratio = usable["normalised_std"].to_numpy(dtype=np.float64)
    sector = 180.0 if (correlation < 0).any() else 90.0
    r_max = float(np.ceil(max(1.5, ratio.max() * 1.1) * 4) / 4)
    figure = go.Figure()

    radii, thetas, label_r, label_theta, labels = _rms_isolines(r_max, sector)
    figure.add_trace(go.Scatterpolar(r=radii, theta=thetas, mode="lines", name="Centred RMS difference",
                                     line={"color": "#b8c2cc", "width": 1, "dash": "dot"}, hoverinfo="skip"))
    figure.add_trace(go.Scatterpolar(r=label_r, theta=label_theta, mode="text", text=labels,
                                     textfont={"size": 10, "color": "#8a96a3"}, showlegend=False,
                                     hoverinfo="skip"))
    arc = np.linspace(0, sector, 91)
    figure.add_trace(go.Scatterpolar(r=[1.0] * arc.size, theta=arc.tolist(), mode="lines",
                                     name="Standard deviation of the observations",
                                     line={"color": MUTED, "width": 1.2, "dash": "dash"}, hoverinfo="skip"))
    reference = params.get("reference_label") or "Observations"
    figure.add_trace(go.Scatterpolar(r=[1.0], theta=[0.0], mode="markers", name=reference, cliponaxis=False,
                                     marker={"symbol": "star", "size": 16, "color": INK},
                                     hovertemplate=f"{html.escape(reference)}<br>R = 1, σ ratio = 1"
                                                   "<extra></extra>"))

    extras = [name for name in ("n", "bias", "rmse", "crmsd", "willmott") if name in usable.columns
              and pd.api.types.is_numeric_dtype(usable[name])]
    hover = ("<b>%{text}</b><br>correlation R = %{customdata[0]:.3f}<br>σ model / σ obs = %{r:.3f}"
             + "".join(f"<br>{name} = %{{customdata[{i + 1}]:.4~g}}" for i, name in enumerate(extras))
             + "<extra></extra>")
    stations = usable["station"].astype(str).tolist()
    labelled = len(stations) <= TAYLOR_LABEL_LIMIT
    custom = usable[["correlation", *extras]].astype(float).to_numpy()
    if labelled:
        for i, station in enumerate(stations):
            figure.add_trace(go.Scatterpolar(
                r=[float(ratio[i])], theta=[float(_angle(correlation[i]))], mode="markers+text",
                text=[station], textposition="top right", name=station, cliponaxis=False,
                customdata=[_floats(custom[i])], hovertemplate=hover,
                marker={"size": 11, "color": STATION_COLOURS[i % len(STATION_COLOURS)],
                        "line": {"width": 1, "color": "white"}},
            ))
    else:
        figure.add_trace(go.Scatterpolar(
            r=ratio.tolist(), theta=_angle(correlation).tolist(), mode="markers", text=stations,
            name="Stations", customdata=[_floats(row) for row in custom], hovertemplate=hover,
            cliponaxis=False, marker={"size": 9, "color": STATION_COLOURS[0], "opacity": 0.8,
                                      "line": {"width": 1, "color": "white"}},
        ))

    ticks = [c for c in CORRELATION_TICKS] + ([-c for c in CORRELATION_TICKS if c > 0] if sector > 90 else [])
    subtitle = ("Angle: correlation · distance from the corner: standard deviation relative to the "
                "observations · dotted arcs: centred RMS difference")
    if dropped:
        subtitle += f" · {dropped} station{'s' if dropped > 1 else ''} without scores left out"
    _style(figure, params.get("title") or "Taylor diagram", subtitle, height=620, showlegend=True)
    figure.update_layout(
        legend={"orientation": "v", "y": 1.0, "yanchor": "top", "x": 1.02, "xanchor": "left"},
        margin={"l": 50, "r": 40, "t": 100, "b": 40},
        polar={
            "sector": [0, sector],
            "bgcolor": "white",
            "angularaxis": {"direction": "counterclockwise", "rotation": 0, "thetaunit": "degrees",
                            "tickmode": "array", "tickvals": _angle(np.array(ticks)).tolist(),
                            "ticktext": [f"{t:g}" for t in ticks], "showline": True,
                            "linecolor": INK, "gridcolor": "#e3e8ee", "ticks": "outside"},
            "radialaxis": {"range": [0, r_max], "angle": 0, "side": "clockwise", "showline": True,
                           "linecolor": INK, "gridcolor": "#e3e8ee", "ticks": "outside",
                           "title": {"text": "Standard deviation (normalised)"}},
        },
    )
    figure.add_trace(go.Scatterpolar(r=[r_max], theta=[90.0 if sector > 90 else 50.0], mode="text",
                                     text=["<b>Correlation</b>"], textposition="top center" if sector > 90
                                     else "top right",
                                     textfont={"size": 13, "color": MUTED}, cliponaxis=False,
                                     showlegend=False, hoverinfo="skip"))
    ctx.progress(1.0, f"drew {len(stations)} stations")
    return {"figure": figure}


# ---- plot.explorer -------------------------------------------------------------------------------

@block(
    id="plot.explorer",
    version="1.0.0",
    title="Time series explorer",
    category="visualise",
    inputs=(Port("series", "table", "Time series",
                 "A table with a 'time' column and one numeric column per variable."),),
    outputs=(Port("page", "html", "Explorer page",
                  "A standalone interactive page that also works offline."),),
    parameters={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "columns": {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1,
                        "uniqueItems": True, "title": "Columns",
                        "description": "Columns to draw as lines. Empty: every numeric column."},
            "max_points": {"type": "integer", "minimum": 100, "maximum": 200_000, "default": 5000,
                           "title": "Points per line",
                           "description": "Longer series are thinned to at most this many points per "
                                          "line, keeping the lowest and highest value of each stretch."},
            "title": {"type": "string", "title": "Title", "default": "Time series explorer",
                      "description": "Title of the page."},
            "y_label": {"type": "string", "title": "Vertical axis label", "default": "",
                        "description": "Vertical axis label with units, e.g. 'SST (°C)'. Empty: 'Value'."},
        },
    },
)
def explorer(ctx: StepContext, inputs: dict[str, Any], params: dict[str, Any]) -> dict[str, str]:
    """Explore long time series interactively in a standalone web page.

    **What goes in:** a table with a `time` column and numeric columns (one per variable), for
    example hourly tide-gauge data over decades.

    **What comes out:** a web page that works without internet access. The top chart can be
    panned, zoomed (mouse wheel, or drag a box) and hovered to read values; the small chart below
    shows the whole period with a box marking the part on display: drag or resize the box to move
    through time. Click a name in the legend to hide or show its line.

    **Long series:** to stay fast, each line carries at most *Points per line* points (5,000 by
    default). Longer series are cut into equal stretches of time and each stretch keeps its lowest
    and its highest value (min/max decimation), so peaks, troughs and the overall extremes are never
    lost; the page says how many points were kept. Download the table for every value.
    """
    from bokeh.embed import file_html
    from bokeh.layouts import column
    from bokeh.models import Div, HoverTool, Range1d, RangeTool
    from bokeh.plotting import figure as bokeh_figure
    from bokeh.resources import INLINE

    table = inputs["series"]
    times = _times(table)
    names = numeric_columns(table, params.get("columns"), booleans=False)
    order = np.argsort(times.to_numpy(), kind="stable")
    order = order[times.notna().to_numpy()[order]]
    if order.size == 0:
        raise ValueError("the series table has no rows with a time")
    milliseconds = times.to_numpy()[order].astype("datetime64[ms]").astype(np.float64)
    max_points = params["max_points"]
    title = params.get("title") or "Time series explorer"
    y_label = params.get("y_label") or "Value"

    extent = Range1d(milliseconds[0], max(milliseconds[-1], milliseconds[0] + 1))
    main = bokeh_figure(x_range=extent, height=430, sizing_mode="stretch_width", x_axis_type="datetime",
                        tools="xpan,xwheel_zoom,box_zoom,reset,save", active_scroll="xwheel_zoom",
                        x_axis_label="Time", y_axis_label=y_label, toolbar_location="above")
    overview = bokeh_figure(x_range=Range1d(extent.start, extent.end), height=120,
                            sizing_mode="stretch_width", x_axis_type="datetime",
                            tools="", toolbar_location=None, y_axis_label="")
    notes = []
    drawn = 0
    for i, name in enumerate(names):
        values = table[name].to_numpy(dtype=np.float64, na_value=np.nan)[order]
        keep = _minmax_indices(values, max_points)
        total = int(np.isfinite(values).sum())
        if total == 0:
            notes.append(f"<b>{html.escape(name)}</b>: no values")
            continue
        data = {"x": milliseconds[keep], "y": values[keep]}
        colour = STATION_COLOURS[i % len(STATION_COLOURS)]
        line = main.line("x", "y", source=data, line_width=1.5, color=colour, legend_label=name)
        main.add_tools(HoverTool(renderers=[line], mode="vline", formatters={"@x": "datetime"},
                                 tooltips=[("time", "@x{%F %H:%M}"), (name, "@y{0,0.[000]}")]))
        overview.line(x=line.data_source.data["x"], y=line.data_source.data["y"], line_width=1, color=colour)
        drawn += 1
        shown = f"{keep.size:,} of {total:,} points"
        if keep.size < total:
            shown += " (min/max per time bucket, extremes kept)"
        notes.append(f"<b>{html.escape(name)}</b>: {shown}")
        ctx.progress((i + 1) / len(names), f"thinned {name}")
    if not drawn:
        raise ValueError(f"columns: {', '.join(names)} have no values (all empty)")
    main.legend.click_policy = "hide"
    main.legend.location = "top_left"
    main.legend.background_fill_alpha = 0.7
    main.title.text = title
    main.title.text_font_size = "16px"
    overview.yaxis.visible = False
    overview.ygrid.grid_line_color = None
    selector = RangeTool(x_range=main.x_range)
    selector.overlay.fill_color = "#1f77b4"
    selector.overlay.fill_alpha = 0.15
    overview.add_tools(selector)
    header = Div(text=(f"<p style='color:{MUTED};margin:4px 8px'>" + " · ".join(notes)
                       + ". Drag the box in the lower chart to move through time; click legend names "
                         "to hide lines.</p>"), sizing_mode="stretch_width")
    page = file_html(column(header, main, overview, sizing_mode="stretch_width"), INLINE, title)
    return {"page": page}
