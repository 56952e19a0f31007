"""Check a pipeline document against a block catalog and report every problem found.

:func:`validate_document` never raises on JSON input. It returns a list of :class:`ValidationIssue`
in document order; an empty list means the document can be parsed with
:func:`engine.document.parse_document` and run. Each issue has a stable ``code`` (see :data:`CODES`)
and an RFC 6901 ``pointer`` into the document.

Checks that depend on an earlier failure are skipped instead of piling up noise: an edge into a
node whose block is unknown is not checked for ports, an input port fed by a broken edge is not
also reported missing, and broken edges take no part in cycle detection. A document over a size
limit is reported as such and not examined further.

Duplicate node ids: the first node with an id owns it. Later nodes with the same id are still
checked on their own (block, version, parameters) but edges always refer to the first one, so they
take no part in the edge and graph checks.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema
from jsonschema.protocols import Validator

from engine.document import (
    DOCUMENT_KEYS,
    DOCUMENT_OPTIONAL_KEYS,
    EDGE_KEYS,
    FORMAT,
    NODE_ID_PATTERN,
    NODE_KEYS,
    NODE_OPTIONAL_KEYS,
    POSITION_KEYS,
    TARGET_PATTERN,
    VERSION,
    escape_pointer_token,
    is_number,
)
from engine.extents import Extent, data_extents
from engine.graph import find_cycles
from engine.quantities import Connection, SourceDescriber, check_quantities

__all__ = [
    "CODES", "Catalog", "Limits", "ValidationIssue", "ports_compatible", "validate_document",
    "validate_document_with_choices", "validate_document_for_editor", "EditorCheck",
]  # fmt: skip

Catalog = Mapping[str, Mapping[str, Mapping[str, Any]]]
"""Block id -> version -> spec dictionary, as produced by ``blocks.spec.BlockSpec.to_dict``."""

CODES = (
    "document.not_object",
    "document.unsupported_format",
    "document.malformed",
    "document.too_large",
    "document.too_many_nodes",
    "document.too_many_edges",
    "node.duplicate_id",
    "node.unknown_block",
    "node.unknown_version",
    "node.invalid_params",
    "edge.unknown_node",
    "edge.unknown_port",
    "edge.type_mismatch",
    "edge.duplicate",
    "edge.input_taken",
    "graph.cycle",
    "input.missing",
    "edge.quantity_mismatch",
    "edge.units_unconvertible",
    "edge.units_mismatch",
    "node.unknown_variable",
    "edge.calendar_mismatch",
)
"""Every issue code :func:`validate_document` can produce."""

_MESSAGE_LIMIT = 300


def ports_compatible(output_type: str, input_type: str) -> bool:
    """Whether an output of ``output_type`` may feed an input of ``input_type`` (as ``blocks.types``)."""
    return input_type == "any" or output_type == input_type


@dataclass(frozen=True)
class Limits:
    """Bounds on what is examined; ``max_bytes`` counts compact JSON (``separators=(",", ":")``)."""

    max_nodes: int = 500
    max_edges: int = 2000
    max_bytes: int = 1_000_000


@dataclass(frozen=True, kw_only=True)
class ValidationIssue:
    """One problem with a document.

    ``node`` and ``port`` name the node and port the problem is about, when there is one;
    ``details`` holds machine-readable extras (for example ``{"cycle": ["a", "b"]}``).
    """

    code: str
    pointer: str
    node: str | None = None
    port: str | None = None
    message: str
    details: dict[str, Any] = field(default_factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "pointer": self.pointer,
            "node": self.node,
            "port": self.port,
            "message": self.message,
            "details": json.loads(json.dumps(self.details)),
        }


def validate_document(
    document: object,
    catalog: Catalog,
    *,
    limits: Limits = Limits(),
    compatible: Callable[[str, str], bool] = ports_compatible,
    describe_source: SourceDescriber | None = None,
) -> list[ValidationIssue]:
    """Every problem found in ``document`` (parsed JSON), in document order; ``[]`` if valid.

    ``compatible(output_type, input_type)`` decides whether two port types may be connected.
    ``describe_source(source)`` returns the CF metadata of what a source parameter names
    (``{"variables": {name: attrs}, "calendar": ...}``) or None when unknown; with it, units and
    quantities are checked along the wires (see :mod:`engine.quantities`) from the sources on.
    Without it they are still checked from what the blocks declare.
    """
    return _Validator(catalog, limits, compatible, describe_source).run(document)


def validate_document_with_choices(
    document: object,
    catalog: Catalog,
    *,
    limits: Limits = Limits(),
    describe_source: SourceDescriber | None = None,
) -> tuple[list[ValidationIssue], dict[str, dict[str, list[str]]]]:
    """:func:`validate_document`'s issues, and what each variable- or column-naming parameter can
    name where the data are known: ``{node id: {parameter: [names]}}`` (see
    :func:`engine.quantities.check_quantities`)."""
    check = validate_document_for_editor(document, catalog, limits=limits, describe_source=describe_source)
    return check.issues, check.choices


@dataclass(frozen=True)
class EditorCheck:
    """What the editor learns from one validation: the issues, the names each variable- or
    column-naming parameter can choose from (``{node id: {parameter: [names]}}``), and the extent of
    the data each node with area or time parameters works on (``{node id: extent}``, see
    :mod:`engine.extents`)."""

    issues: list[ValidationIssue]
    choices: dict[str, dict[str, list[str]]]
    extents: dict[str, Extent]


def validate_document_for_editor(
    document: object,
    catalog: Catalog,
    *,
    limits: Limits = Limits(),
    describe_source: SourceDescriber | None = None,
) -> EditorCheck:
    """:func:`validate_document`'s issues with what the editor offers for parameters where the data
    are known (an acyclic graph whose blocks declare what their ports carry)."""
    validator = _Validator(catalog, limits, ports_compatible, describe_source)
    validator.want_extents = True
    issues = validator.run(document)
    return EditorCheck(issues, validator.choices, validator.extents)


@dataclass(frozen=True)
class _Block:
    inputs: dict[str, Mapping[str, Any]]
    outputs: dict[str, Mapping[str, Any]]
    validator: Validator


@dataclass(frozen=True)
class _Node:
    index: int
    id: str | None
    block: _Block | None
    owns_id: bool


class _Validator:
    def __init__(
        self,
        catalog: Catalog,
        limits: Limits,
        compatible: Callable[[str, str], bool],
        describe_source: SourceDescriber | None = None,
    ) -> None:
        self.catalog = catalog
        self.describe_source = describe_source
        # Well-formed, type-compatible edges between known blocks: the wires quantities travel on.
        self.connections: list[Connection] = []
        self.limits = limits
        self.compatible = compatible
        self.issues: list[ValidationIssue] = []
        self.choices: dict[str, dict[str, list[str]]] = {}
        self.want_extents = False
        self.extents: dict[str, Extent] = {}
        self.nodes: list[_Node] = []
        self.owner: dict[str, _Node] = {}
        # Ids that are strings but syntactically invalid: already reported, so edges naming them
        # are skipped rather than reported as pointing at an unknown node.
        self.invalid_ids: set[str] = set()
        self.seen_connections: dict[tuple[str, str, str, str], int] = {}
        self.input_sources: dict[tuple[str, str], int] = {}
        # Input ports some edge points at, even a broken one: those are not reported missing.
        # None stands for "any", when a malformed edge leaves the node or port unknown.
        self.fed_inputs: set[tuple[str | None, str | None]] = set()
        self.nodes_listed = False
        self.graph_edges: list[tuple[str, str]] = []
        self.blocks: dict[tuple[str, str], _Block] = {}
        self.specs: dict[str, tuple[Mapping[str, Any], Any, Any]] = {}

    def add(
        self,
        code: str,
        pointer: str,
        message: str,
        *,
        node: str | None = None,
        port: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        if len(message) > _MESSAGE_LIMIT:
            message = message[: _MESSAGE_LIMIT - 1] + "…"
        message = message[:1].upper() + message[1:]
        if not message.endswith((".", "?")):
            message += "."
        self.issues.append(
            ValidationIssue(
                code=code, pointer=pointer, node=node, port=port, message=message, details=details or {}
            )
        )

    def malformed(self, pointer: str, message: str, *, node: str | None = None) -> None:
        self.add("document.malformed", pointer, message, node=node)

    def run(self, document: object) -> list[ValidationIssue]:
        if not isinstance(document, dict):
            self.add("document.not_object", "", f"the document must be a JSON object, not {_kind(document)}")
            return self.issues
        if not self.check_envelope(document):
            return self.issues
        for key in document:
            if key not in DOCUMENT_KEYS and key not in DOCUMENT_OPTIONAL_KEYS:
                self.malformed(_pointer(key), f"unknown top-level key {_show(key)}")
        if "metadata" in document and not isinstance(document["metadata"], dict):
            metadata = document["metadata"]
            self.malformed("/metadata", f"the document's 'metadata' must be an object, not {_kind(metadata)}")
        nodes, edges = document.get("nodes"), document.get("edges")
        self.nodes_listed = self.check_list(document, "nodes")
        if self.nodes_listed:
            for index, raw in enumerate(nodes):
                self.check_node(index, raw)
        if self.check_list(document, "edges"):
            for index, raw in enumerate(edges):
                self.check_edge(index, raw)
            self.check_graph()
        rank = {key: position for position, key in enumerate(document)}
        self.issues.sort(key=lambda issue: _document_order(issue.pointer, rank))
        return self.issues

    def check_envelope(self, document: dict[str, Any]) -> bool:
        """Format and size limits; False if the rest of the document should not be examined."""
        try:
            # ensure_ascii (the default) makes the character count the byte count.
            size = len(json.dumps(document, separators=(",", ":")))
        except (TypeError, ValueError, RecursionError) as error:
            self.malformed("", f"the document cannot be serialised as JSON ({_clip(str(error))})")
            return False
        if size > self.limits.max_bytes:
            self.add(
                "document.too_large",
                "",
                f"the document is {size} bytes of JSON, over the limit of {self.limits.max_bytes}",
                details={"bytes": size, "limit": self.limits.max_bytes},
            )
            return False
        found_format, found_version = document.get("format"), document.get("version")
        if found_format != FORMAT or type(found_version) is not int or found_version != VERSION:
            wrong = "format" if found_format != FORMAT else "version"
            self.add(
                "document.unsupported_format",
                f"/{wrong}",
                f"the document has format {_show(found_format)} version {_show(found_version)}, "
                f"but only format {FORMAT!r} version {VERSION} is supported",
            )
            return False
        within_limits = True
        for key, limit, code in (
            ("nodes", self.limits.max_nodes, "document.too_many_nodes"),
            ("edges", self.limits.max_edges, "document.too_many_edges"),
        ):
            items = document.get(key)
            if isinstance(items, list) and len(items) > limit:
                self.add(
                    code,
                    f"/{key}",
                    f"the document has {len(items)} {key}, over the limit of {limit}",
                    details={"count": len(items), "limit": limit},
                )
                within_limits = False
        return within_limits

    def check_list(self, document: dict[str, Any], key: str) -> bool:
        if key not in document:
            self.malformed(f"/{key}", f"the document has no {key!r} list")
            return False
        if not isinstance(document[key], list):
            found = _kind(document[key])
            self.malformed(f"/{key}", f"the document's {key!r} must be a list, not {found}")
            return False
        return True

    def check_node(self, index: int, raw: object) -> None:
        pointer = f"/nodes/{index}"
        if not isinstance(raw, dict):
            self.malformed(pointer, f"node {index} must be an object, not {_kind(raw)}")
            return
        node_id = self.check_node_id(index, raw)
        name = f"node {node_id!r}" if node_id is not None else f"node {index}"
        for key in raw:
            if key not in NODE_KEYS and key not in NODE_OPTIONAL_KEYS:
                self.malformed(
                    _pointer("nodes", index, key), f"{name} has unknown key {_show(key)}", node=node_id
                )
        for key in ("block", "version"):
            if key not in raw:
                self.malformed(f"{pointer}/{key}", f"{name} has no {key!r}", node=node_id)
            elif not isinstance(raw[key], str):
                self.malformed(
                    f"{pointer}/{key}",
                    f"{name} {key!r} must be a string, not {_kind(raw[key])}",
                    node=node_id,
                )
        params = raw.get("params", {})
        if not isinstance(params, dict):
            self.malformed(
                f"{pointer}/params", f"{name} 'params' must be an object, not {_kind(params)}", node=node_id
            )
        self.check_position(pointer, name, node_id, raw)
        if "label" in raw and not isinstance(raw["label"], str):
            self.malformed(
                f"{pointer}/label",
                f"{name} 'label' must be a string, not {_kind(raw['label'])}",
                node=node_id,
            )
        target = raw.get("target")
        if "target" in raw and not (isinstance(target, str) and TARGET_PATTERN.fullmatch(target)):
            self.malformed(
                f"{pointer}/target",
                f"{name} 'target' must be a compute target's name (letters, digits, '-' or '_'), "
                f"not {_show(raw['target'])}",
                node=node_id,
            )

        owns_id = False
        if node_id is not None:
            first = self.owner.get(node_id)
            if first is None:
                owns_id = True
            else:
                self.add(
                    "node.duplicate_id",
                    f"{pointer}/id",
                    f"node id {node_id!r} at index {index} is already used by node {first.index}",
                    node=node_id,
                    details={"first": first.index},
                )
        block = None
        block_id, version = raw.get("block"), raw.get("version")
        if isinstance(block_id, str) and isinstance(version, str):
            block = self.resolve_block(pointer, name, node_id, block_id, version)
        if block is not None and isinstance(params, dict):
            self.check_params(pointer, name, node_id, block, params)
        node = _Node(index=index, id=node_id, block=block, owns_id=owns_id)
        self.nodes.append(node)
        if owns_id and node_id is not None:
            self.owner[node_id] = node
            if block is not None:
                self.specs[node_id] = (self.catalog[block_id][version], params, raw.get("label"))

    def check_node_id(self, index: int, raw: dict[str, Any]) -> str | None:
        pointer = f"/nodes/{index}/id"
        if "id" not in raw:
            self.malformed(pointer, f"node {index} has no 'id'")
            return None
        node_id = raw["id"]
        if not isinstance(node_id, str):
            self.malformed(pointer, f"node {index} 'id' must be a string, not {_kind(node_id)}")
            return None
        if not NODE_ID_PATTERN.fullmatch(node_id):
            self.invalid_ids.add(node_id)
            self.malformed(
                pointer,
                f"node {index} id {_show(node_id)} is invalid: use 1 to 64 letters, digits, '_' or '-', "
                "starting with a letter",
            )
            return None
        return node_id

    def check_position(self, pointer: str, name: str, node_id: str | None, raw: dict[str, Any]) -> None:
        if "position" not in raw:
            return
        position = raw["position"]
        pointer += "/position"
        if not isinstance(position, dict):
            self.malformed(
                pointer, f"{name} 'position' must be an object, not {_kind(position)}", node=node_id
            )
            return
        for key in position:
            if key not in POSITION_KEYS:
                self.malformed(
                    f"{pointer}/{escape_pointer_token(key)}",
                    f"{name} position has unknown key {_show(key)}",
                    node=node_id,
                )
        for key in POSITION_KEYS:
            if key not in position:
                self.malformed(f"{pointer}/{key}", f"{name} position has no {key!r}", node=node_id)
            elif not is_number(position[key]):
                self.malformed(
                    f"{pointer}/{key}",
                    f"{name} position {key!r} must be a finite number, not {_kind(position[key])}",
                    node=node_id,
                )

    def resolve_block(
        self, pointer: str, name: str, node_id: str | None, block_id: str, version: str
    ) -> _Block | None:
        versions = self.catalog.get(block_id)
        if versions is None:
            suggestions = (
                difflib.get_close_matches(block_id, list(self.catalog), n=3, cutoff=0.8)
                if len(block_id) <= 100
                else []
            )
            hint = f"; did you mean {' or '.join(map(repr, suggestions))}?" if suggestions else ""
            self.add(
                "node.unknown_block",
                f"{pointer}/block",
                f"{name} uses unknown block {_show(block_id)}{hint}",
                node=node_id,
                details={"block": _clip(block_id), "suggestions": suggestions},
            )
            return None
        spec = versions.get(version)
        if spec is None:
            known = sorted(versions, key=_version_key)
            self.add(
                "node.unknown_version",
                f"{pointer}/version",
                f"{name} uses version {_show(version)} of block {block_id!r}, which does not exist "
                f"(known versions: {', '.join(known) or 'none'})",
                node=node_id,
                details={"block": block_id, "version": _clip(version), "known_versions": known},
            )
            return None
        key = (block_id, version)
        if key not in self.blocks:
            self.blocks[key] = _Block(
                inputs={port["name"]: port for port in spec.get("inputs", ())},
                outputs={port["name"]: port for port in spec.get("outputs", ())},
                validator=jsonschema.Draft202012Validator(
                    spec.get("parameters", {}), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
                ),
            )
        return self.blocks[key]

    def check_params(
        self, pointer: str, name: str, node_id: str | None, block: _Block, params: dict[str, Any]
    ) -> None:
        properties = block.validator.schema.get("properties") or {}

        def called(param: str, path: list) -> str:
            """How the form calls a parameter: its title, with its name (and place in a list)."""
            title = (properties.get(param) or {}).get("title") if isinstance(properties, dict) else None
            spelled = "/".join(map(str, path))
            return f"{title} ({spelled})" if isinstance(title, str) and title else f"parameter {spelled!r}"

        # One ``required`` error per missing parameter, in the schema's order: name each in turn.
        required = block.validator.schema.get("required") or []
        missing_params = iter([p for p in required if isinstance(p, str) and p not in params])
        for error in block.validator.iter_errors(params):
            path = list(error.path)
            if not path and error.validator == "required":  # name the missing parameter, not "the parameters"
                missing = next(missing_params, None)
                if missing is not None:
                    self.add(
                        "node.invalid_params",
                        f"{pointer}/params",
                        f"{called(missing, [missing])} of {name} is required",
                        node=node_id,
                        details={"keyword": "required", "schema_path": "/required"},
                    )
                    continue
            where = "".join("/" + escape_pointer_token(part) for part in path)
            if path:
                subject = f"{called(path[0], path)} of {name}"
            else:
                subject = f"the parameters of {name} are invalid"
            self.add(
                "node.invalid_params",
                f"{pointer}/params{where}",
                f"{subject}: {_clip(error.message, 200)}",
                node=node_id,
                details={
                    "keyword": error.validator,
                    "schema_path": "/" + "/".join(escape_pointer_token(part) for part in error.schema_path),
                },
            )

    def check_edge(self, index: int, raw: object) -> None:
        pointer = f"/edges/{index}"
        if not isinstance(raw, dict):
            self.malformed(pointer, f"edge {index} must be an object, not {_kind(raw)}")
            self.fed_inputs.add((None, None))
            return
        target, target_port = raw.get("target"), raw.get("target_port")
        self.fed_inputs.add(
            (
                target if isinstance(target, str) else None,
                target_port if isinstance(target_port, str) else None,
            )
        )
        well_formed = True
        for key in raw:
            if key not in EDGE_KEYS:
                self.malformed(_pointer("edges", index, key), f"edge {index} has unknown key {_show(key)}")
        for key in EDGE_KEYS:
            if key not in raw:
                self.malformed(f"{pointer}/{key}", f"edge {index} has no {key!r}")
                well_formed = False
            elif not isinstance(raw[key], str):
                self.malformed(
                    f"{pointer}/{key}", f"edge {index} {key!r} must be a string, not {_kind(raw[key])}"
                )
                well_formed = False
        if well_formed:
            self.check_connection(index, raw["source"], raw["source_port"], raw["target"], raw["target_port"])

    def check_connection(
        self, index: int, source: str, source_port: str, target: str, target_port: str
    ) -> None:
        pointer = f"/edges/{index}"
        connection = (source, source_port, target, target_port)
        first = self.seen_connections.get(connection)
        if first is not None:
            self.add(
                "edge.duplicate",
                pointer,
                f"edge {index} repeats edge {first} ({_clip(source)}.{_clip(source_port)} → "
                f"{_clip(target)}.{_clip(target_port)})",
                details={"first": first},
            )
            return
        self.seen_connections[connection] = index
        if not self.nodes_listed:
            return

        ends = []
        for end, node_id in (("source", source), ("target", target)):
            node = self.owner.get(node_id)
            if node is None and node_id not in self.invalid_ids:
                self.add(
                    "edge.unknown_node",
                    f"{pointer}/{end}",
                    f"edge {index} {end} {_show(node_id)} is not a node of this pipeline",
                    details={"node": _clip(node_id), "end": end},
                )
            ends.append(node)
        source_node, target_node = ends
        if source_node is None or target_node is None:
            return

        output = self.find_port(index, "source", source_node, source_port, "output")
        input_ = self.find_port(index, "target", target_node, target_port, "input")
        if input_ is False:
            self.fed_inputs.add((target, None))
        if output is False or input_ is False:
            return
        if output is not None and input_ is not None:
            output_type, input_type = output.get("type"), input_.get("type")
            compatible = self.compatible(output_type, input_type)
            if compatible and (target, target_port) not in self.input_sources:
                self.connections.append(Connection(index, source, source_port, target, target_port))
            if not compatible:
                self.add(
                    "edge.type_mismatch",
                    pointer,
                    f"edge {index} connects output {source_port!r} of node {source!r} (type {output_type!r}) "
                    f"to input {target_port!r} of node {target!r} (type {input_type!r}), which do not match",
                    node=target,
                    port=target_port,
                    details={"output_type": output_type, "input_type": input_type},
                )
        taken_by = self.input_sources.get((target, target_port))
        if taken_by is not None:
            self.add(
                "edge.input_taken",
                f"{pointer}/target_port",
                f"edge {index} feeds input {target_port!r} of node {target!r}, which edge {taken_by} "
                "already feeds",
                node=target,
                port=target_port,
                details={"first": taken_by},
            )
        else:
            self.input_sources[(target, target_port)] = index
        self.graph_edges.append((source, target))

    def find_port(
        self, index: int, end: str, node: _Node, port: str, direction: str
    ) -> Mapping[str, Any] | None | bool:
        """The port's spec; None if the node's block is unknown; False (and reported) if no such port."""
        if node.block is None:
            return None
        ports = node.block.outputs if direction == "output" else node.block.inputs
        if port in ports:
            return ports[port]
        self.add(
            "edge.unknown_port",
            f"/edges/{index}/{end}_port",
            f"edge {index} uses {direction} {_show(port)} of node {node.id!r}, which has no such port "
            f"({direction}s: {', '.join(ports) or 'none'})",
            node=node.id,
            port=_clip(port),
            details={"direction": direction, "ports": list(ports)},
        )
        return False

    def check_graph(self) -> None:
        ids = [node.id for node in self.nodes if node.owns_id and node.id is not None]
        cycles = find_cycles(ids, self.graph_edges)
        if not cycles:
            self.check_quantities(ids)
        for cycle in cycles:
            first = self.owner[cycle[0]]
            self.add(
                "graph.cycle",
                f"/nodes/{first.index}",
                f"nodes form a cycle: {_render_cycle(cycle)}",
                node=cycle[0],
                details={"cycle": cycle},
            )
        for node in self.nodes:
            if node.block is None or not node.owns_id or node.id is None:
                continue
            for port_name, port in node.block.inputs.items():
                if port.get("required", True) and not self.is_fed(node.id, port_name):
                    self.add(
                        "input.missing",
                        f"/nodes/{node.index}",
                        f"required input {port_name!r} of node {node.id!r} is not connected",
                        node=node.id,
                        port=port_name,
                    )

    def check_quantities(self, ids: list[str]) -> None:
        """Units and physical quantities along the wires; only on an acyclic graph."""
        specs = self.specs
        known = [(self.owner[node_id].index, node_id, *specs[node_id]) for node_id in ids if node_id in specs]
        if not any(
            "quantity" in port
            for spec, *_ in specs.values()
            for port in (*spec.get("inputs", ()), *spec.get("outputs", ()))
        ):
            return
        order = _topological(ids, [(c.source, c.target) for c in self.connections])
        for finding in check_quantities(known, self.connections, order, self.describe_source, self.choices):
            self.add(finding.code, finding.pointer, finding.message, node=finding.node, port=finding.port,
                     details=finding.details)
        if self.want_extents:
            nodes = ((node_id, specs[node_id][0], specs[node_id][1]) for node_id in ids if node_id in specs)
            self.extents = data_extents(nodes, self.connections, order, self.describe_source)

    def is_fed(self, node_id: str, port: str) -> bool:
        return any(
            (candidate_node, candidate_port) in self.fed_inputs
            for candidate_node in (node_id, None)
            for candidate_port in (port, None)
        )


def _topological(ids: list[str], edges: list[tuple[str, str]]) -> list[str]:
    """``ids`` with every edge's source before its target (the graph has no cycle), stable."""
    waiting = {node_id: 0 for node_id in ids}
    after: dict[str, list[str]] = {node_id: [] for node_id in ids}
    for source, target in edges:
        if source in waiting and target in waiting:
            waiting[target] += 1
            after[source].append(target)
    ready = [node_id for node_id in ids if waiting[node_id] == 0]
    order: list[str] = []
    while ready:
        node_id = ready.pop(0)
        order.append(node_id)
        for target in after[node_id]:
            waiting[target] -= 1
            if waiting[target] == 0:
                ready.append(target)
    return order


def _render_cycle(cycle: list[str]) -> str:
    """``a → b → c → a``, with the middle of a long cycle elided."""
    if len(cycle) > 8:
        shown = [*cycle[:3], f"… ({len(cycle) - 6} more)", *cycle[-3:]]
    else:
        shown = cycle
    return " → ".join([*shown, cycle[0]])


def _pointer(*tokens: object) -> str:
    return "".join("/" + escape_pointer_token(token) for token in tokens)


def _document_order(pointer: str, rank: Mapping[str, int]) -> tuple[int, int]:
    if not pointer:
        return (-1, -1)
    tokens = pointer.split("/")[1:]
    key = tokens[0].replace("~1", "/").replace("~0", "~")
    item = int(tokens[1]) if len(tokens) > 1 and key in ("nodes", "edges") and tokens[1].isdigit() else -1
    return (rank.get(key, len(rank)), item)


def _version_key(version: str) -> tuple[int, tuple[int, ...], str]:
    match = re.match(r"(\d+)\.(\d+)\.(\d+)", version)
    if match:
        return (0, tuple(int(part) for part in match.groups()), version)
    return (1, (), version)


def _clip(text: str, limit: int = 64) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _show(value: object) -> str:
    """A short rendering of a user-supplied value for a message."""
    if isinstance(value, str):
        return repr(_clip(value, 40))
    if value is None or isinstance(value, (bool, int, float)):
        return _clip(json.dumps(value), 40)
    return _kind(value)


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"
