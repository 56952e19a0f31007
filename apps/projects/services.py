"""Writes for projects: create one, manage its members, share a pipeline by a read-only link.

Every function raises ``AccessRefused`` (a sentence saying why) when the acting user may not do it,
and ``ProjectInvalid`` (a sentence naming the field) for a bad value.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.pipelines.models import Pipeline
from apps.projects.access import can
from apps.projects.models import Membership, MembershipSource, Project, Role, ShareLink, Visibility

SHARE_LINK_MAX_DAYS = 365


class AccessRefused(Exception):
    """The acting user may see the thing but not do this to it; the message says why."""


class ProjectInvalid(Exception):
    """A value is wrong; ``field`` names it and the message says what is wrong with it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _require_owner(project: Project, user) -> None:
    if not Membership.objects.filter(project=project, user=user, role=Role.OWNER).exists():
        raise AccessRefused(f"only an owner of the project {project.slug!r} may manage its members")


def _check_role(role: str) -> None:
    if role not in Role.values:
        raise ProjectInvalid("role", f"one of {', '.join(Role.values)}, not {role!r}")


def _other_owners(membership: Membership) -> bool:
    return (
        Membership.objects.filter(project_id=membership.project_id, role=Role.OWNER)
        .exclude(pk=membership.pk)
        .exists()
    )


@transaction.atomic
def project_create(*, user, slug: str, name: str, description: str = "") -> Project:
    """Create a project with ``user`` as its first owner; ProjectInvalid if the slug is taken."""
    if Project.objects.filter(slug=slug).exists():
        raise ProjectInvalid("slug", f"a project {slug!r} already exists; choose another slug")
    try:
        with transaction.atomic():
            project = Project.objects.create(slug=slug, name=name, description=description)
    except IntegrityError:  # a concurrent create took the slug between the check and the insert
        raise ProjectInvalid("slug", f"a project {slug!r} already exists; choose another slug") from None
    Membership.objects.create(project=project, user=user, role=Role.OWNER)
    return project


@transaction.atomic
def membership_add(
    *, project: Project, by, username: str, role: str, source: str = MembershipSource.MANUAL
) -> Membership:
    """Add the user called ``username`` with ``role``; only project owners may (AccessRefused).
    ProjectInvalid for an unknown user, a bad role or someone who already is a member."""
    _require_owner(project, by)
    _check_role(role)
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise ProjectInvalid("username", f"there is no user {username!r}")
    if Membership.objects.filter(project=project, user=user).exists():
        raise ProjectInvalid("username", f"{username!r} already is a member; change their role instead")
    return Membership.objects.create(project=project, user=user, role=role, source=source)


@transaction.atomic
def membership_set_role(*, membership: Membership, by, role: str) -> Membership:
    """Give a member another role; only project owners may, and the last owner stays an owner."""
    _require_owner(membership.project, by)
    _check_role(role)
    membership = Membership.objects.select_for_update().get(pk=membership.pk)
    if membership.role == Role.OWNER and role != Role.OWNER and not _other_owners(membership):
        raise AccessRefused("a project always keeps an owner: make someone else an owner first")
    membership.role = role
    membership.save(update_fields=["role"])
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership, by) -> None:
    """Remove a member: an owner may remove anyone, every member may leave. The last owner cannot
    go (AccessRefused)."""
    if membership.user_id != by.pk:
        _require_owner(membership.project, by)
    membership = Membership.objects.select_for_update().get(pk=membership.pk)
    if membership.role == Role.OWNER and not _other_owners(membership):
        raise AccessRefused("a project always keeps an owner: make someone else an owner first")
    membership.delete()


def share_token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@transaction.atomic
def share_link_create(*, pipeline: Pipeline, by, days: int = 7) -> tuple[ShareLink, str]:
    """A read-only link to ``pipeline`` that expires after ``days`` (1 to SHARE_LINK_MAX_DAYS); only
    those who may edit the pipeline may make one. Returns the row and the token, which is not stored."""
    if not can(by, "edit", pipeline):
        raise AccessRefused("only those who may edit this pipeline may share it by a link")
    if not 1 <= days <= SHARE_LINK_MAX_DAYS:
        raise ProjectInvalid("days", f"a link lives between 1 and {SHARE_LINK_MAX_DAYS} days, not {days}")
    token = secrets.token_urlsafe(32)
    link = ShareLink.objects.create(
        pipeline=pipeline,
        digest=share_token_digest(token),
        prefix=token[:8],
        created_by=by,
        expires_at=timezone.now() + timedelta(days=days),
    )
    return link, token


def share_link_revoke(*, link: ShareLink, by) -> ShareLink:
    """Revoke a link (no-op if it already is); only those who may edit its pipeline may."""
    if not can(by, "edit", link.pipeline):
        raise AccessRefused("only those who may edit this pipeline may revoke its links")
    if link.revoked_at is None:
        link.revoked_at = timezone.now()
        link.save(update_fields=["revoked_at"])
    return link


class ShareLinkGone(Exception):
    """The link existed but no longer works (expired or revoked); the message says since when."""


def share_link_open(*, token: str) -> Pipeline | None:
    """The pipeline a share token opens; None for an unknown token; ShareLinkGone for an expired
    or revoked one."""
    if not token or len(token) > 200:
        return None
    link = ShareLink.objects.select_related("pipeline").filter(digest=share_token_digest(token)).first()
    if link is None:
        return None
    if link.revoked_at is not None:
        raise ShareLinkGone(f"This link was revoked on {link.revoked_at:%Y-%m-%d %H:%M} UTC.")
    if link.expires_at <= timezone.now():
        raise ShareLinkGone(f"This link expired on {link.expires_at:%Y-%m-%d %H:%M} UTC.")
    return link.pipeline


def project_for_pipeline(*, user, value) -> Project | None:
    """The project named by ``value`` (slug or id) where ``user`` is an owner or editor, for putting a
    pipeline in it; None for an empty value. ProjectInvalid naming ``project`` otherwise."""
    if value in (None, ""):
        return None
    text = str(value)
    project = Project.objects.filter(slug=text).first()  # a slug may be all digits: it wins over an id
    if project is None and text.isdigit() and len(text) < 18:
        project = Project.objects.filter(pk=int(text)).first()
    # A personal API token restricted to one project (apps.accounts.authentication) may use no other.
    restricted_to = getattr(user, "token_project_id", None)
    if project is None or restricted_to not in (None, project.pk) or not Membership.objects.filter(
        project=project, user=user, role__in=(Role.OWNER, Role.EDITOR)
    ).exists():
        raise ProjectInvalid(
            "project", f"no project {text[:100]!r} where you are an owner or editor (slug or id)"
        )
    return project



def sharing_check(*, project: Project | None, visibility: str) -> None:
    """ProjectInvalid naming ``visibility`` unless it is known and, for ``project``, has a project."""
    if visibility not in Visibility.values:
        raise ProjectInvalid("visibility", f"one of {', '.join(Visibility.values)}, not {visibility!r}")
    if visibility == Visibility.PROJECT and project is None:
        raise ProjectInvalid("visibility", "'project' needs the pipeline to be in a project; give 'project'")


_UNCHANGED = object()


@transaction.atomic
def pipeline_sharing_set(
    *, pipeline: Pipeline, by, project=_UNCHANGED, visibility: str | None = None
) -> Pipeline:
    """Move ``pipeline`` into ``project`` (None: out of any) and/or change its ``visibility``. Only its
    owner or an owner of its project may (AccessRefused); the new project must already have been
    checked with ``project_for_pipeline``. A value equal to the current one is no change."""
    pipeline = Pipeline.objects.select_for_update().get(pk=pipeline.pk)
    new_project = pipeline.project if project is _UNCHANGED else project
    new_visibility = visibility or pipeline.visibility
    if new_project == pipeline.project and new_visibility == pipeline.visibility:
        return pipeline
    if not can(by, "delete", pipeline):
        raise AccessRefused(
            "only the pipeline's owner or an owner of its project may change its project or visibility"
        )
    sharing_check(project=new_project, visibility=new_visibility)
    pipeline.project = new_project
    pipeline.visibility = new_visibility
    pipeline.save(update_fields=["project", "visibility", "updated_at"])
    return pipeline
