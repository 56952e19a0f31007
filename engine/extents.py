"""Where and when the data on each wire lie, so the editor can offer them for area and time parameters.

A block whose parameters include a bounding box (``lat_min``, ``lat_max``, ``lon_min``, ``lon_max``)
or a time range (``start``, ``end``) is told the extent of the data it receives: its source file's
(what the caller's ``describe(source)`` returns under ``"extent"``) for a block that reads one,
otherwise what its first described input carries. An output declared as derived from an input
(``quantity: {"from": port}``) carries that input's extent, narrowed by the area and days the node
itself sets; an output that declares nothing (a model's trajectories, say) carries none. Pure: this
module never opens a file.

An extent is ``{"bbox": {"west", "south", "east", "north"}, "time": {"start", "end"}}`` (degrees,
ISO dates), each key present only when known.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from engine.quantities import Connection, SourceDescriber

BBOX_PARAMS = ("lat_min", "lat_max", "lon_min", "lon_max")
TIME_PARAMS = ("start", "end")

Extent = dict[str, dict[str, Any]]


def data_extents(
    nodes: Iterable[tuple[str, Mapping[str, Any], Any]],
    connections: Iterable[Connection],
    order: list[str],
    describe: SourceDescriber | None,
) -> dict[str, Extent]:
    """``{node id: extent of the data it works on}`` for nodes with area or time parameters whose data
    are known. ``nodes`` yields ``(id, spec, params)``; ``order`` is dependency order (no cycle)."""
    specs = {
        node_id: (spec, params if isinstance(params, Mapping) else {}) for node_id, spec, params in nodes
    }
    feeding: dict[tuple[str, str], Connection] = {}
    for connection in connections:
        feeding.setdefault((connection.target, connection.target_port), connection)
    carried: dict[tuple[str, str], Extent] = {}
    offered: dict[str, Extent] = {}
    for node_id in order:
        if node_id not in specs:
            continue
        spec, params = specs[node_id]
        received: dict[str, Extent] = {}
        for port in spec.get("inputs", ()):
            connection = feeding.get((node_id, port.get("name")))
            if connection is not None and (connection.source, connection.source_port) in carried:
                received[port["name"]] = carried[(connection.source, connection.source_port)]
        own = _source_extent(spec, params, describe)
        seen = own if own is not None else next(iter(received.values()), None)
        wanted = _wanted(spec)
        if seen and wanted:
            shown = {key: value for key, value in seen.items() if key in wanted}
            if shown:
                offered[node_id] = shown
        for port in spec.get("outputs", ()):
            quantity = port.get("quantity")
            if not isinstance(quantity, Mapping):
                continue
            base = own if "source" in quantity else received.get(quantity.get("from", ""))
            if base:
                carried[(node_id, port["name"])] = narrowed(base, params)
    return offered


def _source_extent(
    spec: Mapping[str, Any], params: Mapping[str, Any], describe: SourceDescriber | None
) -> Extent | None:
    for port in spec.get("outputs", ()):
        quantity = port.get("quantity")
        if describe is None or not isinstance(quantity, Mapping) or "source" not in quantity:
            continue
        source = params.get(quantity["source"])
        try:
            described = describe(source) if isinstance(source, str) else None
        except Exception:  # noqa: BLE001 - an undescribable source is unknown, never an error here
            described = None
        extent = described.get("extent") if isinstance(described, Mapping) else None
        return valid_extent(extent)
    return None


def _wanted(spec: Mapping[str, Any]) -> set[str]:
    properties = (spec.get("parameters") or {}).get("properties") or {}
    wanted = set()
    if all(name in properties for name in BBOX_PARAMS):
        wanted.add("bbox")
    if any(name in properties for name in TIME_PARAMS):
        wanted.add("time")
    return wanted


def valid_extent(extent: Any) -> Extent | None:
    """``extent`` with only well-formed parts kept (a describer's output is data, not trusted)."""
    if not isinstance(extent, Mapping):
        return None
    result: Extent = {}
    bbox = extent.get("bbox")
    if isinstance(bbox, Mapping) and all(
        _number(bbox.get(key)) for key in ("west", "south", "east", "north")
    ):
        if -90 <= bbox["south"] <= bbox["north"] <= 90 and -180 <= bbox["west"] <= bbox["east"] <= 360:
            result["bbox"] = {key: float(bbox[key]) for key in ("west", "south", "east", "north")}
    time = extent.get("time")
    if isinstance(time, Mapping) and all(_day(time.get(key)) for key in ("start", "end")):
        start, end = time["start"][:10], time["end"][:10]
        if start <= end:
            result["time"] = {"start": start, "end": end}
    return result or None


def narrowed(extent: Extent, params: Mapping[str, Any]) -> Extent:
    """``extent`` cut to the area and days ``params`` set; a bound outside the extent (or in another
    longitude convention) leaves that side as it was: running reports it, this only informs."""
    result = dict(extent)
    bbox = extent.get("bbox")
    if bbox:
        box = dict(bbox)
        for param, side, axis in (
            ("lat_min", "south", ("south", "north")),
            ("lat_max", "north", ("south", "north")),
            ("lon_min", "west", ("west", "east")),
            ("lon_max", "east", ("west", "east")),
        ):
            value = params.get(param)
            if _number(value) and bbox[axis[0]] <= value <= bbox[axis[1]]:
                box[side] = float(value)
        if box["south"] <= box["north"] and box["west"] <= box["east"]:
            result["bbox"] = box
    time = extent.get("time")
    if time:
        span = dict(time)
        for param, side in (("start", "start"), ("end", "end")):
            value = params.get(param)
            if _day(value) and time["start"] <= value[:10] <= time["end"]:
                span[side] = value[:10]
        if span["start"] <= span["end"]:
            result["time"] = span
    return result


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def _day(value: Any) -> bool:
    """An ISO date (or date-time: its day counts): YYYY-MM-DD at the start."""
    return (
        isinstance(value, str)
        and len(value) >= 10
        and value[4] == "-"
        and value[7] == "-"
        and value[:4].isdigit()
        and value[5:7].isdigit()
        and value[8:10].isdigit()
    )
