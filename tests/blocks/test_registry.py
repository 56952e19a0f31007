"""blocks.registry: built-ins, extra modules and ``iliad.blocks`` entry points."""

from __future__ import annotations

import sys
from pathlib import Path

import jsonschema
import pytest

from blocks.registry import ENTRY_POINT_GROUP, RegistryError, discover
from blocks.runner import validated_params
from blocks.spec import BlockSpec
from blocks.types import known_types

BUILTIN_IDS = {"ocean.demo_dataset", "ocean.subset", "ocean.area_mean", "plot.timeseries", "utility.noop"}
PLUGIN_MODULE = "iliad_fakeplugin_blocks"
PLUGIN_SOURCE = '''
from blocks.spec import Port, block


@block(id="fake.hello", version="0.1.0", title="Hello", category="utility", outputs=(Port("result", "json"),))
def hello(ctx, inputs, params):
    """Say hello."""
    return {"result": {"hello": "world"}}
'''


def test_builtins_are_discovered_and_pass_the_spec_check() -> None:
    registry = discover()
    assert registry.errors == []
    builtins = {
        entry.spec.id: entry.spec for entry in registry if entry.function.__module__.startswith("blocks.")
    }
    assert BUILTIN_IDS <= set(builtins)
    for spec in builtins.values():
        spec.check(known_types())
        assert len(spec.description) > 200, f"{spec.id} needs a stakeholder description"


BUILTIN_KEYS = sorted(entry.key for entry in discover() if entry.function.__module__.startswith("blocks."))


@pytest.mark.parametrize(("block_id", "version"), BUILTIN_KEYS)
def test_builtin_parameters_are_documented_and_defaults_are_valid(block_id: str, version: str) -> None:
    spec: BlockSpec = discover().get(block_id, version).spec
    schema = spec.parameters
    assert schema["additionalProperties"] is False
    for name, prop in schema["properties"].items():
        assert prop.get("title") and prop.get("description"), f"{block_id} parameter {name}"
        if "default" in prop:
            jsonschema.validate(prop["default"], prop)
    defaults = {name: prop["default"] for name, prop in schema["properties"].items() if "default" in prop}
    if not schema.get("required"):  # a block without required parameters runs on its defaults
        assert validated_params(spec, {}) == defaults


def test_lookup_errors_name_the_block_and_versions() -> None:
    registry = discover()
    with pytest.raises(RegistryError, match=r"unknown block 'ocean\.nothing'"):
        registry.get("ocean.nothing", "1.0.0")
    with pytest.raises(
        RegistryError, match=r"block 'ocean.area_mean' has no version '2.0.0' \(known: 1.0.0\)"
    ):
        registry.get("ocean.area_mean", "2.0.0")


def test_extra_modules_are_picked_up_and_broken_ones_reported() -> None:
    registry = discover(extra_modules=["tests.blocks.sample_blocks", "tests.blocks.no_such_module"])
    assert registry.get("tests.fail", "1.0.0").spec.title == "Always fails"
    assert registry.versions("tests.echo") == ["0.1.0"]
    assert BUILTIN_IDS.issubset(entry.spec.id for entry in registry)
    (error,) = registry.errors
    assert error.startswith("module tests.blocks.no_such_module: ModuleNotFoundError")


def test_extra_modules_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from blocks.registry import extra_modules_from_env

    monkeypatch.setenv("ILIAD_BLOCK_MODULES", " tests.blocks.sample_blocks, ,other.module ")
    assert extra_modules_from_env() == ["tests.blocks.sample_blocks", "other.module"]


def write_plugin(root: Path, entry_points: str) -> None:
    """An installed distribution as importlib.metadata sees it: a dist-info folder and a module."""
    info = root / "fakeplugin-0.1.dist-info"
    info.mkdir()
    metadata = "Metadata-Version: 2.1\nName: fakeplugin\nVersion: 0.1\n"
    (info / "METADATA").write_text(metadata, encoding="utf-8")
    (info / "entry_points.txt").write_text(entry_points, encoding="utf-8")
    (root / f"{PLUGIN_MODULE}.py").write_text(PLUGIN_SOURCE, encoding="utf-8")


def test_entry_points_are_discovered_and_a_broken_one_does_not_hide_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_plugin(
        tmp_path,
        f"[{ENTRY_POINT_GROUP}]\n"
        f"hello = {PLUGIN_MODULE}\n"
        f"single = {PLUGIN_MODULE}:hello\n"
        "broken = iliad_fakeplugin_missing\n"
        f"[console_scripts]\nunrelated = {PLUGIN_MODULE}:hello\n",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, PLUGIN_MODULE, raising=False)
    registry = discover()
    block = registry.get("fake.hello", "0.1.0")
    assert block.function.__module__ == PLUGIN_MODULE
    assert block.function(None, {}, {}) == {"result": {"hello": "world"}}
    (error,) = registry.errors
    assert error.startswith("entry point broken (iliad_fakeplugin_missing): ModuleNotFoundError")
    assert BUILTIN_IDS.issubset(entry.spec.id for entry in registry)


def test_a_plugin_block_that_breaks_the_contract_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_plugin(tmp_path, f"[{ENTRY_POINT_GROUP}]\nhello = {PLUGIN_MODULE}\n")
    broken = PLUGIN_SOURCE.replace('"utility"', '"misc"')
    (tmp_path / f"{PLUGIN_MODULE}.py").write_text(broken, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, PLUGIN_MODULE, raising=False)
    registry = discover()
    assert registry.versions("fake.hello") == []
    (error,) = registry.errors
    assert "block 'fake.hello': category 'misc' is not one of" in error


@pytest.mark.parametrize("resources", [{"walltime_s": 0}, {"cpus": -1}, {"memory_mb": 1.5}, {"cpus": True}])
def test_resource_hints_must_be_positive_whole_numbers(resources: dict) -> None:
    from blocks.spec import Resources, SpecError

    spec = discover().get("utility.noop", "1.0.0").spec
    broken = BlockSpec(**{**spec.__dict__, "resources": Resources(**resources)})
    name = next(iter(resources))
    with pytest.raises(SpecError, match=rf"resources\.{name} must be a positive whole number"):
        broken.check(known_types())
