"""Pipeline API: create, read, update (new version when the document changes), validate."""

from django.db import transaction
from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.pipelines.selectors import pipeline_get, pipelines_visible_to
from apps.pipelines.serializers import (
    DocumentSerializer,
    PipelineInvalidSerializer,
    PipelineSerializer,
    PipelineVersionSerializer,
    PipelineWriteSerializer,
    ValidationResultSerializer,
)
from apps.pipelines.services import (
    PipelineConflict,
    PipelineInvalid,
    pipeline_create,
    pipeline_delete,
    pipeline_document_check,
    pipeline_update,
)
from apps.projects.access import can, pipeline_permissions
from apps.projects.services import (
    AccessRefused,
    ProjectInvalid,
    pipeline_sharing_set,
    project_for_pipeline,
    sharing_check,
)
from iliad_portal.api_pagination import StrictLimitOffsetPagination

#: The sentence of a 403 for a pipeline its asker may see but not change this way.
REFUSED = {
    "edit": "you may see this pipeline but not change it (ask an owner or editor of its project)",
    "run": "you may see this pipeline but not run it (ask an owner or editor of its project)",
    "delete": "only the pipeline's owner or an owner of its project may delete it",
}


def invalid_response(error: PipelineInvalid) -> Response:
    return Response(
        {"detail": f"the pipeline document has {len(error.issues)} problem(s)", "errors": error.issues},
        status=status.HTTP_400_BAD_REQUEST,
    )


STALE_SAVE = OpenApiResponse(
    description="The document was edited from `base_version`, but a newer version was saved since: nothing "
    "changed. Besides `detail` (who saved which version when), the body holds `code` "
    "(`version_conflict`), `base_version`, `latest` (that version: number, message, created_by, "
    "created_at, document), `changes` (from the base to the latest) and `yours` (from the latest to the "
    "document sent), each a difference: nodes_added, nodes_removed, nodes_changed [{id, fields}], "
    "edges_added, edges_removed and a one-line summary."
)


def conflict_response(error: PipelineConflict) -> Response:
    body = {
        "detail": str(error),
        "code": "version_conflict",
        "base_version": error.base,
        "latest": PipelineVersionSerializer(error.latest).data,
        "changes": error.changes,
        "yours": error.yours,
    }
    return Response(body, status=status.HTTP_409_CONFLICT)


def get_visible_pipeline(request, pipeline_id: int, *, action: str | None = None):
    """The pipeline if the user may see it (else 404, to hide it); with ``action`` (``edit``, ``run``,
    ``delete``) also a 403 saying why when they may see it but not do that."""
    pipeline = pipeline_get(user=request.user, pipeline_id=pipeline_id)
    if pipeline is None:
        raise Http404("no such pipeline")
    if action is not None and not can(request.user, action, pipeline):
        raise PermissionDenied(REFUSED[action])
    return pipeline


def invalid_field(error: ProjectInvalid) -> ValidationError:
    return ValidationError({error.field: [error.message]})


class PipelineListApi(APIView):
    pagination_class = StrictLimitOffsetPagination  # also documents limit and offset in the schema

    @extend_schema(responses=PipelineSerializer(many=True))
    def get(self, request):
        paginator = self.pagination_class()
        queryset = pipelines_visible_to(user=request.user).select_related("owner", "project")
        page = paginator.paginate_queryset(queryset, request, view=self)
        context = {"request": request, "permissions": pipeline_permissions(user=request.user, pipelines=page)}
        return paginator.get_paginated_response(PipelineSerializer(page, many=True, context=context).data)

    @extend_schema(
        request=PipelineWriteSerializer, responses={201: PipelineSerializer, 400: PipelineInvalidSerializer}
    )
    def post(self, request):
        data = PipelineWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            project = project_for_pipeline(user=request.user, value=data.validated_data.get("project"))
            visibility = data.validated_data.get("visibility", "private")
            sharing_check(project=project, visibility=visibility)
        except ProjectInvalid as error:
            raise invalid_field(error) from error
        try:
            pipeline = pipeline_create(
                owner=request.user,
                name=data.validated_data["name"],
                description=data.validated_data["description"],
                document=data.validated_data["document"],
                project=project,
                visibility=visibility,
            )
        except PipelineInvalid as error:
            return invalid_response(error)
        data = PipelineSerializer(pipeline, context={"request": request}).data
        return Response(data, status=status.HTTP_201_CREATED)


class PipelineDetailApi(APIView):
    @extend_schema(responses=PipelineSerializer)
    def get(self, request, pipeline_id: int):
        pipeline = get_visible_pipeline(request, pipeline_id)
        return Response(PipelineSerializer(pipeline, context={"request": request}).data)

    @extend_schema(
        request=PipelineWriteSerializer,
        responses={200: PipelineSerializer, 400: PipelineInvalidSerializer, 409: STALE_SAVE},
    )
    def put(self, request, pipeline_id: int):
        return self._update(request, pipeline_id, partial=False)

    @extend_schema(
        request=PipelineWriteSerializer,
        responses={200: PipelineSerializer, 400: PipelineInvalidSerializer, 409: STALE_SAVE},
    )
    def patch(self, request, pipeline_id: int):
        return self._update(request, pipeline_id, partial=True)

    def _update(self, request, pipeline_id: int, *, partial: bool):
        pipeline = get_visible_pipeline(request, pipeline_id, action="edit")
        data = PipelineWriteSerializer(data=request.data, partial=partial)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        if fields.get("base_version", 0) > pipeline.latest_version:
            latest = pipeline.latest_version
            message = f"this pipeline has no version {fields['base_version']} yet (latest: {latest})"
            raise ValidationError({"base_version": [message]})
        sharing = {}
        try:
            if "project" in fields:
                sharing["project"] = project_for_pipeline(user=request.user, value=fields["project"])
            if "visibility" in fields:
                sharing["visibility"] = fields["visibility"]
        except ProjectInvalid as error:
            raise invalid_field(error) from error
        try:
            with transaction.atomic():  # a refused part leaves everything as it was
                if sharing:
                    pipeline_sharing_set(pipeline=pipeline, by=request.user, **sharing)
                pipeline = pipeline_update(
                    pipeline=pipeline,
                    user=request.user,
                    name=fields.get("name"),
                    description=fields.get("description") if "description" in request.data else None,
                    document=fields.get("document"),
                    message=fields.get("message", ""),
                    base_version=fields.get("base_version"),
                )
        except PipelineInvalid as error:
            return invalid_response(error)
        except PipelineConflict as error:
            return conflict_response(error)
        except ProjectInvalid as error:
            raise invalid_field(error) from error
        except AccessRefused as error:
            raise PermissionDenied(str(error)) from error
        return Response(PipelineSerializer(pipeline, context={"request": request}).data)

    @extend_schema(responses={204: None})
    def delete(self, request, pipeline_id: int):
        pipeline_delete(pipeline=get_visible_pipeline(request, pipeline_id, action="delete"))
        return Response(status=status.HTTP_204_NO_CONTENT)


class PipelineVersionListApi(APIView):
    @extend_schema(responses=PipelineVersionSerializer(many=True))
    def get(self, request, pipeline_id: int):
        pipeline = get_visible_pipeline(request, pipeline_id)
        return Response(PipelineVersionSerializer(pipeline.versions.all(), many=True).data)


class PipelineVersionDetailApi(APIView):
    @extend_schema(responses=PipelineVersionSerializer)
    def get(self, request, pipeline_id: int, number: int):
        pipeline = get_visible_pipeline(request, pipeline_id)
        version = pipeline.versions.filter(number=number).first()
        if version is None:
            raise Http404(f"pipeline {pipeline_id} has no version {number}")
        return Response(PipelineVersionSerializer(version).data)


class PipelineValidateApi(APIView):
    @extend_schema(request=DocumentSerializer, responses=ValidationResultSerializer)
    def post(self, request):
        data = DocumentSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        check = pipeline_document_check(document=data.validated_data["document"])
        return Response(
            {
                "valid": not check.issues,
                "errors": check.issues,
                "choices": check.choices,
                "extents": check.extents,
            }
        )
