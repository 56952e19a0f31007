"""Comments pinned to nodes and to the pipeline: threads, @mentions, resolve/reopen, and who may
do what (everyone who sees the pipeline comments; only authors change their text)."""

import pytest
from rest_framework.test import APIClient

from apps.pipelines.services import pipeline_create
from apps.projects.services import membership_add, project_create
from tests.conftest import document, node


@pytest.fixture
def people(catalog, django_user_model):
    users = {
        name: django_user_model.objects.create_user(username=name)
        for name in ("owner", "editor", "viewer", "other")
    }
    project = project_create(user=users["owner"], slug="team", name="Team")
    membership_add(project=project, by=users["owner"], username="editor", role="editor")
    membership_add(project=project, by=users["owner"], username="viewer", role="viewer")
    pipeline = pipeline_create(
        owner=users["owner"],
        name="SST",
        document=document([node("demo", "ocean.demo_dataset", days=5, resolution=1.0)], []),
        project=project,
        visibility="project",
    )
    clients = {}
    for name, user in users.items():
        clients[name] = APIClient()
        clients[name].force_authenticate(user)
    return pipeline, clients


def url(pipeline, comment_id=None):
    base = f"/api/pipelines/{pipeline.pk}/comments/"
    return f"{base}{comment_id}/" if comment_id else base


def test_a_thread_on_a_node_with_a_mention_a_reply_resolve_and_reopen(people):
    pipeline, clients = people
    created = clients["viewer"].post(
        url(pipeline), {"body": "Is 5 days enough, @editor?", "node_id": "demo"}, format="json"
    )
    assert created.status_code == 201, created.json()
    thread = created.json()
    assert thread["node_id"] == "demo" and thread["author"] == "viewer"
    assert thread["mentions"] == ["editor"] and thread["resolved"] is False

    reply = clients["editor"].post(
        url(pipeline), {"body": "Make it 7.", "parent": thread["id"]}, format="json"
    )
    assert reply.status_code == 201
    assert reply.json()["node_id"] == "demo" and reply.json()["parent"] == thread["id"]
    on_pipeline = clients["owner"].post(url(pipeline), {"body": "Ready for Friday?"}, format="json")
    assert on_pipeline.json()["node_id"] == ""

    resolved = clients["editor"].patch(url(pipeline, thread["id"]), {"resolved": True}, format="json")
    assert resolved.status_code == 200
    assert resolved.json()["resolved"] is True and resolved.json()["resolved_by"] == "editor"
    reopened = clients["viewer"].patch(url(pipeline, thread["id"]), {"resolved": False}, format="json")
    assert reopened.json()["resolved"] is False

    listed = clients["viewer"].get(url(pipeline)).json()
    assert [(c["author"], c["node_id"], c["parent"]) for c in listed] == [
        ("viewer", "demo", None),
        ("editor", "demo", thread["id"]),
        ("owner", "", None),
    ]


def test_only_the_author_changes_a_comment_and_a_viewer_cannot_resolve_others_threads(people):
    pipeline, clients = people
    thread = clients["owner"].post(url(pipeline), {"body": "Check units"}, format="json").json()
    refused = clients["editor"].patch(url(pipeline, thread["id"]), {"body": "changed"}, format="json")
    assert refused.status_code == 403
    assert (
        clients["viewer"].patch(url(pipeline, thread["id"]), {"resolved": True}, format="json").status_code
        == 403
    )
    edited = clients["owner"].patch(url(pipeline, thread["id"]), {"body": "Check the units"}, format="json")
    assert edited.json()["body"] == "Check the units"


def test_someone_who_cannot_see_the_pipeline_gets_404(people):
    pipeline, clients = people
    assert clients["other"].get(url(pipeline)).status_code == 404
    assert clients["other"].post(url(pipeline), {"body": "hi"}, format="json").status_code == 404
    assert APIClient().get(url(pipeline)).status_code in (401, 403)


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        ({"body": "  "}, "body", "may not be blank"),
        ({"body": "hi @nobody"}, "body", "no user named @nobody"),
        ({"body": "hi @other"}, "body", "@other cannot see this pipeline"),
        ({"body": "hi", "parent": 999}, "parent", "has no comment 999"),
        ({"body": "x" * 5001}, "body", "5000"),
        ({"node_id": "demo"}, "body", "required"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(people, payload, field, message):
    pipeline, clients = people
    response = clients["owner"].post(url(pipeline), payload, format="json")
    assert response.status_code == 400
    assert message in " ".join(response.json()["fields"][field])


def test_mentioned_people_are_notified_in_the_portal_once_and_never_the_author(people):
    from apps.feedback.models import Notification

    pipeline, clients = people
    thread = (
        clients["viewer"]
        .post(
            url(pipeline),
            {"body": "Is 5 days enough, @editor? (cc @viewer)", "node_id": "demo"},
            format="json",
        )
        .json()
    )
    notes = list(Notification.objects.values_list("recipient__username", "message", "url"))
    assert notes == [
        (
            "editor",
            "viewer mentioned you on node demo of “SST”: Is 5 days enough, @editor? (cc @viewer)",
            f"/pipelines/{pipeline.pk}/edit/?node=demo",
        )
    ]
    # Editing the text notifies only who is newly mentioned.
    clients["viewer"].patch(
        url(pipeline, thread["id"]), {"body": "@editor and @owner: 5 days?"}, format="json"
    )
    assert sorted(Notification.objects.values_list("recipient__username", flat=True)) == ["editor", "owner"]

    # The mentioned person sees it in their list (the bell), others do not.
    def listed(name):
        body = clients[name].get("/api/notifications/").json()
        return [item["message"][:25] for item in (body["results"] if isinstance(body, dict) else body)]

    assert listed("editor") == ["viewer mentioned you on n"]
    assert listed("other") == []
