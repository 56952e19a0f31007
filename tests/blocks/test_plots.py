"""plot.* blocks on tables: the figures hold exactly the table's values, stay small, explain bad input."""

from __future__ import annotations

import base64
import gzip
import html
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from blocks.library.plots import (
    MAX_LINE_POINTS,
    _minmax_indices,
    explorer,
    forecast,
    heatwave_calendar,
    taylor,
    timeseries,
)
from blocks.registry import discover
from blocks.types import PORT_TYPES, known_types
from tests.blocks.sample_blocks import call

TABLE = pd.DataFrame({
    "time": ["2021-01-01", "2021-01-02", "2021-01-03"],
    "station": ["a", "b", "c"],
    "sst": [12.5, 12.75, float("nan")],
    "so": [35.1, 35.2, 35.3],
})


def plot(tmp_path: Path, table: pd.DataFrame = TABLE, **params: str) -> go.Figure:
    return call(timeseries, {"table": table}, params, tmp_path)["figure"]


def test_figure_holds_exactly_the_series(tmp_path: Path) -> None:
    figure = plot(tmp_path, column="so", title="Salinity", y_label="Salinity (1e-3)")
    (trace,) = figure.data
    assert trace.type == "scatter" and trace.mode == "lines" and trace.name == "so"
    assert list(trace.x) == ["2021-01-01", "2021-01-02", "2021-01-03"]
    assert list(trace.y) == [35.1, 35.2, 35.3]
    assert figure.layout.title.text == "Salinity"
    assert figure.layout.xaxis.title.text == "Time"
    assert figure.layout.yaxis.title.text == "Salinity (1e-3)"


def test_default_column_is_the_first_numeric_one_and_labels_default_to_it(tmp_path: Path) -> None:
    figure = plot(tmp_path)
    assert figure.data[0].name == "sst"
    assert figure.layout.title.text == "sst" and figure.layout.yaxis.title.text == "sst"


def test_saved_figure_is_plain_json_with_the_values(tmp_path: Path) -> None:
    path = tmp_path / "figure.plotly.json"
    PORT_TYPES["figure"].save(plot(tmp_path), path)
    saved = PORT_TYPES["figure"].open(path)
    assert saved["data"][0]["x"] == ["2021-01-01", "2021-01-02", "2021-01-03"]
    assert saved["data"][0]["y"] == [12.5, 12.75, None]


def test_table_read_back_from_csv_plots_the_same(tmp_path: Path) -> None:
    path = tmp_path / "table.csv"
    PORT_TYPES["table"].save(TABLE, path)
    figure = plot(tmp_path, PORT_TYPES["table"].open(path), column="so")
    assert list(figure.data[0].x) == TABLE["time"].tolist()
    assert list(figure.data[0].y) == TABLE["so"].tolist()


@pytest.mark.parametrize(("table", "params", "message"), [
    (TABLE, {"column": "temp"}, "column: 'temp' is not in the table; available: time, station, sst, so"),
    (TABLE, {"column": "station"}, "column: 'station' holds"),
    (TABLE.rename(columns={"time": "date"}), {},
     "the table has no 'time' column; columns: date, station, sst, so"),
    (TABLE[["time", "station"]], {}, "column: the table has no numeric column; columns: time, station"),
])
def test_errors_name_the_column(tmp_path: Path, table: pd.DataFrame, params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        plot(tmp_path, table, **params)


def test_long_series_are_thinned_keeping_the_extremes(tmp_path: Path) -> None:
    values = np.sin(np.arange(50_000) / 300.0)
    values[12_345], values[40_001] = 7.0, -9.0
    table = pd.DataFrame({"time": pd.date_range("2000-01-01", periods=values.size, freq="h")
                          .strftime("%Y-%m-%dT%H:%M:%S"), "level": values})
    figure = plot(tmp_path, table, y_label="Sea level (m)")
    y = np.asarray(figure.data[0].y, dtype=float)
    assert y.size <= MAX_LINE_POINTS and y.max() == 7.0 and y.min() == -9.0
    assert "Showing" in figure.layout.title.subtitle.text and "50,000" in figure.layout.title.subtitle.text
    assert len(figure.to_json()) < 600_000


def test_minmax_indices_keep_each_buckets_lowest_and_highest() -> None:
    values = np.array([5, 1, 9, 3, np.nan, 2, 8, 4, 7, 6], dtype=float)
    # 9 finite values in 2 buckets (max_points 4): the first 5 finite ones (5 1 9 3 _ 2), then 8 4 7 6
    kept = _minmax_indices(values, 4)
    assert kept.tolist() == [1, 2, 6, 7]
    assert _minmax_indices(values, 20).tolist() == [0, 1, 2, 3, 5, 6, 7, 8, 9]


# ---- plot.forecast -------------------------------------------------------------------------------

FORECAST = pd.DataFrame({
    "time": pd.date_range("2023-01-01", periods=6, freq="D").strftime("%Y-%m-%d"),
    "observed": [1.0, 2.0, 3.0, np.nan, np.nan, np.nan],
    "forecast": [np.nan, np.nan, np.nan, 3.5, 4.0, 4.5],
    "lower": [np.nan, np.nan, np.nan, 3.0, 3.2, 3.4],
    "upper": [np.nan, np.nan, np.nan, 4.0, 4.8, 5.6],
})


def draw_forecast(tmp_path: Path, table: pd.DataFrame = FORECAST, **params: Any) -> go.Figure:
    return call(forecast, {"forecast": table}, params, tmp_path)["figure"]


def test_forecast_figure_has_observations_forecast_and_band(tmp_path: Path) -> None:
    figure = draw_forecast(tmp_path, y_label="SST (°C)", band_label="95 % prediction interval")
    lower, upper, observed, predicted = figure.data
    assert [t.type for t in figure.data] == ["scatter"] * 4
    assert list(lower.x) == ["2023-01-04", "2023-01-05", "2023-01-06"] and list(lower.y) == [3.0, 3.2, 3.4]
    assert upper.fill == "tonexty" and list(upper.y) == [4.0, 4.8, 5.6]
    assert upper.name == "95 % prediction interval" and lower.showlegend is False
    assert observed.name == "Observed" and list(observed.y) == [1.0, 2.0, 3.0]
    assert predicted.name == "Forecast" and list(predicted.y) == [3.5, 4.0, 4.5]
    assert predicted.line.dash == "dash"
    assert figure.layout.yaxis.title.text == "SST (°C)" and figure.layout.xaxis.title.text == "Time"
    assert figure.layout.shapes[0].x0 == "2023-01-03T00:00:00"  # where observations end


def test_forecast_without_band_or_observations(tmp_path: Path) -> None:
    figure = draw_forecast(tmp_path, FORECAST[["time", "forecast"]])
    assert [t.name for t in figure.data] == ["Forecast"]
    assert figure.layout.yaxis.title.text == "Value" and not figure.layout.shapes


@pytest.mark.parametrize(("table", "message"), [
    (FORECAST.drop(columns="forecast"),
     "the forecast table lacks the column forecast; it has: time, observed, lower, upper"),
    (FORECAST.drop(columns="upper"), "the forecast table has a band edge but lacks the column upper"),
    (FORECAST.assign(forecast=np.nan), "the forecast column has no values (all empty)"),
    (FORECAST.assign(lower="low"), "forecast table column: 'lower' holds"),
    (FORECAST.assign(time="tomorrow"), "time: 'tomorrow' is not a date or time"),
])
def test_forecast_errors(tmp_path: Path, table: pd.DataFrame, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        draw_forecast(tmp_path, table)


# ---- plot.heatwave_calendar ----------------------------------------------------------------------

def daily_table() -> pd.DataFrame:
    """2019-2020 daily; a strong event 2020-02-27..03-02 (across 29 Feb), one moderate day in 2019."""
    days = pd.date_range("2019-01-01", "2020-12-31", freq="D")
    table = pd.DataFrame({"time": days.strftime("%Y-%m-%d"), "temperature": 15.0, "climatology": 14.0,
                          "threshold": 16.0, "event": np.nan, "category": ""})
    event = (days >= "2020-02-27") & (days <= "2020-03-02")
    table.loc[event, ["temperature", "event", "category"]] = [19.0, 2, "II Strong"]
    table.loc[days == "2020-02-29", "category"] = "III Severe"
    table.loc[days == "2019-07-01", ["temperature", "event", "category"]] = [17.0, 1, "I Moderate"]
    return table


def draw_calendar(tmp_path: Path, table: pd.DataFrame, **params: Any) -> go.Figure:
    return call(heatwave_calendar, {"daily": table}, params, tmp_path)["figure"]


def test_calendar_places_each_day_by_year_and_day_of_year(tmp_path: Path) -> None:
    path = tmp_path / "daily.csv"
    PORT_TYPES["table"].save(daily_table(), path)
    figure = draw_calendar(tmp_path, PORT_TYPES["table"].open(path))
    calendar = figure.data[0]
    assert calendar.type == "heatmap" and list(calendar.y) == [2019, 2020]
    z = np.asarray(calendar.z)
    assert z.shape == (2, 366) and calendar.x[0] == "2000-01-01" and calendar.x[-1] == "2000-12-31"
    # 1 March is column 60 in both years; 29 Feb (column 59) exists only in 2020.
    assert z[1, 56:63].tolist() == [0, 2, 2, 3, 2, 2, 0] and np.isnan(z[0, 59]) and z[0, 60] == 0
    assert z[0, 182] == 1 and np.nansum(z[0]) == 1  # 1 July 2019 (column 182 in a leap year), moderate
    assert "III Severe" in calendar.text[1][59]
    scale = [colour for _, colour in calendar.colorscale]
    assert all(colour in scale for colour in ("#ffc866", "#ff6900", "#9e0000", "#2d0000"))
    assert list(calendar.colorbar.ticktext) == ["None", "I Moderate", "II Strong", "III Severe", "IV Extreme"]
    assert "2 events, 6 heatwave days" in figure.layout.title.subtitle.text
    assert "strongest category: III Severe" in figure.layout.title.subtitle.text


def test_calendar_detail_panel_shows_lines_and_shaded_event_days(tmp_path: Path) -> None:
    figure = draw_calendar(tmp_path, daily_table(), units="°C")
    names = [trace.name for trace in figure.data[1:]]
    assert names == ["II Strong", "III Severe", "Climatology", "Threshold (90th percentile)", "Temperature"]
    strong, severe = figure.data[1], figure.data[2]
    assert strong.type == "bar" and strong.marker.color == "#ff6900" and severe.marker.color == "#9e0000"
    assert list(strong.x) == ["2020-02-27", "2020-02-28", "2020-03-01", "2020-03-02"]
    assert list(strong.base) == [16.0] * 4 and list(strong.y) == [3.0] * 4
    temperature = figure.data[-1]
    assert len(temperature.x) == 366 and temperature.x[0] == "2020-01-01"
    assert figure.layout.yaxis2.title.text == "Temperature (°C)"
    assert list(figure.layout.xaxis2.range) == ["2020-01-01", "2020-12-31"]
    earlier = draw_calendar(tmp_path, daily_table(), year=2019)
    assert [trace.name for trace in earlier.data[1:2]] == ["I Moderate"]


def test_calendar_counts_runs_when_events_are_not_numbered(tmp_path: Path) -> None:
    figure = draw_calendar(tmp_path, daily_table().drop(columns="event"))
    assert "2 events" in figure.layout.title.subtitle.text


def test_calendar_without_any_heatwave(tmp_path: Path) -> None:
    table = daily_table().assign(category=np.nan, event=np.nan)
    figure = draw_calendar(tmp_path, table)
    assert np.nansum(np.asarray(figure.data[0].z)) == 0
    assert "0 events, 0 heatwave days" in figure.layout.title.subtitle.text


@pytest.mark.parametrize(("table", "params", "message"), [
    (daily_table().drop(columns=["threshold", "category"]), {},
     "the daily table lacks the columns threshold, category; it has: time, temperature, climatology, event"),
    (daily_table().assign(category="Hot"), {}, "category: unknown value 'Hot'; expected one of I Moderate"),
    (daily_table(), {"year": 2018}, "year: 2018 is not in the table; it covers 2019-01-01 to 2020-12-31"),
    (daily_table().iloc[:0], {}, "the daily table is empty"),
])
def test_calendar_errors(tmp_path: Path, table: pd.DataFrame, params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        draw_calendar(tmp_path, table, **params)


# ---- plot.taylor ---------------------------------------------------------------------------------

SKILL = pd.DataFrame({
    "station": ["Bilbao", "Brest", "Cadiz"], "n": [100, 200, 50], "bias": [0.1, -0.2, 0.3],
    "rmse": [0.5, 0.6, 0.9], "crmsd": [0.4, 0.5, 0.8], "correlation": [0.8, 0.95, 0.5],
    "std_observed": [1.0, 2.0, 0.5], "std_modelled": [1.1, 1.8, 0.7], "normalised_std": [1.1, 0.9, 1.4],
    "willmott": [0.9, 0.95, 0.7],
})


def draw_taylor(tmp_path: Path, table: pd.DataFrame = SKILL, **params: Any) -> go.Figure:
    return call(taylor, {"skill": table}, params, tmp_path)["figure"]


def stations(figure: go.Figure) -> dict[str, Any]:
    return {trace.name: trace for trace in figure.data if trace.mode == "markers+text"}


def test_taylor_places_stations_at_arccos_correlation_and_std_ratio(tmp_path: Path) -> None:
    figure = draw_taylor(tmp_path)
    points = stations(figure)
    assert list(points) == ["Bilbao", "Brest", "Cadiz"]
    assert points["Bilbao"].theta[0] == pytest.approx(np.degrees(np.arccos(0.8)))  # 36.87 degrees
    assert points["Bilbao"].r[0] == pytest.approx(1.1)
    assert points["Cadiz"].theta[0] == pytest.approx(60.0) and points["Cadiz"].r[0] == pytest.approx(1.4)
    assert all(trace.type == "scatterpolar" for trace in figure.data)
    reference = next(trace for trace in figure.data if trace.name == "Observations")
    assert (reference.r[0], reference.theta[0]) == (1.0, 0.0) and reference.marker.symbol == "star"
    polar = figure.layout.polar
    assert list(polar.sector) == [0, 90] and polar.radialaxis.range[1] >= 1.5
    assert polar.radialaxis.title.text == "Standard deviation (normalised)"
    ticks = dict(zip(polar.angularaxis.ticktext, polar.angularaxis.tickvals, strict=True))
    assert ticks["0"] == pytest.approx(90) and ticks["0.99"] == pytest.approx(np.degrees(np.arccos(0.99)))
    assert "willmott" in points["Bilbao"].hovertemplate


def test_taylor_rms_isolines_are_circles_around_the_reference(tmp_path: Path) -> None:
    figure = draw_taylor(tmp_path)
    arcs = next(trace for trace in figure.data if trace.name == "Centred RMS difference")
    r = np.array([np.nan if v is None else v for v in arcs.r], dtype=float)
    theta = np.radians(np.array([np.nan if v is None else v for v in arcs.theta], dtype=float))
    distance = np.hypot(r * np.cos(theta) - 1, r * np.sin(theta))
    finite = distance[np.isfinite(distance)]
    levels = np.round(finite / 0.25) * 0.25
    np.testing.assert_allclose(finite, levels, atol=1e-9)
    assert set(levels) >= {0.25, 0.5, 1.0}


def test_taylor_with_negative_correlation_and_computed_ratio(tmp_path: Path) -> None:
    table = SKILL.drop(columns="normalised_std").assign(correlation=[0.8, -0.5, np.nan])
    figure = draw_taylor(tmp_path, table)
    points = stations(figure)
    assert list(points) == ["Bilbao", "Brest"]
    assert points["Brest"].theta[0] == pytest.approx(120.0) and points["Brest"].r[0] == pytest.approx(0.9)
    assert list(figure.layout.polar.sector) == [0, 180]
    assert "1 station without scores left out" in figure.layout.title.subtitle.text


def test_taylor_with_many_stations_uses_one_trace(tmp_path: Path) -> None:
    table = pd.DataFrame({"station": [f"s{i}" for i in range(30)], "correlation": np.linspace(0.1, 0.9, 30),
                          "normalised_std": np.linspace(0.5, 2.5, 30)})
    figure = draw_taylor(tmp_path, table)
    (points,) = [trace for trace in figure.data if trace.name == "Stations"]
    assert len(points.r) == 30 and points.r[-1] == pytest.approx(2.5)
    assert figure.layout.polar.radialaxis.range[1] == pytest.approx(2.75)


@pytest.mark.parametrize(("table", "message"), [
    (SKILL.drop(columns="correlation"), "the skill table lacks the column correlation; it has: station, n"),
    (SKILL.drop(columns=["normalised_std", "std_observed"]),
     "the skill table lacks the column normalised_std (or both std_observed and std_modelled"),
    (SKILL.assign(correlation=[0.8, 1.3, 0.5]), "station 'Brest': correlation 1.3 must lie within -1..1"),
    (SKILL.assign(correlation=np.nan),
     "the skill table has no station with both a correlation and a normalised_std"),
])
def test_taylor_errors(tmp_path: Path, table: pd.DataFrame, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        draw_taylor(tmp_path, table)


# ---- plot.explorer -------------------------------------------------------------------------------

def embedded_lines(page: str) -> list[dict[str, np.ndarray]]:
    """The x/y arrays of every data source embedded in a bokeh page."""
    (document,) = re.findall(r'<script type="application/json" id="[^"]+">\s*(.*?)\s*</script>', page, re.S)
    sources: list[dict[str, np.ndarray]] = []

    def decode(node: Any) -> Any:
        if isinstance(node, dict) and node.get("type") == "ndarray":
            raw = node["array"]
            data = raw["data"] if isinstance(raw, dict) else raw
            payload = base64.b64decode(data)
            if payload[:2] == b"\x1f\x8b":
                payload = gzip.decompress(payload)
            return np.frombuffer(payload, dtype=node["dtype"])
        if isinstance(node, dict) and node.get("type") == "map":
            return {key: decode(value) for key, value in node.get("entries", [])}
        return node

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("name") == "ColumnDataSource":
                sources.append(decode(node["attributes"]["data"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(html.unescape(document)))
    return sources


def test_explorer_thins_a_million_points_and_keeps_the_extremes(tmp_path: Path) -> None:
    count = 1_000_000
    rng = np.random.default_rng(3)
    wave = rng.normal(size=count)
    wave[123_457], wave[876_543] = 12.5, -11.25
    table = pd.DataFrame({"time": pd.date_range("2000-01-01", periods=count, freq="min"), "wave": wave,
                          "tide": np.sin(np.arange(count) / 745.0)})
    page = call(explorer, {"series": table}, {"max_points": 2000, "y_label": "Height (m)"}, tmp_path)["page"]
    assert page.lstrip().lower().startswith("<!doctype html>")
    assert "cdn.bokeh.org" not in page  # resources are inline: the page works offline
    lines = [source for source in embedded_lines(page) if "y" in source]
    assert len(lines) == 4  # two lines in the main chart, the same two in the overview
    for source in lines:
        assert 0 < source["y"].size <= 2000 and source["x"].size == source["y"].size
        assert np.all(np.diff(source["x"]) > 0)
    waves = [source["y"] for source in lines if source["y"].max() > 2]
    assert len(waves) == 2 and all(y.max() == 12.5 and y.min() == -11.25 for y in waves)
    first = np.datetime64("2000-01-01T00:00").astype("datetime64[ms]").astype(float)
    assert min(source["x"][0] for source in lines) == first
    assert "2,000 of 1,000,000 points" in page or "1,999 of 1,000,000 points" in page
    assert "min/max per time bucket" in page and "RangeTool" in page and "Height (m)" in page
    assert '"click_policy":"hide"' in page.replace(" ", "")


def test_explorer_short_series_are_kept_whole(tmp_path: Path) -> None:
    page = call(explorer, {"series": TABLE}, {"columns": ["so"]}, tmp_path)["page"]
    (main, overview) = [source for source in embedded_lines(page) if "y" in source]
    assert main["y"].tolist() == [35.1, 35.2, 35.3]
    assert "3 of 3 points" in page


@pytest.mark.parametrize(("table", "params", "message"), [
    (TABLE, {"columns": ["temp"]}, "columns: 'temp' is not in the table; available: time, station, sst, so"),
    (TABLE, {"columns": ["station"]}, "columns: 'station' holds"),
    (TABLE[["time", "station"]], {}, "columns: the table has no numeric column; columns: time, station"),
    (TABLE.drop(columns="time"), {}, "the table has no 'time' column"),
    (TABLE.assign(sst=np.nan), {"columns": ["sst"]}, "columns: sst have no values (all empty)"),
])
def test_explorer_errors(tmp_path: Path, table: pd.DataFrame, params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        call(explorer, {"series": table}, params, tmp_path)


def test_blocks_are_discoverable_with_valid_specs() -> None:
    registry = discover(extra_modules=["blocks.library.plots"])
    assert registry.errors == []
    for block_id in ("plot.timeseries", "plot.forecast", "plot.heatwave_calendar", "plot.taylor",
                     "plot.explorer"):
        block = registry.get(block_id, "1.0.0")
        block.spec.check(known_types())
        assert block.spec.category == "visualise" and block.spec.description
