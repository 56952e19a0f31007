"""The portal's pages work under its Content-Security-Policy: no violation is reported while the editor,
a run page with a figure preview, the catalog, the API docs and the admin are used."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import node_locator, open_editor
from tests.conftest import document, edge, node, wait_for_run

# Runs before any script of each page (CDP, outside the page's policy); records what the policy refused.
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(
    event.violatedDirective + " refused " + (event.blockedURI || "inline") + " at " + event.sourceFile
  );
});
"""


@pytest.fixture
def csp_violations(page):
    """CSP violations reported while the test ran: the pages' events and the console's refusals."""
    console: list[str] = []
    page.add_init_script(RECORD_VIOLATIONS)
    page.on(
        "console",
        lambda message: console.append(message.text) if "Content Security Policy" in message.text else None,
    )

    def collected() -> list[str]:
        return console + page.evaluate("() => window.__cspViolations || []")

    return collected


def assert_under_policy(page, csp_violations) -> None:
    response_policy = page.evaluate(
        "async () => (await fetch(location.href, {credentials: 'same-origin'})).headers"
        ".get('content-security-policy')"
    )
    assert response_policy and "script-src 'self'" in response_policy, response_policy
    assert csp_violations() == []


@pytest.mark.e2e  # a real worker makes the figure: this test runs again on PostgreSQL + Redis
def test_run_page_with_a_figure_preview(portal, page, page_errors, csp_violations, worker, user):
    from apps.pipelines.services import pipeline_create
    from apps.runs.services import run_submit

    doc = document(
        [node("demo", "ocean.demo_dataset", days=3), node("map", "plot.map", variable="sst")],
        [edge("demo", "dataset", "map", "dataset")],
    )
    run = run_submit(pipeline=pipeline_create(owner=user, name="Map", document=doc), user=user)
    wait_for_run(run.pk, expect="succeeded")
    page.goto(f"{portal}/runs/{run.pk}/")  # opens the run's WebSocket: connect-src must allow it
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#preview .main-svg").first).to_be_visible(timeout=20_000)  # plotly drew it
    page.locator("#preview .heatmaplayer, #preview image").first.wait_for(state="attached")
    assert_under_policy(page, csp_violations)
    assert page_errors == []


def test_editor_with_parameter_checks_and_auto_layout(portal, page, page_errors, csp_violations, user):
    from apps.pipelines.services import pipeline_create

    doc = document(
        [node("demo", "ocean.demo_dataset", days=5), node("mean", "ocean.area_mean", variable="sst")],
        [edge("demo", "dataset", "mean", "dataset")],
    )
    pipeline = pipeline_create(owner=user, name="Laid out", document=doc)
    open_editor(page, f"{portal}/pipelines/{pipeline.pk}/edit/")
    before = node_locator(page, "mean").bounding_box()
    page.get_by_role("button", name="Auto-layout").click()  # elkjs, loaded on first use
    page.wait_for_function(
        "([x, y]) => { const b = document.querySelector('.react-flow__node[data-id=mean]')"
        ".getBoundingClientRect(); return Math.abs(b.x - x) > 1 || Math.abs(b.y - y) > 1; }",
        arg=[before["x"], before["y"]],
    )
    # The parameter form checks values against the block's JSON Schema (Ajv compiles it: eval).
    node_locator(page, "demo").locator(".block-title").click()
    page.locator(".params-form").get_by_label("Number of days").fill("0")
    page.wait_for_selector(".params-form .error-detail")
    open_editor(page, f"{portal}/pipelines/new/")
    assert_under_policy(page, csp_violations)
    assert page_errors == []


def test_catalog_and_api_docs(portal, page, page_errors, csp_violations):
    page.goto(f"{portal}/catalog/")
    expect(page.locator("main h1")).to_be_visible()
    assert_under_policy(page, csp_violations)
    page.goto(f"{portal}/api/docs/")
    expect(page.locator(".swagger-ui .opblock").first).to_be_visible(timeout=20_000)  # schema loaded
    page.locator(".swagger-ui .opblock-summary").first.click()  # an operation opens
    expect(page.locator(".swagger-ui .opblock-body").first).to_be_visible()
    assert_under_policy(page, csp_violations)
    assert page_errors == []


def test_admin(live_server, page, page_errors, csp_violations, django_user_model):
    root = django_user_model.objects.create_superuser(username="root", password="root-password-1")
    page.goto(f"{live_server.url}/admin/")
    page.get_by_label("Username").fill("root")
    page.get_by_label("Password").fill("root-password-1")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Site administration")).to_be_visible()
    page.goto(f"{live_server.url}/admin/accounts/user/{root.pk}/change/")  # the admin's scripts and widgets
    expect(page.locator("#user_form")).to_be_visible()
    assert_under_policy(page, csp_violations)
    assert page_errors == []
