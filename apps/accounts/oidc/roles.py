"""Group and entitlement claims → project memberships.

``desired_memberships`` is the whole policy, a pure function; ``memberships_apply`` makes the database
agree with it at each sign-in: memberships granted by rules (source "rule") are added, changed or
removed, memberships granted by a project owner (source "manual") are never touched.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from django.db import transaction

from apps.accounts.oidc.config import ROLES, RoleRule

logger = logging.getLogger(__name__)


def claim_values(claims: Mapping, claim: str) -> list[str]:
    """The string values of one claim: a string, or the strings in a list (other values are ignored)."""
    value = claims.get(claim)
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [item for item in value if isinstance(item, str)]
    return []


def desired_memberships(
    claims: Mapping,
    rules: Iterable[RoleRule],
    *,
    provider: str | None = None,
    group_claims: Iterable[str] | None = None,
) -> dict[str, str]:
    """``{project slug: role}`` that ``rules`` grant to a user with ``claims`` signing in with
    ``provider``. Only the claims in ``group_claims`` are looked at (all when None). When several rules
    name one project, the strongest role wins (owner > editor > viewer)."""
    allowed_claims = None if group_claims is None else set(group_claims)
    granted: dict[str, str] = {}
    for rule in rules:
        if rule.provider is not None and rule.provider != provider:
            continue
        if allowed_claims is not None and rule.claim not in allowed_claims:
            continue
        for value in claim_values(claims, rule.claim):
            if rule.regex is not None:
                found = rule.regex.fullmatch(value)
                if found is None:
                    continue
                project = found.expand(rule.project)
            elif value == rule.match:
                project = rule.project
            else:
                continue
            current = granted.get(project)
            if current is None or ROLES.index(rule.role) < ROLES.index(current):
                granted[project] = rule.role
    return granted


@transaction.atomic
def memberships_apply(*, user, desired: Mapping[str, str]) -> dict[str, list[str]]:
    """Make ``user``'s rule-granted memberships equal ``desired`` (``{project slug: role}``). A project
    that does not exist is skipped and logged (rules never create projects); a manual membership in a
    project wins over the rule. Returns what changed: ``{"added": [...], "changed": [...], "removed":
    [...]}`` (project slugs)."""
    from apps.projects.models import Membership, MembershipSource, Project

    changes: dict[str, list[str]] = {"added": [], "changed": [], "removed": []}
    projects = {project.slug: project for project in Project.objects.filter(slug__in=list(desired))}
    for slug in sorted(set(desired) - set(projects)):
        logger.warning(
            "sign-in rule grants %s in project %r, which does not exist: skipped", desired[slug], slug
        )
    existing = {
        m.project.slug: m
        for m in Membership.objects.select_for_update().filter(user=user).select_related("project")
    }
    for slug, membership in existing.items():
        if membership.source != MembershipSource.RULE:
            continue
        if slug not in projects:
            membership.delete()
            changes["removed"].append(slug)
        elif membership.role != desired[slug]:
            membership.role = desired[slug]
            membership.save(update_fields=["role"])
            changes["changed"].append(slug)
    for slug, project in projects.items():
        if slug not in existing:
            Membership.objects.create(
                user=user, project=project, role=desired[slug], source=MembershipSource.RULE
            )
            changes["added"].append(slug)
    return changes
