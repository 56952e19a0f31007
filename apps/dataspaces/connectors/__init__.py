"""Data-space connectors by kind: a kind names a class by dotted path, imported on first use
(``ILIAD_DATASPACE_KINDS`` in settings adds or replaces kinds)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from apps.dataspaces.connectors.base import (  # noqa: F401 - the interface, importable from here
    Connector,
    ConnectorError,
    Entry,
    NotFound,
    ReadOnly,
    clean_path,
)

DEFAULT_KINDS: dict[str, str] = {
    "local": "apps.dataspaces.connectors.local.LocalConnector",
    "s3": "apps.dataspaces.connectors.s3.S3Connector",
    "webdav": "apps.dataspaces.connectors.webdav.WebDAVConnector",
    "http": "apps.dataspaces.connectors.http.HTTPConnector",
    "opendap": "apps.dataspaces.connectors.http.OPeNDAPConnector",
    "stac": "apps.dataspaces.connectors.stac.STACConnector",
}


def kinds() -> dict[str, str]:
    from django.conf import settings

    return {**DEFAULT_KINDS, **getattr(settings, "ILIAD_DATASPACE_KINDS", {})}


def build_connector(
    kind: str, *, name: str, config: Mapping[str, Any], credentials: Mapping[str, Any] | None = None
) -> Connector:
    """A connector for a space described by plain values; a permanent ConnectorError for an unknown kind."""
    from django.utils.module_loading import import_string

    path = kinds().get(kind)
    if path is None:
        raise ConnectorError(f"unknown data space kind {kind!r}")
    return import_string(path)(name=name, config=config, credentials=credentials)


def connector_for(space) -> Connector:
    """The connector of a ``DataSpace`` row, with its credentials decrypted (the local data space's
    empty root is the portal's ``ILIAD_DATA_DIR``)."""
    config = dict(space.config or {})
    if space.kind == "local" and not config.get("root"):
        from django.conf import settings

        config["root"] = str(settings.ILIAD_DATA_DIR)
    return build_connector(space.kind, name=space.name, config=config, credentials=space.credentials())
