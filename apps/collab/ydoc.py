"""The pipeline document as a Yjs document, the same shape the editor (frontend/src/collab/ydoc.js) uses:

- map ``nodes``: node id -> map {block, version, x, y, label?, target?, params: map name -> JSON text}
- array ``order``: node ids in document order (concurrent additions both stay; read deduplicated)
- array ``edges``: JSON text of {source, source_port, target, target_port} (read deduplicated)
- map ``meta``: ``metadata`` (JSON text of the document's metadata) and ``saved`` (the last version
  saved, as JSON text of {number, by, at})

Values are JSON text where key order matters (Yjs maps do not keep it), so a document goes through
the shared document unchanged, byte for byte.

Pure functions on pycrdt, no Django.
"""

from __future__ import annotations

import json
from typing import Any

from pycrdt import Array, Doc, Map

FORMAT = "iliad.pipeline"
EDGE_KEYS = ("source", "source_port", "target", "target_port")
OPTIONAL_FIELDS = ("label", "target")
"""Node fields besides block, version, params and position (a node's compute target among them)."""
SEED_CLIENT_ID = 1
"""Seeds are written by this Yjs client id, so two servers that seed the same version at once write
identical updates, which Yjs merges into one."""


def _text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _fill_node(fields: Map, node: dict) -> None:
    """Sets one key after the other: a prelim Map of a dict would integrate in hash order, and two
    seeds of one version would differ."""
    fields["block"] = node.get("block")
    fields["version"] = node.get("version")
    position = node.get("position")
    if isinstance(position, dict):
        fields["x"] = position.get("x")
        fields["y"] = position.get("y")
    for key in OPTIONAL_FIELDS:
        if node.get(key) is not None:
            fields[key] = node[key]
    fields["params"] = Map()
    params = node.get("params")
    for name, value in (params if isinstance(params, dict) else {}).items():
        fields["params"][name] = _text(value)


def seed_update(document: dict | None) -> bytes:
    """The Yjs update that fills an empty shared document with ``document`` (a pipeline version)."""
    doc = Doc(client_id=SEED_CLIENT_ID)
    nodes, order = doc.get("nodes", type=Map), doc.get("order", type=Array)
    edges, meta = doc.get("edges", type=Array), doc.get("meta", type=Map)
    document = document if isinstance(document, dict) else {}
    with doc.transaction():
        for node in document.get("nodes") or []:
            if isinstance(node, dict) and isinstance(node.get("id"), str) and node["id"] not in nodes:
                nodes[node["id"]] = Map()
                _fill_node(nodes[node["id"]], node)
                order.append(node["id"])
        for edge in document.get("edges") or []:
            if isinstance(edge, dict):
                edges.append(_text({key: edge.get(key) for key in EDGE_KEYS}))
        if isinstance(document.get("metadata"), dict):
            meta["metadata"] = _text(document["metadata"])
    return doc.get_update()


def _number(value: Any) -> Any:
    """Yjs numbers arrive as floats; positions are whole pixels."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def document_of(doc: Doc) -> dict:
    """The pipeline document the shared document holds now (what a save snapshots)."""
    nodes, order = doc.get("nodes", type=Map), doc.get("order", type=Array)
    edges, meta = doc.get("edges", type=Array), doc.get("meta", type=Map)
    out_nodes, seen = [], set()
    for node_id in list(order):
        if node_id in seen or node_id not in nodes:
            continue
        seen.add(node_id)
        fields = nodes[node_id]
        params = fields["params"] if "params" in fields else {}
        node = {
            "id": node_id,
            "block": fields.get("block"),
            "version": fields.get("version"),
            "params": {name: json.loads(params[name]) for name in params},
        }
        if "x" in fields and "y" in fields:
            node["position"] = {"x": _number(fields["x"]), "y": _number(fields["y"])}
        for key in OPTIONAL_FIELDS:
            if fields.get(key) is not None:
                node[key] = fields[key]
        out_nodes.append(node)
    out_edges, edge_keys = [], set()
    for text in list(edges):
        if text not in edge_keys:
            edge_keys.add(text)
            out_edges.append(json.loads(text))
    document = {"format": FORMAT, "version": 1, "nodes": out_nodes, "edges": out_edges}
    if "metadata" in meta:
        document["metadata"] = json.loads(meta["metadata"])
    return document


def apply_version_change(doc: Doc, old: dict | None, new: dict) -> bytes:
    """Replay what changed from version ``old`` to version ``new`` onto the shared document, field by
    field and parameter by parameter, so live edits elsewhere stay. Returns the Yjs update written
    (empty changes give an update that changes nothing)."""
    old = old if isinstance(old, dict) else {}
    before = doc.get_state()
    nodes, order = doc.get("nodes", type=Map), doc.get("order", type=Array)
    edges, meta = doc.get("edges", type=Array), doc.get("meta", type=Map)
    old_nodes = {
        n["id"]: n for n in old.get("nodes") or [] if isinstance(n, dict) and isinstance(n.get("id"), str)
    }
    new_nodes = {
        n["id"]: n for n in new.get("nodes") or [] if isinstance(n, dict) and isinstance(n.get("id"), str)
    }
    with doc.transaction():
        for node_id in old_nodes.keys() - new_nodes.keys():
            if node_id in nodes:
                del nodes[node_id]
            for index in reversed([i for i, value in enumerate(list(order)) if value == node_id]):
                del order[index]
        for node_id, node in new_nodes.items():
            if node_id not in nodes:
                nodes[node_id] = Map()
                _fill_node(nodes[node_id], node)
                if node_id not in list(order):
                    order.append(node_id)
                continue
            _replay_node(nodes[node_id], old_nodes.get(node_id, {}), node)
        old_edges = {_edge_text(edge) for edge in old.get("edges") or [] if isinstance(edge, dict)}
        new_edges = {_edge_text(edge) for edge in new.get("edges") or [] if isinstance(edge, dict)}
        for index in reversed([i for i, text in enumerate(list(edges)) if text in old_edges - new_edges]):
            del edges[index]
        present = set(edges)
        for text in sorted(new_edges - old_edges - present):
            edges.append(text)
        if old.get("metadata") != new.get("metadata"):
            if isinstance(new.get("metadata"), dict):
                meta["metadata"] = _text(new["metadata"])
            elif "metadata" in meta:
                del meta["metadata"]
    return doc.get_update(before)


def _edge_text(edge: dict) -> str:
    return _text({key: edge.get(key) for key in EDGE_KEYS})


def _replay_node(fields: Map, old: dict, new: dict) -> None:
    for key in ("block", "version", *OPTIONAL_FIELDS):
        if old.get(key) != new.get(key):
            if new.get(key) is None:
                if key in fields:
                    del fields[key]
            else:
                fields[key] = new[key]
    if old.get("position") != new.get("position") and isinstance(new.get("position"), dict):
        fields["x"] = new["position"].get("x")
        fields["y"] = new["position"].get("y")
    if "params" not in fields:
        fields["params"] = Map()
    params = fields["params"]
    old_params = old.get("params") if isinstance(old.get("params"), dict) else {}
    new_params = new.get("params") if isinstance(new.get("params"), dict) else {}
    for name in old_params.keys() - new_params.keys():
        if name in params:
            del params[name]
    for name, value in new_params.items():
        if name not in old_params or old_params[name] != value:
            params[name] = _text(value)
