"""Port types: how an artifact of each type is written to a file and opened again.

A port's ``type`` names one of :data:`PORT_TYPES`. Two ports can be connected when the output's type
equals the input's type, or the input accepts ``any``. Blocks receive opened objects and return
objects; only this module knows file formats, so a block never touches paths of other steps.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class PortType:
    """A named artifact type: media type, file extension, and how to save and open it."""

    name: str
    title: str
    media_type: str
    extension: str
    save: Callable[[Any, Path], None]
    open: Callable[[Path], Any]


def _save_dataset(value: Any, path: Path) -> None:
    import xarray

    if not isinstance(value, xarray.Dataset):
        raise TypeError(f"expected an xarray.Dataset, got {type(value).__name__}")
    # Writes the values themselves: the netCDF4 writer has no external storage, links or virtual
    # datasets, so an artifact is self-contained even when its dataset came from a user's file (which
    # data.open_gridded checked with blocks.formatguard before opening); _open_dataset trusts artifacts.
    value.to_netcdf(path, engine="netcdf4")


def _open_dataset(path: Path) -> Any:
    import xarray

    # Lazy: variables are read from disk only when a block touches them.
    return xarray.open_dataset(path, engine="netcdf4")


CSVW_SUFFIX = "-metadata.json"
"""A table's column metadata is saved next to it as ``<name>.csv-metadata.json`` (W3C CSVW, the file
name a CSVW processor looks for first)."""
CF_NAMESPACE = "https://cfconventions.org/Data/cf-conventions/cf-conventions-1.11/cf-conventions.html#"
CF_COLUMN_KEYS = ("units", "standard_name", "long_name", "units_metadata")


def table_metadata_path(path: Path) -> Path:
    """Where the CSVW metadata of the table saved at ``path`` lives."""
    return path.with_name(path.name + CSVW_SUFFIX)


def _csvw_datatype(column: Any) -> str:
    import pandas

    if pandas.api.types.is_bool_dtype(column):
        return "boolean"
    if pandas.api.types.is_integer_dtype(column):
        return "integer"
    if pandas.api.types.is_float_dtype(column):
        return "double"
    return "string"


def _csvw_name(title: str) -> str:
    """A CSVW column name (letters, digits, underscore, %-escapes) for a column title."""
    from urllib.parse import quote

    name = quote(title, safe="")
    name = "".join(f"%{ord(char):02X}" if char in "-.~" else char for char in name)
    return f"%5F{name[1:]}" if name.startswith("_") else name or "column"


def csvw_document(table: Any, csv_name: str) -> dict[str, Any] | None:
    """The W3C CSVW metadata of ``table`` saved as ``csv_name``: per column its name, title, datatype
    and the CF attributes recorded in ``table.attrs["columns"]``; None when nothing is recorded."""
    known = table.attrs.get("columns") or {}
    if not any(str(name) in known for name in table.columns):
        return None
    columns = []
    for name in table.columns:
        column = {"name": _csvw_name(str(name)), "titles": str(name), "datatype": _csvw_datatype(table[name])}
        for key in CF_COLUMN_KEYS:
            text = (known.get(str(name)) or {}).get(key)
            if text:
                column[f"cf:{key}"] = str(text)
        columns.append(column)
    return {
        "@context": ["http://www.w3.org/ns/csvw", {"cf": CF_NAMESPACE}],
        "url": csv_name,
        "tableSchema": {"columns": columns},
    }


def _save_table(value: Any, path: Path) -> None:
    import pandas

    if not isinstance(value, pandas.DataFrame):
        raise TypeError(f"expected a pandas.DataFrame, got {type(value).__name__}")
    value.to_csv(path, index=False)
    sidecar = table_metadata_path(path)
    document = csvw_document(value, path.name)
    if document is None:
        sidecar.unlink(missing_ok=True)
        return
    sidecar.write_text(json.dumps(document, indent=1, ensure_ascii=False), encoding="utf-8")


def _open_table(path: Path) -> Any:
    """The CSV as a DataFrame; CF attributes from its CSVW metadata (if any) in ``attrs["columns"]``."""
    import pandas

    table = pandas.read_csv(path)
    sidecar = table_metadata_path(path)
    if sidecar.is_file():
        try:
            document = json.loads(sidecar.read_text(encoding="utf-8"))
            described = document["tableSchema"]["columns"]
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{sidecar.name}: not readable CSVW table metadata ({error})") from None
        columns = {}
        for column in described:
            title = column.get("titles", column.get("name"))
            title = title[0] if isinstance(title, list) else title
            attrs = {key: str(column[f"cf:{key}"]) for key in CF_COLUMN_KEYS if column.get(f"cf:{key}")}
            if title in table.columns and attrs:
                columns[str(title)] = attrs
        table.attrs["columns"] = columns
    return table


def _save_figure(value: Any, path: Path) -> None:
    if hasattr(value, "to_plotly_json"):
        text = value.to_json()
    elif isinstance(value, dict) and "data" in value:
        text = json.dumps(value)
    else:
        raise TypeError(f"expected a plotly figure, got {type(value).__name__}")
    path.write_text(text, encoding="utf-8")


def _open_figure(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _save_geojson(value: Any, path: Path) -> None:
    if not isinstance(value, dict) or value.get("type") not in ("FeatureCollection", "Feature"):
        raise TypeError("expected a GeoJSON FeatureCollection or Feature (a dict with 'type')")
    path.write_text(json.dumps(value, separators=(",", ":")), encoding="utf-8")


def _save_bytes(value: Any, path: Path) -> None:
    if not isinstance(value, bytes | bytearray):
        raise TypeError(f"expected bytes, got {type(value).__name__}")
    path.write_bytes(value)


def _open_bytes(path: Path) -> bytes:
    return path.read_bytes()


def _save_html(value: Any, path: Path) -> None:
    if not isinstance(value, str):
        raise TypeError(f"expected an HTML document as str, got {type(value).__name__}")
    path.write_text(value, encoding="utf-8")


def _open_text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _save_json(value: Any, path: Path) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True, default=str), encoding="utf-8")


def _open_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


PORT_TYPES: dict[str, PortType] = {
    port_type.name: port_type
    for port_type in (
        PortType("dataset", "Gridded dataset (NetCDF)", "application/x-netcdf", ".nc",
                 _save_dataset, _open_dataset),
        PortType("table", "Table (CSV)", "text/csv", ".csv", _save_table, _open_table),
        PortType("figure", "Figure (plotly)", "application/vnd.plotly.v1+json", ".plotly.json",
                 _save_figure, _open_figure),
        PortType("json", "JSON document", "application/json", ".json", _save_json, _open_json),
        PortType("geojson", "Features (GeoJSON)", "application/geo+json", ".geojson",
                 _save_geojson, _open_json),
        PortType("image", "Image (PNG)", "image/png", ".png", _save_bytes, _open_bytes),
        PortType("html", "Interactive page (HTML)", "text/html", ".html", _save_html, _open_text),
    )
}

ANY = "any"
"""An input port of type ``any`` accepts every type; the block receives the opened object."""


def compatible(output_type: str, input_type: str) -> bool:
    """Whether an output port of ``output_type`` may feed an input port of ``input_type``."""
    return input_type == ANY or output_type == input_type


def known_types() -> dict[str, Any]:
    """Type names a port may declare (every registered type plus ``any`` for inputs)."""
    return {**PORT_TYPES, ANY: None}
