"""Project API: projects and their members; read-only share links of pipelines.

A project someone is not a member of answers 404, as if it did not exist; a member who may not do
something (a non-owner managing members) gets a 403 that says who may.
"""

from django.http import Http404
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.pipelines.apis import get_visible_pipeline
from apps.projects.models import Membership, Project
from apps.projects.selectors import members_of, membership_get, project_get, projects_of, share_links_of
from apps.projects.serializers import (
    MemberAddSerializer,
    MemberRoleSerializer,
    MemberSerializer,
    ProjectDetailSerializer,
    ProjectSerializer,
    ProjectWriteSerializer,
    ShareLinkCreatedSerializer,
    ShareLinkCreateSerializer,
    ShareLinkSerializer,
)
from apps.projects.services import (
    AccessRefused,
    ProjectInvalid,
    membership_add,
    membership_remove,
    membership_set_role,
    project_create,
    share_link_create,
    share_link_revoke,
)
from iliad_portal.api_pagination import StrictLimitOffsetPagination


def _roles(user, projects) -> dict[int, str]:
    ids = [project.pk for project in projects]
    return dict(Membership.objects.filter(user=user, project_id__in=ids).values_list("project_id", "role"))


def get_member_project(request, project_slug: str) -> Project:
    project = project_get(user=request.user, slug=project_slug)
    if project is None:
        raise Http404("no such project")
    return project


def project_detail_data(request, project: Project) -> dict:
    context = {"roles": _roles(request.user, [project]), "members": members_of(project=project)}
    return ProjectDetailSerializer(project, context=context).data


def refused(error: Exception) -> Exception:
    """The DRF error for a service's refusal: 403 saying why, or 400 naming the field."""
    if isinstance(error, AccessRefused):
        return PermissionDenied(str(error))
    if isinstance(error, ProjectInvalid):
        return ValidationError({error.field: [error.message]})
    raise TypeError(error)


class ProjectListApi(APIView):
    pagination_class = StrictLimitOffsetPagination

    @extend_schema(responses=ProjectSerializer(many=True))
    def get(self, request):
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(projects_of(user=request.user), request, view=self)
        context = {"roles": _roles(request.user, page)}
        return paginator.get_paginated_response(ProjectSerializer(page, many=True, context=context).data)

    @extend_schema(request=ProjectWriteSerializer, responses={201: ProjectDetailSerializer})
    def post(self, request):
        data = ProjectWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            project = project_create(user=request.user, **data.validated_data)
        except ProjectInvalid as error:
            raise refused(error) from error
        return Response(project_detail_data(request, project), status=status.HTTP_201_CREATED)


class ProjectDetailApi(APIView):
    @extend_schema(responses=ProjectDetailSerializer)
    def get(self, request, project_slug: str):
        return Response(project_detail_data(request, get_member_project(request, project_slug)))


class ProjectMembersApi(APIView):
    @extend_schema(request=MemberAddSerializer, responses={201: MemberSerializer})
    def post(self, request, project_slug: str):
        project = get_member_project(request, project_slug)
        data = MemberAddSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            membership = membership_add(project=project, by=request.user, **data.validated_data)
        except (AccessRefused, ProjectInvalid) as error:
            raise refused(error) from error
        return Response(MemberSerializer(membership).data, status=status.HTTP_201_CREATED)


class ProjectMemberApi(APIView):
    def _membership(self, request, project_slug: str, username: str) -> Membership:
        membership = membership_get(project=get_member_project(request, project_slug), username=username)
        if membership is None:
            raise Http404(f"the project has no member {username[:150]!r}")
        return membership

    @extend_schema(request=MemberRoleSerializer, responses=MemberSerializer)
    def put(self, request, project_slug: str, username: str):
        membership = self._membership(request, project_slug, username)
        data = MemberRoleSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            membership = membership_set_role(membership=membership, by=request.user, **data.validated_data)
        except (AccessRefused, ProjectInvalid) as error:
            raise refused(error) from error
        return Response(MemberSerializer(membership).data)

    @extend_schema(responses={204: None}, description="Remove a member (owners), or leave (any member).")
    def delete(self, request, project_slug: str, username: str):
        try:
            membership_remove(membership=self._membership(request, project_slug, username), by=request.user)
        except AccessRefused as error:
            raise refused(error) from error
        return Response(status=status.HTTP_204_NO_CONTENT)


class ShareLinkListApi(APIView):
    """Read-only links to a pipeline; only those who may edit it list, make or revoke them."""

    @extend_schema(responses=ShareLinkSerializer(many=True))
    def get(self, request, pipeline_id: int):
        pipeline = get_visible_pipeline(request, pipeline_id, action="edit")
        return Response(ShareLinkSerializer(share_links_of(pipeline=pipeline), many=True).data)

    @extend_schema(request=ShareLinkCreateSerializer, responses={201: ShareLinkCreatedSerializer})
    def post(self, request, pipeline_id: int):
        pipeline = get_visible_pipeline(request, pipeline_id, action="edit")
        data = ShareLinkCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            link, token = share_link_create(pipeline=pipeline, by=request.user, **data.validated_data)
        except (AccessRefused, ProjectInvalid) as error:
            raise refused(error) from error
        url = request.build_absolute_uri(reverse("shared-pipeline", args=[token]))
        return Response({**ShareLinkSerializer(link).data, "url": url}, status=status.HTTP_201_CREATED)


class ShareLinkDetailApi(APIView):
    @extend_schema(responses={204: None}, description="Revoke the link; it answers 410 from now on.")
    def delete(self, request, pipeline_id: int, link_id: int):
        pipeline = get_visible_pipeline(request, pipeline_id, action="edit")
        link = share_links_of(pipeline=pipeline).filter(pk=link_id).first()
        if link is None:
            raise Http404("this pipeline has no such link")
        share_link_revoke(link=link, by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
