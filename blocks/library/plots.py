"""Blocks that turn tables into interactive plotly figures."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go

from blocks.context import StepContext
from blocks.spec import Port, block

TIME_COLUMN = "time"


def _columns(table: pd.DataFrame) -> str:
    return ", ".join(map(str, table.columns))


def _default_column(table: pd.DataFrame) -> str:
    numeric = [str(name) for name in table.columns
               if name != TIME_COLUMN and pd.api.types.is_numeric_dtype(table[name])]
    if not numeric:
        raise ValueError(f"the table has no numeric column to plot; columns: {_columns(table)}")
    return numeric[0]


def _checked_column(table: pd.DataFrame, column: str) -> str:
    if column not in table.columns:
        raise ValueError(f"column: {column!r} is not in the table; available: {_columns(table)}")
    if not pd.api.types.is_numeric_dtype(table[column]):
        raise ValueError(f"column: {column!r} holds {table[column].dtype} values, not numbers")
    return column


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
    the bottom and the chosen column up the side. Choose the column, the title and the axis label, or
    leave them empty to plot the first numeric column labelled with its name.
    """
    table = inputs["table"]
    if TIME_COLUMN not in table.columns:
        raise ValueError(f"the table has no {TIME_COLUMN!r} column; columns: {_columns(table)}")
    column = _checked_column(table, params["column"]) if params.get("column") else _default_column(table)
    # Plain lists keep the saved JSON readable without plotly's binary array encoding.
    figure = go.Figure(go.Scatter(
        x=table[TIME_COLUMN].astype(str).tolist(),
        y=table[column].astype(float).tolist(),
        mode="lines",
        name=column,
    ))
    figure.update_layout(
        title=params.get("title") or column,
        xaxis_title="Time",
        yaxis_title=params.get("y_label") or column,
        hovermode="x unified",
    )
    ctx.progress(1.0, f"plotted {len(table)} points of {column}")
    return {"figure": figure}
