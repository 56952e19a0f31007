"""Units and physical quantities along the wires: propagation from sources and the checks on inputs.

The catalog is the real block library (its port declarations are what is being specified) plus the
test suite's blocks, among them a model that needs its currents in m s-1; what the sources hold is
given as plain dictionaries, as the portal passes them in.
"""

from __future__ import annotations

import copy

import pytest

from blocks.registry import discover
from blocks.spec import (
    QUANTITY_KINDS,
    BlockSpec,
    Derived,
    Port,
    Quantity,
    SpecError,
    versioned_spec,
)
from blocks.types import known_types
from engine import validate_document
from engine.quantities import KIND_DIMENSIONS


@pytest.fixture(scope="module")
def catalog():
    specs: dict = {}
    for block in discover(["tests.support.blocks"]):
        specs.setdefault(block.spec.id, {})[block.spec.version] = block.spec.to_dict()
    return specs


def attrs(units=None, standard_name=None, long_name=None, **extra):
    found = {"units": units, "standard_name": standard_name, "long_name": long_name, **extra}
    return {key: value for key, value in found.items() if value is not None}


OCEAN = {
    "variables": {
        "sst": attrs("degree_Celsius", "sea_surface_temperature", "Sea surface temperature"),
        "so": attrs("1e-3", "sea_water_salinity", "Sea surface salinity"),
        "uo": attrs("m s-1", "eastward_sea_water_velocity"),
        "vo": attrs("m s-1", "northward_sea_water_velocity"),
    },
    "calendar": "standard",
}
RADAR = {  # HF radar currents are often in cm s-1
    "variables": {
        "u": attrs("cm s-1", "eastward_sea_water_velocity"),
        "v": attrs("cm/s", "northward_sea_water_velocity"),
    },
    "calendar": "standard",
}
SOURCES = {"ocean.nc": OCEAN, "radar.nc": RADAR}


def describe(source):
    return SOURCES.get(source)


def node(node_id, block, params=None, version="1.0.0", **extra):
    return {"id": node_id, "block": block, "version": version, "params": params or {}, **extra}


def edge(source, source_port, target, target_port):
    return {"source": source, "source_port": source_port, "target": target, "target_port": target_port}


def document(nodes, edges):
    return {"format": "iliad.pipeline", "version": 1, "nodes": nodes, "edges": edges}


def heatwaves(variable, source="ocean.nc", column=None):
    """Open -> area mean of ``variable`` -> marine heatwaves (on ``column``)."""
    return document(
        [
            node("ocean", "data.open_gridded", {"source": source, "variables": [variable]}),
            node("series", "ocean.area_mean", {"variable": variable}),
            node("mhw", "analytics.marine_heatwaves", {"column": column} if column else {}),
        ],
        [edge("ocean", "dataset", "series", "dataset"), edge("series", "table", "mhw", "series")],
    )


def issues(doc, catalog, describe_source=describe):
    return [issue.to_dict() for issue in validate_document(doc, catalog, describe_source=describe_source)]


def test_temperature_into_heatwave_detection_is_fine(catalog):
    assert issues(heatwaves("sst", column="sst"), catalog) == []


def test_salinity_into_heatwave_detection_is_a_quantity_mismatch(catalog):
    [issue] = issues(heatwaves("so", column="so"), catalog)
    assert issue["code"] == "edge.quantity_mismatch"
    assert (issue["pointer"], issue["node"], issue["port"]) == ("/edges/1", "mhw", "series")
    assert "'Marine heatwaves (Hobday et al.)'" in issue["message"]
    assert "'so'" in issue["message"] and "sea water salinity" in issue["message"]
    assert "'Area mean time series'" in issue["message"]
    assert issue["details"]["standard_name"] == "sea_water_salinity"
    assert "fix" not in issue["details"]


def test_the_only_column_is_checked_when_no_column_is_named(catalog):
    [issue] = issues(heatwaves("so"), catalog)
    assert issue["code"] == "edge.quantity_mismatch"


def test_current_speed_into_heatwave_detection_has_unconvertible_units(catalog):
    doc = document(
        [
            node("ocean", "data.open_gridded", {"source": "ocean.nc", "variables": ["uo", "vo"]}),
            node("speed", "transform.calculate", {"expression": "sqrt(uo**2 + vo**2)", "name": "speed",
                                                  "units": "m s-1"}),
            node("series", "ocean.area_mean", {"variable": "speed"}),
            node("mhw", "analytics.marine_heatwaves", {"column": "speed"}),
        ],
        [edge("ocean", "dataset", "speed", "dataset"), edge("speed", "dataset", "series", "dataset"),
         edge("series", "table", "mhw", "series")],
    )
    [issue] = issues(doc, catalog)
    assert issue["code"] == "edge.units_unconvertible"
    assert issue["pointer"] == "/edges/2"
    assert "m s-1" in issue["message"] and "temperature" in issue["message"]


def test_anomalies_lose_the_standard_name_and_become_temperature_differences(catalog):
    doc = document(
        [
            node("ocean", "data.open_gridded", {"source": "ocean.nc"}),
            node("clim", "analytics.climatology", {"variable": "sst"}),
            node("series", "ocean.area_mean", {"variable": "sst"}),
            node("mhw", "analytics.marine_heatwaves"),
        ],
        [edge("ocean", "dataset", "clim", "dataset"), edge("clim", "anomalies", "series", "dataset"),
         edge("series", "table", "mhw", "series")],
    )
    # The heatwave detector accepts temperature differences.
    assert issues(doc, catalog) == []
    strict = copy.deepcopy(catalog)
    port = strict["analytics.marine_heatwaves"]["1.0.0"]["inputs"][0]
    port["quantity"]["difference_ok"] = False
    [issue] = issues(doc, strict)
    assert issue["code"] == "edge.quantity_mismatch"
    assert "temperature difference" in issue["message"]
    assert issue["details"]["standard_name"] is None


def drift(source, *between, model="testing.si_currents_model"):
    """Open ``source`` -> the ``between`` nodes, chained -> a model's currents input."""
    release = {"lat": 44.8, "lon": -4.0, "start": "2022-07-21T06:00:00"}
    params = release if model == "model.particle_drift" else {}
    nodes = [node("currents", "data.open_gridded", {"source": source}), *between,
             node("drift", model, params)]
    chain = [n["id"] for n in nodes]
    edges = [edge(a, "dataset", b, "currents" if b == "drift" else "dataset")
             for a, b in zip(chain, chain[1:], strict=False)]
    return document(nodes, edges)


def test_currents_in_other_speed_units_are_offered_a_conversion(catalog):
    found = issues(drift("radar.nc"), catalog)
    assert [issue["code"] for issue in found] == ["edge.units_mismatch", "edge.units_mismatch"]
    first, second = found
    assert (first["node"], first["port"], first["pointer"]) == ("drift", "currents", "/edges/0")
    assert first["details"]["fix"] == {
        "insert": "transform.convert_units",
        "version": "1.0.0",
        "params": {"variable": "u", "to_units": "m s-1"},
        "edge": 0,
        "title": "Insert unit conversion (u to m s-1)",
    }
    assert second["details"]["fix"]["params"] == {"variable": "v", "to_units": "m s-1"}
    assert "cm s-1" in first["message"] and "m s-1" in first["message"]

    # Inserting the offered conversions (as the editor does) leaves nothing to report.
    fixed = drift(
        "radar.nc",
        node("to_ms_u", "transform.convert_units", first["details"]["fix"]["params"]),
        node("to_ms_v", "transform.convert_units", second["details"]["fix"]["params"]),
    )
    assert issues(fixed, catalog) == []
    half = drift("radar.nc", node("to_ms_u", "transform.convert_units", first["details"]["fix"]["params"]))
    assert [issue["details"]["variable"] for issue in issues(half, catalog)] == ["v"]


def test_particle_drift_converts_speeds_itself_but_not_from_temperatures(catalog):
    assert issues(drift("radar.nc", model="model.particle_drift"), catalog) == []
    SOURCES["hot.nc"] = {"variables": {"uo": attrs("degC", "eastward_sea_water_velocity"),
                                       "sst": attrs("degC", "sea_surface_temperature")}}
    try:
        [issue] = issues(drift("hot.nc", model="model.particle_drift"), catalog)
        assert issue["code"] == "edge.units_unconvertible"
        assert issue["details"]["variable"] == "uo"
    finally:
        del SOURCES["hot.nc"]


def test_same_units_written_differently_are_not_a_mismatch(catalog):
    SOURCES["slash.nc"] = {"variables": {"uo": attrs("m/s", "eastward_sea_water_velocity"),
                                         "vo": attrs("meter second-1", "northward_sea_water_velocity")}}
    try:
        assert issues(drift("slash.nc"), catalog) == []
    finally:
        del SOURCES["slash.nc"]


def test_a_temperature_in_kelvin_is_not_exactly_celsius(catalog):
    strict = copy.deepcopy(catalog)
    strict["analytics.marine_heatwaves"]["1.0.0"]["inputs"][0]["quantity"]["units"] = "degC"
    SOURCES["kelvin.nc"] = {"variables": {"sst": attrs("K", "sea_surface_temperature")}}
    try:
        [issue] = issues(heatwaves("sst", source="kelvin.nc"), strict)
        assert issue["code"] == "edge.units_mismatch"
        # A table column cannot go through the dataset unit conversion block: no fix offered.
        assert "fix" not in issue["details"]
        assert issues(heatwaves("sst"), strict) == []  # degree_Celsius is degC
    finally:
        del SOURCES["kelvin.nc"]


def test_unknown_metadata_is_silent(catalog):
    assert issues(heatwaves("so", source="https://example.org/ocean.nc"), catalog) == []
    assert issues(heatwaves("so"), catalog, describe_source=None) == []
    SOURCES["bare.nc"] = {"variables": {"so": {}}}
    try:
        assert issues(heatwaves("so", source="bare.nc"), catalog) == []
    finally:
        del SOURCES["bare.nc"]


def test_a_variable_the_source_does_not_have_is_reported_once(catalog):
    [issue] = issues(heatwaves("salt", column="salt"), catalog)
    assert issue["code"] == "node.unknown_variable"
    assert (issue["pointer"], issue["node"]) == ("/nodes/0/params/variables", "ocean")
    assert "'salt'" in issue["message"] and "'sst', 'so', 'uo', 'vo'" in issue["message"]
    assert "'ocean.nc'" in issue["message"]


def test_a_column_the_table_does_not_have_is_reported(catalog):
    [issue] = issues(heatwaves("sst", column="temperature"), catalog)
    assert issue["code"] == "node.unknown_variable"
    assert (issue["pointer"], issue["node"], issue["port"]) == ("/nodes/2/params/column", "mhw", "series")
    assert "'temperature'" in issue["message"] and "'sst'" in issue["message"]


def test_node_labels_name_the_nodes_in_messages(catalog):
    doc = heatwaves("so", column="so")
    doc["nodes"][2]["label"] = "Farm heatwaves"
    [issue] = issues(doc, catalog)
    assert "'Farm heatwaves'" in issue["message"]


def test_a_cycle_skips_the_quantity_checks(catalog):
    loop = document(
        [node("a", "ocean.subset", version="1.1.0"), node("b", "ocean.subset", version="1.1.0")],
        [edge("a", "dataset", "b", "dataset"), edge("b", "dataset", "a", "dataset")],
    )
    assert [issue["code"] for issue in issues(loop, catalog)] == ["graph.cycle"]


# ---- the port declarations themselves -----------------------------------------------------------

def test_port_dict_gains_quantity_only_when_declared():
    plain = Port("dataset", "dataset", "Dataset")
    assert set(plain.to_dict()) == {"name", "type", "title", "description", "required"}
    typed = Port("series", "table", quantity=Quantity(kind="temperature", params=("column",)))
    assert typed.to_dict()["quantity"] == {"kind": "temperature", "standard_names": [], "difference_ok": True,
                                           "params": ["column"]}


def test_versioned_spec_leaves_the_annotations_out(catalog):
    spec = catalog["analytics.marine_heatwaves"]["1.0.0"]
    assert "quantity" in spec["inputs"][0]
    stripped = versioned_spec(spec)
    assert all("quantity" not in port for port in (*stripped["inputs"], *stripped["outputs"]))
    assert {**stripped, "inputs": spec["inputs"], "outputs": spec["outputs"]} == spec


def spec_with(inputs=(), outputs=(), properties=None):
    return BlockSpec(
        id="test.block", version="1.0.0", title="Test", description="", category="utility",
        inputs=inputs, outputs=outputs,
        parameters={"type": "object", "properties": properties or {"variable": {"type": "string"}}},
    )


@pytest.mark.parametrize(
    ("spec", "complaint"),
    [
        (spec_with(inputs=(Port("a", "table", quantity=Quantity(kind="colour")),)), "kind 'colour'"),
        (spec_with(inputs=(Port("a", "table", quantity=Quantity(params=("column",))),)),
         "parameter 'column'"),
        (spec_with(inputs=(Port("a", "table", quantity=Derived(from_port="a")),)), "must be a Quantity"),
        (spec_with(outputs=(Port("b", "table", quantity=Derived(from_port="a")),)), "not an input port"),
        (spec_with(outputs=(Port("b", "table", quantity=Derived()),)), "exactly one of"),
        (spec_with(inputs=(Port("a", "table"),),
                   outputs=(Port("b", "table", quantity=Derived(from_port="a", op="sum")),)), "op 'sum'"),
    ],
)
def test_bad_quantity_declarations_are_refused(spec, complaint):
    with pytest.raises(SpecError, match=complaint):
        spec.check(known_types())


def test_every_kind_has_a_dimension():
    assert set(QUANTITY_KINDS) == set(KIND_DIMENSIONS)


@pytest.mark.parametrize(("calendar", "found"), [
    ("360_day", ["edge.calendar_mismatch"]), ("all_leap", ["edge.calendar_mismatch"]),
    ("noleap", []), ("standard", []), ("proleptic_gregorian", []), (None, []),
])
def test_model_calendars_with_impossible_dates_are_caught_before_date_based_analyses(
    catalog, calendar, found
):
    SOURCES["model.nc"] = {"variables": OCEAN["variables"], "calendar": calendar}
    try:
        result = issues(heatwaves("sst", source="model.nc"), catalog)
    finally:
        del SOURCES["model.nc"]
    assert [issue["code"] for issue in result] == found
    if found:
        [issue] = result
        assert (issue["node"], issue["port"], issue["pointer"]) == ("mhw", "series", "/edges/1")
        assert f"the {calendar} calendar" in issue["message"] and "February" in issue["message"]
