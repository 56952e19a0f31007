"""What changed between two pipeline documents, in words a person can review before merging.

Pure Python on the document format (no Django): nodes are matched by id, edges by their four ends.
"""

from __future__ import annotations

from typing import Any

NODE_FIELDS = ("block", "version", "params", "position", "label", "target")


def _nodes(document: Any) -> dict[str, dict]:
    nodes = document.get("nodes") if isinstance(document, dict) else None
    return {
        node["id"]: node for node in nodes or [] if isinstance(node, dict) and isinstance(node.get("id"), str)
    }


def _edges(document: Any) -> set[str]:
    edges = document.get("edges") if isinstance(document, dict) else None
    return {
        f"{edge.get('source')}.{edge.get('source_port')}->{edge.get('target')}.{edge.get('target_port')}"
        for edge in edges or []
        if isinstance(edge, dict)
    }


def document_diff(old: Any, new: Any) -> dict[str, Any]:
    """The differences from ``old`` to ``new``.

    Returns ``{"nodes_added": [ids], "nodes_removed": [ids], "nodes_changed": [{"id", "fields"}],
    "edges_added": [keys], "edges_removed": [keys], "summary": str}``; lists are sorted, an edge key
    reads ``source.port->target.port``, and ``summary`` is one sentence ("no differences" when equal).
    """
    old_nodes, new_nodes = _nodes(old), _nodes(new)
    changed = []
    for node_id in sorted(old_nodes.keys() & new_nodes.keys()):
        before, after = old_nodes[node_id], new_nodes[node_id]
        fields = [field for field in NODE_FIELDS if before.get(field) != after.get(field)]
        if fields:
            changed.append({"id": node_id, "fields": fields})
    old_edges, new_edges = _edges(old), _edges(new)
    diff: dict[str, Any] = {
        "nodes_added": sorted(new_nodes.keys() - old_nodes.keys()),
        "nodes_removed": sorted(old_nodes.keys() - new_nodes.keys()),
        "nodes_changed": changed,
        "edges_added": sorted(new_edges - old_edges),
        "edges_removed": sorted(old_edges - new_edges),
    }
    parts = []
    if diff["nodes_added"]:
        parts.append(f"added {', '.join(diff['nodes_added'])}")
    if diff["nodes_removed"]:
        parts.append(f"removed {', '.join(diff['nodes_removed'])}")
    for change in changed:
        parts.append(f"changed {' and '.join(change['fields'])} of {change['id']}")
    if diff["edges_added"]:
        parts.append(f"connected {', '.join(diff['edges_added'])}")
    if diff["edges_removed"]:
        parts.append(f"disconnected {', '.join(diff['edges_removed'])}")
    diff["summary"] = "; ".join(parts) if parts else "no differences"
    return diff
