"""Browser tests: Playwright (pytest-playwright) driving Debian's Chromium against pytest-django's
live server. ``make browser-deps`` installs Chromium; Playwright's own browser download is never used.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

# Playwright's sync API runs an event loop in this thread; the tests still use the ORM directly.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("ILIAD_CHROMIUM", "/usr/bin/chromium")
REPO_ROOT = Path(__file__).resolve().parents[2]
AXE = REPO_ROOT / "frontend" / "node_modules" / "axe-core" / "axe.min.js"
PASSWORD = "alice-password-1"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser-deps` (installs Debian's chromium)")
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--disable-sync",
        ],
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1500, "height": 950}, "accept_downloads": True}


def installation_rows() -> None:
    """The rows a fresh installation's data migrations create (the default data space and compute
    target). Live-server tests run on a flushed database: an earlier transactional test removed them."""
    import importlib

    from django.apps import apps

    for module, function in (
        ("apps.dataspaces.migrations.0002_default_local_space", "create_default_space"),
        ("apps.compute.migrations.0002_default_celery_target", "create_default_target"),
    ):
        getattr(importlib.import_module(module), function)(apps, None)


@pytest.fixture
def portal(live_server, catalog, user, context):
    """The live server URL, with the browser context signed in as ``user`` (alice), on a database
    holding what a fresh installation holds."""
    from django.test import Client

    installation_rows()

    client = Client()
    client.force_login(user)
    cookie = client.cookies["sessionid"]
    context.add_cookies([{"name": "sessionid", "value": cookie.value, "url": live_server.url}])
    context.set_default_timeout(10_000)
    return live_server.url


@pytest.fixture
def page_errors(page):
    """JavaScript errors raised in the page; tests assert it stays empty."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def open_editor(page, url: str):
    page.goto(url)
    page.wait_for_selector("#editor-root[data-ready=true]")
    wait_checked(page)


def wait_checked(page):
    """Wait until the debounced server validation has answered for the current document."""
    page.wait_for_function(
        "() => { const h = document.getElementById('problems-title');"
        " return h && !h.textContent.includes('checking'); }"
    )


def editor_document(page) -> dict:
    return page.evaluate("() => window.iliadEditor.document()")


def node_locator(page, node_id: str):
    return page.locator(f'.react-flow__node[data-id="{node_id}"]')


def handle(page, node_id: str, direction: str, port: str):
    prefix = "in" if direction == "in" else "out"
    return node_locator(page, node_id).locator(f'.react-flow__handle[data-handleid="{prefix}:{port}"]')


def drag_connect(page, source, target):
    """Drag with the pointer from one port handle to another (React Flow uses pointer events)."""
    start = source.bounding_box()
    end = target.bounding_box()
    page.mouse.move(start["x"] + start["width"] / 2, start["y"] + start["height"] / 2)
    page.mouse.down()
    page.mouse.move(end["x"] + end["width"] / 2, end["y"] + end["height"] / 2, steps=12)
    page.mouse.up()


def status_text(page) -> str:
    return page.get_by_test_id("editor-status").inner_text()


def run_axe(page) -> list[dict]:
    """Serious or critical axe-core violations on the current page."""
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run `make frontend` (npm ci installs axe-core)")
    # Evaluated through the DevTools protocol: a <script> tag with axe's source would be inline script,
    # which the portal's Content-Security-Policy refuses.
    page.evaluate("source => (0, eval)(source)", AXE.read_text())
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        {
            "id": violation["id"],
            "impact": violation["impact"],
            "help": violation["help"],
            "nodes": [node["target"] for node in violation["nodes"]][:5],
        }
        for violation in result["violations"]
        if violation["impact"] in ("serious", "critical")
    ]


def write_json(tmp_path: Path, name: str, data) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path
