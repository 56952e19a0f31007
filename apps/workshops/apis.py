"""Workshops API (read-only): ``GET /api/workshops/`` (those the asking user takes part in) and
``GET /api/workshops/<id>/`` (agenda and timer, pipelines, runs with the feedback still wanted,
decisions, participants). Who does not take part gets 404. Setting a workshop up stays on its page."""

from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.feedback.models import Feedback
from apps.projects.access import runs_visible_to
from apps.runs.models import RUN_FINISHED
from apps.workshops.selectors import (
    is_facilitator,
    timer_state,
    workshop_get,
    workshop_people,
    workshop_pipelines,
    workshops_visible_to,
)
from apps.workshops.serializers import WorkshopDetailSerializer, WorkshopSerializer


class WorkshopListApi(APIView):
    @extend_schema(responses=WorkshopSerializer(many=True))
    def get(self, request):
        workshops = workshops_visible_to(user=request.user)[:500]
        return Response(WorkshopSerializer(workshops, many=True).data)


class WorkshopDetailApi(APIView):
    @extend_schema(responses=WorkshopDetailSerializer)
    def get(self, request, workshop_id: int):
        user = request.user
        workshop = workshop_get(user=user, workshop_id=workshop_id)
        if workshop is None:
            raise Http404("no such workshop")
        entries = list(
            workshop.workshop_runs.filter(run__in=runs_visible_to(user=user)).select_related(
                "run", "started_by"
            )
        )
        given = set(
            Feedback.objects.filter(user=user, run_id__in=[entry.run_id for entry in entries]).values_list(
                "run_id", flat=True
            )
        )
        data = {
            "id": workshop.pk,
            "title": workshop.title,
            "description": workshop.description,
            "facilitator": workshop.facilitator,
            "project": workshop.project,
            "current_item_id": workshop.current_item_id,
            "created_at": workshop.created_at,
            "facilitating": is_facilitator(user=user, workshop=workshop),
            "current": timer_state(workshop.current_item),
            "agenda": list(workshop.agenda.all()),
            "pipelines": list(workshop_pipelines(user=user, workshop=workshop)),
            "runs": [
                {
                    "run": entry.run_id,
                    "pipeline_name": entry.run.pipeline_name,
                    "pipeline_version": entry.run.pipeline_version,
                    "state": entry.run.state,
                    "started_by": entry.started_by.username if entry.started_by else None,
                    "feedback_given": entry.run_id in given,
                    "feedback_wanted": entry.run.state in RUN_FINISHED and entry.run_id not in given,
                }
                for entry in entries
            ],
            "decisions": [
                {
                    "text": decision.text,
                    "agenda_item": decision.agenda_item_id,
                    "decided_by": decision.decided_by.username if decision.decided_by else None,
                    "created_at": decision.created_at,
                }
                for decision in workshop.decisions.select_related("decided_by")
            ],
            "participants": [person.username for person in workshop_people(workshop=workshop)],
        }
        return Response(WorkshopDetailSerializer(data).data)
