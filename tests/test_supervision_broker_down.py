"""While the broker is down the portal refuses new runs with a 503 that says why, and a broker or
cache connection error anywhere in the API is a 503, not a 500. The broker here is a real address
with nothing listening (the launcher tests in test_supervision.py kill a real one)."""

from __future__ import annotations

import pytest

from apps.runs.models import Run
from iliad_portal import broker
from iliad_portal.embedded import free_port
from tests.conftest import document, node


@pytest.fixture
def broker_down(settings):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    assert not broker.broker_available()
    return settings


@pytest.fixture
def pipeline_id(api, catalog) -> int:
    doc = document([node("only", "utility.noop")], [])
    response = api.post("/api/pipelines/", {"name": "p", "document": doc}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def test_starting_a_run_while_the_broker_is_down_is_refused_with_503_and_creates_nothing(
    api, pipeline_id, broker_down
):
    response = api.post(f"/api/pipelines/{pipeline_id}/runs/", {}, format="json")
    assert response.status_code == 503
    assert response.json() == {"detail": broker.MESSAGE}
    assert response["Retry-After"] == "5"
    assert Run.objects.count() == 0


def test_rerun_and_retry_are_refused_too(api, pipeline_id, settings):
    created = api.post(f"/api/pipelines/{pipeline_id}/runs/", {}, format="json")  # broker up
    assert created.status_code == 201, created.content
    run_id = created.json()["id"]
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/0"
    for path, body in ((f"/api/runs/{run_id}/rerun/", {"from": "only"}), (f"/api/runs/{run_id}/retry/", {})):
        response = api.post(path, body, format="json")
        assert response.status_code == 503, (path, response.content)
        assert response.json()["detail"] == broker.MESSAGE
    assert Run.objects.count() == 1


def test_the_run_button_of_the_pipeline_page_says_why_instead_of_starting_a_run(
    client, user, pipeline_id, broker_down
):
    client.force_login(user)
    response = client.post(f"/pipelines/{pipeline_id}/run/", follow=True)
    assert response.status_code == 200
    assert "message broker" in response.content.decode()
    assert Run.objects.count() == 0


def test_a_cache_connection_error_in_the_api_is_a_503_not_a_500(api, settings):
    # The API's rate limits count in the cache, which is the broker's Redis in the default setup.
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
        }
    }
    response = api.get("/api/runs/")
    assert response.status_code == 503, response.content
    assert response.json()["detail"] == broker.MESSAGE
