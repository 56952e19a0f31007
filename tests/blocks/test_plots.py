"""plot.timeseries: the figure holds exactly the table's values."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import pytest

from blocks.library.plots import timeseries
from blocks.types import PORT_TYPES
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
    (TABLE[["time", "station"]], {}, "the table has no numeric column to plot; columns: time, station"),
])
def test_errors_name_the_column(tmp_path: Path, table: pd.DataFrame, params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        plot(tmp_path, table, **params)
