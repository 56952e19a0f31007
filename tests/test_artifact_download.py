"""How artifacts are served: a user's HTML only inside a script sandbox without the portal's origin,
other types inline only under their exact, safe media type, everything else as a download; never
sniffed, and with a file name that is safe in the header."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from django.conf import settings
from django.test import override_settings

from apps.runs.models import Artifact, Run, StepRun
from blocks.manifest import uri_from_path

HTML_PAGE = b"<!doctype html><title>explorer</title><script>document.title = 'ran'</script>"


@pytest.fixture
def store(db, user):
    """``store(file name, content, media type)`` records an artifact of a run of ``user``'s and
    returns the URL that downloads it."""
    run = Run.objects.create(owner=user, pipeline_version=1, pipeline_name="p", snapshot={})
    step = StepRun.objects.create(
        run=run, node_id="plot", block_id="plot.explorer", block_version="1.0.0", walltime_s=60
    )
    settings.ILIAD_ARTIFACT_ROOT.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="download-test-", dir=settings.ILIAD_ARTIFACT_ROOT))

    def store_artifact(name: str, content: bytes, media_type: str) -> str:
        path = directory / name
        path.write_bytes(content)
        artifact = Artifact.objects.create(
            run=run,
            step=step,
            port=f"port{Artifact.objects.count()}",
            uri=uri_from_path(path),
            type="file",
            media_type=media_type,
            sha256="0" * 64,
            size=len(content),
        )
        return f"/api/runs/{run.pk}/artifacts/{artifact.pk}/download/"

    return store_artifact


def body(response) -> bytes:
    return b"".join(response.streaming_content)


def test_an_html_page_is_shown_only_in_a_script_sandbox_without_the_portal_origin(api, store):
    url = store("page.html", HTML_PAGE, "text/html")

    shown = api.get(url, {"inline": "1"})
    assert shown.status_code == 200
    assert shown["Content-Type"] == "text/html"
    assert shown["Content-Disposition"] == 'inline; filename="plot-page.html"'
    assert shown["Content-Security-Policy"] == "sandbox allow-scripts"
    assert "allow-same-origin" not in shown["Content-Security-Policy"]
    assert shown["X-Content-Type-Options"] == "nosniff"
    assert shown["X-Frame-Options"] == "SAMEORIGIN"  # the run page previews it in an iframe
    assert body(shown) == HTML_PAGE

    downloaded = api.get(url)
    assert downloaded["Content-Disposition"] == 'attachment; filename="plot-page.html"'
    assert downloaded["Content-Security-Policy"] == "sandbox allow-scripts"
    assert downloaded["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("figure.png", "image/png"),
        ("table.csv", "text/csv"),
        ("stats.json", "application/json"),
        ("features.geojson", "application/geo+json"),
        ("figure.plotly.json", "application/vnd.plotly.v1+json"),
    ],
)
def test_a_previewable_type_is_shown_inline_under_its_exact_media_type(api, store, name, media_type):
    url = store(name, b"<script>alert(1)</script>", media_type)
    shown = api.get(url, {"inline": "1"})
    assert shown.status_code == 200
    assert shown["Content-Type"] == media_type
    assert shown["Content-Disposition"] == f'inline; filename="plot-{name}"'
    assert shown["X-Content-Type-Options"] == "nosniff"
    assert shown["Content-Security-Policy"] == "sandbox"

    downloaded = api.get(url)
    assert downloaded["Content-Disposition"] == f'attachment; filename="plot-{name}"'
    assert downloaded["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("field.nc", "application/x-netcdf"),
        ("drawing.svg", "image/svg+xml"),  # an image type that can carry scripts
        ("page.xhtml", "application/xhtml+xml"),
        ("notes.txt", ""),
    ],
)
def test_any_other_type_is_always_downloaded(api, store, name, media_type):
    url = store(name, b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>", media_type)
    response = api.get(url, {"inline": "1"})
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="plot-{name}"'
    assert response["Content-Type"] == (media_type or "application/octet-stream")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"] == "sandbox"


def test_the_file_name_in_the_header_is_reduced_to_safe_characters(api, store):
    url = store('..\\evil"; name=x\r.é.csv', b"a,b\n", "text/csv")
    response = api.get(url)
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="plot-.._evil___name_x_._.csv"'


def test_the_html_sandbox_wins_over_a_site_wide_content_security_policy(api, store):
    from csp.constants import SELF

    middleware = [*settings.MIDDLEWARE]
    if "csp.middleware.CSPMiddleware" not in middleware:
        middleware.append("csp.middleware.CSPMiddleware")
    site_policy = {"DIRECTIVES": {"default-src": [SELF]}}
    url = store("page.html", HTML_PAGE, "text/html")
    with override_settings(MIDDLEWARE=middleware, CONTENT_SECURITY_POLICY=site_policy):
        assert api.get("/api/runs/")["Content-Security-Policy"] == "default-src 'self'"
        shown = api.get(url, {"inline": "1"})
    assert shown["Content-Security-Policy"] == "sandbox allow-scripts"
