"""Delivery API: a run's deliveries (GET), deliver it somewhere (POST), deliver again, and the
delivery choice remembered per pipeline."""

from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.dataspaces.models import DataSpace
from apps.delivery.models import Delivery
from apps.delivery.serializers import (
    DeliveryChoiceSerializer,
    DeliveryOptionsSerializer,
    DeliveryRequestSerializer,
    DeliverySerializer,
    RunDeliverySerializer,
)
from apps.delivery.services import (
    DeliveryRejected,
    delivery_again,
    delivery_choice_get,
    delivery_choice_set,
    delivery_request,
    delivery_summary,
    spaces_writable_by,
)
from apps.pipelines.apis import get_visible_pipeline
from apps.projects.access import can
from apps.runs.apis import get_visible_run

REFUSED = "you may not deliver this run's results: only its owner and those who may run its pipeline can"


def may_deliver(user, run) -> bool:
    return can(user, "cancel", run)  # the run's owner, or who may run its pipeline


def run_delivery_data(run, user) -> dict:
    deliveries = [delivery_summary(d) for d in Delivery.objects.filter(run=run).select_related("space")[:20]]
    return {
        "latest": deliveries[0] if deliveries else None,
        "deliveries": deliveries,
        "report_url": reverse("run-report", args=[run.pk]),
        "report_pdf_url": reverse("run-report-pdf", args=[run.pk]),
        "may_deliver": may_deliver(user, run),
    }


def _space(user, name: str) -> DataSpace:
    space = spaces_writable_by(user=user).filter(name=name).first()
    if space is None:
        raise ValidationError({"space": [f"no data space {name!r} that you may deliver to"]})
    return space


class RunDeliveryApi(APIView):
    @extend_schema(responses=RunDeliverySerializer)
    def get(self, request, run_id: int):
        run = get_visible_run(request, run_id)
        return Response(run_delivery_data(run, request.user))

    @extend_schema(request=DeliveryRequestSerializer, responses={201: DeliverySerializer})
    def post(self, request, run_id: int):
        run = get_visible_run(request, run_id)
        if not may_deliver(request.user, run):
            raise PermissionDenied(REFUSED)
        data = DeliveryRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        space = _space(request.user, data.validated_data["space"])
        try:
            delivery = delivery_request(
                run=run,
                user=request.user,
                space=space,
                folder=data.validated_data["folder"],
                remember=data.validated_data["remember"],
            )
        except DeliveryRejected as error:
            raise ValidationError({error.field: [str(error)]}) from error
        return Response(delivery_summary(delivery), status=status.HTTP_201_CREATED)


class RunDeliverAgainApi(APIView):
    @extend_schema(
        request=None,
        responses={
            200: DeliverySerializer,
            409: OpenApiResponse(description="Already being delivered, or the run did not succeed."),
        },
    )
    def post(self, request, run_id: int):
        run = get_visible_run(request, run_id)
        if not may_deliver(request.user, run):
            raise PermissionDenied(REFUSED)
        latest = Delivery.objects.filter(run=run).first()
        if latest is None:
            return Response(
                {"detail": "this run has no delivery yet: choose a space first"},
                status=status.HTTP_409_CONFLICT,
            )
        try:
            delivery = delivery_again(delivery=latest)
        except DeliveryRejected as error:
            return Response({"detail": str(error)}, status=status.HTTP_409_CONFLICT)
        return Response(delivery_summary(delivery))


class PipelineDeliveryChoiceApi(APIView):
    @extend_schema(responses=DeliveryOptionsSerializer)
    def get(self, request, pipeline_id: int):
        pipeline = get_visible_pipeline(request, pipeline_id)
        choice = delivery_choice_get(pipeline=pipeline, user=request.user)
        return Response(
            {
                "choice": {"space": choice.space.name, "folder": choice.folder} if choice else None,
                "spaces": [
                    {"name": s.name, "title": s.title, "kind": s.kind}
                    for s in spaces_writable_by(user=request.user)
                ],
            }
        )

    @extend_schema(request=DeliveryChoiceSerializer, responses=DeliveryChoiceSerializer)
    def put(self, request, pipeline_id: int):
        pipeline = get_visible_pipeline(request, pipeline_id, action="run")
        data = DeliveryChoiceSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        space = _space(request.user, data.validated_data["space"])
        try:
            choice = delivery_choice_set(
                pipeline=pipeline, user=request.user, space=space, folder=data.validated_data["folder"]
            )
        except DeliveryRejected as error:
            raise ValidationError({error.field: [str(error)]}) from error
        return Response({"space": choice.space.name, "folder": choice.folder})
