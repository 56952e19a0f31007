"""Pages: manage projects and their members, a pipeline's sharing, and the read-only shared view."""

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe

from apps.pipelines.selectors import pipeline_get, pipeline_version_get
from apps.projects.access import can
from apps.projects.models import Membership, Project, Role, Visibility
from apps.projects.selectors import members_of, project_get, projects_of, share_links_of
from apps.projects.services import (
    AccessRefused,
    ProjectInvalid,
    ShareLinkGone,
    membership_add,
    membership_remove,
    membership_set_role,
    pipeline_sharing_set,
    project_create,
    project_for_pipeline,
    share_link_create,
    share_link_open,
    share_link_revoke,
)


def _member_project(request, slug: str) -> Project:
    project = project_get(user=request.user, slug=slug)
    if project is None:
        raise Http404("no such project")
    return project


def _membership(project: Project, membership_id: int) -> Membership:
    membership = project.memberships.select_related("user", "project").filter(pk=membership_id).first()
    if membership is None:
        raise Http404("no such member")
    return membership


@login_required
def project_list(request):
    """The user's projects, and a form to create one (they become its owner)."""
    if request.method == "POST":
        try:
            project = project_create(
                user=request.user,
                slug=request.POST.get("slug", "").strip(),
                name=request.POST.get("name", "").strip()[:200] or request.POST.get("slug", "").strip(),
                description=request.POST.get("description", "").strip(),
            )
        except ProjectInvalid as error:
            messages.error(request, str(error))
        else:
            return redirect("project-detail", slug=project.slug)
    roles = dict(Membership.objects.filter(user=request.user).values_list("project_id", "role"))
    projects = [(project, roles.get(project.pk)) for project in projects_of(user=request.user)]
    return render(request, "projects/list.html", {"projects": projects})


@login_required
def project_detail(request, slug: str):
    project = _member_project(request, slug)
    members = members_of(project=project)
    mine = next((membership for membership in members if membership.user_id == request.user.pk), None)
    return render(
        request,
        "projects/detail.html",
        {
            "project": project,
            "members": members,
            "mine": mine,
            "is_owner": mine is not None and mine.role == Role.OWNER,
            "roles": Role.choices,
            "pipelines": project.pipelines.filter(visibility__in=(Visibility.PROJECT, Visibility.PUBLIC)),
        },
    )


def _require_manager(user, project: Project) -> None:
    if not project.memberships.filter(user=user, role=Role.OWNER).exists():
        raise PermissionDenied("only an owner of the project may manage its members")


@login_required
@require_POST
def member_add(request, slug: str):
    project = _member_project(request, slug)
    _require_manager(request.user, project)
    try:
        membership_add(
            project=project,
            by=request.user,
            username=request.POST.get("username", "").strip(),
            role=request.POST.get("role", ""),
        )
    except (AccessRefused, ProjectInvalid) as error:
        messages.error(request, str(error))
    return redirect("project-detail", slug=project.slug)


@login_required
@require_POST
def member_role(request, slug: str, membership_id: int):
    project = _member_project(request, slug)
    _require_manager(request.user, project)
    membership = _membership(project, membership_id)
    try:
        membership_set_role(membership=membership, by=request.user, role=request.POST.get("role", ""))
    except (AccessRefused, ProjectInvalid) as error:
        messages.error(request, str(error))
    return redirect("project-detail", slug=project.slug)


@login_required
@require_POST
def member_remove(request, slug: str, membership_id: int):
    """Remove a member (owners) or leave (the member themself)."""
    project = _member_project(request, slug)
    membership = _membership(project, membership_id)
    leaving = membership.user_id == request.user.pk
    if not leaving:
        _require_manager(request.user, project)
    try:
        membership_remove(membership=membership, by=request.user)
    except AccessRefused as error:
        messages.error(request, str(error))
        return redirect("project-detail", slug=project.slug)
    if leaving:
        messages.info(request, f"You left {project.name}.")
        return redirect("project-list")
    return redirect("project-detail", slug=project.slug)


def _visible_pipeline(request, pipeline_id: int):
    pipeline = pipeline_get(user=request.user, pipeline_id=pipeline_id)
    if pipeline is None:
        raise Http404("no such pipeline")
    return pipeline


@login_required
@require_POST
def pipeline_sharing(request, pipeline_id: int):
    """Change a pipeline's project and visibility (its owner or an owner of its project)."""
    pipeline = _visible_pipeline(request, pipeline_id)
    if not can(request.user, "delete", pipeline):
        raise PermissionDenied("only the pipeline's owner or an owner of its project may change its sharing")
    try:
        project = project_for_pipeline(user=request.user, value=request.POST.get("project", "").strip())
        pipeline_sharing_set(
            pipeline=pipeline, by=request.user, project=project, visibility=request.POST.get("visibility", "")
        )
    except ProjectInvalid as error:
        messages.error(request, str(error))
    else:
        messages.info(request, "Sharing saved.")
    return redirect("pipeline-detail", pipeline_id=pipeline.pk)


@login_required
@require_POST
def share_link_new(request, pipeline_id: int):
    pipeline = _visible_pipeline(request, pipeline_id)
    try:
        days = int(request.POST.get("days", "7"))
    except ValueError:
        messages.error(request, "days: a whole number of days")
        return redirect("pipeline-detail", pipeline_id=pipeline.pk)
    try:
        link, token = share_link_create(pipeline=pipeline, by=request.user, days=days)
    except AccessRefused as error:
        raise PermissionDenied(str(error)) from error
    except ProjectInvalid as error:
        messages.error(request, str(error))
    else:
        url = request.build_absolute_uri(reverse("shared-pipeline", args=[token]))
        messages.success(
            request, f"Read-only link, valid until {link.expires_at:%Y-%m-%d %H:%M} UTC (shown once): {url}"
        )
    return redirect("pipeline-detail", pipeline_id=pipeline.pk)


@login_required
@require_POST
def share_link_end(request, pipeline_id: int, link_id: int):
    pipeline = _visible_pipeline(request, pipeline_id)
    link = share_links_of(pipeline=pipeline).filter(pk=link_id).first()
    if link is None:
        raise Http404("no such link")
    try:
        share_link_revoke(link=link, by=request.user)
    except AccessRefused as error:
        raise PermissionDenied(str(error)) from error
    messages.info(request, f"Link {link.prefix}… revoked.")
    return redirect("pipeline-detail", pipeline_id=pipeline.pk)


@require_safe
def shared_pipeline(request, token: str):
    """A pipeline opened by a read-only share link, for anyone holding it, signed in or not: its
    document (steps and JSON) and versions. 404 for an unknown link, 410 for an expired or revoked one."""
    try:
        pipeline = share_link_open(token=token)
    except ShareLinkGone as error:
        return render(request, "projects/share_gone.html", {"reason": str(error)}, status=410)
    if pipeline is None:
        raise Http404("no such link")
    version = pipeline_version_get(pipeline=pipeline)
    versions = [
        {"version": item, "json": json.dumps(item.document, indent=2)}
        for item in pipeline.versions.all()[:20]
    ]
    response = render(
        request,
        "projects/shared.html",
        {
            "pipeline": pipeline,
            "version": version,
            "document_json": json.dumps(version.document, indent=2) if version else "",
            "versions": versions,
        },
    )
    response["Referrer-Policy"] = "no-referrer"  # the token is in the URL: never pass it on to a link
    response["Cache-Control"] = "private, no-store"
    return response
