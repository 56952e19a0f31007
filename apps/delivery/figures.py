"""Static pictures of plotly figures for the processing report (HTML and PDF).

WeasyPrint runs no JavaScript, and a delivered report must open offline, so a figure output
(``application/vnd.plotly.v1+json``) is drawn again from its data with matplotlib: the traces that
the portal's blocks make — ``scatter``/``scattergl`` (lines, markers, filled bands), ``bar``,
``heatmap``/``contour`` and ``scatterpolar`` — with the figure's title, axis titles and trace
names. It is a faithful plot of the same numbers, not a pixel copy of plotly's rendering (colours,
fonts and annotations differ); traces of other types are named as not drawn. The interactive figure
stays in the portal and among the deliverables.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

DRAWN = ("scatter", "scattergl", "bar", "heatmap", "contour", "scatterpolar")
MAX_POINTS = 200_000
"""Values per trace drawn at most (a larger trace is thinned evenly)."""


def _array(value: Any):
    """A plotly value as a numpy array: lists, and plotly's typed arrays ``{"dtype", "bdata", "shape"}``."""
    import numpy as np

    if isinstance(value, dict) and "bdata" in value:
        data = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value.get("dtype", "f8")))
        shape = value.get("shape")
        if shape:
            dims = [int(part) for part in str(shape).split(",")] if isinstance(shape, str) else list(shape)
            data = data.reshape(dims)
        return data
    if value is None:
        return None
    array = np.asarray(value, dtype=object)
    return _as_numbers_or_times(array)


def _as_numbers_or_times(array):
    import numpy as np
    import pandas as pd

    try:
        return array.astype(float)
    except (TypeError, ValueError):
        pass
    if array.ndim == 1 and array.size and all(isinstance(item, str) for item in array[:50]):
        times = pd.to_datetime(pd.Series(array), errors="coerce", utc=True)
        if times.notna().mean() > 0.9:
            return times.dt.tz_localize(None).to_numpy()
    return np.array([np.nan if item is None else item for item in array.ravel()], dtype=object).reshape(
        array.shape
    )


def _text(value: Any) -> str:
    if isinstance(value, dict):
        value = value.get("text", "")
    return str(value or "").replace("<br>", " ").replace("<b>", "").replace("</b>", "")


def _thin(*arrays):
    size = max((len(a) for a in arrays if a is not None), default=0)
    if size <= MAX_POINTS:
        return arrays
    step = size // MAX_POINTS + 1
    return tuple(a[::step] if a is not None else None for a in arrays)


def _draw(axes, trace: dict[str, Any]) -> bool:
    kind = trace.get("type", "scatter")
    name = _text(trace.get("name")) or None
    if kind in ("scatter", "scattergl"):
        y = _array(trace.get("y"))
        if y is None:
            return False
        x = _array(trace.get("x"))
        x = x if x is not None else list(range(len(y)))
        x, y = _thin(x, y)
        mode = str(trace.get("mode") or "lines")
        line = trace.get("line") or {}
        if trace.get("fill") in ("tonexty", "tozeroy") and axes.lines:
            previous = axes.lines[-1]
            axes.fill_between(previous.get_xdata(), previous.get_ydata(), y, alpha=0.25, label=name)
            return True
        style = "-" if "lines" in mode else ""
        marker = "o" if "markers" in mode else None
        if line.get("width") == 0 and "markers" not in mode:
            axes.plot(x, y, linewidth=0)
            return True
        axes.plot(x, y, linestyle=style or "none", marker=marker, markersize=3, label=name,
                  linewidth=1.2, **({"color": line["color"]} if _colour(line.get("color")) else {}))
        return True
    if kind == "bar":
        x, y = _array(trace.get("x")), _array(trace.get("y"))
        if x is None or y is None:
            return False
        if trace.get("orientation") == "h":
            axes.barh(y, x, label=name)
        else:
            axes.bar(x, y, label=name)
        return True
    if kind in ("heatmap", "contour"):
        z = _array(trace.get("z"))
        if z is None or getattr(z, "ndim", 0) != 2:
            return False
        z = z.astype(float)
        x, y = _array(trace.get("x")), _array(trace.get("y"))
        x = x if x is not None and len(x) == z.shape[1] else range(z.shape[1])
        y = y if y is not None and len(y) == z.shape[0] else range(z.shape[0])
        draw = axes.contourf if kind == "contour" else axes.pcolormesh
        mesh = draw(x, y, z, **({"shading": "auto"} if kind == "heatmap" else {}), cmap="viridis")
        colorbar = trace.get("colorbar") or {}
        axes.figure.colorbar(mesh, ax=axes, label=_text(colorbar.get("title")))
        return True
    return False


def _colour(value: Any) -> bool:
    from matplotlib.colors import is_color_like

    return isinstance(value, str) and is_color_like(value)


def figure_png(
    path: Path, *, width_in: float = 7.0, height_in: float = 4.0, dpi: int = 110
) -> dict[str, Any]:
    """``{"png": bytes or None, "drawn": n, "not_drawn": [trace types], "title": str}`` for the plotly
    figure in ``path``; ``png`` is None when nothing of it could be drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure_json = json.loads(Path(path).read_text(encoding="utf-8"))
    traces = [trace for trace in figure_json.get("data") or [] if isinstance(trace, dict)]
    layout = figure_json.get("layout") or {}
    title = _text(layout.get("title"))
    polar = any(trace.get("type") == "scatterpolar" for trace in traces)
    figure = plt.figure(figsize=(width_in, height_in), dpi=dpi)
    axes = figure.add_subplot(projection="polar" if polar else None)
    drawn, not_drawn = 0, []
    try:
        for trace in traces:
            kind = trace.get("type", "scatter")
            if kind == "scatterpolar":
                import numpy as np

                r, theta = _array(trace.get("r")), _array(trace.get("theta"))
                if r is not None and theta is not None:
                    axes.plot(np.radians(theta.astype(float)), r.astype(float), marker="o", markersize=3,
                              linestyle="-" if "lines" in str(trace.get("mode") or "") else "none",
                              label=_text(trace.get("name")) or None)
                    drawn += 1
                    continue
            if not (kind in DRAWN and not (polar and kind != "scatterpolar") and _draw(axes, trace)):
                not_drawn.append(kind)
                continue
            drawn += 1
        if not drawn:
            return {"png": None, "drawn": 0, "not_drawn": not_drawn, "title": title}
        if title:
            axes.set_title(title, fontsize=10)
        if not polar:
            axes.set_xlabel(_text((layout.get("xaxis") or {}).get("title")))
            axes.set_ylabel(_text((layout.get("yaxis") or {}).get("title")))
        if any(label and not label.startswith("_") for label in axes.get_legend_handles_labels()[1]):
            axes.legend(fontsize=7)
        if not polar:
            from matplotlib.dates import AutoDateFormatter, ConciseDateFormatter

            if isinstance(axes.xaxis.get_major_formatter(), AutoDateFormatter | ConciseDateFormatter):
                figure.autofmt_xdate()
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        return {"png": buffer.getvalue(), "drawn": drawn, "not_drawn": not_drawn, "title": title}
    finally:
        plt.close(figure)
