"""The pipeline document: the JSON a user saves, and the frozen objects it parses into.

A document looks like::

    {"format": "iliad.pipeline", "version": 1,
     "nodes": [{"id": "subset", "block": "ocean.subset", "version": "1.0.0",
                "params": {"lat_min": 41}, "position": {"x": 120, "y": 40}, "label": "Subset"}],
     "edges": [{"source": "demo", "source_port": "dataset",
                "target": "subset", "target_port": "dataset"}],
     "metadata": {}}

:func:`engine.validation.validate_document` reports everything wrong with a document;
:func:`parse_document` turns a document that passed validation into a :class:`PipelineDocument`.
The structural rules (keys, id syntax) are defined here once and shared with validation.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

FORMAT = "iliad.pipeline"
VERSION = 1

NODE_ID_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
"""Node ids: 1–64 letters, digits, ``_`` or ``-``, starting with a letter (use with ``fullmatch``)."""

DOCUMENT_KEYS = ("format", "version", "nodes", "edges")
DOCUMENT_OPTIONAL_KEYS = ("metadata",)
NODE_KEYS = ("id", "block", "version")
NODE_OPTIONAL_KEYS = ("params", "position", "label", "target")
TARGET_PATTERN = re.compile(r"[-a-zA-Z0-9_]{1,64}")
"""Compute target names (a node's optional ``target``; use with ``fullmatch``)."""
EDGE_KEYS = ("source", "source_port", "target", "target_port")
POSITION_KEYS = ("x", "y")


class DocumentError(ValueError):
    """A document cannot be parsed; ``pointer`` is the JSON pointer of the offending location."""

    def __init__(self, message: str, pointer: str) -> None:
        super().__init__(message)
        self.pointer = pointer


@dataclass(frozen=True)
class Position:
    """Where the editor draws a node; irrelevant to execution."""

    x: float = 0
    y: float = 0


@dataclass(frozen=True)
class Node:
    """One step of a pipeline: a block at a pinned version with its parameters.

    ``params`` is a private copy of the document's object; treat it as read-only.
    """

    id: str
    block: str
    version: str
    params: dict[str, Any] = field(default_factory=dict, hash=False)
    position: Position = Position()
    label: str | None = None
    target: str | None = None
    """The compute target this step runs on; None: the run's."""

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "id": self.id,
            "block": self.block,
            "version": self.version,
            "params": _copy(self.params),
            "position": {"x": self.position.x, "y": self.position.y},
        }
        if self.label is not None:
            result["label"] = self.label
        if self.target is not None:
            result["target"] = self.target
        return result


@dataclass(frozen=True)
class Edge:
    """A connection from an output port of ``source`` to an input port of ``target``."""

    source: str
    source_port: str
    target: str
    target_port: str

    def to_dict(self) -> dict[str, str]:
        return {
            "source": self.source,
            "source_port": self.source_port,
            "target": self.target,
            "target_port": self.target_port,
        }


@dataclass(frozen=True)
class PipelineDocument:
    """A parsed pipeline document. Nodes and edges keep document order."""

    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict, hash=False)

    def node(self, node_id: str) -> Node:
        """The node with id ``node_id``; KeyError if there is none."""
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(node_id)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, with defaults written out; parsing it again gives an equal document."""
        result: dict[str, Any] = {
            "format": FORMAT,
            "version": VERSION,
            "nodes": [node.to_dict() for node in self.nodes],
            "edges": [edge.to_dict() for edge in self.edges],
        }
        if self.metadata:
            result["metadata"] = _copy(self.metadata)
        return result


def is_number(value: object) -> bool:
    """Whether ``value`` is a finite JSON number (booleans are not numbers here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def parse_document(document: object) -> PipelineDocument:
    """Parse a document that passed :func:`~engine.validation.validate_document`.

    Only structure is checked, and only up to the first problem, which raises
    :class:`DocumentError`; catalog rules (blocks, ports, cycles) are not checked at all.
    """
    root = _object(document, "", "the document")
    for key in root:
        if key not in DOCUMENT_KEYS and key not in DOCUMENT_OPTIONAL_KEYS:
            raise DocumentError(f"unknown top-level key {key!r}", "/" + escape_pointer_token(key))
    if root.get("format") != FORMAT or type(root.get("version")) is not int or root["version"] != VERSION:
        raise DocumentError(f"not an {FORMAT!r} document of version {VERSION}", "/format")
    nodes = tuple(_parse_node(raw, f"/nodes/{index}") for index, raw in enumerate(_list(root, "nodes")))
    edges = tuple(_parse_edge(raw, f"/edges/{index}") for index, raw in enumerate(_list(root, "edges")))
    seen: set[str] = set()
    for index, node in enumerate(nodes):
        if node.id in seen:
            raise DocumentError(f"duplicate node id {node.id!r}", f"/nodes/{index}/id")
        seen.add(node.id)
    metadata = _object(root.get("metadata", {}), "/metadata", "'metadata'")
    return PipelineDocument(nodes=nodes, edges=edges, metadata=_copy(dict(metadata)))


def _copy(value: Any) -> Any:
    # Through the C JSON codec: faster than deepcopy and safe for nesting as deep as json.loads allows.
    return json.loads(json.dumps(value))


def escape_pointer_token(token: object) -> str:
    """One reference token of an RFC 6901 JSON pointer."""
    return str(token).replace("~", "~0").replace("/", "~1")


def _object(value: object, pointer: str, what: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise DocumentError(f"{what} must be an object", pointer)
    return value


def _list(root: Mapping[str, Any], key: str) -> list[Any]:
    value = root.get(key)
    if not isinstance(value, list):
        raise DocumentError(f"{key!r} must be a list", f"/{key}")
    return value


def _string(raw: Mapping[str, Any], key: str, pointer: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str):
        raise DocumentError(f"{key!r} must be a string", f"{pointer}/{key}")
    return value


def _check_keys(raw: Mapping[str, Any], allowed: tuple[str, ...], pointer: str) -> None:
    for key in raw:
        if key not in allowed:
            raise DocumentError(f"unknown key {key!r}", f"{pointer}/{escape_pointer_token(key)}")


def _parse_node(raw: object, pointer: str) -> Node:
    node = _object(raw, pointer, "a node")
    _check_keys(node, NODE_KEYS + NODE_OPTIONAL_KEYS, pointer)
    node_id = _string(node, "id", pointer)
    if not NODE_ID_PATTERN.fullmatch(node_id):
        raise DocumentError(f"invalid node id {node_id[:64]!r}", f"{pointer}/id")
    params = _object(node.get("params", {}), f"{pointer}/params", "'params'")
    position = _object(node.get("position", {"x": 0, "y": 0}), f"{pointer}/position", "'position'")
    _check_keys(position, POSITION_KEYS, f"{pointer}/position")
    for key in POSITION_KEYS:
        if not is_number(position.get(key)):
            raise DocumentError(f"position {key!r} must be a number", f"{pointer}/position/{key}")
    label = node.get("label")
    if "label" in node and not isinstance(label, str):
        raise DocumentError("'label' must be a string", f"{pointer}/label")
    target = node.get("target")
    if "target" in node and not (isinstance(target, str) and TARGET_PATTERN.fullmatch(target)):
        raise DocumentError("'target' must be a compute target's name", f"{pointer}/target")
    return Node(
        id=node_id,
        block=_string(node, "block", pointer),
        version=_string(node, "version", pointer),
        params=_copy(dict(params)),
        position=Position(position["x"], position["y"]),
        label=label,
        target=target,
    )


def _parse_edge(raw: object, pointer: str) -> Edge:
    edge = _object(raw, pointer, "an edge")
    _check_keys(edge, EDGE_KEYS, pointer)
    return Edge(*(_string(edge, key, pointer) for key in EDGE_KEYS))
