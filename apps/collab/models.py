"""The shared (CRDT) document of each pipeline, stored as its Yjs updates, and comments on pipelines."""

from django.conf import settings
from django.db import models


class DocumentUpdate(models.Model):
    """One Yjs update of a pipeline's shared document; applied in id order they give its state.
    Loading compacts many of them into one."""

    pipeline = models.ForeignKey("pipelines.Pipeline", on_delete=models.CASCADE, related_name="doc_updates")
    data = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["pipeline", "id"], name="collab_update_pipeline_id")]

    def __str__(self) -> str:
        return f"update {self.pk} of pipeline {self.pipeline_id}"


class Comment(models.Model):
    """A comment on a pipeline, pinned to one of its nodes (``node_id``) or to the whole pipeline
    (empty ``node_id``). A reply has a ``parent``; a thread (its first comment) is resolved or open."""

    pipeline = models.ForeignKey("pipelines.Pipeline", on_delete=models.CASCADE, related_name="comments")
    node_id = models.CharField(max_length=64, blank=True, default="")
    parent = models.ForeignKey(
        "self", on_delete=models.CASCADE, null=True, blank=True, related_name="replies"
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    body = models.TextField()
    mentions = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="mentioned_in_comments"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["pipeline", "node_id"], name="collab_comment_pipeline_node")]

    def __str__(self) -> str:
        return f"comment {self.pk} on {self.pipeline_id}/{self.node_id or '-'}"
