"""axe-core on the project, pipeline-sharing and shared-link pages: no serious or critical violations."""

from __future__ import annotations

import pytest

from tests.browser.conftest import run_axe
from tests.conftest import document, edge, node


@pytest.fixture
def shared_pipeline(user, other_user, catalog):
    from apps.pipelines.services import pipeline_create
    from apps.projects.services import membership_add, project_create, share_link_create

    project = project_create(user=user, slug="ocean-team", name="Ocean team")
    membership_add(project=project, by=user, username=other_user.username, role="viewer")
    nodes = [node("demo", "ocean.demo_dataset", days=5), node("mean", "ocean.area_mean", variable="sst")]
    pipeline = pipeline_create(
        owner=user, name="Shared SST", document=document(nodes, [edge("demo", "dataset", "mean", "dataset")]),
        project=project, visibility="project",
    )
    return pipeline, share_link_create(pipeline=pipeline, by=user)[1]


def test_project_and_sharing_pages(portal, page, shared_pipeline):
    pipeline, token = shared_pipeline
    for path in ("/projects/", "/projects/ocean-team/", f"/pipelines/{pipeline.pk}/", f"/share/{token}/"):
        page.goto(f"{portal}{path}")
        assert run_axe(page) == [], path
