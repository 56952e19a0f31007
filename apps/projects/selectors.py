"""Reads for projects: a project and its members, as seen by one of its members."""

from __future__ import annotations

import re

from django.db.models import QuerySet

from apps.projects.access import projects_of
from apps.projects.models import SLUG_PATTERN, Membership, Project, ShareLink

__all__ = ["members_of", "membership_get", "project_get", "projects_of", "share_links_of"]


def project_get(*, user, slug: str) -> Project | None:
    """The project called ``slug`` if ``user`` is a member, else None (callers answer 404)."""
    if not re.fullmatch(SLUG_PATTERN, slug):
        return None
    return projects_of(user=user).filter(slug=slug).first()


def membership_get(*, project: Project, username: str) -> Membership | None:
    """The membership of the user called ``username`` in ``project``, or None."""
    if "\x00" in username or len(username) > 150:
        return None
    return project.memberships.select_related("user", "project").filter(user__username=username).first()


def members_of(*, project: Project) -> QuerySet[Membership]:
    return project.memberships.select_related("user").order_by("user__username")


def share_links_of(*, pipeline) -> QuerySet[ShareLink]:
    return pipeline.share_links.select_related("created_by")
