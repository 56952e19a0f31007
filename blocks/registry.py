"""Finding blocks: the built-in library, the ``iliad.blocks`` entry-point group, extra modules.

An entry point (or an extra module named in ``ILIAD_BLOCK_MODULES``, comma separated) may point at a
module, in which case every :class:`~blocks.spec.Block` defined at its top level is taken, at a single
Block, or at an iterable of Blocks. A plugin that fails to load is reported in
:attr:`Registry.errors` instead of taking the portal down with it.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable, Iterator
from functools import lru_cache
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

from blocks.library import BUILTIN_MODULES
from blocks.semver import semver_key
from blocks.spec import Block, SpecError
from blocks.types import known_types

ENTRY_POINT_GROUP = "iliad.blocks"


class RegistryError(LookupError):
    """A block or version is not known."""


class Registry:
    """Blocks by ``(id, version)``; built by :func:`discover`."""

    def __init__(self) -> None:
        self._blocks: dict[tuple[str, str], Block] = {}
        self.errors: list[str] = []

    def add(self, block: Block, *, source: str) -> None:
        try:
            block.spec.check(known_types())
        except SpecError as error:
            self.errors.append(f"{source}: {error}")
            return
        existing = self._blocks.get(block.key)
        if existing is not None and existing.function is not block.function:
            self.errors.append(
                f"{source}: {block.spec.id}@{block.spec.version} is already provided by "
                f"{existing.function.__module__}; ignored"
            )
            return
        self._blocks[block.key] = block

    def get(self, block_id: str, version: str) -> Block:
        """The block, or RegistryError naming what is missing."""
        try:
            return self._blocks[(block_id, version)]
        except KeyError:
            versions = self.versions(block_id)
            if versions:
                raise RegistryError(
                    f"block {block_id!r} has no version {version!r} (known: {', '.join(versions)})"
                ) from None
            raise RegistryError(f"unknown block {block_id!r}") from None

    def versions(self, block_id: str) -> list[str]:
        return sorted(
            (version for (known_id, version) in self._blocks if known_id == block_id), key=semver_key
        )

    def __iter__(self) -> Iterator[Block]:
        return iter(sorted(self._blocks.values(), key=lambda block: block.key))

    def __len__(self) -> int:
        return len(self._blocks)


def _blocks_in(target: Any) -> list[Block]:
    if isinstance(target, Block):
        return [target]
    if isinstance(target, ModuleType):
        return [value for value in vars(target).values() if isinstance(value, Block)]
    if isinstance(target, Iterable):
        return [value for value in target if isinstance(value, Block)]
    raise TypeError(f"expected a module, a Block or an iterable of Blocks, got {type(target).__name__}")


def discover(extra_modules: Iterable[str] = ()) -> Registry:
    """Collect blocks from the built-in library, installed plugins and ``extra_modules``."""
    registry = Registry()
    for module_name in BUILTIN_MODULES:
        for block in _blocks_in(importlib.import_module(module_name)):
            registry.add(block, source=module_name)
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        source = f"entry point {entry_point.name} ({entry_point.value})"
        try:
            found = _blocks_in(entry_point.load())
        except Exception as error:  # a broken plugin must not hide the others
            registry.errors.append(f"{source}: {type(error).__name__}: {error}")
            continue
        for block in found:
            registry.add(block, source=source)
    for module_name in extra_modules:
        try:
            found = _blocks_in(importlib.import_module(module_name))
        except Exception as error:
            registry.errors.append(f"module {module_name}: {type(error).__name__}: {error}")
            continue
        for block in found:
            registry.add(block, source=module_name)
    return registry


def extra_modules_from_env() -> list[str]:
    return [name.strip() for name in os.environ.get("ILIAD_BLOCK_MODULES", "").split(",") if name.strip()]


@lru_cache(maxsize=1)
def default_registry() -> Registry:
    """The process-wide registry: built-ins, entry points and ``ILIAD_BLOCK_MODULES``."""
    return discover(extra_modules_from_env())
