"""Feedback on runs and results: who may give, read and change it, one per person per item with its
history, notifications to pipeline owners and block maintainers (in the portal and by e-mail), and the
validation figures per block and pipeline version (API, dashboard page, CSV).

The world is ``tests.support.access``: ``run`` is a run of the project's shared pipeline (owner, editor
and viewer see it; ``other`` does not), ``private_run`` is the owner's alone; ``artifact`` is the
CSV result of ``run``'s step ``mean`` (``ocean.area_mean@1.0.0``).
"""

from __future__ import annotations

import csv
import io

import pytest
from django.test import override_settings

from apps.feedback.models import Feedback, Notification

ROLES_SEEING_THE_RUN = ("owner", "editor", "viewer")


def give(world, role: str, run_key: str = "run", **extra):
    body = {"rating": 4, "verdict": "fit", "comment": "looks right", **extra}
    return world.client(role).post(f"/api/runs/{world.runs[run_key].pk}/feedback/", body, format="json")


# --- who may give and see feedback --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "run_key", "expected"),
    [
        ("owner", "run", 201),
        ("editor", "run", 201),
        ("viewer", "run", 201),  # seeing a run is enough to judge it
        ("other", "run", 404),
        ("anonymous", "run", 401),
        ("owner", "private_run", 201),
        ("editor", "private_run", 404),
        ("viewer", "private_run", 404),
        ("other", "private_run", 404),
    ],
)
def test_only_those_who_can_see_a_run_give_feedback_on_it(access_world, db, role, run_key, expected):
    response = give(access_world, role, run_key)
    assert response.status_code == expected, response.content
    assert Feedback.objects.count() == (1 if expected == 201 else 0)
    if expected == 404:
        assert "run" in response.json()["detail"]


@pytest.mark.parametrize(("role", "expected"), [("owner", 200), ("viewer", 200), ("other", 404)])
def test_feedback_is_read_by_those_who_see_the_run_and_hidden_from_others(access_world, db, role, expected):
    feedback_id = give(access_world, "editor").json()["id"]
    response = access_world.client(role).get(f"/api/feedback/{feedback_id}/")
    assert response.status_code == expected
    listed = access_world.client(role).get("/api/feedback/").json()["results"]
    assert [item["id"] for item in listed] == ([feedback_id] if expected == 200 else [])


def test_one_feedback_per_person_per_item_editable_with_history(access_world, db):
    first = give(access_world, "viewer", rating=2, verdict="needs_changes", tags=["Units", "units ", "coast"])
    assert first.status_code == 201
    assert first.json()["tags"] == ["units", "coast"]
    again = give(access_world, "viewer", rating=5, verdict="fit", comment="fixed now")
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    on_result = give(access_world, "viewer", artifact=access_world.artifact.pk, rating=3, verdict="wrong")
    assert on_result.status_code == 201 and on_result.json()["id"] != first.json()["id"]
    assert on_result.json()["node"] == "mean" and on_result.json()["block"] == "ocean.area_mean@1.0.0"
    assert Feedback.objects.filter(user=access_world.users["viewer"]).count() == 2
    detail = access_world.client("viewer").get(f"/api/feedback/{first.json()['id']}/").json()
    assert [(r["number"], r["rating"], r["verdict"]) for r in detail["revisions"]] == [
        (1, 2, "needs_changes"),
        (2, 5, "fit"),
    ]
    unchanged = access_world.client("viewer").put(
        f"/api/feedback/{first.json()['id']}/",
        {"rating": 5, "verdict": "fit", "comment": "fixed now", "tags": []},  # as the second save left it
        format="json",
    )
    assert unchanged.status_code == 200 and len(unchanged.json()["revisions"]) == 2  # nothing changed


def test_nobody_changes_another_persons_feedback(access_world, db):
    feedback_id = give(access_world, "editor").json()["id"]
    body = {"rating": 1, "verdict": "wrong", "comment": "vandalised"}
    owner = access_world.client("owner").put(f"/api/feedback/{feedback_id}/", body, format="json")
    assert owner.status_code == 403 and "only the person" in owner.json()["detail"]
    other = access_world.client("other").put(f"/api/feedback/{feedback_id}/", body, format="json")
    assert other.status_code == 404
    # Giving feedback on the same item as the owner makes the owner's own, never changes the editor's.
    assert give(access_world, "owner", rating=1, verdict="wrong").status_code == 201
    assert Feedback.objects.get(pk=feedback_id).comment == "looks right"


def test_an_artifact_of_another_run_or_a_bad_value_is_refused_naming_the_field(access_world, db):
    response = give(access_world, "owner", "editor_run", artifact=access_world.artifact.pk)
    assert response.status_code == 404 and "artifact" in response.json()["detail"]
    for field, value in (("rating", 6), ("rating", 0), ("verdict", "great"), ("tags", "not-a-list")):
        response = give(access_world, "owner", **{field: value})
        assert response.status_code == 400 and field in response.json()["detail"], (field, response.content)
    assert Feedback.objects.count() == 0


def test_the_list_filters_by_run_result_block_and_pipeline(access_world, db):
    give(access_world, "owner")
    give(access_world, "owner", artifact=access_world.artifact.pk, rating=2, verdict="needs_changes")
    give(access_world, "owner", "private_run", rating=5)
    client = access_world.client("owner")

    def ids(query: str) -> int:
        return client.get(f"/api/feedback/?{query}").json()["count"]

    assert ids("") == 3
    assert ids(f"run={access_world.runs['run'].pk}") == 2
    assert ids(f"artifact={access_world.artifact.pk}") == 1
    assert ids(f"pipeline={access_world.pipelines['private'].pk}") == 1
    assert ids("block=ocean.area_mean") == 3  # the result, and the two runs that used the block
    assert ids("block=plot.map") == 0
    assert ids("mine=true") == 3
    response = client.get("/api/feedback/?run=abc")
    assert response.status_code == 400 and "run" in response.json()["detail"]


# --- notifications ----------------------------------------------------------------------------------


@override_settings(ILIAD_NOTIFY_EMAIL=True)
def test_pipeline_owner_and_block_maintainers_are_notified_in_the_portal_and_by_email(
    access_world, db, django_user_model, mailoutbox, django_capture_on_commit_callbacks
):
    owner = access_world.users["owner"]
    owner.email = "owner@example.org"
    owner.save()
    maintainer = django_user_model.objects.create_user("maintainer", email="m@example.org", is_staff=True)
    with django_capture_on_commit_callbacks(execute=True):
        assert give(access_world, "viewer", comment="the coast is off").status_code == 201
    mine = Notification.objects.get(recipient=owner)
    assert "viewer-user gave feedback on run" in mine.message and "the coast is off" in mine.message
    assert mine.url == f"/runs/{access_world.runs['run'].pk}/#feedback"
    # The maintainer cannot see the run: they learn the rating and verdict, not the comment.
    theirs = Notification.objects.get(recipient=maintainer)
    assert "4/5" in theirs.message and "coast" not in theirs.message
    assert theirs.url == "/validation/blocks/ocean.area_mean/"
    assert not Notification.objects.filter(recipient=access_world.users["viewer"]).exists()  # the author
    assert sorted(message.to[0] for message in mailoutbox) == ["m@example.org", "owner@example.org"]
    assert all(notification.emailed_at for notification in Notification.objects.all())


def test_without_email_configured_notifications_stay_in_the_portal(access_world, db, mailoutbox):
    access_world.users["owner"].email = "owner@example.org"
    access_world.users["owner"].save()
    give(access_world, "editor")
    assert Notification.objects.filter(recipient=access_world.users["owner"]).count() == 1
    assert mailoutbox == []


def test_notifications_are_listed_and_marked_read_by_their_recipient_only(access_world, db):
    give(access_world, "editor")
    owner = access_world.client("owner")
    listed = owner.get("/api/notifications/?unread=true").json()
    assert listed["count"] == 1 and listed["results"][0]["read"] is False
    note_id = listed["results"][0]["id"]
    assert access_world.client("other").post(
        "/api/notifications/read/", {"ids": [note_id]}, format="json"
    ).json() == {"unread": 0}
    assert Notification.objects.get(pk=note_id).read_at is None  # another's id is ignored
    assert owner.post("/api/notifications/read/", {}, format="json").json() == {"unread": 0}
    assert Notification.objects.get(pk=note_id).read_at is not None


# --- validation dashboards --------------------------------------------------------------------------


def test_block_validation_counts_per_version_over_the_runs_one_may_see(access_world, db):
    give(access_world, "owner", rating=4, verdict="fit")
    give(access_world, "editor", artifact=access_world.artifact.pk, rating=2, verdict="wrong")
    give(access_world, "owner", "private_run", rating=5, verdict="fit")
    owner = access_world.client("owner").get("/api/blocks/ocean.area_mean/validation/").json()
    assert owner["count"] == 3 and owner["mean_rating"] == pytest.approx(3.67)
    assert owner["verdicts"] == {"fit": 2, "needs_changes": 0, "wrong": 1}
    assert [(v["version"], v["count"]) for v in owner["versions"]] == [("1.0.0", 3)]
    assert owner["series"][0]["day"] and owner["series"][0]["count"] == 3
    viewer = access_world.client("viewer").get("/api/blocks/ocean.area_mean/validation/").json()
    assert viewer["count"] == 2  # not the private run's
    other = access_world.client("other").get("/api/blocks/ocean.area_mean/validation/").json()
    assert other["count"] == 0 and other["mean_rating"] is None
    assert access_world.client("owner").get("/api/blocks/no.such/validation/").status_code == 404


def test_pipeline_validation_is_per_pipeline_version_and_hidden_from_others(access_world, db):
    give(access_world, "viewer", rating=3, verdict="needs_changes")
    pipeline = access_world.pipelines["shared"]
    data = access_world.client("viewer").get(f"/api/pipelines/{pipeline.pk}/validation/").json()
    assert data["versions"] == [
        {
            "version": "1",
            "count": 1,
            "mean_rating": 3.0,
            "verdicts": {"fit": 0, "needs_changes": 1, "wrong": 0},
        }
    ]
    assert access_world.client("other").get(f"/api/pipelines/{pipeline.pk}/validation/").status_code == 404


def test_dashboard_pages_and_csv_export(access_world, db, client):
    give(access_world, "viewer", comment="=HYPERLINK(evil)", tags=["coast"])
    client.force_login(access_world.users["owner"])
    page = client.get("/validation/blocks/ocean.area_mean/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="rating-over-time"' in html and "/static/plotly/plotly.min.js" in html and "cdn" not in html
    response = client.get("/validation/blocks/ocean.area_mean/csv/")
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert len(rows) == 1 and rows[0]["version"] == "1.0.0" and rows[0]["rating"] == "4"
    assert rows[0]["comment"] == "'=HYPERLINK(evil)"  # not run as a formula by a spreadsheet
    pipeline = access_world.pipelines["shared"]
    assert client.get(f"/validation/pipelines/{pipeline.pk}/").status_code == 200
    assert len(client.get(f"/validation/pipelines/{pipeline.pk}/csv/").content.splitlines()) == 2
    client.force_login(access_world.users["other"])
    assert client.get(f"/validation/pipelines/{pipeline.pk}/").status_code == 404
    assert client.get(f"/validation/pipelines/{pipeline.pk}/csv/").status_code == 404
    assert client.get("/validation/blocks/ocean.area_mean/csv/").content.count(b"\n") == 1  # header only


# --- pages ------------------------------------------------------------------------------------------


def test_run_page_form_saves_feedback_and_shows_others(access_world, db, client):
    run = access_world.runs["run"]
    give(access_world, "editor", comment="editor's view")
    client.force_login(access_world.users["viewer"])
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert 'id="feedback"' in page and f'id="feedback-artifact-{access_world.artifact.pk}"' in page
    assert "editor&#x27;s view" in page
    response = client.post(
        "/feedback/give/",
        {
            "run": run.pk,
            "artifact": access_world.artifact.pk,
            "rating": "3",
            "verdict": "needs_changes",
            "comment": "units?",
            "tags": "units, coast",
        },
    )
    assert response.status_code == 302 and response["Location"].endswith(
        f"#feedback-artifact-{access_world.artifact.pk}"
    )
    saved = Feedback.objects.get(user=access_world.users["viewer"])
    assert (saved.artifact_id, saved.rating, saved.tags) == (access_world.artifact.pk, 3, ["units", "coast"])
    assert "Update feedback" in client.get(f"/runs/{run.pk}/").content.decode()
    client.force_login(access_world.users["other"])
    assert client.post("/feedback/give/", {"run": run.pk, "rating": "3", "verdict": "fit"}).status_code == 404


def test_catalog_page_and_bell_show_feedback(access_world, db, client):
    give(access_world, "editor", artifact=access_world.artifact.pk, comment="too smooth")
    client.force_login(access_world.users["owner"])
    catalog = client.get("/catalog/ocean.area_mean/").content.decode()
    assert "too smooth" in catalog and "/validation/blocks/ocean.area_mean/" in catalog
    assert "Notifications: 1 unread" in catalog
    client.force_login(access_world.users["other"])
    other = client.get("/catalog/ocean.area_mean/").content.decode()
    assert "too smooth" not in other and "No feedback on this block yet" in other
    assert "unread" not in other


# --- the Django admin ---------------------------------------------------------------------------------


def test_the_admin_shows_feedback_with_its_history_read_only_and_scopes_notifications(
    access_world, db, client
):
    from django.contrib.auth.models import Permission

    assert give(access_world, "viewer").status_code == 201
    feedback = Feedback.objects.get()
    admin_user = type(access_world.users["owner"]).objects.create_superuser(
        username="root", password="x" * 12
    )
    client.force_login(admin_user)
    for path in (
        "/admin/feedback/feedback/",
        f"/admin/feedback/feedback/{feedback.pk}/change/",
        "/admin/feedback/notification/",
        "/admin/collab/comment/",
        "/admin/workshops/workshop/",
        "/admin/workshops/workshoprun/",
    ):
        assert client.get(path).status_code == 200, path
    page = client.get(f"/admin/feedback/feedback/{feedback.pk}/change/").content.decode()
    assert "looks right" in page and "revision" in page.lower()
    assert client.get("/admin/feedback/feedback/add/").status_code == 403  # given by its author only

    # Staff who are not superusers see only their own notifications.
    staff = access_world.users["editor"]
    staff.is_staff = True
    staff.save()
    staff.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_notification", "view_feedback"])
    )
    from apps.feedback.services import notify

    notify(recipients=[staff], message="for the editor only")
    client.force_login(staff)
    listed = client.get("/admin/feedback/notification/").content.decode()
    others = list(Notification.objects.exclude(recipient=staff).values_list("message", flat=True))
    assert others and "for the editor only" in listed
    assert not any(message[:40] in listed for message in others)
    assert client.get("/admin/feedback/feedback/").status_code == 200  # the runs the editor may see
