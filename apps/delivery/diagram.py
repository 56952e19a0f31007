"""The pipeline diagram of a run's report: an SVG drawn from the node positions and edges of the
pipeline document. Pure: no Django, no I/O; the same document always gives the same SVG."""

from __future__ import annotations

from html import escape
from typing import Any

NODE_WIDTH = 180
NODE_HEIGHT = 56
MARGIN = 24
STATE_COLOURS = {
    "succeeded": "#2e7d32",
    "failed": "#c62828",
    "skipped": "#757575",
    "cancelled": "#6d4c41",
    "running": "#1565c0",
    "queued": "#6a1b9a",
    "pending": "#9e9e9e",
}


def _position(node: dict[str, Any], index: int) -> tuple[float, float]:
    position = node.get("position") or {}
    try:
        return float(position["x"]), float(position["y"])
    except (KeyError, TypeError, ValueError):
        return index * (NODE_WIDTH + 60.0), 0.0


def _spread(nodes: list[dict[str, Any]]) -> dict[str, tuple[float, float]]:
    """Node id → top-left corner. Documents made outside the editor often put every node at the
    origin; those are laid out left to right so no box hides another."""
    places = {str(node["id"]): _position(node, index) for index, node in enumerate(nodes)}
    if len(set(places.values())) < len(places):
        places = {str(node["id"]): (index * (NODE_WIDTH + 60.0), 0.0) for index, node in enumerate(nodes)}
    return places


def pipeline_svg(
    document: dict[str, Any],
    *,
    titles: dict[str, str] | None = None,
    states: dict[str, str] | None = None,
) -> str:
    """An SVG picture of ``document`` (``{"nodes": [...], "edges": [...]}``): one box per node at its
    position, labelled with its id and (from ``titles``, node id → text) its block's title, bordered
    in the colour of its state (``states``, node id → step state), and one arrow per edge from the
    source box's right side to the target box's left side, labelled with the ports."""
    titles = titles or {}
    states = states or {}
    nodes = list(document.get("nodes") or [])
    places = _spread(nodes)
    if places:
        left = min(x for x, _ in places.values())
        top = min(y for _, y in places.values())
    else:
        left = top = 0.0
    shifted = {key: (x - left + MARGIN, y - top + MARGIN) for key, (x, y) in places.items()}
    width = max((x for x, _ in shifted.values()), default=0) + NODE_WIDTH + MARGIN
    height = max((y for _, y in shifted.values()), default=0) + NODE_HEIGHT + MARGIN
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="pipeline-diagram" role="img" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" height="{height:.0f}" '
        f'font-family="sans-serif" font-size="12">',
        "<title>Pipeline diagram</title>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#455a64"/></marker></defs>',
    ]
    for edge in document.get("edges") or []:
        source, target = str(edge.get("source")), str(edge.get("target"))
        if source not in shifted or target not in shifted:
            continue
        (sx, sy), (tx, ty) = shifted[source], shifted[target]
        x1, y1 = sx + NODE_WIDTH, sy + NODE_HEIGHT / 2
        x2, y2 = tx, ty + NODE_HEIGHT / 2
        bend = max(abs(x2 - x1) / 2, 30)
        label = escape(f"{edge.get('source_port', '')} → {edge.get('target_port', '')}")
        parts.append(
            f'<path class="edge" data-source="{escape(source)}" data-target="{escape(target)}" '
            f'd="M {x1:.1f} {y1:.1f} C {x1 + bend:.1f} {y1:.1f}, {x2 - bend:.1f} {y2:.1f}, '
            f'{x2:.1f} {y2:.1f}" fill="none" stroke="#455a64" stroke-width="1.5" marker-end="url(#arrow)">'
            f"<title>{label}</title></path>"
        )
    for node in nodes:
        node_id = str(node["id"])
        x, y = shifted[node_id]
        colour = STATE_COLOURS.get(states.get(node_id, ""), "#455a64")
        title = titles.get(node_id) or str(node.get("block", ""))
        parts.append(
            f'<g class="node" data-node="{escape(node_id)}">'
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{NODE_WIDTH}" height="{NODE_HEIGHT}" rx="6" '
            f'fill="#ffffff" stroke="{colour}" stroke-width="2"/>'
            f'<text x="{x + 10:.1f}" y="{y + 22:.1f}" font-weight="bold">{escape(_fit(node_id))}</text>'
            f'<text x="{x + 10:.1f}" y="{y + 40:.1f}" fill="#37474f">{escape(_fit(title))}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _fit(text: str, limit: int = 24) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
