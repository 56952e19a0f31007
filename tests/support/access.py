"""A small world of people with every kind of access to one project's things, for access tests.

``build_access_world()`` makes, in the current transaction (the catalog must be synced):

- users ``owner`` (owns the pipelines and the project), ``editor`` and ``viewer`` (members of the
  project ``ocean-team`` in those roles), ``other`` (signed in, in no project; has a private
  pipeline of their own) — and ``anonymous`` stands for no user;
- pipelines of ``owner``: ``shared`` (in the project, visibility ``project``), ``private`` (in the
  project but ``private``), ``public`` (no project, ``public``); ``other``'s ``others``;
- runs: ``run`` (of ``shared`` by ``owner``, queued, one step, one CSV artifact on disk),
  ``editor_run`` (of ``shared`` by ``editor``), ``private_run`` (of ``private`` by ``owner``);
- a share link of ``shared`` (``share_token``).

``world.client(role)`` is an API client signed in as that role (none for ``anonymous``). The
``access_world`` fixture builds it once per test module inside a transaction that is rolled back at
the end; use it together with ``db`` so each test's own changes are undone.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import pytest
from django.conf import settings
from django.db import transaction

ROLES = ("owner", "editor", "viewer", "other", "anonymous")


def valid_document() -> dict:
    from tests.conftest import document, edge, node

    demo = node("demo", "ocean.demo_dataset", days=5, resolution=1.0)
    mean = node("mean", "ocean.area_mean", variable="sst")
    return document([demo, mean], [edge("demo", "dataset", "mean", "dataset")])


@dataclass
class AccessWorld:
    users: dict = field(default_factory=dict)  # role -> User (no "anonymous")
    project: object = None
    pipelines: dict = field(default_factory=dict)  # shared, private, public, others
    runs: dict = field(default_factory=dict)  # run, editor_run, private_run
    artifact: object = None
    share_link: object = None
    share_token: str = ""

    def client(self, role: str):
        """A DRF client signed in as ``role`` (one of ROLES; ``anonymous``: not signed in)."""
        from rest_framework.test import APIClient

        client = APIClient()
        if role != "anonymous":
            client.force_authenticate(self.users[role])
        return client


def _queued_run(pipeline, owner):
    """A queued run of ``pipeline`` with one step, as ``run_submit`` leaves it before dispatch (made
    directly, so that no task is sent even when the test commits)."""
    from apps.runs.models import Run, StepRun

    run = Run.objects.create(
        owner=owner,
        pipeline=pipeline,
        pipeline_version=1,
        pipeline_name=pipeline.name,
        snapshot={"document": pipeline.versions.get(number=1).document, "blocks": {}},
    )
    StepRun.objects.create(run=run, node_id="mean", block_id="ocean.area_mean", block_version="1.0.0",
                           walltime_s=60, state="queued")
    return run


def build_access_world() -> AccessWorld:
    from django.contrib.auth import get_user_model

    from apps.pipelines.services import pipeline_create
    from apps.projects.services import membership_add, project_create, share_link_create
    from apps.runs.models import Artifact
    from blocks.manifest import uri_from_path

    world = AccessWorld()
    for role in ROLES[:-1]:
        world.users[role] = get_user_model().objects.create_user(username=f"{role}-user")
    owner = world.users["owner"]
    world.project = project_create(user=owner, slug="ocean-team", name="Ocean team")
    membership_add(project=world.project, by=owner, username="editor-user", role="editor")
    membership_add(project=world.project, by=owner, username="viewer-user", role="viewer")
    for name, project, visibility, who in (
        ("shared", world.project, "project", owner),
        ("private", world.project, "private", owner),
        ("public", None, "public", owner),
        ("others", None, "private", world.users["other"]),
    ):
        world.pipelines[name] = pipeline_create(
            owner=who, name=f"{name} SST", document=valid_document(), project=project, visibility=visibility
        )
    world.runs["run"] = _queued_run(world.pipelines["shared"], owner)
    world.runs["editor_run"] = _queued_run(world.pipelines["shared"], world.users["editor"])
    world.runs["private_run"] = _queued_run(world.pipelines["private"], owner)
    content = b"time,sst\n2022-06-01,18.5\n"
    path = settings.ILIAD_ARTIFACT_ROOT / "access" / f"run-{world.runs['run'].pk}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    world.artifact = Artifact.objects.create(
        run=world.runs["run"], step=world.runs["run"].steps.get(), port="table", uri=uri_from_path(path),
        type="table", media_type="text/csv", sha256=hashlib.sha256(content).hexdigest(), size=len(content),
    )
    world.share_link, world.share_token = share_link_create(pipeline=world.pipelines["shared"], by=owner)
    return world


@pytest.fixture(scope="module")
def access_world(django_db_setup, django_db_blocker) -> AccessWorld:
    """The world of ``build_access_world``, made once per module and rolled back at its end."""
    from apps.catalog.services import catalog_sync
    from blocks.registry import default_registry

    with django_db_blocker.unblock(), transaction.atomic():
        catalog_sync(registry=default_registry())
        yield build_access_world()
        transaction.set_rollback(True)
