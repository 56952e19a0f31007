"""Ordering semantic versions (https://semver.org precedence, build metadata ignored)."""

from __future__ import annotations


def semver_key(version: str) -> tuple:
    """A sort key: 1.0.0-alpha < 1.0.0-alpha.1 < 1.0.0-beta < 1.0.0 < 1.0.1 < 1.10.0."""
    core, _, prerelease = version.split("+", 1)[0].partition("-")
    numbers = tuple(int(part) if part.isdigit() else 0 for part in core.split("."))
    if not prerelease:
        return (numbers, (1,))
    identifiers = tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part) for part in prerelease.split(".")
    )
    return (numbers, (0, identifiers))


def latest(versions) -> str | None:
    ordered = sorted(versions, key=semver_key)
    return ordered[-1] if ordered else None
