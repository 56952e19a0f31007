"""STAC metadata of a delivery: one Collection per run and one Item per delivered file, with the
processing extension saying what made it. Plain dictionaries (STAC 1.0.0), valid against
stac-pydantic; hrefs are relative, so the folder can be moved or served as a static catalog."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

STAC_VERSION = "1.0.0"
PROCESSING_EXTENSION = "https://stac-extensions.github.io/processing/v1.2.0/schema.json"
WHOLE_WORLD = [-180.0, -90.0, 180.0, 90.0]


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def item_id(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "item"


def _geometry(bbox: list[float]) -> dict[str, Any]:
    west, south, east, north = bbox
    if west == east and south == north:
        return {"type": "Point", "coordinates": [west, south]}
    return {
        "type": "Polygon",
        "coordinates": [[[west, south], [east, south], [east, north], [west, north], [west, south]]],
    }


def stac_item(
    *,
    name: str,
    href: str,
    media_type: str,
    size: int,
    sha256: str,
    bbox: list[float] | None,
    start: datetime | None,
    end: datetime | None,
    processed_at: datetime,
    software: dict[str, str],
    lineage: str,
    collection_id: str,
    title: str,
) -> dict[str, Any]:
    """The Item of one delivered file at ``href`` (relative to the item). Without a known time the
    item's datetime is when it was processed; without a known area its geometry is null."""
    properties: dict[str, Any] = {
        "title": title,
        "processing:software": software,
        "processing:lineage": lineage,
        "processing:datetime": _stamp(processed_at),
        "created": _stamp(processed_at),
    }
    if start is not None and end is not None and start != end:
        properties.update(datetime=None, start_datetime=_stamp(start), end_datetime=_stamp(end))
    else:
        properties["datetime"] = _stamp(start or processed_at)
    return {
        "type": "Feature",
        "stac_version": STAC_VERSION,
        "stac_extensions": [PROCESSING_EXTENSION],
        "id": item_id(name),
        "collection": collection_id,
        "geometry": _geometry(bbox) if bbox else None,
        **({"bbox": bbox} if bbox else {}),
        "properties": properties,
        "links": [
            {"rel": "collection", "href": "../collection.json", "type": "application/json"},
            {"rel": "parent", "href": "../collection.json", "type": "application/json"},
            {"rel": "root", "href": "../collection.json", "type": "application/json"},
        ],
        "assets": {
            "data": {
                "href": href,
                "type": media_type,
                "title": name,
                "roles": ["data"],
                "file:size": size,
                "file:checksum": f"1220{sha256}",
            },
        },
    }


def stac_collection(
    *,
    collection_id: str,
    title: str,
    description: str,
    items: list[dict[str, Any]],
    item_hrefs: list[str],
    processed_at: datetime,
    software: dict[str, str],
    extra_assets: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """The Collection of a run: its extent covers its items' (the whole world when none is known)."""
    boxes = [item["bbox"] for item in items if item.get("bbox")]
    bbox = (
        [
            min(b[0] for b in boxes),
            min(b[1] for b in boxes),
            max(b[2] for b in boxes),
            max(b[3] for b in boxes),
        ]
        if boxes
        else WHOLE_WORLD
    )
    moments = []
    for item in items:
        props = item["properties"]
        moments += [props[key] for key in ("datetime", "start_datetime", "end_datetime") if props.get(key)]
    interval = [min(moments), max(moments)] if moments else [_stamp(processed_at), _stamp(processed_at)]
    return {
        "type": "Collection",
        "stac_version": STAC_VERSION,
        "stac_extensions": [PROCESSING_EXTENSION],
        "id": collection_id,
        "title": title,
        "description": description,
        "license": "other",
        "extent": {"spatial": {"bbox": [bbox]}, "temporal": {"interval": [interval]}},
        "summaries": {"processing:software": [software]},
        "links": [
            {"rel": "self", "href": "./collection.json", "type": "application/json"},
            {"rel": "root", "href": "./collection.json", "type": "application/json"},
            *({"rel": "item", "href": href, "type": "application/geo+json"} for href in item_hrefs),
        ],
        "assets": extra_assets,
    }
