"""The artifact store as the portal sees it (:mod:`blocks.store` holds the machinery).

With a directory store (``ILIAD_ARTIFACT_STORE`` empty) nothing changes: outputs are written under
``ILIAD_ARTIFACT_ROOT`` and named by ``file://`` URIs. With an object store (``s3://bucket/prefix``):

- step manifests name outputs ``store:runs/<run>/<node>[/attempt-N]``, so every machine resolves them
  under its own ``ILIAD_ARTIFACT_ROOT`` (a cache of the bucket);
- around each step a worker runs (:func:`around_step`, called by ``apps.runs.agent``) the inputs it
  lacks are downloaded first and the outputs uploaded after;
- the portal's readers (downloads and previews, the step cache, the processing report and
  deliveries) take an artifact's file from :func:`artifact_path`, which downloads it into the local
  cache when this machine does not have it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from django.conf import settings

from blocks.manifest import (
    ManifestError,
    ResultManifest,
    StepManifest,
    path_from_uri,
    store_uri,
    uri_from_path,
)
from blocks.store import ObjectStore, StoreError, fetch_inputs, push_outputs, relative_part

logger = logging.getLogger(__name__)


def object_store() -> ObjectStore | None:
    """The configured object store, or None for a directory store."""
    return ObjectStore.from_settings(settings.ILIAD_ARTIFACT_STORE, settings.ILIAD_ARTIFACT_STORE_OPTIONS)


def store_root() -> Path:
    """Where ``store:`` URIs resolve on this machine (the store, or the cache of the object store)."""
    return Path(settings.ILIAD_ARTIFACT_ROOT)


def output_uri(path: Path) -> str:
    """How a manifest names a directory or file under the artifact root: ``store:…`` with an object
    store (every machine resolves it for itself), else ``file://…``."""
    if object_store() is not None:
        return store_uri(path, store_root())
    return uri_from_path(path)


def artifact_path(uri: str) -> Path | None:
    """The file of an artifact on this machine, downloaded from the object store when it is only
    there; None when it exists nowhere (or the URI is not a file of the store). Raises StoreError when
    the object store fails."""
    try:
        path = path_from_uri(uri, store_root())
    except ManifestError:
        return None
    if path.is_file():
        return path
    store = object_store()
    try:
        relative = relative_part(uri)
    except ManifestError:
        return None
    if store is None or relative is None:
        return None
    return store.fetch(relative, store_root())


def served_artifact_path(uri: str) -> Path | None:
    """:func:`artifact_path`, resolved, and only when it is a file inside the artifact root (what the
    portal may serve or read for a user: a URI must never lead out of the store). Raises StoreError
    when the object store fails."""
    path = artifact_path(uri)
    path = path.resolve() if path is not None else None
    if path is None or not path.is_relative_to(settings.ILIAD_ARTIFACT_ROOT) or not path.is_file():
        return None
    return path


def artifact_available(uri: str) -> bool:
    """Whether an artifact's file exists here or in the object store (without downloading it)."""
    try:
        if path_from_uri(uri, store_root()).is_file():
            return True
        relative = relative_part(uri)
    except ManifestError:
        return False
    store = object_store()
    if store is None or relative is None:
        return False
    try:
        return store.size(relative) is not None
    except StoreError:
        logger.warning("artifact store unavailable while checking %s", uri, exc_info=True)
        return False


def _failed(manifest: StepManifest, message: str) -> ResultManifest:
    return ResultManifest(
        run_id=manifest.run_id, step_id=manifest.step_id, block_id=manifest.block_id,
        block_version=manifest.block_version, ok=False, attempt=manifest.attempt,
        error={"type": "ArtifactStoreError", "message": message, "traceback": ""},
    )


def around_step(manifest: StepManifest, execute: Callable[[Path], ResultManifest]) -> ResultManifest:
    """Run a step with ``execute(store_root)``, keeping the object store in step: download the inputs
    this machine lacks before, upload the outputs and the result manifest after. A store that fails
    fails the step with an ``ArtifactStoreError`` saying what (the step may then be retried); with a
    directory store this is just ``execute``."""
    store = object_store()
    root = store_root()
    if store is None:
        return execute(root)
    try:
        fetch_inputs(manifest, store, root)
    except (StoreError, ManifestError) as error:
        logger.error("step %s of run %s: %s", manifest.step_id, manifest.run_id, error)
        return _failed(manifest, f"the step's inputs could not be read from the artifact store: {error}")
    result = execute(root)
    if result.ok:
        try:
            push_outputs(manifest, result, store, root)
        except (StoreError, ManifestError) as error:
            logger.error("step %s of run %s: %s", manifest.step_id, manifest.run_id, error)
            return _failed(manifest, f"the step's outputs could not be saved to the artifact store: {error}")
    return result
