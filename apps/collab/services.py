"""The shared document's store: load (seeding from the latest version, compacting), append updates."""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from pycrdt import Doc, create_update_message

from apps.collab.models import DocumentUpdate
from apps.collab.ydoc import apply_version_change, document_of, seed_update
from apps.pipelines.models import Pipeline

logger = logging.getLogger(__name__)

COMPACT_AFTER = 200
"""Stored updates of one document past which loading merges them into one row."""


def shared_document_load(*, pipeline_id: int) -> Doc:
    """The pipeline's shared document as stored. An empty store is seeded from the latest version
    (identical bytes from every server, so concurrent seeds merge), and many stored updates are
    compacted into one row."""
    rows = list(DocumentUpdate.objects.filter(pipeline_id=pipeline_id).values_list("id", "data"))
    doc = Doc()
    if not rows:
        pipeline = Pipeline.objects.get(pk=pipeline_id)
        version = pipeline.versions.filter(number=pipeline.latest_version).first()
        seed = seed_update(version.document if version else None)
        DocumentUpdate.objects.create(pipeline_id=pipeline_id, data=seed)
        doc.apply_update(seed)
        return doc
    for _, data in rows:
        doc.apply_update(bytes(data))
    if len(rows) > COMPACT_AFTER:
        with transaction.atomic():
            DocumentUpdate.objects.filter(pipeline_id=pipeline_id, id__lte=rows[-1][0]).delete()
            DocumentUpdate.objects.create(pipeline_id=pipeline_id, data=doc.get_update())
    return doc


def shared_document_append(*, pipeline_id: int, updates: list[bytes]) -> None:
    """Store Yjs updates of the pipeline's shared document, in order."""
    DocumentUpdate.objects.bulk_create(
        DocumentUpdate(pipeline_id=pipeline_id, data=update) for update in updates
    )


def shared_document_take_version(*, pipeline_id: int, old: dict | None, new: dict) -> None:
    """A version was saved (``old`` -> ``new``): replay its changes onto the pipeline's shared
    document, if it has one, store them and push them to the open editors. A version saved from the
    shared document changes nothing; one saved through the API lands in it, next to live edits."""
    if not DocumentUpdate.objects.filter(pipeline_id=pipeline_id).exists():
        return  # the first editor to open it seeds it from the latest version
    doc = shared_document_load(pipeline_id=pipeline_id)
    if document_of(doc) == new:
        return
    update = apply_version_change(doc, old, new)
    shared_document_append(pipeline_id=pipeline_id, updates=[update])
    layer = get_channel_layer()
    if layer is not None:
        from apps.collab.consumers import collab_group

        message = {"type": "send_message", "message": create_update_message(update), "sender": ""}
        try:
            async_to_sync(layer.group_send)(collab_group(pipeline_id), message)
        except Exception:  # stored all the same: editors that (re)connect load it
            logger.warning("could not push version changes of pipeline %s", pipeline_id, exc_info=True)
