"""The processing report (HTML, PDF), its pipeline diagram, the Workflow Run RO-Crate, W3C PROV and
STAC metadata of a run, checked by parsing them back and with offline validators."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from apps.delivery.diagram import NODE_HEIGHT, NODE_WIDTH, pipeline_svg
from tests.support.delivery_runs import DOCUMENT, make_finished_run

SVG = "{http://www.w3.org/2000/svg}"
# These two checks fetch the JSON-LD context from the network (see ../shared/TESTING-NOTES.md).
OFFLINE_SKIPS = "ro-crate-1.1_3.1,ro-crate-1.1_3.2"


def test_diagram_has_a_box_per_node_at_its_position_and_an_arrow_per_edge():
    svg = pipeline_svg(DOCUMENT, titles={"table": "Deliver as CSV"}, states={"table": "failed"})
    root = ET.fromstring(svg)
    groups = {g.get("data-node"): g for g in root.iter(f"{SVG}g")}
    assert set(groups) == {"demo", "subset", "table", "picture"}
    boxes = {node: g.find(f"{SVG}rect") for node, g in groups.items()}
    # positions keep their offsets: subset is 260 right of demo, table 160 above picture
    assert float(boxes["subset"].get("x")) - float(boxes["demo"].get("x")) == 260
    assert float(boxes["picture"].get("y")) - float(boxes["table"].get("y")) == 160
    assert all(float(box.get("x")) >= 0 and float(box.get("y")) >= 0 for box in boxes.values())
    assert boxes["table"].get("stroke") == "#c62828"
    assert "Deliver as CSV" in "".join(groups["table"].itertext())
    edges = [
        (p.get("data-source"), p.get("data-target"))
        for p in root.iter(f"{SVG}path")
        if p.get("class") == "edge"
    ]
    assert edges == [("demo", "subset"), ("subset", "table"), ("subset", "picture")]
    width, height = float(root.get("width")), float(root.get("height"))
    assert width >= 520 + NODE_WIDTH and height >= 160 + NODE_HEIGHT
    assert pipeline_svg(DOCUMENT) == pipeline_svg(DOCUMENT)  # pure and deterministic


def test_diagram_spreads_nodes_that_all_sit_at_the_origin_and_escapes_text():
    document = {
        "nodes": [
            {"id": "a<b", "block": "x", "position": {"x": 0, "y": 0}},
            {"id": "c", "block": "y", "position": {"x": 0, "y": 0}},
        ],
        "edges": [],
    }
    root = ET.fromstring(pipeline_svg(document))  # parses: the '<' was escaped
    xs = sorted(float(rect.get("x")) for rect in root.iter(f"{SVG}rect"))
    assert xs[1] - xs[0] >= NODE_WIDTH


@pytest.fixture
def finished_run(user, tmp_path):
    return make_finished_run(user, tmp_path=tmp_path)


def test_report_shows_who_parameters_inputs_versions_timings_figures_and_log(finished_run):
    from apps.delivery.report import report_data, report_html

    data = report_data(finished_run)
    assert data["run"]["owner"] == "alice"
    assert [step["node"] for step in data["steps"]] == ["demo", "subset", "table", "picture"]
    assert all(step["duration_s"] == 4.0 for step in data["steps"])
    assert [input_["node"] for input_ in data["inputs"]] == ["demo", "subset"]
    assert data["inputs"][1]["source"] == "demo/biscay.nc"
    assert data["log"]["levels"] == {"info": 1, "warning": 1}
    assert [f["port"] for f in data["figures"]] == ["image"] and data["figures"][0]["data_uri"].startswith(
        "data:image/png;base64,"
    )
    html = report_html(finished_run, data)
    for text in (
        "alice",
        "demo/biscay.nc",
        "deliver.csv@1.1.0",
        "celery@test",
        "rounded",
        "decimals",
        finished_run.artifacts.get(port="table").sha256,
        "<svg",
    ):
        assert text in html, text


def test_report_pdf_is_a_pdf_with_the_report_text(finished_run):
    from apps.delivery.report import report_html, report_pdf

    pdf = report_pdf(report_html(finished_run))
    assert pdf.startswith(b"%PDF-") and len(pdf) > 5000


@pytest.fixture
def package(finished_run, tmp_path):
    from apps.delivery.services import build_package

    staging = tmp_path / "staging"
    staging.mkdir()
    return finished_run, staging, build_package(finished_run, staging)


def test_package_lists_deliverables_report_provenance_stac_and_crate(package):
    run, staging, files = package
    paths = [file.path for file in files]
    assert paths == [
        "deliverables/table-table.csv",
        "deliverables/picture-image.png",
        "report/report.html",
        "report/report.pdf",
        "pipeline.json",
        "provenance.json",
        "items/table-table.csv.json",
        "items/picture-image.png.json",
        "collection.json",
        "ro-crate-metadata.json",
    ]
    for file in files:
        assert file.local.is_file() and file.local.stat().st_size == file.size


def test_stac_collection_and_items_validate_and_carry_extent_and_processing_fields(package):
    from stac_pydantic import Collection, Item

    run, staging, _ = package
    collection = json.loads((staging / "collection.json").read_text())
    Collection.model_validate(collection)
    assert collection["id"] == f"iliad-run-{run.pk}"
    assert {link["href"] for link in collection["links"] if link["rel"] == "item"} == {
        "./items/table-table.csv.json",
        "./items/picture-image.png.json",
    }
    table = json.loads((staging / "items/table-table.csv.json").read_text())
    Item.model_validate(table)
    assert table["bbox"] == [-5.0, 44.0, -2.0, 45.5]  # from the table's lat/lon columns
    assert table["properties"]["start_datetime"] == "2022-06-01T00:00:00Z"
    assert table["properties"]["end_datetime"] == "2022-06-03T00:00:00Z"
    assert table["properties"]["processing:software"] == {"Iliad Portal": "unversioned"}
    assert "deliver.csv@1.1.0" in table["properties"]["processing:lineage"]
    assert table["properties"]["processing:datetime"].endswith("Z")
    assert table["assets"]["data"]["href"] == "../deliverables/table-table.csv"
    picture = json.loads((staging / "items/picture-image.png.json").read_text())
    Item.model_validate(picture)
    assert picture["geometry"] is None and "datetime" in picture["properties"]  # a PNG has no known extent
    assert collection["extent"]["spatial"]["bbox"] == [[-5.0, 44.0, -2.0, 45.5]]


def test_prov_json_round_trips_and_links_outputs_to_steps_and_the_user(package):
    from prov.model import ProvDocument

    run, staging, _ = package
    document = ProvDocument.deserialize(content=(staging / "provenance.json").read_text(), format="json")
    records = {record.identifier.uri: record for record in document.get_records() if record.identifier}
    base = "http://127.0.0.1:8000/"
    assert f"{base}users/alice" in records
    assert f"{base}runs/{run.pk}/steps/table" in records
    table_artifact = run.artifacts.get(port="table")
    entity = records[f"{base}runs/{run.pk}/artifacts/{table_artifact.pk}"]
    attributes = {str(key): value for key, value in entity.attributes}
    assert attributes["iliad:sha256"] == table_artifact.sha256
    assert attributes["iliad:path"] == "deliverables/table-table.csv"
    generated = [r for r in document.get_records() if r.get_type().localpart == "Generation"]
    assert any(r.args[0] == entity.identifier and r.args[1].uri.endswith("/steps/table") for r in generated)
    assert ProvDocument.deserialize(content=document.serialize(format="json"), format="json") == document


def test_ro_crate_is_a_valid_workflow_run_crate(package):
    run, staging, files = package
    metadata = json.loads((staging / "ro-crate-metadata.json").read_text())
    graph = {entity["@id"]: entity for entity in metadata["@graph"]}
    action = graph[f"#run-{run.pk}"]
    assert action["@type"] == "CreateAction" and action["instrument"] == {"@id": "pipeline.json"}
    assert {ref["@id"] for ref in action["result"]} == {
        "deliverables/table-table.csv",
        "deliverables/picture-image.png",
    }
    assert graph["deliverables/table-table.csv"]["sha256"] == run.artifacts.get(port="table").sha256
    # validate the crate as it lands in a space: every file in place
    crate = staging.parent / "crate"
    for file in files:
        (crate / file.path).parent.mkdir(parents=True, exist_ok=True)
        (crate / file.path).write_bytes(file.local.read_bytes())
    assert_valid_workflow_run_crate(crate)


def test_the_crate_check_rejects_a_crate_whose_run_names_no_workflow(package):
    run, staging, files = package
    metadata = json.loads((staging / "ro-crate-metadata.json").read_text())
    for entity in metadata["@graph"]:
        if entity["@id"] == f"#run-{run.pk}":
            del entity["instrument"]
    (staging / "ro-crate-metadata.json").write_text(json.dumps(metadata))
    for file in files:
        (staging / file.path).parent.mkdir(parents=True, exist_ok=True)
        if not (staging / file.path).exists():
            (staging / file.path).write_bytes(file.local.read_bytes())
    with pytest.raises(AssertionError, match="instrument"):
        assert_valid_workflow_run_crate(staging)


# RO-Crate 1.1 differs from the 1.3 context the rocrate package ships in where the Bioschemas
# workflow terms point (1.3 moved them under https://bioschemas.org/terms/).
RO_CRATE_1_1_TERMS = {
    "ComputationalWorkflow": "https://bioschemas.org/ComputationalWorkflow",
    "FormalParameter": "https://bioschemas.org/FormalParameter",
    "input": "https://bioschemas.org/ComputationalWorkflow#input",
    "output": "https://bioschemas.org/ComputationalWorkflow#output",
}


@pytest.fixture(autouse=True)
def local_json_ld_contexts(monkeypatch):
    """The validator expands the crate with its JSON-LD context, which lives on the web: serve one
    made from the copy the rocrate package ships instead; any other URL fails."""
    from importlib.resources import files

    from rocrate_validator.utils import document_loader

    shipped = json.loads(files("rocrate").joinpath("data/ro-crate.jsonld").read_text("utf8"))
    contexts = {
        "https://w3id.org/ro/crate/1.3/context": shipped,
        "https://w3id.org/ro/crate/1.1/context": {
            **shipped,
            "@context": {**shipped["@context"], **RO_CRATE_1_1_TERMS},
        },
    }

    def fetch(url: str):
        if url.rstrip("/") in contexts:
            return contexts[url.rstrip("/")]
        raise document_loader.OfflineCacheMissError(url)

    monkeypatch.setattr(document_loader, "_fetch_json_ld", fetch)


def assert_valid_workflow_run_crate(folder: Path) -> None:
    """Validate with roc-validator's workflow-run-crate profile (REQUIRED level, offline), failing
    with the issues it found."""
    from rocrate_validator import services

    result = services.validate(
        {
            "rocrate_uri": str(folder),
            "profile_identifier": "workflow-run-crate",
            "skip_checks": OFFLINE_SKIPS.split(","),
            "offline": True,
        }
    )
    issues = [f"{issue.check.identifier}: {issue.message}" for issue in result.get_issues()]
    assert result.passed(), "\n".join(issues)
    assert not issues


def _figure_artifact(run, node: str, figure) -> None:
    """A figure output as a block writes it (the ``figure`` port type's own save), on a step of ``run``."""
    import tempfile

    from blocks.types import PORT_TYPES
    from tests.support.delivery_runs import _artifact

    figure_type = PORT_TYPES["figure"]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"figure{figure_type.extension}"
        figure_type.save(figure, path)
        _artifact(run, run.steps.get(node_id=node), "figure", path.name, path.read_bytes(), "figure",
                  figure_type.media_type)


def _png_pixels(data_uri: str):
    import base64
    import io

    import numpy as np
    from PIL import Image

    assert data_uri.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_uri.split(",", 1)[1]))).convert("RGB"))


def test_plotly_figures_are_drawn_as_pictures_in_the_html_and_the_pdf(finished_run):
    import numpy as np
    import plotly.graph_objects as go

    from apps.delivery.report import report_data, report_html, report_pdf

    series = go.Figure(go.Scatter(x=["2022-06-01", "2022-06-02", "2022-06-03"], y=[17.5, 18.0, 19.25],
                                  mode="lines", name="sst"))
    series.update_layout(title="SST at the site", yaxis_title="°C")
    _figure_artifact(finished_run, "table", series)
    field = go.Figure(go.Heatmap(z=np.arange(12.0).reshape(3, 4), x=[-6, -5, -4, -3], y=[43, 44, 45]))
    field.add_trace(go.Sankey(node={"label": ["a", "b"]}, link={"source": [0], "target": [1], "value": [1]}))
    _figure_artifact(finished_run, "picture", field)
    only_sankey = go.Figure(go.Sankey(node={"label": ["a", "b"]}, link={"source": [0], "target": [1],
                                                                         "value": [1]}))
    _figure_artifact(finished_run, "subset", only_sankey)

    data = report_data(finished_run)
    figures = {f["node"]: f for f in data["figures"] if f["port"] == "figure"}
    assert set(figures) == {"table", "picture", "subset"}
    line, heat = (_png_pixels(figures[node]["data_uri"]) for node in ("table", "picture"))
    assert line.shape[1] > 500 and len(np.unique(line.reshape(-1, 3), axis=0)) > 20  # a plot, not a blank
    assert not np.array_equal(line[:100, :100], heat[:100, :100]) or line.shape != heat.shape
    assert figures["table"]["redrawn"] and figures["table"]["title"] == "SST at the site"
    assert figures["picture"]["not_drawn"] == ["sankey"]
    assert figures["subset"]["data_uri"] is None and figures["subset"]["not_drawn"] == ["sankey"]

    html = report_html(finished_run, data)
    assert html.count('<img src="data:image/png;base64,') == 3  # the PNG output and two drawn figures
    assert "static drawing of the interactive figure" in html and "not drawn here: sankey" in html
    assert "sankey traces cannot be drawn here" in html
    pdf = report_pdf(html)
    assert pdf.count(b"/Subtype /Image") >= 3, pdf.count(b"/Subtype /Image")
