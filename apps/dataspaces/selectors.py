"""Which data spaces a user may browse and read, and which they may write to or change.

==========================  ===========  ==================  ==========
space's access              browse/read  write (deliver)     change
==========================  ===========  ==================  ==========
private                     owner        owner               owner
project                     members      owners, editors     owner
public                      signed in    owner               owner
==========================  ===========  ==================  ==========

Superusers may do everything; disabled spaces are nobody's (except in the admin).
"""

from __future__ import annotations

from django.db.models import Q, QuerySet

from apps.dataspaces.models import DataSpace
from apps.projects.models import Membership, Role


def _signed_in(user) -> bool:
    return user is not None and user.is_authenticated


def spaces_usable_by(*, user) -> QuerySet[DataSpace]:
    """The enabled spaces ``user`` may browse and read inputs from."""
    if not _signed_in(user):
        return DataSpace.objects.none()
    spaces = DataSpace.objects.filter(enabled=True)
    if user.is_superuser:
        return spaces
    projects = Membership.objects.filter(user=user).values("project_id")
    return spaces.filter(
        Q(owner=user)
        | Q(access=DataSpace.Access.PUBLIC)
        | Q(access=DataSpace.Access.PROJECT, project_id__in=projects)
    )


def spaces_writable_by(*, user) -> QuerySet[DataSpace]:
    """The enabled spaces ``user`` may deliver results to (whether the kind can be written is the
    connector's business: read-only kinds raise ReadOnly)."""
    if not _signed_in(user):
        return DataSpace.objects.none()
    spaces = DataSpace.objects.filter(enabled=True)
    if user.is_superuser:
        return spaces
    editing = Membership.objects.filter(user=user, role__in=(Role.OWNER, Role.EDITOR)).values("project_id")
    return spaces.filter(Q(owner=user) | Q(access=DataSpace.Access.PROJECT, project_id__in=editing))


def spaces_changeable_by(*, user) -> QuerySet[DataSpace]:
    """The spaces ``user`` may edit or delete: their own (superusers: all)."""
    if not _signed_in(user):
        return DataSpace.objects.none()
    return DataSpace.objects.all() if user.is_superuser else DataSpace.objects.filter(owner=user)


def default_store() -> DataSpace | None:
    """The portal's own store (``is_default_store``), if one is configured."""
    return DataSpace.objects.filter(is_default_store=True, enabled=True).first()
