"""Feedback API: give and change one's own feedback on runs and results, list what one may see,
notifications, and the validation figures of a block or a pipeline.

Feedback on a run one may not see answers 404, as if it did not exist; someone else's feedback that
one may see can be read but not changed (403).
"""

from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.catalog.models import BlockVersion
from apps.feedback.selectors import (
    block_ratings,
    feedback_get,
    feedback_on_block,
    feedback_visible_to,
    notifications_of,
    pipeline_ratings,
    validation_summary,
)
from apps.feedback.serializers import (
    FeedbackChangeSerializer,
    FeedbackDetailSerializer,
    FeedbackGiveSerializer,
    FeedbackSerializer,
    NotificationSerializer,
    NotificationsReadSerializer,
    UnreadSerializer,
    ValidationSerializer,
)
from apps.feedback.services import (
    FeedbackInvalid,
    FeedbackRefused,
    feedback_give,
    feedback_update,
    notifications_mark_read,
)
from apps.pipelines.apis import get_visible_pipeline
from apps.runs.models import Artifact
from apps.runs.selectors import run_get
from iliad_portal.api_pagination import StrictLimitOffsetPagination

MAX_ID_DIGITS = 18


def id_parameter(request, name: str) -> int | None:
    """The whole-number query parameter ``name``, None when absent; a 400 naming it when malformed."""
    text = request.query_params.get(name)
    if text is None:
        return None
    if not (text.isascii() and text.isdigit() and len(text) <= MAX_ID_DIGITS):
        raise ValidationError({name: f"{name} must be a whole number (an id), not {text[:40]!r}"})
    return int(text)


def refused(error: Exception) -> Exception:
    if isinstance(error, FeedbackInvalid):
        return ValidationError({error.field: [error.message]})
    if isinstance(error, FeedbackRefused):
        return PermissionDenied(str(error))
    raise TypeError(error)


ID = {"type": "integer", "minimum": 0, "maximum": 10**MAX_ID_DIGITS - 1}
FILTERS = [
    OpenApiParameter("run", ID, description="Only feedback on this run (and its results)."),
    OpenApiParameter("artifact", ID, description="Only feedback on this result."),
    OpenApiParameter("pipeline", ID, description="Only feedback on runs of this pipeline."),
    OpenApiParameter(
        "block", str, description="Only feedback on results of this block, or runs that used it."
    ),
    OpenApiParameter("mine", bool, description="Only the asking user's own feedback."),
]


class FeedbackListApi(APIView):
    pagination_class = StrictLimitOffsetPagination

    @extend_schema(parameters=FILTERS, responses=FeedbackSerializer(many=True))
    def get(self, request):
        queryset = feedback_visible_to(user=request.user)
        for name in ("run", "artifact", "pipeline"):
            value = id_parameter(request, name)
            if value is not None:
                queryset = queryset.filter(
                    **{f"{name}_id" if name != "pipeline" else "run__pipeline_id": value}
                )
        block = request.query_params.get("block")
        if block is not None:
            if "\x00" in block or len(block) > 200:
                raise ValidationError({"block": "block must be a block id of at most 200 characters"})
            queryset = feedback_on_block(queryset, block_id=block)
        mine = request.query_params.get("mine")
        if mine is not None:
            if mine not in ("true", "false"):
                raise ValidationError({"mine": f"mine must be true or false, not {mine[:40]!r}"})
            if mine == "true":
                queryset = queryset.filter(user=request.user)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(queryset, request, view=self)
        data = FeedbackSerializer(page, many=True, context={"user": request.user}).data
        return paginator.get_paginated_response(data)


class RunFeedbackApi(APIView):
    @extend_schema(
        request=FeedbackGiveSerializer,
        responses={201: FeedbackDetailSerializer, 200: FeedbackDetailSerializer},
        description="Give your feedback on the run, or with `artifact` on one of its results; if you "
        "already gave feedback on that item it is changed (200) and its earlier state kept in "
        "`revisions`. 404 for a run or result you may not see.",
    )
    def post(self, request, run_id: int):
        run = run_get(user=request.user, run_id=run_id)
        if run is None:
            raise Http404("no such run, or one you may not see")
        data = FeedbackGiveSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        artifact_id = values.pop("artifact")
        artifact = None
        if artifact_id is not None:
            artifact = Artifact.objects.select_related("step").filter(pk=artifact_id, run=run).first()
            if artifact is None:
                raise Http404(f"run {run.pk} has no such result (artifact {artifact_id})")
        try:
            feedback, created = feedback_give(user=request.user, run=run, artifact=artifact, **values)
        except FeedbackInvalid as error:
            raise refused(error) from error
        body = FeedbackDetailSerializer(feedback, context={"user": request.user}).data
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class FeedbackDetailApi(APIView):
    def _feedback(self, request, feedback_id: int):
        feedback = feedback_get(user=request.user, feedback_id=feedback_id)
        if feedback is None:
            raise Http404("no such feedback, or one on a run you may not see")
        return feedback

    @extend_schema(responses=FeedbackDetailSerializer)
    def get(self, request, feedback_id: int):
        feedback = self._feedback(request, feedback_id)
        return Response(FeedbackDetailSerializer(feedback, context={"user": request.user}).data)

    @extend_schema(
        request=FeedbackChangeSerializer,
        responses=FeedbackDetailSerializer,
        description="Change your own feedback; someone else's answers 403.",
    )
    def put(self, request, feedback_id: int):
        feedback = self._feedback(request, feedback_id)
        if feedback.user_id != request.user.pk:
            raise PermissionDenied("only the person who gave this feedback may change it")
        data = FeedbackChangeSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            feedback = feedback_update(feedback=feedback, by=request.user, **data.validated_data)
        except (FeedbackInvalid, FeedbackRefused) as error:
            raise refused(error) from error
        return Response(FeedbackDetailSerializer(feedback, context={"user": request.user}).data)


class NotificationListApi(APIView):
    pagination_class = StrictLimitOffsetPagination

    @extend_schema(
        parameters=[OpenApiParameter("unread", bool, description="Only unread notifications.")],
        responses=NotificationSerializer(many=True),
    )
    def get(self, request):
        unread = request.query_params.get("unread")
        if unread is not None and unread not in ("true", "false"):
            raise ValidationError({"unread": f"unread must be true or false, not {unread[:40]!r}"})
        queryset = notifications_of(user=request.user, unread_only=unread == "true")
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(NotificationSerializer(page, many=True).data)


class NotificationsReadApi(APIView):
    @extend_schema(request=NotificationsReadSerializer, responses=UnreadSerializer)
    def post(self, request):
        data = NotificationsReadSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        notifications_mark_read(user=request.user, ids=data.validated_data.get("ids"))
        return Response({"unread": notifications_of(user=request.user, unread_only=True).count()})


class BlockValidationApi(APIView):
    @extend_schema(
        responses=ValidationSerializer,
        description="Feedback on a block per version and over time, counted over the runs you may see.",
    )
    def get(self, request, block_id: str):
        if not BlockVersion.objects.filter(block_id=block_id).exists():
            raise Http404(f"no block {block_id[:200]!r}")
        summary = validation_summary(block_ratings(user=request.user, block_id=block_id))
        return Response({"subject": block_id, **summary})


class PipelineValidationApi(APIView):
    @extend_schema(
        responses=ValidationSerializer,
        description="Feedback on a pipeline's runs per pipeline version and over time.",
    )
    def get(self, request, pipeline_id: int):
        pipeline = get_visible_pipeline(request, pipeline_id)
        summary = validation_summary(pipeline_ratings(user=request.user, pipeline=pipeline))
        return Response({"subject": str(pipeline.pk), **summary})
