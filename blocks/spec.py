"""The block contract: a spec (what a block is) plus a function (what it does).

A spec is plain data and serialises to JSON with :meth:`BlockSpec.to_dict`; that dictionary is the
shape the catalog stores and the pipeline validator (``engine``) reads, so nothing downstream needs
this module's classes. Blocks never import Django.

A block function is called as ``function(ctx, inputs, params)`` where ``ctx`` is a
:class:`blocks.context.StepContext`, ``inputs`` maps input port names to opened objects (see
:mod:`blocks.types`) and ``params`` holds the parameters, already validated against the spec's JSON
Schema with defaults filled in. It returns a mapping of output port name to object.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema

BLOCK_ID_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
PORT_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
SEMVER_PATTERN = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$"
)
CATEGORIES = ("data", "transform", "analytics", "ml", "model", "visualise", "deliver", "utility")


class SpecError(ValueError):
    """A block spec breaks the contract; the message names the block and the field."""


QUANTITY_KINDS = ("temperature", "velocity", "speed", "length", "salinity", "pressure", "density")
"""Physical quantity kinds an input may ask for; ``engine.quantities.KIND_DIMENSIONS`` gives their units."""

TEMPERATURE_NAMES = (
    "sea_water_temperature", "sea_surface_temperature", "sea_water_potential_temperature",
    "sea_water_conservative_temperature", "sea_surface_skin_temperature", "sea_surface_subskin_temperature",
    "sea_surface_foundation_temperature", "sea_water_temperature_anomaly", "sea_surface_temperature_anomaly",
    "surface_temperature", "air_temperature",
)
"""CF standard names of the temperatures a temperature analysis accepts."""

SEA_WATER_VELOCITY_NAMES = (
    "eastward_sea_water_velocity", "northward_sea_water_velocity",
    "surface_eastward_sea_water_velocity", "surface_northward_sea_water_velocity",
    "baroclinic_eastward_sea_water_velocity", "baroclinic_northward_sea_water_velocity",
)
"""CF standard names of sea water velocity components."""


@dataclass(frozen=True)
class Quantity:
    """What an input accepts in CF terms; checked on the wires before a run (``engine.quantities``).

    ``kind`` is one of :data:`QUANTITY_KINDS` (its units must be convertible to it); a variable with
    a ``standard_name`` must have one of ``standard_names`` (if any are given); ``difference_ok``
    says whether a temperature difference (``units_metadata: "temperature: difference"``, e.g. an
    anomaly) is fine; ``units``, when given, are the exact units the block needs (other units of the
    same kind are offered a conversion). Which variables are checked: those named by the parameters
    ``params``; when none is set, with ``match="standard_name"`` those whose standard name is
    accepted, otherwise the input's only variable (or column) if it has exactly one. ``real_dates``
    says the block reads times as real (Gregorian) dates, so a model calendar with dates such as
    30 February (``360_day``, ``all_leap``) is refused.
    """

    kind: str | None = None
    standard_names: tuple[str, ...] = ()
    difference_ok: bool = True
    units: str | None = None
    params: tuple[str, ...] = ()
    match: str | None = None
    real_dates: bool = False

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind, "standard_names": list(self.standard_names),
                                "difference_ok": self.difference_ok, "params": list(self.params)}
        if self.units:
            data["units"] = self.units
        if self.match:
            data["match"] = self.match
        if self.real_dates:
            data["real_dates"] = True
        return data


DERIVED_OPERATIONS = ("same", "anomaly", "convert", "add")


@dataclass(frozen=True)
class Derived:
    """How an output's variables (or table columns) and their CF attributes follow from the inputs.

    Either ``source`` names the parameter holding a data-space path or URL (the portal describes the
    file), or ``from_port`` names the input they come from. ``keep`` names a parameter selecting
    some of them (one name or a list; unset keeps all). ``op``: ``same`` (attributes unchanged, also
    for a table of the same variables), ``anomaly`` (same units, no standard name, a temperature
    difference), ``convert`` (parameter ``variable`` gets the units in parameter ``units``), ``add``
    (a new variable named by parameter ``name`` with parameters ``units`` and ``long_name``).
    """

    from_port: str | None = None
    source: str | None = None
    op: str = "same"
    keep: str | None = None
    variable: str | None = None
    units: str | None = None
    name: str | None = None
    long_name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"op": self.op}
        if self.source:
            data["source"] = self.source
        if self.from_port:
            data["from"] = self.from_port
        for key in ("keep", "variable", "units", "name", "long_name"):
            if getattr(self, key):
                data[key] = getattr(self, key)
        return data


@dataclass(frozen=True)
class Port:
    """A typed input or output of a block. ``type`` is a name registered in :mod:`blocks.types`.

    ``quantity`` optionally says what the port means physically: a :class:`Quantity` on an input,
    a :class:`Derived` on an output. It is an annotation: ``to_dict`` adds a ``"quantity"`` key only
    when one is declared, and :func:`versioned_spec` leaves it out.
    """

    name: str
    type: str
    title: str = ""
    description: str = ""
    required: bool = True
    quantity: Quantity | Derived | None = None

    def to_dict(self) -> dict[str, Any]:
        data = {
            "name": self.name,
            "type": self.type,
            "title": self.title or self.name.replace("_", " ").capitalize(),
            "description": self.description,
            "required": self.required,
        }
        if self.quantity is not None:
            data["quantity"] = self.quantity.to_dict()
        return data


ANNOTATION_KEYS = ("quantity",)
"""Port keys that describe a block's existing behaviour rather than change it."""


def versioned_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """``spec`` (a :meth:`BlockSpec.to_dict`) without annotations, for comparing two specs of a version.

    Declaring what a port means (its ``quantity``) does not change what a block version does, so a
    catalog that refuses a changed spec under an existing version compares these instead.
    """
    return {
        **spec,
        **{
            direction: [
                {key: value for key, value in port.items() if key not in ANNOTATION_KEYS}
                for port in spec.get(direction, ())
            ]
            for direction in ("inputs", "outputs")
        },
    }


@dataclass(frozen=True)
class Resources:
    """Resource hints a scheduler may use: cores, memory in MiB, wall time in seconds."""

    cpus: int = 1
    memory_mb: int = 1024
    walltime_s: int = 3600

    def to_dict(self) -> dict[str, int]:
        return {"cpus": self.cpus, "memory_mb": self.memory_mb, "walltime_s": self.walltime_s}


@dataclass(frozen=True)
class BlockSpec:
    """Everything the portal needs to know about one version of a block."""

    id: str
    version: str
    title: str
    description: str
    category: str
    inputs: tuple[Port, ...] = ()
    outputs: tuple[Port, ...] = ()
    parameters: Mapping[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {}, "additionalProperties": False}
    )
    resources: Resources = Resources()
    cacheable: bool = True
    """False for a block whose outputs may differ for the same inputs and parameters (it reads the
    clock, draws random numbers without a seed parameter, or fetches remote content that can
    change): the portal then never reuses an earlier result of it."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "version": self.version,
            "title": self.title,
            "description": self.description,
            "category": self.category,
            "inputs": [port.to_dict() for port in self.inputs],
            "outputs": [port.to_dict() for port in self.outputs],
            "parameters": dict(self.parameters),
            "resources": self.resources.to_dict(),
            "cacheable": self.cacheable,
        }

    def check(self, known_types: Mapping[str, Any]) -> None:
        """Raise :class:`SpecError` naming the first way this spec breaks the contract."""
        where = f"block {self.id!r}"
        if not BLOCK_ID_PATTERN.match(self.id):
            raise SpecError(f"{where}: id must be dotted lowercase words, e.g. 'ocean.subset'")
        if not SEMVER_PATTERN.match(self.version):
            raise SpecError(f"{where}: version {self.version!r} is not semantic (MAJOR.MINOR.PATCH)")
        if self.category not in CATEGORIES:
            raise SpecError(f"{where}: category {self.category!r} is not one of {', '.join(CATEGORIES)}")
        if not self.title.strip():
            raise SpecError(f"{where}: title is empty")
        for direction, ports in (("input", self.inputs), ("output", self.outputs)):
            names = [port.name for port in ports]
            if len(names) != len(set(names)):
                raise SpecError(f"{where}: duplicate {direction} port names in {names}")
            for port in ports:
                if not PORT_NAME_PATTERN.match(port.name):
                    raise SpecError(f"{where}: {direction} port name {port.name!r} is not snake_case")
                if port.type not in known_types:
                    raise SpecError(
                        f"{where}: {direction} port {port.name!r} has unknown type {port.type!r}"
                    )
                self._check_quantity(where, direction, port)
        try:
            jsonschema.Draft202012Validator.check_schema(self.parameters)
        except jsonschema.SchemaError as error:
            raise SpecError(f"{where}: parameters are not a valid JSON Schema: {error.message}") from error
        if self.parameters.get("type") != "object":
            raise SpecError(f"{where}: parameters schema must have type 'object'")
        for name, value in self.resources.to_dict().items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise SpecError(f"{where}: resources.{name} must be a positive whole number, not {value!r}")


    def _check_quantity(self, where: str, direction: str, port: Port) -> None:
        quantity, subject = port.quantity, f"{where}: {direction} port {port.name!r} quantity"
        if quantity is None:
            return
        properties = self.parameters.get("properties", {})
        if direction == "input":
            if not isinstance(quantity, Quantity):
                raise SpecError(f"{subject} must be a Quantity (what the input accepts)")
            if quantity.kind is not None and quantity.kind not in QUANTITY_KINDS:
                raise SpecError(
                    f"{subject}: kind {quantity.kind!r} is not one of {', '.join(QUANTITY_KINDS)}")
            params = quantity.params
        else:
            if not isinstance(quantity, Derived):
                raise SpecError(f"{subject} must be Derived (how the output follows from the inputs)")
            if quantity.op not in DERIVED_OPERATIONS:
                raise SpecError(
                    f"{subject}: op {quantity.op!r} is not one of {', '.join(DERIVED_OPERATIONS)}")
            if (quantity.source is None) == (quantity.from_port is None):
                raise SpecError(f"{subject}: give exactly one of source and from_port")
            if quantity.from_port is not None and quantity.from_port not in {p.name for p in self.inputs}:
                raise SpecError(f"{subject}: from_port {quantity.from_port!r} is not an input port")
            params = tuple(
                value for value in (quantity.source, quantity.keep, quantity.variable, quantity.units,
                                    quantity.name, quantity.long_name) if value
            )
        for param in params:
            if param not in properties:
                raise SpecError(f"{subject} names parameter {param!r}, which the block does not have")


BlockFunction = Callable[..., Mapping[str, Any]]


@dataclass(frozen=True)
class Block:
    """A spec bound to the function that implements it."""

    spec: BlockSpec
    function: BlockFunction

    @property
    def key(self) -> tuple[str, str]:
        return (self.spec.id, self.spec.version)


def block(
    *,
    id: str,
    version: str,
    title: str,
    category: str,
    inputs: tuple[Port, ...] = (),
    outputs: tuple[Port, ...] = (),
    parameters: Mapping[str, Any] | None = None,
    resources: Resources = Resources(),
    description: str | None = None,
    cacheable: bool = True,
) -> Callable[[BlockFunction], Block]:
    """Decorate a function to make it a :class:`Block`.

    ``description`` defaults to the function's docstring, which is shown as markdown in the catalog,
    so write it for the stakeholder who picks the block, not for the programmer. ``cacheable=False``
    marks a block whose results must never be reused (see :attr:`BlockSpec.cacheable`).
    """

    def wrap(function: BlockFunction) -> Block:
        text = description if description is not None else (function.__doc__ or "")
        spec = BlockSpec(
            id=id,
            version=version,
            title=title,
            description=inspect.cleandoc(text),
            category=category,
            inputs=inputs,
            outputs=outputs,
            parameters=parameters
            or {"type": "object", "properties": {}, "additionalProperties": False},
            resources=resources,
            cacheable=cacheable,
        )
        return Block(spec=spec, function=function)

    return wrap

