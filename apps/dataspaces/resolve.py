"""Open ``space:<name>/<path>`` sources inside the portal's workers (installed into
:mod:`blocks.spaces` when Django starts).

A step may read a space only if the user who started its run may use it. Local spaces hand over
their own file (the block's format guard checks it, and a Zarr store's links may not leave the
space); HTTP, OPeNDAP and STAC spaces without credentials hand over the URL, which the block fetches
through the URL guard; every other space (S3, WebDAV, or any with credentials) is copied into the
step's scratch folder within the block's download limit.
"""

from __future__ import annotations

from pathlib import Path

from apps.dataspaces.connectors import ConnectorError, connector_for
from blocks import spaces

URL_KINDS = ("http", "opendap", "stac")


def resolve_reference(
    *, name: str, path: str, scratch_dir: Path, max_bytes: int, run_id: str | None = None
) -> spaces.Resolved:
    """Where the file ``path`` of space ``name`` can be read for run ``run_id``; ValueError saying why
    not (unknown or forbidden spaces are reported alike, so a name reveals nothing)."""
    from apps.dataspaces.models import DataSpace
    from apps.dataspaces.selectors import spaces_usable_by
    from apps.runs.models import Run

    source = f"{spaces.PREFIX}{name}/{path}"
    owner = Run.objects.filter(pk=run_id).values_list("owner", flat=True).first() if run_id else None
    if owner is not None:
        from django.contrib.auth import get_user_model

        usable = spaces_usable_by(user=get_user_model().objects.get(pk=owner))
    else:
        usable = DataSpace.objects.filter(enabled=True, access=DataSpace.Access.PUBLIC)
    space = usable.filter(name=name).first()
    if space is None:
        raise ValueError(f"source: {source!r}: there is no data space {name!r} that this run may read")
    try:
        connector = connector_for(space)
        if space.kind == "local":
            entry = connector.stat(path)
            return spaces.Resolved(path=connector.local_path(entry.path), root=connector.root)
        if space.kind in URL_KINDS and not space.has_credentials:
            url = connector.asset_href(path) if space.kind == "stac" else connector.url_of(path)
            return spaces.Resolved(url=url)
        entry = connector.stat(path)
        if entry.is_dir:
            raise ConnectorError(
                f"{path!r} in space {name!r} is a folder; remote Zarr stores are not supported, pick a file"
            )
        destination = Path(scratch_dir) / "spaces" / name / entry.path
        return spaces.Resolved(
            path=connector.local_copy(entry.path, destination, max_bytes=max_bytes), root=destination.parent
        )
    except ConnectorError as error:
        raise ValueError(f"source: {error}") from None
    except ValueError as error:  # credentials that cannot be decrypted
        raise ValueError(f"source: data space {name!r}: {error}") from None


def install() -> None:
    spaces.install(resolve_reference)
