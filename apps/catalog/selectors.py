"""Reads for the catalog."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from apps.catalog.models import BlockVersion
from blocks.semver import semver_key


def catalog_specs() -> dict[str, dict[str, dict[str, Any]]]:
    """block id -> version -> spec dict, for every runnable version (the validator's catalog)."""
    specs: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for block_id, version, spec in BlockVersion.objects.filter(available=True).values_list(
        "block_id", "version", "spec"
    ):
        specs[block_id][version] = spec
    return dict(specs)


def blocks_latest() -> list[dict[str, Any]]:
    """One entry per available block: its newest version's row plus the list of all its versions."""
    by_block: dict[str, list[BlockVersion]] = defaultdict(list)
    for row in BlockVersion.objects.filter(available=True):
        by_block[row.block_id].append(row)
    entries = []
    for rows in by_block.values():
        rows.sort(key=lambda row: semver_key(row.version))
        entries.append({"latest": rows[-1], "versions": [row.version for row in rows]})
    entries.sort(key=lambda entry: (entry["latest"].category, entry["latest"].title.lower()))
    return entries


def block_versions(*, block_id: str) -> list[BlockVersion]:
    """Every version of a block, newest first (unavailable ones included, flagged)."""
    rows = list(BlockVersion.objects.filter(block_id=block_id))
    rows.sort(key=lambda row: semver_key(row.version), reverse=True)
    return rows
