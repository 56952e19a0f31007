"""Pilot templates: saved pipeline documents shipped with the code, one JSON file each in ``pilots/``.

They live in files, not the database, so a template and the blocks it uses change together in one
commit and every deployment has the same gallery.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

PILOTS_DIR = Path(__file__).resolve().parent / "pilots"
FIELDS = ("slug", "title", "summary", "sector", "description", "document")


@dataclass(frozen=True)
class PipelineTemplate:
    slug: str
    title: str
    summary: str
    sector: str
    description: str
    document: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in FIELDS}


@lru_cache(maxsize=1)
def templates_all() -> tuple[PipelineTemplate, ...]:
    """Every template, in file-name order (the files are numbered for a meaningful order)."""
    templates = []
    for path in sorted(PILOTS_DIR.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        missing = [name for name in FIELDS if name not in data]
        if missing:
            raise ValueError(f"{path.name}: template is missing {', '.join(missing)}")
        templates.append(PipelineTemplate(**{name: data[name] for name in FIELDS}))
    return tuple(templates)


def template_get(*, slug: str) -> PipelineTemplate | None:
    return next((template for template in templates_all() if template.slug == slug), None)
