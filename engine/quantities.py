"""Physical meaning on pipeline wires: what each output carries and whether each input can take it.

Ports may declare a ``quantity`` (see ``blocks.spec.Quantity`` and ``blocks.spec.Derived``, which
serialise to the plain dictionaries read here). Starting from what is known about the pipeline's
sources (a callable passed in by the caller returns the CF attributes of a data-space file; this
module never opens files), :func:`check_quantities` walks the graph in dependency order, works out
the CF attributes (``units``, ``standard_name``, ``long_name``, ``units_metadata``) of every variable
or table column on every wire, and reports inputs that would certainly fail or give nonsense:

- ``edge.quantity_mismatch``: the variable is another physical quantity than the input wants (its
  standard name is not one the input accepts, or it is a temperature difference where an absolute
  temperature is needed);
- ``edge.units_unconvertible``: its units measure something else (m s-1 where a temperature is needed);
- ``edge.units_mismatch``: its units measure the right thing but the block needs exactly other units
  (cm s-1 where m s-1 is needed); the issue carries a ``fix`` that inserts a unit conversion;
- ``node.unknown_variable``: a parameter names a variable or column the input does not have;
- ``edge.calendar_mismatch``: the times are on a model calendar with dates that do not exist (30
  February in ``360_day``) and the block reads them as real dates.

What is unknown stays silent: a URL source, a block whose outputs declare nothing, a variable
without units. Units are compared with pint and the CF units registry of ``cf_xarray``, imported on
first use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

__all__ = [
    "CONVERT_UNITS_BLOCK",
    "KIND_DIMENSIONS",
    "Connection",
    "Finding",
    "Product",
    "SourceDescriber",
    "check_quantities",
]

KIND_DIMENSIONS: dict[str, str] = {
    "temperature": "[temperature]",
    "velocity": "[length] / [time]",
    "speed": "[length] / [time]",
    "length": "[length]",
    "salinity": "",
    "pressure": "[mass] / [length] / [time] ** 2",
    "density": "[mass] / [length] ** 3",
}
"""Quantity kinds a port may declare, and the pint dimensionality their units must have."""

KIND_EXAMPLES = {
    "temperature": "degC", "velocity": "m s-1", "speed": "m s-1", "length": "m", "salinity": "1e-3",
    "pressure": "dbar", "density": "kg m-3",
}

CONVERT_UNITS_BLOCK = ("transform.convert_units", "1.0.0")
"""The block a ``fix`` inserts to convert a variable's units, and its version."""

TEMPERATURE_DIFFERENCE = "temperature: difference"

UNREAL_DATE_CALENDARS = {
    "360_day": "every month has 30 days (so it has 29 and 30 February)",
    "all_leap": "every year has 29 February",
    "366_day": "every year has 29 February",
}
"""CF calendars with dates that do not exist on the standard calendar, and why."""


@dataclass(frozen=True)
class Product:
    """What flows on one output port: ``fields`` maps each variable (or table column, when ``kind`` is
    ``"column"``) to its CF attributes, or is None when unknown; ``calendar`` is the time calendar."""

    fields: Mapping[str, Mapping[str, Any]] | None
    kind: str = "variable"
    calendar: str | None = None


UNKNOWN = Product(fields=None)


@dataclass(frozen=True)
class Connection:
    """A well-formed edge between two ports whose blocks are known."""

    index: int
    source: str
    source_port: str
    target: str
    target_port: str


@dataclass(frozen=True)
class Finding:
    """One problem; the caller turns it into a ``ValidationIssue``."""

    code: str
    pointer: str
    message: str
    node: str | None = None
    port: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


SourceDescriber = Callable[[str], Mapping[str, Any] | None]
"""``describe(source)`` -> ``{"variables": {name: attrs}, "calendar": str | None}`` or None if unknown."""


@dataclass
class _NodeView:
    id: str
    index: int
    spec: Mapping[str, Any]
    params: Mapping[str, Any]
    name: str = ""
    """How a person recognises the node: its label or its block's title (and its id if ambiguous)."""

    def param(self, name: str | None) -> Any:
        if not name:
            return None
        return self.params.get(name)


def check_quantities(
    nodes: Iterable[tuple[int, str, Mapping[str, Any], Any, Any]],
    connections: Iterable[Connection],
    order: list[str],
    describe: SourceDescriber | None,
    choices: dict[str, dict[str, list[str]]] | None = None,
) -> list[Finding]:
    """Every quantity and units problem along the wires.

    ``nodes`` yields ``(index, id, spec, params, label)`` for nodes whose block is known; ``connections``
    the well-formed edges between them; ``order`` the node ids in dependency order (no cycle).
    ``describe(source)`` gives what a source parameter points at, or None when unknown. ``choices``,
    when given, is filled with what each variable- or column-naming parameter can name where that is
    known: ``{node id: {parameter: [names the data has]}}`` (the editor offers them).
    """
    views: dict[str, _NodeView] = {}
    for index, node_id, spec, params, label in nodes:
        given = label.strip() if isinstance(label, str) else ""
        name = given or str(spec.get("title") or node_id)
        views[node_id] = _NodeView(node_id, index, spec, params if isinstance(params, dict) else {}, name)
    names = [view.name for view in views.values()]
    for view in views.values():
        view.name = repr(view.name) if names.count(view.name) == 1 else f"{view.name!r} ({view.id})"
    feeding: dict[tuple[str, str], Connection] = {}
    for connection in connections:
        feeding.setdefault((connection.target, connection.target_port), connection)
    products: dict[tuple[str, str], Product] = {}
    findings: list[Finding] = []
    for node_id in order:
        view = views.get(node_id)
        if view is None:
            continue
        received: dict[str, Product] = {}
        for port in view.spec.get("inputs", ()):
            connection = feeding.get((node_id, port.get("name")))
            if connection is None:
                continue
            product = products.get((connection.source, connection.source_port), UNKNOWN)
            received[port["name"]] = product
            quantity = port.get("quantity")
            if isinstance(quantity, Mapping):
                findings += _check_input(view, port, quantity, product, connection, views)
                if choices is not None and product.fields is not None:
                    for param in _names(quantity.get("params")):
                        choices.setdefault(node_id, {})[param] = list(product.fields)
        for port in view.spec.get("outputs", ()):
            quantity = port.get("quantity")
            if isinstance(quantity, Mapping):
                product, problems = _derive(view, port, quantity, received, describe, choices)
                findings += problems
                products[(node_id, port["name"])] = product
    return findings


# ---- inputs ----------------------------------------------------------------------------------------

def _selected(
    quantity: Mapping[str, Any], view: _NodeView, fields: Mapping[str, Mapping[str, Any]]
) -> tuple[list[str], list[str]]:
    """(variables the block will use that ``fields`` has, names given by parameters it lacks)."""
    named: list[str] = []
    for param in _names(quantity.get("params")):
        named += _names(view.param(param))
    if named:
        return [name for name in named if name in fields], [name for name in named if name not in fields]
    accepted = set(_names(quantity.get("standard_names")))
    if quantity.get("match") == "standard_name" and accepted:
        return [name for name, attrs in fields.items() if attrs.get("standard_name") in accepted], []
    if len(fields) == 1:
        return list(fields), []
    return [], []


def _check_input(
    view: _NodeView,
    port: Mapping[str, Any],
    quantity: Mapping[str, Any],
    product: Product,
    connection: Connection,
    views: Mapping[str, _NodeView],
) -> list[Finding]:
    pointer = f"/edges/{connection.index}"
    port_name = port["name"]
    port_title = port.get("title") or port_name
    findings: list[Finding] = []
    source = views.get(connection.source)
    source_name = source.name if source is not None else connection.source
    calendar = product.calendar.lower() if isinstance(product.calendar, str) else None
    if quantity.get("real_dates") and calendar in UNREAL_DATE_CALENDARS:
        findings.append(Finding(
            code="edge.calendar_mismatch",
            pointer=pointer,
            message=f"{view.name}: input {port_title!r} reads times as real dates, but the data from "
                    f"{source_name} are on the {calendar} calendar, where "
                    f"{UNREAL_DATE_CALENDARS[calendar]}",
            node=view.id,
            port=port_name,
            details={"calendar": calendar},
        ))
    if product.fields is None:
        return findings
    used, missing = _selected(quantity, view, product.fields)
    thing = "column" if product.kind == "column" else "variable"
    for name in missing:
        params = [p for p in _names(quantity.get("params")) if _mentions(view.param(p), name)]
        findings.append(Finding(
            code="node.unknown_variable",
            pointer=f"/nodes/{view.index}/params/{params[0]}" if params else f"/nodes/{view.index}",
            message=f"{view.name} uses the {thing} {name!r}"
                    f"{f' (parameter {params[0]!r})' if params else ''}, but its input {port_title!r} "
                    f"has no such {thing}; it has "
                    f"{', '.join(map(repr, product.fields)) or 'none'}",
            node=view.id,
            port=port_name,
            details={"variable": _clip(name), "available": _listed(product.fields), "parameter": params[:1]},
        ))
    for name in used:
        problem = _mismatch(quantity, product.fields[name])
        if problem is None:
            continue
        code, reason, extra = problem
        message = (f"{view.name}: input {port_title!r} needs {_wanted(quantity)}, but the {thing} "
                   f"{name!r} from {source_name} {reason}")
        if code == "edge.units_mismatch":
            if port.get("type") == "dataset" and product.kind == "variable":
                block_id, version = CONVERT_UNITS_BLOCK
                extra["fix"] = {
                    "insert": block_id,
                    "version": version,
                    "params": {"variable": name, "to_units": quantity["units"]},
                    "edge": connection.index,
                    "title": f"Insert unit conversion ({name} to {quantity['units']})",
                }
                message += "; insert a unit conversion before it"
        findings.append(Finding(
            code=code, pointer=pointer, message=message, node=view.id, port=port_name,
            details={"variable": _clip(name), **extra},
        ))
    return findings


def _mismatch(quantity: Mapping[str, Any], attrs: Mapping[str, Any]) -> tuple[str, str, dict] | None:
    """(code, reason, details) when a variable with CF ``attrs`` does not fit ``quantity``."""
    standard_name = attrs.get("standard_name")
    units_text = attrs.get("units")
    accepted = _names(quantity.get("standard_names"))
    kind = quantity.get("kind")
    units = _parse(units_text) if isinstance(units_text, str) else None
    shown = f" (units {units_text})" if isinstance(units_text, str) and units_text else ""
    details = {"standard_name": standard_name, "units": units_text}
    if isinstance(standard_name, str) and accepted and standard_name not in accepted:
        return ("edge.quantity_mismatch", f"is {standard_name.replace('_', ' ')}{shown}", details)
    if units is not None and kind in KIND_DIMENSIONS and not _has_dimension(units, kind):
        return ("edge.units_unconvertible",
                f"is in {units_text}, which cannot be converted to a {kind}"
                f" (e.g. {KIND_EXAMPLES[kind]})", details)
    if (attrs.get("units_metadata") == TEMPERATURE_DIFFERENCE and kind == "temperature"
            and not quantity.get("difference_ok", True)):
        return ("edge.quantity_mismatch",
                "is a temperature difference (an anomaly or trend), not an absolute temperature", details)
    wanted = quantity.get("units")
    if units is not None and isinstance(wanted, str) and wanted and not _same_units(units_text, wanted):
        target = _parse(wanted)
        if target is not None and _convertible(units, target):
            return ("edge.units_mismatch", f"is in {units_text}{_note(attrs)}",
                    {**details, "to_units": wanted})
        return ("edge.units_unconvertible", f"is in {units_text}, which cannot be converted to {wanted}",
                {**details, "to_units": wanted})
    return None


def _note(attrs: Mapping[str, Any]) -> str:
    return f" ({attrs['long_name']})" if isinstance(attrs.get("long_name"), str) else ""


def _wanted(quantity: Mapping[str, Any]) -> str:
    accepted = _names(quantity.get("standard_names"))
    kind = quantity.get("kind")
    if isinstance(quantity.get("units"), str) and quantity.get("units"):
        what = f"{kind or 'values'} in {quantity['units']}"
    else:
        what = f"a {kind}" if kind else "a known quantity"
    if accepted:
        shown = ", ".join(name.replace("_", " ") for name in accepted[:3])
        more = f" or {len(accepted) - 3} more" if len(accepted) > 3 else ""
        what += f" ({shown}{more})"
    return what


# ---- outputs ---------------------------------------------------------------------------------------

def _derive(
    view: _NodeView,
    port: Mapping[str, Any],
    quantity: Mapping[str, Any],
    received: Mapping[str, Product],
    describe: SourceDescriber | None,
    choices: dict[str, dict[str, list[str]]] | None = None,
) -> tuple[Product, list[Finding]]:
    """What an output carries, from its declaration and the inputs; plus unknown-variable findings.
    The names its ``keep`` parameter may choose from go into ``choices``."""
    findings: list[Finding] = []
    operation = quantity.get("op", "same")
    kind = "column" if port.get("type") == "table" else "variable"
    if "source" in quantity:
        source = view.param(quantity["source"])
        try:
            described = describe(source) if describe is not None and isinstance(source, str) else None
        except Exception:  # noqa: BLE001 - validation never raises; an undescribable source is unknown
            described = None
        if not isinstance(described, Mapping) or not isinstance(described.get("variables"), Mapping):
            return UNKNOWN, findings
        upstream = Product(fields=described["variables"], calendar=described.get("calendar"))
        where = f"the file {source!r}"
    else:
        upstream = received.get(quantity.get("from", ""), UNKNOWN)
        where = "its input"
    if upstream.fields is None:
        return Product(fields=None, kind=kind, calendar=upstream.calendar), findings
    fields = dict(upstream.fields)
    keep_param = quantity.get("keep")
    if choices is not None and isinstance(keep_param, str):
        choices.setdefault(view.id, {})[keep_param] = list(fields)
    kept_names = _names(view.param(keep_param))
    if kept_names:
        absent = [name for name in kept_names if name not in fields]
        if absent:
            thing = "column" if upstream.kind == "column" else "variable"
            findings.append(Finding(
                code="node.unknown_variable",
                pointer=f"/nodes/{view.index}/params/{keep_param}",
                message=f"{view.name} asks for the {thing}{'s' if len(absent) > 1 else ''} "
                        f"{', '.join(map(repr, absent))} (parameter {keep_param!r}), but {where} has "
                        f"{', '.join(map(repr, fields)) or 'none'}",
                node=view.id,
                details={"variables": _listed(absent), "available": _listed(fields), "parameter": keep_param},
            ))
            # Downstream checks would only repeat this problem.
            return Product(fields=None, kind=kind), findings
        fields = {name: fields[name] for name in kept_names}
    if operation == "anomaly":
        fields = {name: _anomaly(name, attrs) for name, attrs in fields.items()}
    elif operation == "convert":
        name, to_units = view.param(quantity.get("variable")), view.param(quantity.get("units"))
        if isinstance(name, str) and name in fields and isinstance(to_units, str) and to_units.strip():
            fields[name] = {**fields[name], "units": to_units.strip()}
    elif operation == "add":
        name = view.param(quantity.get("name"))
        if isinstance(name, str) and name:
            attrs = {"units": view.param(quantity.get("units")),
                     "long_name": view.param(quantity.get("long_name"))}
            fields[name] = {key: value for key, value in attrs.items() if isinstance(value, str) and value}
    elif operation != "same":
        return Product(fields=None, kind=kind), findings
    return Product(fields=fields, kind=kind, calendar=upstream.calendar), findings


def _anomaly(name: str, attrs: Mapping[str, Any]) -> dict[str, Any]:
    """CF attributes of the anomaly of a variable: same units, no standard name, a difference."""
    result = {key: value for key, value in attrs.items() if key in ("units", "long_name")}
    result["long_name"] = f"{attrs.get('long_name') or name} anomaly"
    units = _parse(attrs["units"]) if isinstance(attrs.get("units"), str) else None
    if units is not None and _has_dimension(units, "temperature"):
        result["units_metadata"] = TEMPERATURE_DIFFERENCE
    return result


# ---- units -----------------------------------------------------------------------------------------

def _names(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return [item for item in value if isinstance(item, str)]
    return []


def _clip(text: str, limit: int = 64) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _listed(names: Iterable[str], limit: int = 30) -> list[str]:
    """At most ``limit`` names, each clipped, for an issue's details."""
    return [_clip(name) for name, _ in zip(names, range(limit), strict=False)]


def _mentions(value: Any, name: str) -> bool:
    return value == name or (isinstance(value, list) and name in value)


@lru_cache(maxsize=1)
def _registry() -> Any:
    from cf_xarray.units import units

    return units


@lru_cache(maxsize=512)
def _parse(text: str) -> Any:
    """The pint unit of a CF units string (a scale factor such as ``1e-3`` is kept); None if unknown."""
    text = text.strip()
    if not text:
        return None
    registry = _registry()
    try:
        return registry.Unit(text)
    except Exception:  # noqa: BLE001 - pint raises many kinds for text it cannot read
        pass
    try:
        return registry.Quantity(text)
    except Exception:  # noqa: BLE001
        return None


def _has_dimension(units: Any, kind: str) -> bool:
    wanted = KIND_DIMENSIONS[kind]
    registry = _registry()
    target = registry.get_dimensionality(wanted) if wanted else registry.dimensionless.dimensionality
    return units.dimensionality == target


def _convertible(source: Any, target: Any) -> bool:
    return source.dimensionality == target.dimensionality


def _as_quantity(units: Any) -> Any:
    """One of ``units`` as a pint quantity (``1e-3`` parses to a quantity, ``m s-1`` to a unit)."""
    return units if hasattr(units, "magnitude") else _registry().Quantity(1.0, units)


def _same_units(text: str, wanted: str) -> bool:
    """Whether two unit strings mean exactly the same units (``m/s`` and ``m s-1`` do, degC and K not)."""
    if text.strip() == wanted.strip():
        return True
    source, target = _parse(text), _parse(wanted)
    if source is None or target is None or not _convertible(source, target):
        return False
    one, other = _as_quantity(source), _as_quantity(target)
    try:
        scale = one.to(other.units).magnitude / other.magnitude
        offset = _registry().Quantity(0.0, one.units).to(other.units).magnitude
    except Exception:  # noqa: BLE001 - pint raises many kinds for odd units
        return False
    return abs(scale - 1.0) < 1e-9 and abs(offset) < 1e-9
