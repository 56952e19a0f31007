"""Writes for the catalog: syncing discovered blocks into the database."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from apps.catalog.models import BlockVersion
from blocks.registry import Registry


@dataclass(frozen=True)
class SyncReport:
    added: int
    updated: int
    unavailable: int
    errors: tuple[str, ...]


@transaction.atomic
def catalog_sync(*, registry: Registry) -> SyncReport:
    """Upsert one row per discovered block version; mark versions no longer provided unavailable."""
    existing = {(row.block_id, row.version): row for row in BlockVersion.objects.all()}
    added = updated = 0
    seen = set()
    for block in registry:
        spec = block.spec.to_dict()
        key = (spec["id"], spec["version"])
        seen.add(key)
        fields = {
            "title": spec["title"],
            "category": spec["category"],
            "description": spec["description"],
            "spec": spec,
            "available": True,
        }
        row = existing.get(key)
        if row is None:
            BlockVersion.objects.create(block_id=key[0], version=key[1], **fields)
            added += 1
        elif any(getattr(row, name) != value for name, value in fields.items()):
            for name, value in fields.items():
                setattr(row, name, value)
            row.save()
            updated += 1
    gone = [row.pk for key, row in existing.items() if key not in seen and row.available]
    BlockVersion.objects.filter(pk__in=gone).update(available=False)
    return SyncReport(added=added, updated=updated, unavailable=len(gone), errors=tuple(registry.errors))
