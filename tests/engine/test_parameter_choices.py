"""What the editor offers a variable- or column-naming parameter: the names the data there have, from a
data-space file's attributes (before any run) or from what the steps upstream pass on."""

from __future__ import annotations

from engine import validate_document, validate_document_with_choices
from tests.engine.test_quantities import catalog, describe, document, edge, heatwaves, node  # noqa: F401


def checked(doc, catalog):  # noqa: F811
    return validate_document_with_choices(doc, catalog, describe_source=describe)


def test_a_file_offers_its_variables_and_each_step_what_reaches_it(catalog):  # noqa: F811
    issues, choices = checked(heatwaves("sst", column="sst"), catalog)
    assert issues == []
    assert choices == {
        "ocean": {"variables": ["sst", "so", "uo", "vo"]},  # the file's, before any run
        "series": {"variable": ["sst"]},  # what the open step keeps
        "mhw": {"column": ["sst"]},  # the area mean's table column
    }


def test_without_a_selection_everything_the_file_has_reaches_the_next_step(catalog):  # noqa: F811
    doc = document(
        [
            node("ocean", "data.open_gridded", {"source": "ocean.nc"}),
            node("series", "ocean.area_mean", {"variable": "sst"}),
        ],
        [edge("ocean", "dataset", "series", "dataset")],
    )
    assert checked(doc, catalog)[1]["series"] == {"variable": ["sst", "so", "uo", "vo"]}


def test_a_wrong_variable_is_a_problem_and_the_right_ones_are_offered(catalog):  # noqa: F811
    issues, choices = checked(heatwaves("sst", column="temp"), catalog)
    assert [issue.code for issue in issues] == ["node.unknown_variable"]
    assert choices["mhw"] == {"column": ["sst"]}


def test_unknown_data_offer_nothing(catalog):  # noqa: F811
    issues, choices = checked(heatwaves("sst", source="https://example.org/x.nc", column="sst"), catalog)
    assert choices == {}
    assert [i.to_dict() for i in issues] == [
        i.to_dict()
        for i in validate_document(heatwaves("sst", source="https://example.org/x.nc", column="sst"), catalog)
    ]
