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


@dataclass(frozen=True)
class Port:
    """A typed input or output of a block. ``type`` is a name registered in :mod:`blocks.types`."""

    name: str
    type: str
    title: str = ""
    description: str = ""
    required: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "title": self.title or self.name.replace("_", " ").capitalize(),
            "description": self.description,
            "required": self.required,
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
        try:
            jsonschema.Draft202012Validator.check_schema(self.parameters)
        except jsonschema.SchemaError as error:
            raise SpecError(f"{where}: parameters are not a valid JSON Schema: {error.message}") from error
        if self.parameters.get("type") != "object":
            raise SpecError(f"{where}: parameters schema must have type 'object'")
        for name, value in self.resources.to_dict().items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise SpecError(f"{where}: resources.{name} must be a positive whole number, not {value!r}")


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
) -> Callable[[BlockFunction], Block]:
    """Decorate a function to make it a :class:`Block`.

    ``description`` defaults to the function's docstring, which is shown as markdown in the catalog,
    so write it for the stakeholder who picks the block, not for the programmer.
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
        )
        return Block(spec=spec, function=function)

    return wrap

