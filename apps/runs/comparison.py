"""Two runs side by side: what differed in what ran (block versions, frozen parameters, steps present in
one only) and which results to lay next to each other. Pure functions of serialized runs
(``RunDetailSerializer``'s shape), plus a cell-by-cell diff of two table heads."""

from __future__ import annotations

from typing import Any

MISSING = object()


def _steps(run: dict) -> dict[str, dict]:
    return {step["node"]: step for step in run.get("steps", [])}


def step_differences(a: dict, b: dict) -> list[dict[str, Any]]:
    """Rows ``{node, label, what, a, b}`` for every difference in what ran: a step in one run only
    (``what``: "step"), another block version ("block version"), a parameter (its name) whose frozen
    value differs (defaults filled in, so a default written out is no difference). Sorted by label."""
    steps_a, steps_b = _steps(a), _steps(b)
    rows: list[dict[str, Any]] = []
    for node in sorted(steps_a.keys() | steps_b.keys()):
        step_a, step_b = steps_a.get(node), steps_b.get(node)
        label = (step_a or step_b).get("label") or node
        if step_a is None or step_b is None:
            rows.append({"node": node, "label": label, "what": "step",
                         "a": step_a["block_id"] if step_a else None,
                         "b": step_b["block_id"] if step_b else None})  # fmt: skip
            continue
        if (step_a["block_id"], step_a["block_version"]) != (step_b["block_id"], step_b["block_version"]):
            rows.append({"node": node, "label": label, "what": "block version",
                         "a": f"{step_a['block_id']}@{step_a['block_version']}",
                         "b": f"{step_b['block_id']}@{step_b['block_version']}"})  # fmt: skip
        params_a, params_b = step_a.get("params") or {}, step_b.get("params") or {}
        for name in sorted(params_a.keys() | params_b.keys()):
            value_a, value_b = params_a.get(name, MISSING), params_b.get(name, MISSING)
            if value_a != value_b:
                rows.append({"node": node, "label": label, "what": name,
                             "a": None if value_a is MISSING else value_a,
                             "b": None if value_b is MISSING else value_b})  # fmt: skip
    return sorted(rows, key=lambda row: (row["label"], row["node"], row["what"] != "step", row["what"]))


def result_pairs(a: dict, b: dict) -> list[dict[str, Any]]:
    """The deliverables of both runs matched by (node, port): ``{node, port, label, type, a, b}`` with
    each side's artifact or None; in the order of run ``a``'s results, then ``b``'s own."""

    def keyed(run: dict) -> dict[tuple[str, str], dict]:
        return {(art["node"], art["port"]): art for art in run.get("artifacts", []) if art.get("deliverable")}

    side_a, side_b = keyed(a), keyed(b)
    pairs = []
    for key in [*side_a, *(k for k in side_b if k not in side_a)]:
        art_a, art_b = side_a.get(key), side_b.get(key)
        some = art_a or art_b
        pairs.append({"node": key[0], "port": key[1], "label": some.get("label") or key[0],
                      "type": some.get("type"), "a": art_a, "b": art_b})  # fmt: skip
    return pairs


def table_diff(head_a: dict, head_b: dict) -> dict[str, Any]:
    """Two table heads (``downloads.table_head``) as one grid: ``columns`` (the union, in a's order
    then b's), ``rows`` of ``[{a, b, changed}]`` cells (None where a side lacks the row or column),
    ``changed`` (how many cells differ, as text) and ``truncated`` (either side has more rows)."""
    columns = list(dict.fromkeys([*head_a["columns"], *head_b["columns"]]))
    index_a = {name: i for i, name in enumerate(head_a["columns"])}
    index_b = {name: i for i, name in enumerate(head_b["columns"])}

    def cell(rows: list[list[str]], index: dict[str, int], r: int, name: str) -> str | None:
        if r >= len(rows) or name not in index or index[name] >= len(rows[r]):
            return None
        return rows[r][index[name]]

    grid, changed = [], 0
    for r in range(max(len(head_a["rows"]), len(head_b["rows"]))):
        row = []
        for name in columns:
            value_a, value_b = cell(head_a["rows"], index_a, r, name), cell(head_b["rows"], index_b, r, name)
            differs = value_a != value_b
            changed += differs
            row.append({"a": value_a, "b": value_b, "changed": differs})
        grid.append(row)
    return {"columns": columns, "rows": grid, "changed": changed,
            "truncated": head_a["truncated"] or head_b["truncated"]}  # fmt: skip
