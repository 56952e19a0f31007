"""Pieces of JSON Schema shared by the parameters of several blocks. This module defines no blocks."""

from __future__ import annotations

from typing import Any


def number(title: str, description: str, default: float | None, minimum: float, maximum: float,
           kind: str = "number") -> dict[str, Any]:
    """The schema of a bounded number (``kind`` "integer" for whole numbers), with a default unless None."""
    schema: dict[str, Any] = {"type": kind, "title": title, "description": description,
                              "minimum": minimum, "maximum": maximum}
    if default is not None:
        schema["default"] = default
    return schema
