"""Comments on pipelines: threads pinned to a node or to the whole pipeline, @mentions, resolve and
reopen. Everyone who may see the pipeline reads and writes them; a thread is resolved or reopened by
its author or by someone who may edit the pipeline; a comment's text is changed by its author only.

Whoever is newly @mentioned gets an in-portal notification (e-mailed where configured). Every change
is pushed, after commit, to the editors open on the pipeline (``comments_changed``), which reload
the comments: no polling."""

from __future__ import annotations

import logging
import re

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone

from apps.collab.models import Comment
from apps.pipelines.models import Pipeline
from apps.projects.access import can, pipelines_visible_to

logger = logging.getLogger(__name__)

MENTION_RE = re.compile(r"(?<![\w@])@([\w.+-]{1,150})")
MAX_BODY = 5000


class CommentInvalid(Exception):
    """Bad input: ``field`` names it, ``message`` says why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class CommentRefused(Exception):
    """The user may see the comment but not do this to it."""


def comments_of(*, pipeline: Pipeline) -> QuerySet[Comment]:
    """Every comment of the pipeline, oldest first, with authors and mentions loaded."""
    return (
        Comment.objects.filter(pipeline=pipeline)
        .select_related("author", "resolved_by")
        .prefetch_related("mentions")
    )


def _mentioned(*, pipeline: Pipeline, body: str) -> list:
    names = sorted({name.rstrip(".") for name in MENTION_RE.findall(body)})
    if not names:
        return []
    users = {user.get_username(): user for user in get_user_model().objects.filter(username__in=names)}
    unknown = [name for name in names if name not in users]
    if unknown:
        raise CommentInvalid("body", f"no user named {', '.join('@' + name for name in unknown)}")
    blind = [
        name
        for name, user in users.items()
        if not pipelines_visible_to(user=user).filter(pk=pipeline.pk).exists()
    ]
    if blind:
        raise CommentInvalid(
            "body", f"{', '.join('@' + name for name in sorted(blind))} cannot see this pipeline"
        )
    return list(users.values())


def _clean_body(body: str) -> str:
    body = (body or "").strip()
    if not body:
        raise CommentInvalid("body", "write something")
    if len(body) > MAX_BODY:
        raise CommentInvalid("body", f"at most {MAX_BODY} characters")
    return body


@transaction.atomic
def comment_create(
    *, pipeline: Pipeline, author, body: str, node_id: str = "", parent_id: int | None = None
) -> Comment:
    """A new thread on ``node_id`` (empty: the pipeline), or a reply to thread ``parent_id`` (which
    it joins, node included). Raises CommentInvalid naming the field."""
    body = _clean_body(body)
    parent = None
    if parent_id is not None:
        parent = Comment.objects.filter(pipeline=pipeline, pk=parent_id).first()
        if parent is None:
            raise CommentInvalid("parent", f"this pipeline has no comment {parent_id}")
        if parent.parent_id is not None:
            parent = parent.parent
        node_id = parent.node_id
    mentions = _mentioned(pipeline=pipeline, body=body)
    comment = Comment.objects.create(
        pipeline=pipeline, author=author, body=body, node_id=node_id or "", parent=parent
    )
    comment.mentions.set(mentions)
    _notify_mentioned(comment=comment, people=mentions)
    _push_after_commit(comment)
    return comment


@transaction.atomic
def comment_update(
    *, comment: Comment, user, body: str | None = None, resolved: bool | None = None
) -> Comment:
    """Change the text (its author only) or resolve/reopen the thread (its author, or an editor of
    the pipeline; a reply resolves its thread). Raises CommentRefused, CommentInvalid."""
    if body is not None:
        if comment.author_id != user.pk:
            raise CommentRefused("only its author may change a comment")
        comment.body = _clean_body(body)
        mentions = _mentioned(pipeline=comment.pipeline, body=comment.body)
        before = set(comment.mentions.values_list("pk", flat=True))
        comment.mentions.set(mentions)
        comment.save(update_fields=["body", "updated_at"])
        _notify_mentioned(comment=comment, people=[user for user in mentions if user.pk not in before])
    if resolved is not None:
        thread = comment.parent or comment
        if thread.author_id != user.pk and not can(user, "edit", comment.pipeline):
            raise CommentRefused(
                "only the thread's author or an editor of the pipeline may resolve or reopen it"
            )
        thread.resolved_at = timezone.now() if resolved else None
        thread.resolved_by = user if resolved else None
        thread.save(update_fields=["resolved_at", "resolved_by", "updated_at"])
        if thread.pk == comment.pk:
            comment = thread
    _push_after_commit(comment)
    return comment


def _notify_mentioned(*, comment: Comment, people: list) -> None:
    """An in-portal notification to each person newly mentioned (never to the author), leading to
    the editor at the comment's node."""
    from apps.feedback.services import notify

    recipients = [person for person in people if person.pk != comment.author_id]
    if not recipients:
        return
    pipeline = comment.pipeline
    where = f"node {comment.node_id} of " if comment.node_id else ""
    author = comment.author.get_username() if comment.author else "someone"
    excerpt = " ".join(comment.body.split())
    excerpt = excerpt if len(excerpt) <= 120 else excerpt[:119] + "…"
    url = reverse("pipeline-edit", args=[pipeline.pk]) + (
        f"?node={comment.node_id}" if comment.node_id else ""
    )
    notify(
        recipients=recipients,
        message=f"{author} mentioned you on {where}“{pipeline.name}”: {excerpt}"[:500],
        url=url,
    )


def comments_group(pipeline_id: int) -> str:
    return f"collab.comments.{pipeline_id}"


def comments_changed(*, pipeline_id: int, comment_id: int) -> None:
    """Tell the editors open on the pipeline that a comment was added or changed (they reload)."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(
            comments_group(pipeline_id), {"type": "comment.changed", "comment": comment_id}
        )
    except Exception:  # stored all the same: an editor that (re)connects loads it
        logger.warning("could not push a comment change of pipeline %s", pipeline_id, exc_info=True)


def _push_after_commit(comment: Comment) -> None:
    pipeline_id, comment_id = comment.pipeline_id, comment.pk
    transaction.on_commit(lambda: comments_changed(pipeline_id=pipeline_id, comment_id=comment_id))
