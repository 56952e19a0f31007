"""Workshops: who takes part (the facilitator, people added by name or by an expiring join link, and the
members of the workshop's project; everyone else gets 404), the facilitator's set-up, the follow-me state
with the agenda timer, runs started from the workshop (linked to it and put up for feedback) and the
exported outcome (pipeline versions with their diffs, feedback, comments, decisions) as JSON, CSV and a
summary page.

The world is ``tests.support.access``: ``owner`` facilitates; ``editor`` and ``viewer`` are members of
the project ``ocean-team``; ``other`` is in no project.
"""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.feedback.services import feedback_give
from apps.pipelines.models import PipelineVersion
from apps.workshops.models import Workshop, WorkshopRun
from apps.workshops.services import (
    agenda_item_add,
    agenda_item_start,
    decision_add,
    join_link_create,
    pipeline_add,
    workshop_create,
)


@pytest.fixture
def workshop(access_world, db) -> Workshop:
    owner = access_world.users["owner"]
    workshop = workshop_create(user=owner, title="Biscay heatwave co-design")
    pipeline_add(workshop=workshop, by=owner, pipeline=access_world.pipelines["shared"])
    item = agenda_item_add(workshop=workshop, by=owner, title="Review the alert", minutes=15)
    agenda_item_add(workshop=workshop, by=owner, title="Decide thresholds", minutes=10)
    agenda_item_start(workshop=workshop, by=owner, item=item)
    return workshop


def page_client(client, world, role: str):
    if role != "anonymous":
        client.force_login(world.users[role])
    return client


PAGES = ("", "follow/", "state/")


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize(
    ("role", "expected"),
    [("owner", 200), ("editor", 404), ("viewer", 404), ("other", 404), ("anonymous", 302)],
)
def test_a_workshop_without_participants_is_its_facilitators_alone(
    access_world, workshop, client, page, role, expected
):
    response = page_client(client, access_world, role).get(f"/workshops/{workshop.pk}/{page}")
    assert response.status_code == expected


@pytest.mark.parametrize("role", ["editor", "viewer"])
def test_the_projects_members_take_part_when_the_workshop_has_a_project(access_world, workshop, client, role):
    workshop.project = access_world.project
    workshop.save()
    client = page_client(client, access_world, role)
    assert client.get(f"/workshops/{workshop.pk}/").status_code == 200
    assert client.get("/workshops/").content.decode().count("Biscay heatwave co-design") == 1
    # ... but they do not manage it or export it
    assert (
        client.post(
            f"/workshops/{workshop.pk}/manage/", {"action": "add_item", "title": "x", "minutes": "5"}
        ).status_code
        == 403
    )
    assert client.get(f"/workshops/{workshop.pk}/export.json").status_code == 403
    assert page_client(client, access_world, "other").get(f"/workshops/{workshop.pk}/").status_code == 404


def test_a_join_link_adds_who_opens_it_until_it_expires(access_world, workshop, client):
    token = join_link_create(workshop=workshop, by=access_world.users["owner"], hours=2)
    client = page_client(client, access_world, "other")
    assert client.get(f"/workshops/{workshop.pk}/").status_code == 404
    assert "Join “Biscay heatwave co-design”" in client.get(f"/workshops/join/{token}/").content.decode()
    assert client.get(f"/workshops/{workshop.pk}/").status_code == 404  # opening is not joining
    assert client.post(f"/workshops/join/{token}/").status_code == 302
    assert client.get(f"/workshops/{workshop.pk}/").status_code == 200
    assert client.get("/workshops/join/not-a-token/").status_code == 404
    Workshop.objects.filter(pk=workshop.pk).update(join_expires_at=timezone.now() - timedelta(minutes=1))
    client.force_login(access_world.users["editor"])
    expired = client.post(f"/workshops/join/{token}/")
    assert expired.status_code == 410 and "expired" in expired.content.decode()
    assert client.get(f"/workshops/{workshop.pk}/").status_code == 404
    # A new link replaces the old one.
    new_token = join_link_create(workshop=workshop, by=access_world.users["owner"], hours=1)
    assert client.get(f"/workshops/join/{token}/").status_code == 404
    assert client.get(f"/workshops/join/{new_token}/").status_code == 200


def test_the_join_link_is_made_on_the_page_and_shown_once(access_world, workshop, client):
    client = page_client(client, access_world, "owner")
    client.post(f"/workshops/{workshop.pk}/manage/", {"action": "join_link", "hours": "3"})
    first = client.get(f"/workshops/{workshop.pk}/").content.decode()
    assert "/workshops/join/" in first
    assert "/workshops/join/" not in client.get(f"/workshops/{workshop.pk}/").content.decode()
    too_long = client.post(
        f"/workshops/{workshop.pk}/manage/", {"action": "join_link", "hours": "100000"}, follow=True
    )
    assert "hours: between 1 and 720" in too_long.content.decode()


def test_the_facilitator_sets_up_the_agenda_participants_and_decisions(access_world, workshop, client):
    client = page_client(client, access_world, "owner")
    manage = f"/workshops/{workshop.pk}/manage/"
    client.post(manage, {"action": "add_participant", "username": "other-user"})
    client.post(manage, {"action": "add_item", "title": "Wrap up", "minutes": "5"})
    third = workshop.agenda.get(title="Wrap up")
    client.post(manage, {"action": "start_item", "item": str(third.pk)})
    client.post(manage, {"action": "decision", "text": "Alert at the 90th percentile"})
    state = client.get(f"/workshops/{workshop.pk}/state/").json()
    assert [item["title"] for item in state["agenda"]] == ["Review the alert", "Decide thresholds", "Wrap up"]
    assert state["current"]["title"] == "Wrap up" and state["current"]["running"]
    assert 0 < state["current"]["left_s"] <= 300
    assert state["decisions"] == [{"text": "Alert at the 90th percentile", "item": third.pk}]
    assert workshop.participants.filter(username="other-user").exists()
    unknown = client.post(manage, {"action": "add_participant", "username": "nobody"}, follow=True)
    assert "there is no user &#x27;nobody&#x27;" in unknown.content.decode()
    assert client.post(manage, {"action": "explode"}, follow=True).status_code == 200


def test_runs_started_in_a_workshop_are_linked_and_prompt_for_feedback(access_world, workshop, client):
    workshop.project = access_world.project
    workshop.save()
    editor = page_client(client, access_world, "editor")
    pipeline = access_world.pipelines["shared"]
    response = editor.post(f"/workshops/{workshop.pk}/run/", {"pipeline": str(pipeline.pk)})
    assert response.status_code == 302
    link = WorkshopRun.objects.get(workshop=workshop)
    assert response["Location"] == f"/runs/{link.run_id}/"
    assert link.started_by == access_world.users["editor"] and link.agenda_item == workshop.current_item
    # A viewer of the project may see the pipeline but not run it.
    viewer = page_client(client, access_world, "viewer")
    assert viewer.post(f"/workshops/{workshop.pk}/run/", {"pipeline": str(pipeline.pk)}).status_code == 403
    # A pipeline that is not the workshop's is refused.
    other_pipeline = access_world.pipelines["public"]
    refused = viewer.post(f"/workshops/{workshop.pk}/run/", {"pipeline": str(other_pipeline.pk)}, follow=True)
    assert "not one of this workshop" in refused.content.decode()
    assert WorkshopRun.objects.count() == 1
    link.run.state = "succeeded"
    link.run.save()
    page = viewer.get(f"/workshops/{workshop.pk}/").content.decode()
    assert "Your feedback is wanted" in page and f"/runs/{link.run_id}/#feedback" in page
    run_page = viewer.get(f"/runs/{link.run_id}/").content.decode()
    assert "This run was started in the workshop" in run_page and "Biscay heatwave co-design" in run_page
    feedback_give(user=access_world.users["viewer"], run=link.run, rating=4, verdict="fit")
    assert "Your feedback is wanted" not in viewer.get(f"/workshops/{workshop.pk}/").content.decode()
    assert "This run was started in the workshop" not in viewer.get(f"/runs/{link.run_id}/").content.decode()


def test_the_outcome_has_versions_with_diffs_feedback_comments_and_decisions(access_world, workshop, client):
    owner = access_world.users["owner"]
    pipeline = access_world.pipelines["shared"]
    document = PipelineVersion.objects.get(pipeline=pipeline, number=1).document
    changed = {**document, "nodes": [dict(n) for n in document["nodes"]]}
    changed["nodes"][1]["params"] = {**changed["nodes"][1]["params"], "variable": "sss"}
    PipelineVersion.objects.create(
        pipeline=pipeline, number=2, document=changed, message="salinity", created_by=owner
    )
    WorkshopRun.objects.create(workshop=workshop, run=access_world.runs["run"], started_by=owner)
    feedback_give(
        user=access_world.users["viewer"],
        run=access_world.runs["run"],
        rating=2,
        verdict="wrong",
        comment="=cmd",
    )
    decision_add(workshop=workshop, by=owner, text="Use salinity")
    client = page_client(client, access_world, "owner")
    outcome = client.get(f"/workshops/{workshop.pk}/export.json").json()
    versions = outcome["pipelines"][0]["versions"]
    assert [v["number"] for v in versions] == [2]  # version 1 is older than the workshop
    assert versions[0]["diff"]["nodes_changed"] == [{"id": "mean", "fields": ["params"]}]
    assert [(f["user"], f["rating"], f["verdict"]) for f in outcome["feedback"]] == [
        ("viewer-user", 2, "wrong")
    ]
    assert outcome["decisions"][0]["text"] == "Use salinity"
    assert outcome["decisions"][0]["agenda_item"] == "Review the alert"
    assert outcome["comments"] == [] and outcome["runs"][0]["run"] == access_world.runs["run"].pk
    rows = list(csv.reader(io.StringIO(client.get(f"/workshops/{workshop.pk}/export.csv").content.decode())))
    assert [row[0] for row in rows[1:]] == ["version", "run", "feedback", "decision"]
    assert rows[3][6] == "'=cmd"
    summary = client.get(f"/workshops/{workshop.pk}/summary/").content.decode()
    assert "Use salinity" in summary and "changed params of mean" in summary and "salinity" in summary


def test_workshop_create_with_a_project_needs_membership(access_world, db, client):
    client = page_client(client, access_world, "other")
    response = client.post("/workshops/", {"title": "Mine", "project": "ocean-team"}, follow=True)
    assert "you are not a member" in response.content.decode() and not Workshop.objects.exists()
    response = client.post("/workshops/", {"title": "Mine"})
    assert response.status_code == 302 and Workshop.objects.get().facilitator == access_world.users["other"]


def test_participants_who_see_a_finished_workshop_run_are_asked_for_feedback(access_world, workshop):
    from apps.feedback.models import Notification
    from apps.workshops.services import workshop_run_finished

    workshop.project = access_world.project
    workshop.save()
    run = access_world.runs["private_run"]  # the owner's alone: nobody else may be asked
    WorkshopRun.objects.create(workshop=workshop, run=run, started_by=access_world.users["owner"])
    assert workshop_run_finished(run_id=run.pk, state="succeeded") == 1
    shared = access_world.runs["run"]
    WorkshopRun.objects.create(workshop=workshop, run=shared, started_by=access_world.users["owner"])
    assert workshop_run_finished(run_id=shared.pk, state="failed") == 0
    assert workshop_run_finished(run_id=shared.pk, state="succeeded") == 3
    asked = Notification.objects.filter(url=f"/runs/{shared.pk}/#feedback")
    assert sorted(n.recipient.username for n in asked) == ["editor-user", "owner-user", "viewer-user"]
    assert "please give your feedback" in asked.first().message
    assert (
        workshop_run_finished(run_id=access_world.runs["editor_run"].pk, state="succeeded") == 0
    )  # not a workshop's


@pytest.mark.e2e  # a real worker finishes the run and sends run_finished: runs again on PostgreSQL + Redis
def test_a_run_started_in_a_workshop_asks_its_participants_for_feedback_when_done(worker, user, other_user):
    import time

    from apps.feedback.models import Notification
    from apps.pipelines.services import pipeline_create
    from apps.workshops.services import participant_add, workshop_run_start
    from tests.conftest import document, edge, node, wait_for_run

    doc = document(
        [
            node("demo", "ocean.demo_dataset", days=5, resolution=1.0),
            node("mean", "ocean.area_mean", variable="sst"),
        ],
        [edge("demo", "dataset", "mean", "dataset")],
    )
    pipeline = pipeline_create(owner=user, name="Shared SST", document=doc, visibility="public")
    workshop = workshop_create(user=user, title="Live workshop")
    pipeline_add(workshop=workshop, by=user, pipeline=pipeline)
    participant_add(workshop=workshop, by=user, username=other_user.username)
    run = workshop_run_start(workshop=workshop, user=user, pipeline=pipeline)
    wait_for_run(run.pk, expect="succeeded")
    deadline = time.monotonic() + 15
    while (
        Notification.objects.filter(url=f"/runs/{run.pk}/#feedback").count() < 2
        and time.monotonic() < deadline
    ):
        time.sleep(0.2)
    asked = Notification.objects.filter(url=f"/runs/{run.pk}/#feedback")
    assert sorted(n.recipient.username for n in asked) == sorted([user.username, other_user.username])


def test_the_api_lists_workshops_and_shows_runs_still_wanting_feedback(access_world, workshop):
    from rest_framework.test import APIClient

    workshop.project = access_world.project
    workshop.save()
    run = access_world.runs["run"]
    WorkshopRun.objects.create(workshop=workshop, run=run, started_by=access_world.users["owner"])
    private = access_world.runs["private_run"]  # the owner's alone: the others do not see it listed
    WorkshopRun.objects.create(workshop=workshop, run=private, started_by=access_world.users["owner"])
    decision_add(workshop=workshop, by=access_world.users["owner"], text="Keep 5 days")

    def api(role, path):
        client = APIClient()
        client.force_authenticate(access_world.users[role])
        return client.get(path)

    listed = api("viewer", "/api/workshops/").json()
    assert [(w["id"], w["title"], w["project"]) for w in listed] == [
        (workshop.pk, workshop.title, "ocean-team")
    ]
    assert api("other", "/api/workshops/").json() == []
    assert api("other", f"/api/workshops/{workshop.pk}/").status_code == 404

    detail = api("viewer", f"/api/workshops/{workshop.pk}/").json()
    assert detail["facilitating"] is False and detail["facilitator"] == "owner-user"
    assert detail["current"]["title"] == "Review the alert" and detail["current"]["running"] is True
    assert [item["title"] for item in detail["agenda"]] == ["Review the alert", "Decide thresholds"]
    assert [p["id"] for p in detail["pipelines"]] == [access_world.pipelines["shared"].pk]
    assert [(r["run"], r["feedback_wanted"]) for r in detail["runs"]] == [
        (run.pk, run.state in ("succeeded", "failed", "cancelled"))
    ]
    assert detail["decisions"][0]["text"] == "Keep 5 days"
    assert "viewer-user" in detail["participants"]
    feedback_give(user=access_world.users["viewer"], run=run, rating=4, verdict="fit")
    again = api("viewer", f"/api/workshops/{workshop.pk}/").json()["runs"]
    assert [(r["feedback_given"], r["feedback_wanted"]) for r in again] == [(True, False)]
    owner_runs = api("owner", f"/api/workshops/{workshop.pk}/").json()["runs"]
    assert sorted(r["run"] for r in owner_runs) == sorted([run.pk, private.pk])
