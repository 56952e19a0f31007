"""Which data spaces a user may browse and read, and which they may write to or change.

==========================  ===========  ==================  ==========================
space's access              browse/read  write (deliver)     change (edit, delete)
==========================  ===========  ==================  ==========================
private                     owner        owner               owner
project                     members      owners, editors     owner, the project's owners
public                      signed in    owner               owner
==========================  ===========  ==================  ==========================

Project roles are those of ``apps.projects`` (the same memberships that share pipelines): a viewer
reads the project's spaces, an editor or owner also delivers results into them. A personal API token
restricted to a project (``apps.accounts.authentication`` marks the user with ``token_project_id``)
reaches only the spaces of that project, whatever their access — not the user's private spaces
elsewhere, not public spaces. Superusers may do everything (a restricted token narrows them too);
disabled spaces are nobody's (except in the admin).
"""

from __future__ import annotations

from django.db.models import Q, QuerySet

from apps.dataspaces.models import DataSpace
from apps.projects.models import Membership, Role

WRITING_ROLES = (Role.OWNER, Role.EDITOR)


def _signed_in(user) -> bool:
    return user is not None and user.is_authenticated


def _within_token_project(spaces: QuerySet[DataSpace], user) -> QuerySet[DataSpace]:
    """``spaces`` narrowed to the token's project when the request came with a restricted token."""
    project_id = getattr(user, "token_project_id", None)
    return spaces if project_id is None else spaces.filter(project_id=project_id)


def _projects(user, roles=None) -> QuerySet:
    memberships = Membership.objects.filter(user=user)
    if roles is not None:
        memberships = memberships.filter(role__in=roles)
    return memberships.values("project_id")


def spaces_usable_by(*, user) -> QuerySet[DataSpace]:
    """The enabled spaces ``user`` may browse and read inputs from."""
    if not _signed_in(user):
        return DataSpace.objects.none()
    spaces = DataSpace.objects.filter(enabled=True)
    if not user.is_superuser:
        spaces = spaces.filter(
            Q(owner=user)
            | Q(access=DataSpace.Access.PUBLIC)
            | Q(access=DataSpace.Access.PROJECT, project_id__in=_projects(user))
        )
    return _within_token_project(spaces, user)


def spaces_writable_by(*, user) -> QuerySet[DataSpace]:
    """The enabled spaces ``user`` may deliver results to (whether the kind can be written is the
    connector's business: read-only kinds raise ReadOnly)."""
    if not _signed_in(user):
        return DataSpace.objects.none()
    spaces = DataSpace.objects.filter(enabled=True)
    if not user.is_superuser:
        spaces = spaces.filter(
            Q(owner=user) | Q(access=DataSpace.Access.PROJECT, project_id__in=_projects(user, WRITING_ROLES))
        )
    return _within_token_project(spaces, user)


def spaces_changeable_by(*, user) -> QuerySet[DataSpace]:
    """The spaces ``user`` may edit or delete: their own and their projects' (as a project owner);
    superusers: all."""
    if not _signed_in(user):
        return DataSpace.objects.none()
    spaces = DataSpace.objects.all()
    if not user.is_superuser:
        spaces = spaces.filter(
            Q(owner=user) | Q(access=DataSpace.Access.PROJECT, project_id__in=_projects(user, (Role.OWNER,)))
        )
    return _within_token_project(spaces, user)


def space_reference_issues(document: dict, user) -> list[dict]:
    """Validation issues (``param.space_forbidden``) of the ``space:<name>/…`` parameter values of
    ``document`` naming a space ``user`` may not read — with a token restricted to a project, any
    space outside it. Checked when a run is submitted, so that the worker (which reads with the
    rights of the run's owner, not of the token) never opens them."""
    from blocks import spaces

    found: list[tuple[int, str, str]] = []
    for index, node in enumerate(document.get("nodes") or []):
        for param, value in (node.get("params") or {}).items():
            for item in value if isinstance(value, list) else [value]:
                if spaces.is_reference(item):
                    try:
                        found.append((index, param, spaces.split(item)[0]))
                    except ValueError:
                        continue  # malformed: the block says so when it runs
    if not found:
        return []
    names = {name for _, _, name in found}
    usable = set(spaces_usable_by(user=user).filter(name__in=names).values_list("name", flat=True))
    issues = []
    for index, param, name in found:
        if name in usable:
            continue
        node_id = document["nodes"][index].get("id")
        issues.append({
            "code": "param.space_forbidden",
            "pointer": f"/nodes/{index}/params/{param}",
            "node": node_id,
            "port": None,
            "message": f"node {node_id!r}, parameter {param!r}: there is no data space {name!r} that you "
            "may read" + (" with this token" if getattr(user, "token_project_id", None) else ""),
            "details": {"space": name},
        })
    return issues


def default_store() -> DataSpace | None:
    """The portal's own store (``is_default_store``), if one is configured."""
    return DataSpace.objects.filter(is_default_store=True, enabled=True).first()
