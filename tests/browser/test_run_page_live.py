"""The run page against the real ASGI server (uvicorn): it rides out a server restart on its own
WebSocket without losing or repeating an event, and previews a user's HTML page only in a sandbox."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from django.conf import settings
from django.db import transaction
from playwright.sync_api import expect

from apps.runs.events import events_append
from apps.runs.models import Artifact, Run, StepRun
from blocks.manifest import uri_from_path
from tests.conftest import _database_url_for_worker
from tests.support.asgi_server import AsgiServer

# The page is served from the server the test kills: a sandboxed page that could act as the portal
# would report its origin and reach the API; this one must see an opaque origin and be refused.
HTML_PAGE = """<!doctype html><html><head><title>explorer</title></head><body>
<p id="origin">scripts did not run</p><p id="api">not tried</p>
<script>
  let parentReadable = "yes";
  try { parent.document.title; } catch (error) { parentReadable = "no"; }
  document.getElementById("origin").textContent =
    "origin " + self.origin + "; parent readable: " + parentReadable;
  fetch("/api/runs/", { credentials: "include" })
    .then((response) => { document.getElementById("api").textContent = "api answered " + response.status; })
    .catch(() => { document.getElementById("api").textContent = "api refused"; });
</script></body></html>"""


@pytest.fixture
def asgi_portal(transactional_db, user, context):
    """The portal served by uvicorn on the test database, the browser signed in as ``user``."""
    from django.test import Client

    server = AsgiServer(_database_url_for_worker()).start()
    client = Client()
    client.force_login(user)
    cookie = client.cookies["sessionid"].value
    context.add_cookies([{"name": "sessionid", "value": cookie, "url": server.url}])
    context.set_default_timeout(10_000)
    yield server
    server.stop()


def make_run(owner, state: str) -> Run:
    run = Run.objects.create(
        owner=owner, pipeline_version=1, pipeline_name="Quiet step", state=state,
        snapshot={"document": {"nodes": [], "edges": []}, "blocks": {}},
    )  # fmt: skip
    StepRun.objects.create(
        run=run, node_id="plot", block_id="plot.explorer", block_version="1.0.0", walltime_s=600, state=state
    )
    return run


def append_log(run: Run, *lines: str) -> None:
    with transaction.atomic():
        events_append(
            run_id=run.pk, events=[("log", "plot", {"level": "info", "message": line}) for line in lines]
        )


def test_the_run_page_reconnects_by_itself_and_misses_nothing(asgi_portal, page, page_errors, user):
    run = make_run(user, "running")
    append_log(run, "line 1", "line 2")
    socket_events: list[int] = []
    page.on(
        "websocket",
        lambda socket: socket.on(
            "framereceived", lambda payload: socket_events.append(json.loads(payload)["seq"])
        ),
    )
    polls: list[str] = []
    page.on("request", lambda request: polls.append(request.url) if "/events/" in request.url else None)

    page.goto(f"{asgi_portal.url}/runs/{run.pk}/")
    status = page.get_by_role("status").and_(page.locator("#live-status"))
    log = page.get_by_role("log", name="Run log")
    expect(status).to_have_text("Live updates connected.")
    expect(log).to_contain_text("plot [info] line 2")

    asgi_portal.kill()
    expect(status).to_contain_text("Reconnecting")
    append_log(run, "line 3 (while the server was down)")
    asgi_portal.start()

    expect(status).to_have_text("Live updates connected.", timeout=30_000)
    expect(log).to_contain_text("plot [info] line 3 (while the server was down)")
    shown = [line.split("[info] ")[1] for line in log.inner_text().splitlines()]
    assert shown == ["line 1", "line 2", "line 3 (while the server was down)"]
    # Both connections were WebSockets, the second resumed after the last event the page had, and
    # the missed event came over it, not from the polling fallback.
    assert socket_events == [1, 2, 3]
    assert polls == []
    assert page_errors == []


def test_an_html_result_is_previewed_in_a_sandbox_without_the_portal_origin(
    asgi_portal, page, page_errors, user
):
    run = make_run(user, "succeeded")
    settings.ILIAD_ARTIFACT_ROOT.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="preview-", dir=settings.ILIAD_ARTIFACT_ROOT))
    path = directory / "page.html"
    path.write_text(HTML_PAGE)
    Artifact.objects.create(
        run=run, step=run.steps.get(), port="page", uri=uri_from_path(path), type="html",
        media_type="text/html", sha256="0" * 64, size=path.stat().st_size,
    )  # fmt: skip

    page.goto(f"{asgi_portal.url}/runs/{run.pk}/")
    page.get_by_role("button", name="Preview plot · page").click()
    frame = page.locator("#preview iframe")
    expect(frame).to_have_attribute("sandbox", "allow-scripts")
    expect(frame).to_have_attribute("title", "Preview of plot · page")
    content = page.frame_locator("#preview iframe")
    expect(content.locator("#origin")).to_have_text("origin null; parent readable: no")
    expect(content.locator("#api")).to_have_text("api refused")
    assert page_errors == []


def test_without_websockets_the_page_announces_polling_and_keeps_polling_after_a_failure(
    portal, page, page_errors, user
):
    """pytest-django's live server speaks no WebSocket: the page falls back to the events API, says
    so, and a failed request only delays the next one."""
    run = make_run(user, "running")
    append_log(run, "line 1")
    failed: list[str] = []

    def fail_first_poll(route):
        if not failed:
            failed.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    page.route("**/api/runs/*/events/*", fail_first_poll)
    page.goto(f"{portal}/runs/{run.pk}/")
    status = page.get_by_role("status").and_(page.locator("#live-status"))
    expect(status).to_contain_text("Checking for new events failed; trying again shortly.")
    expect(status).to_contain_text("Live updates are unavailable.")
    log = page.get_by_role("log", name="Run log")
    expect(log).to_contain_text("plot [info] line 1", timeout=20_000)
    expect(status).to_contain_text("Meanwhile checking for new events every 3 s.")
    append_log(run, "line 2")
    expect(log).to_contain_text("plot [info] line 2")
    assert failed == [f"{portal}/api/runs/{run.pk}/events/?after=0"]
    assert page_errors == []
