"""Server-rendered pages: sign-in, catalog, pipeline and run pages, and who may see them."""

import json

import pytest
from django.http import HttpRequest

from apps.pipelines.services import pipeline_create
from apps.runs.services import run_submit
from tests.conftest import document, edge, node


@pytest.fixture
def run(user, catalog, django_capture_on_commit_callbacks):
    doc = document(
        [
            node("demo", "ocean.demo_dataset", days=3, resolution=1.0),
            node("mean", "ocean.area_mean", variable="sst"),
        ],
        [edge("demo", "dataset", "mean", "dataset")],
    )
    pipeline = pipeline_create(owner=user, name="Biscay SST", document=doc)
    with django_capture_on_commit_callbacks(execute=False):  # stays queued: no worker here
        return run_submit(pipeline=pipeline, user=user)


def test_home_invites_anonymous_visitors_to_sign_in(client, db):
    response = client.get("/")
    assert response.status_code == 200
    assert b'href="/login/"' in response.content


def test_pages_need_a_signed_in_user(client, db):
    for url in ("/catalog/", "/pipelines/", "/runs/", "/account/tokens/"):
        response = client.get(url)
        assert response.status_code == 302 and response.url.startswith("/login/"), url


def test_sign_in_with_the_demo_account_credentials(client, db, settings):
    from django.core.management import call_command

    call_command("ensure_demo_user")
    password = (settings.ILIAD_HOME / "demo-password").read_text()
    response = client.post("/login/", {"username": "demo", "password": password})
    assert response.status_code == 302
    assert b"Welcome, demo" in client.get("/").content
    call_command("ensure_demo_user")  # idempotent: same password still works
    assert client.login(request=HttpRequest(), username="demo", password=password)  # axes needs a request


def test_catalog_page_groups_blocks_and_searches(client, user, catalog):
    client.force_login(user)
    page = client.get("/catalog/").content.decode()
    assert "Demo ocean dataset" in page and 'data-block-id="ocean.subset"' in page
    assert page.index(">Data<") < page.index(">Transform<") < page.index(">Analytics<")
    found = client.get("/catalog/?q=subset").content.decode()
    assert 'data-block-id="ocean.subset"' in found and 'data-block-id="plot.timeseries"' not in found
    detail = client.get("/catalog/ocean.area_mean/").content.decode()
    assert "<code>variable</code>" in detail


def test_run_page_shows_steps_to_its_owner_only(client, user, other_user, run):
    client.force_login(user)
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert 'data-node="demo"' in page and 'data-node="mean"' in page and "Biscay SST" in page
    client.force_login(other_user)
    assert client.get(f"/runs/{run.pk}/").status_code == 404
    assert client.get(f"/pipelines/{run.pipeline_id}/").status_code == 404


def test_running_a_pipeline_from_its_page_lands_on_the_run_page(
    client, user, run, django_capture_on_commit_callbacks
):
    client.force_login(user)
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(f"/pipelines/{run.pipeline_id}/run/")
    assert response.status_code == 302 and response.url.startswith("/runs/")


def test_tokens_page_shows_a_new_key_once(client, user):
    client.force_login(user)
    created = client.post("/account/tokens/", {"name": "notebook"}).content.decode()
    key = created.split('id="new-token">')[1].split("<")[0]
    assert key.startswith("ilp_") and len(key) > 40
    later = client.get("/account/tokens/").content.decode()
    assert key not in later and f"{key[:8]}…" in later and "notebook" in later


def test_home_offers_templates_a_new_pipeline_and_recent_work(client, user, db):
    client.force_login(user)
    page = client.get("/").content.decode()
    assert "through the API" not in page
    assert 'href="/templates/"' in page and 'href="/pipelines/new/"' in page
    assert "/pipelines/new/?template=" in page  # a pilot template opens straight in the editor
    assert "Your recent work" in page


def test_catalog_cards_render_markdown_before_shortening(client, user, catalog):
    client.force_login(user)
    page = client.get("/catalog/").content.decode()
    cards = page[page.index('class="cards"'):]
    card = cards[cards.index('data-block-id="deliver.csv"'):]
    card = card[: card.index("</article>")]
    assert "**" not in card  # cutting the source first left "**What comes …" unrendered


def test_catalog_search_knows_synonyms(client, user, catalog):
    client.force_login(user)
    for query in ("heat wave", "MHW", "marine heatwave"):
        page = client.get("/catalog/", {"q": query}).content.decode()
        assert 'data-block-id="analytics.marine_heatwaves"' in page, query
    sst = client.get("/catalog/", {"q": "sea surface temperature"}).content.decode()
    assert 'data-block-id="analytics.marine_heatwaves"' in sst
    nothing = client.get("/catalog/", {"q": "heat wave zebra"}).content.decode()
    assert "data-block-id=" not in nothing  # every word must match


def test_block_page_starts_a_pipeline_and_names_its_templates(client, user, catalog):
    client.force_login(user)
    page = client.get("/catalog/analytics.marine_heatwaves/").content.decode()
    assert "/pipelines/new/?block=analytics.marine_heatwaves" in page
    assert "/pipelines/new/?template=aquaculture-heatwave-alert" in page
    editor = client.get("/pipelines/new/", {"block": "analytics.marine_heatwaves"}).content.decode()
    start = editor.index('id="editor-document"')
    document = json.loads(editor[editor.index(">", start) + 1: editor.index("</script>", start)])
    assert [node["block"] for node in document["nodes"]] == ["analytics.marine_heatwaves"]
    from engine import parse_document

    parse_document(document)  # a valid document
    unknown = client.get("/pipelines/new/", {"block": "no.such"}).content.decode()
    assert 'id="editor-document" type="application/json">null<' in unknown
