"""Who may see and who may change pipelines and runs: the one place that decides it.

Every rule is a QuerySet filter, so lists are filtered in the database query and a single object is
checked with the same filter (``can``). Seeing and changing are separate questions:

============================  =====  ==========  ======  ===============================
who                           see    edit / run  cancel  delete
============================  =====  ==========  ======  ===============================
the pipeline's owner          yes    yes         yes     yes
project owner                 yes    yes         yes     yes
project editor                yes    yes         yes     no (only runs they started)
project viewer                yes    no          no      no
anyone signed in (public)     yes    no          no      no
anonymous                     no     no          no      no
============================  =====  ==========  ======  ===============================

Project roles count only when the pipeline's visibility is ``project`` or ``public``: a ``private``
pipeline is its owner's alone, even inside a project. A run has no visibility of its own: it is
seen by whoever may see its pipeline (so narrowing a pipeline hides its runs at once), and always by
the user who started it; artifacts and events go with their run. A run whose pipeline was deleted
is its starter's alone. The admin site uses the same filters for staff who are not superusers.
"""

from __future__ import annotations

from django.db.models import Model, Q, QuerySet

from apps.pipelines.models import Pipeline
from apps.projects.models import Membership, Project, Role, Visibility
from apps.runs.models import Run

PIPELINE_ACTIONS = ("edit", "run", "delete")
RUN_ACTIONS = ("cancel", "delete")

#: The project roles that grant each kind of change of a pipeline (its owner may do all of them).
PIPELINE_ROLES = {
    "edit": (Role.OWNER, Role.EDITOR),
    "run": (Role.OWNER, Role.EDITOR),
    "delete": (Role.OWNER,),
}
#: The pipeline action whose holders may also do this to any run of the pipeline.
RUN_ACTION_VIA_PIPELINE = {"cancel": "run", "delete": "delete"}

SHARED = (Visibility.PROJECT, Visibility.PUBLIC)


def _signed_in(user) -> bool:
    return user is not None and user.is_authenticated


def _member_of(user, roles=None) -> QuerySet:
    """The ids of the projects where ``user`` has one of ``roles`` (any role when None), as a subquery."""
    memberships = Membership.objects.filter(user=user)
    if roles is not None:
        memberships = memberships.filter(role__in=roles)
    return memberships.values("project_id")


def _within_token_project(queryset: QuerySet, user, project_field: str) -> QuerySet:
    """``queryset`` narrowed to one project when the request came with a personal API token restricted
    to it (``apps.accounts.authentication`` sets ``user.token_project_id``); unchanged otherwise."""
    project_id = getattr(user, "token_project_id", None)
    return queryset if project_id is None else queryset.filter(**{project_field: project_id})


def pipelines_visible_to(*, user) -> QuerySet[Pipeline]:
    """The pipelines ``user`` may see: their own, their projects' shared ones and public ones."""
    if not _signed_in(user):
        return Pipeline.objects.none()
    visible = Pipeline.objects.filter(
        Q(owner=user)
        | Q(visibility=Visibility.PUBLIC)
        | Q(visibility__in=SHARED, project_id__in=_member_of(user))
    )
    return _within_token_project(visible, user, "project_id")


def pipelines_changeable_by(*, user, action: str) -> QuerySet[Pipeline]:
    """The pipelines ``user`` may ``action`` (``edit``, ``run`` or ``delete``); raises ValueError for
    another action."""
    if action not in PIPELINE_ROLES:
        raise ValueError(f"unknown pipeline action {action!r}; one of {', '.join(PIPELINE_ACTIONS)}")
    if not _signed_in(user):
        return Pipeline.objects.none()
    changeable = Pipeline.objects.filter(
        Q(owner=user) | Q(visibility__in=SHARED, project_id__in=_member_of(user, PIPELINE_ROLES[action]))
    )
    return _within_token_project(changeable, user, "project_id")


def runs_visible_to(*, user) -> QuerySet[Run]:
    """The runs ``user`` may see, with their steps, events and artifacts: those they started and those
    of every pipeline they may see."""
    if not _signed_in(user):
        return Run.objects.none()
    seen_pipelines = pipelines_visible_to(user=user).values("pk")
    visible = Run.objects.filter(Q(owner=user) | Q(pipeline_id__in=seen_pipelines))
    return _within_token_project(visible, user, "pipeline__project_id")


def runs_changeable_by(*, user, action: str) -> QuerySet[Run]:
    """The runs ``user`` may ``action`` (``cancel`` or ``delete``): those they started, and those of
    pipelines on which they hold the matching pipeline right (``run`` to cancel, ``delete`` to
    delete). Raises ValueError for another action."""
    if action not in RUN_ACTION_VIA_PIPELINE:
        raise ValueError(f"unknown run action {action!r}; one of {', '.join(RUN_ACTIONS)}")
    if not _signed_in(user):
        return Run.objects.none()
    via = pipelines_changeable_by(user=user, action=RUN_ACTION_VIA_PIPELINE[action])
    changeable = Run.objects.filter(Q(owner=user) | Q(pipeline_id__in=via.values("pk")))
    return _within_token_project(changeable, user, "pipeline__project_id")


def can(user, action: str, obj: Model) -> bool:
    """Whether ``user`` may ``action`` the pipeline or run ``obj``; ``action`` ``view`` asks whether
    they may see it. Raises ValueError for an action that does not apply to the object."""
    if isinstance(obj, Pipeline):
        if action == "view":
            queryset = pipelines_visible_to(user=user)
        else:
            queryset = pipelines_changeable_by(user=user, action=action)
    elif isinstance(obj, Run):
        if action == "view":
            queryset = runs_visible_to(user=user)
        else:
            queryset = runs_changeable_by(user=user, action=action)
    else:
        raise ValueError(f"no access rules for {type(obj).__name__}")
    return queryset.filter(pk=obj.pk).exists()


def pipeline_permissions(*, user, pipelines: list[Pipeline]) -> dict[int, dict[str, bool]]:
    """``{pipeline id: {"edit": …, "run": …, "delete": …}}`` for ``pipelines``, one query per action
    (so a page of a list costs three queries, not three per pipeline)."""
    ids = [pipeline.pk for pipeline in pipelines]
    allowed = {
        action: set(
            pipelines_changeable_by(user=user, action=action).filter(pk__in=ids).values_list("pk", flat=True)
        )
        for action in PIPELINE_ACTIONS
    }
    return {pk: {action: pk in allowed[action] for action in PIPELINE_ACTIONS} for pk in ids}


def projects_of(*, user, roles=None) -> QuerySet:
    """The projects where ``user`` has one of ``roles`` (any role when None)."""
    if not _signed_in(user):
        return Project.objects.none()
    return _within_token_project(Project.objects.filter(pk__in=_member_of(user, roles)), user, "pk")
