"""Data-space API: the spaces a user may use, browsing, searching, describing and previewing files.

A space the user may not use answers 404, as if it did not exist. Credentials are write-only.
Connector failures answer 400 (a refused path, a missing file) or 502 (the space's server failed).
"""

from __future__ import annotations

import json

from django.conf import settings
from django.http import Http404, HttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import APIException, NotFound, PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.dataspaces.connectors import ConnectorError, connector_for
from apps.dataspaces.connectors import NotFound as EntryNotFound
from apps.dataspaces.models import DataSpace
from apps.dataspaces.selectors import spaces_changeable_by, spaces_usable_by
from apps.dataspaces.serializers import DataSpaceSerializer, DataSpaceWriteSerializer, ListingSerializer
from apps.dataspaces.services import (
    DescribeError,
    describe,
    preview_png,
    reference_for,
    space_create,
    space_update,
)


class SpaceUnavailable(APIException):
    status_code = status.HTTP_502_BAD_GATEWAY
    default_detail = "the data space's server failed"
    default_code = "space_unavailable"


def get_usable_space(request, space_id: int) -> DataSpace:
    space = spaces_usable_by(user=request.user).filter(pk=space_id).first()
    if space is None:
        raise Http404("no such data space")
    return space


def _project(user, value, *, default_to_token: bool = False):
    """The project named by ``value`` (slug or id) where ``user`` is an owner or editor, None for none;
    a 400 naming ``project`` otherwise. With a token restricted to a project, no value means that
    project when ``default_to_token`` (so a space registered with it is one the token reaches)."""
    from apps.projects.models import Project
    from apps.projects.services import ProjectInvalid, project_for_pipeline

    restricted = getattr(user, "token_project_id", None)
    if value in (None, "") and default_to_token and restricted is not None:
        return Project.objects.get(pk=restricted)
    try:
        return project_for_pipeline(user=user, value=value)
    except ProjectInvalid as error:
        raise ValidationError({error.field: [error.message]}) from None


def _check_project_access(access: str, project) -> None:
    if access == DataSpace.Access.PROJECT and project is None:
        raise ValidationError({"access": ["'project' needs the space to be in a project; give 'project'"]})


def connector_failure(error: ConnectorError, field: str = "path") -> Exception:
    if isinstance(error, EntryNotFound):
        return NotFound(f"{field}: {error}")
    if error.permanent:
        return ValidationError({field: str(error)})
    return SpaceUnavailable(str(error))


def _entries(space: DataSpace, entries) -> list[dict]:
    return [
        {**entry.to_dict(), "reference": None if entry.is_dir else reference_for(space, entry.path)}
        for entry in entries
    ]


class DataSpaceListApi(APIView):
    @extend_schema(responses=DataSpaceSerializer(many=True))
    def get(self, request):
        spaces = spaces_usable_by(user=request.user).select_related("owner", "project")
        return Response(DataSpaceSerializer(spaces, many=True).data)

    @extend_schema(request=DataSpaceWriteSerializer, responses={201: DataSpaceSerializer})
    def post(self, request):
        serializer = DataSpaceWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if DataSpace.objects.filter(name=data["name"]).exists():
            raise ValidationError({"name": f"a data space named {data['name']!r} exists already"})
        data["project"] = _project(request.user, data.get("project"), default_to_token=True)
        _check_project_access(data["access"], data["project"])
        try:
            space = space_create(user=request.user, **data)
        except PermissionError as error:
            raise PermissionDenied(str(error)) from None
        except Exception as error:
            from django.core.exceptions import ValidationError as ModelError

            if isinstance(error, ModelError):
                raise ValidationError(error.message_dict) from None
            raise
        return Response(DataSpaceSerializer(space).data, status=status.HTTP_201_CREATED)


class DataSpaceDetailApi(APIView):
    serializer_class = DataSpaceSerializer

    @extend_schema(responses=DataSpaceSerializer)
    def get(self, request, space_id: int):
        return Response(DataSpaceSerializer(get_usable_space(request, space_id)).data)

    @extend_schema(request=DataSpaceWriteSerializer, responses=DataSpaceSerializer)
    def patch(self, request, space_id: int):
        space = get_usable_space(request, space_id)
        if not spaces_changeable_by(user=request.user).filter(pk=space.pk).exists():
            raise PermissionDenied("only the space's owner or an owner of its project may change it")
        serializer = DataSpaceWriteSerializer(data=request.data, partial=True, context={"kind": space.kind})
        serializer.is_valid(raise_exception=True)
        fields = dict(serializer.validated_data)
        credentials = fields.pop("credentials", None)
        fields.pop("name", None)  # pipelines refer to it
        if "project" in fields:
            fields["project"] = _project(request.user, fields["project"])
        _check_project_access(fields.get("access", space.access), fields.get("project", space.project))
        try:
            space = space_update(space=space, user=request.user, credentials=credentials, **fields)
        except PermissionError as error:
            raise PermissionDenied(str(error)) from None
        return Response(DataSpaceSerializer(space).data)

    @extend_schema(responses={204: None})
    def delete(self, request, space_id: int):
        space = get_usable_space(request, space_id)
        if not spaces_changeable_by(user=request.user).filter(pk=space.pk).exists():
            raise PermissionDenied("only the space's owner or an owner of its project may delete it")
        space.delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


PATH = OpenApiParameter("path", str, description="Path relative to the space's root; empty: the root.")


class DataSpaceBrowseApi(APIView):
    @extend_schema(parameters=[PATH], responses=ListingSerializer)
    def get(self, request, space_id: int):
        space = get_usable_space(request, space_id)
        path = request.query_params.get("path", "")
        try:
            entries = connector_for(space).list(path)
        except ConnectorError as error:
            raise connector_failure(error) from None
        return Response(
            {
                "space": space.name,
                "path": path,
                "entries": _entries(space, entries),
                "size_warning_bytes": int(settings.ILIAD_SIZE_WARNING_MB) * 1_000_000,
            }
        )


def _bbox(text: str | None) -> list[float] | None:
    if not text:
        return None
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise ValidationError({"bbox": "give four numbers: west,south,east,north"}) from None
    if len(values) != 4 or not (-90 <= values[1] <= values[3] <= 90):
        raise ValidationError({"bbox": "give four numbers: west,south,east,north (south <= north)"})
    return values


class DataSpaceSearchApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("q", str),
            OpenApiParameter("bbox", str, description="west,south,east,north"),
            OpenApiParameter("datetime", str, description="RFC 3339 instant or start/end"),
            OpenApiParameter("collection", str),
            OpenApiParameter("limit", int),
        ],
        responses=ListingSerializer,
    )
    def get(self, request, space_id: int):
        space = get_usable_space(request, space_id)
        params = request.query_params
        try:
            limit = int(params.get("limit", 100))
        except ValueError:
            raise ValidationError({"limit": "give a whole number from 1 to 200"}) from None
        if not 1 <= limit <= 200:
            raise ValidationError({"limit": "give a whole number from 1 to 200"})
        query = {
            "q": params.get("q", ""),
            "bbox": _bbox(params.get("bbox")),
            "datetime": params.get("datetime") or None,
            "collection": params.get("collection") or None,
            "limit": limit,
        }
        try:
            entries = connector_for(space).search(query)
        except ConnectorError as error:
            raise connector_failure(error, "q") from None
        return Response({"space": space.name, "entries": _entries(space, entries)})


class DataSpaceDescribeApi(APIView):
    @extend_schema(parameters=[PATH], responses=dict)
    def get(self, request, space_id: int):
        space = get_usable_space(request, space_id)
        try:
            result = describe(space=space, path=request.query_params.get("path", ""))
        except ConnectorError as error:
            raise connector_failure(error) from None
        except DescribeError as error:
            raise ValidationError({"path": str(error)}) from None
        return Response(json.loads(json.dumps(result, default=str)))


class DataSpacePreviewApi(APIView):
    @extend_schema(
        parameters=[PATH, OpenApiParameter("variable", str)],
        responses={
            (200, "image/png"): bytes,
            400: OpenApiResponse(description="The file cannot be drawn (not gridded, unknown variable)."),
        },
    )
    def get(self, request, space_id: int):
        space = get_usable_space(request, space_id)
        try:
            png = preview_png(
                space=space,
                path=request.query_params.get("path", ""),
                variable=request.query_params.get("variable") or None,
            )
        except ConnectorError as error:
            raise connector_failure(error) from None
        except DescribeError as error:
            field = "variable" if str(error).startswith("variable:") else "path"
            raise ValidationError({field: str(error).removeprefix("variable: ")}) from None
        response = HttpResponse(png, content_type="image/png")
        response["Cache-Control"] = "private, max-age=300"
        return response
