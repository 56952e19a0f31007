"""The step state machine: which state may follow which, and the one helper every change of a
step's state goes through.

A transition is a conditional UPDATE: it names the states it starts from (and, for a claimed step,
the claim's ``attempts``), changes only the rows still in one of them, and says how many it changed.
A caller acts only on what it changed, so a duplicate delivery, a racing reconciler or a worker
whose step was taken back changes nothing.

::

    pending ──► queued ──► submitted ──► running ──► succeeded | failed | cancelled
       │          │  ▲         │  │         │
       │          │  └─────────┘  │         └──► queued   (taken back from a lost worker)
       │          │  (relaunch)   └──► succeeded | failed (a polled job's result, read by the reconciler)
       │          └──► running  (claimed straight from the queue, or kept by the worker that made it ready)
       └──► succeeded (reused from the step cache) | skipped | cancelled
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import connection
from django.db.models import F, Value
from django.db.models.expressions import CombinedExpression

from apps.runs.events import NewEvent
from apps.runs.models import RunEvent, StepRun, StepState

S = StepState

TRANSITIONS: dict[str, frozenset[str]] = {
    S.PENDING: frozenset({S.QUEUED, S.RUNNING, S.SUCCEEDED, S.SKIPPED, S.CANCELLED}),
    S.QUEUED: frozenset({S.SUBMITTED, S.RUNNING, S.QUEUED, S.FAILED, S.CANCELLED}),
    S.SUBMITTED: frozenset({S.RUNNING, S.QUEUED, S.SUCCEEDED, S.FAILED, S.CANCELLED}),
    # running → running: a redelivered message takes over a claim whose worker fell silent.
    S.RUNNING: frozenset({S.RUNNING, S.QUEUED, S.SUCCEEDED, S.FAILED, S.CANCELLED}),
    S.SUCCEEDED: frozenset(),
    S.FAILED: frozenset(),
    S.SKIPPED: frozenset(),
    S.CANCELLED: frozenset(),
}
"""state → the states it may move to. Finished states are final."""

ACTIVE_STEP_STATES = (S.PENDING, S.QUEUED, S.SUBMITTED, S.RUNNING)
LAUNCHED_STEP_STATES = (S.SUBMITTED, S.RUNNING)
"""States in which a step's job exists at its compute target (it has an external id)."""


class IllegalTransition(ValueError):
    """A caller asked for a transition the table does not allow (a programming error)."""


def step_transition(
    steps: int | Iterable[int],
    *,
    source: str | Iterable[str],
    to: str,
    attempt: int | None = None,
    where: dict[str, Any] | None = None,
    **changes: Any,
) -> int:
    """Move the steps with these ids that are still in ``source`` (one state or several) — and, when
    given, still under claim ``attempt`` (their ``attempts``) and matching ``where`` (extra lookups)
    — to ``to``, setting ``changes`` (field values or expressions) in the same UPDATE. Returns how many rows
    changed. Raises IllegalTransition when ``TRANSITIONS`` does not allow a move from a source to ``to``.
    """
    sources = (source,) if isinstance(source, str) else tuple(source)
    for state in sources:
        if to not in TRANSITIONS[state]:
            raise IllegalTransition(f"a step cannot go from {state} to {to}")
    if isinstance(steps, int):
        sql = transition_sql(steps, source=sources, to=to, attempt=attempt, where=where, **changes)
        if sql is not None:
            with connection.cursor() as cursor:
                cursor.execute(*sql)
                return cursor.rowcount
    rows = (
        StepRun.objects.filter(pk=steps)
        if isinstance(steps, int)
        else StepRun.objects.filter(pk__in=list(steps))
    )
    rows = rows.filter(state=sources[0]) if len(sources) == 1 else rows.filter(state__in=sources)
    if attempt is not None:
        rows = rows.filter(attempts=attempt)
    if where:
        rows = rows.filter(**where)
    return rows.update(state=to, **changes)


def transition_sql(
    step_id: int,
    *,
    source: str | Iterable[str],
    to: str,
    attempt: int | None = None,
    where: dict[str, Any] | None = None,
    **changes: Any,
) -> tuple[str, list[Any]] | None:
    """The UPDATE of one step's ``step_transition`` as hand-written SQL with its parameters, or None
    when a lookup or a change is more than this knows (plain values, ``F(name) + n``, ``name`` and
    ``name__isnull`` lookups): the ORM does those. On the hot path of every step, building the
    query costs the ORM more than the database takes to run it. Raises IllegalTransition like
    ``step_transition``."""
    sources = (source,) if isinstance(source, str) else tuple(source)
    for state in sources:
        if to not in TRANSITIONS[state]:
            raise IllegalTransition(f"a step cannot go from {state} to {to}")
    where = where or {}
    meta = StepRun._meta
    sets, params = [], []
    for name, value in (("state", to), *changes.items()):
        column = meta.get_field(name).column
        if isinstance(value, CombinedExpression):
            lhs, rhs = value.lhs, value.rhs
            if not (
                value.connector == "+"
                and isinstance(lhs, F)
                and isinstance(rhs, Value)
                and isinstance(rhs.value, int)
            ):
                return None
            sets.append(f"{column} = {meta.get_field(lhs.name).column} + %s")
            params.append(rhs.value)
        elif hasattr(value, "resolve_expression"):
            return None
        else:
            sets.append(f"{column} = %s")
            params.append(meta.get_field(name).get_db_prep_save(value, connection))
    conditions = [f"{meta.pk.column} = %s", f"state IN ({', '.join(['%s'] * len(sources))})"]
    params += [step_id, *sources]
    if attempt is not None:
        conditions.append("attempts = %s")
        params.append(attempt)
    for lookup, value in where.items():
        name, _, kind = lookup.partition("__")
        column = meta.get_field(name).column
        if kind == "isnull":
            conditions.append(f"{column} IS {'' if value else 'NOT '}NULL")
        elif not kind and not hasattr(value, "resolve_expression"):
            conditions.append(f"{column} = %s")
            params.append(meta.get_field(name).get_db_prep_value(value, connection))
        else:
            return None
    sql = f"UPDATE {meta.db_table} SET {', '.join(sets)} WHERE {' AND '.join(conditions)}"  # noqa: S608
    return sql, params


def state_event(state: str, node_id: str = "", **extra: Any) -> NewEvent:
    """The run event telling of a step's (with ``node_id``) or the run's new ``state``."""
    return (RunEvent.Kind.STATE, node_id, {"state": state, **extra})
