"""The area and days the editor offers area and time parameters: the source file's extent at the node
that reads it, narrowed by what each step upstream keeps, and nothing where it is not known."""

from __future__ import annotations

import pytest

from blocks.registry import discover
from engine import validate_document_for_editor
from engine.extents import narrowed, valid_extent

BISCAY = {"bbox": {"west": -10.0, "south": 43.0, "east": -1.0, "north": 48.5},
          "time": {"start": "2023-06-01", "end": "2023-08-31"}}  # fmt: skip
SOURCES = {"biscay.nc": {"variables": {"sst": {"units": "degC"}}, "calendar": "standard", "extent": BISCAY}}


@pytest.fixture(scope="module")
def catalog():
    specs: dict = {}
    for block in discover():
        specs.setdefault(block.spec.id, {})[block.spec.version] = block.spec.to_dict()
    return specs


def node(node_id, block, params, version="1.1.0"):
    return {"id": node_id, "block": block, "version": version, "params": params}


def pipeline(open_params, subset_params, source="biscay.nc"):
    return {
        "format": "iliad.pipeline",
        "version": 1,
        "nodes": [
            node("open", "data.open_gridded", {"source": source, **open_params}),
            node("cut", "ocean.subset", subset_params),
            node("mean", "ocean.area_mean", {"variable": "sst"}, version="1.0.0"),
        ],
        "edges": [
            {"source": "open", "source_port": "dataset", "target": "cut", "target_port": "dataset"},
            {"source": "cut", "source_port": "dataset", "target": "mean", "target_port": "dataset"},
        ],
    }


def extents(doc, catalog):
    check = validate_document_for_editor(doc, catalog, describe_source=SOURCES.get)
    assert check.issues == []
    return check.extents


def test_the_file_node_gets_the_files_extent_and_the_next_step_what_it_keeps(catalog):
    found = extents(pipeline({"lat_min": 45.0, "start": "2023-07-01"}, {}), catalog)
    assert found["open"] == BISCAY  # what the file holds, before its own bounds
    assert found["cut"] == {
        "bbox": {"west": -10.0, "south": 45.0, "east": -1.0, "north": 48.5},
        "time": {"start": "2023-07-01", "end": "2023-08-31"},
    }
    assert "mean" not in found  # no area or time parameters


def test_bounds_outside_the_data_do_not_narrow(catalog):
    # 350° east is the same meridian in the other convention; 1990 lies before the data.
    found = extents(pipeline({"lon_min": 350.0, "start": "1990-01-01", "end": "2023-06-30"}, {}), catalog)
    assert found["cut"]["bbox"]["west"] == -10.0
    assert found["cut"]["time"] == {"start": "2023-06-01", "end": "2023-06-30"}


def test_an_unknown_source_offers_nothing(catalog):
    assert extents(pipeline({}, {}, source="https://example.org/x.nc"), catalog) == {}
    assert extents(pipeline({}, {}, source="elsewhere.nc"), catalog) == {}


def test_a_describers_malformed_extent_is_ignored():
    assert valid_extent({"bbox": {"west": "x", "south": 1, "east": 2, "north": 3}}) is None
    assert valid_extent({"bbox": {"west": 5, "south": 10, "east": 2, "north": 30}}) is None  # west > east
    assert valid_extent({"bbox": {"west": 0, "south": -95, "east": 2, "north": 3}}) is None
    assert valid_extent({"time": {"start": "2023-09-01", "end": "2023-08-01"}}) is None
    assert valid_extent({"time": {"start": "2023-01-01T00:00:00", "end": "2023-02-01"}}) == {
        "time": {"start": "2023-01-01", "end": "2023-02-01"}
    }
    assert valid_extent("nonsense") is None


def test_narrowing_never_inverts_a_box():
    box = {"bbox": {"west": 0.0, "south": 0.0, "east": 10.0, "north": 10.0}}
    assert narrowed(box, {"lat_min": 8.0, "lat_max": 2.0}) == box
    assert narrowed(box, {"lon_min": 2.0, "lon_max": 4.0, "lat_max": True}) == {
        "bbox": {"west": 2.0, "south": 0.0, "east": 4.0, "north": 10.0}
    }
