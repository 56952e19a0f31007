"""What a data-space file holds (describe), a quick look at it (preview), and registering spaces.

Remote files are copied into a size-capped cache (``ILIAD_DATASPACE_CACHE_DIR``, at most
``ILIAD_DESCRIBE_MAX_MB`` per file) before being opened; OPeNDAP datasets are described remotely
through the URL guard. Every gridded file passes :func:`blocks.formatguard.ensure_self_contained`
before a reader opens it.
"""

from __future__ import annotations

import hashlib
import io
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction

from apps.dataspaces.connectors import Connector, ConnectorError, Entry, connector_for
from apps.dataspaces.models import DataSpace

GRIDDED_BLOCK = "data.open_gridded"
TABLE_BLOCK = "data.open_observations"
MAX_PREVIEW_CELLS = 1_000_000
TABLE_MEDIA_TYPES = ("text/csv", "text/tab-separated-values", "application/vnd.apache.parquet")
USER_KINDS = ("s3", "webdav", "http", "opendap", "stac")
"""Kinds a user who is not staff may register (a local folder is the administrators' business)."""


class DescribeError(Exception):
    """The file cannot be described or previewed; the message says why (shown to the user)."""


def reference_for(space: DataSpace, path: str) -> str:
    """What a data-access block's ``source`` parameter takes for ``path`` in ``space``: the plain
    path in the default local store (works with every block version), ``space:<name>/<path>``
    otherwise."""
    if space.is_default_store and space.kind == "local":
        return path
    return f"{space.reference_prefix}{path}"


def _suffixes():
    from blocks.library.data_access import CSV_SUFFIXES, NETCDF_SUFFIXES, PARQUET_SUFFIXES, ZARR_SUFFIXES

    return NETCDF_SUFFIXES, ZARR_SUFFIXES, (*CSV_SUFFIXES, *PARQUET_SUFFIXES)


def _kind_of(space: DataSpace, entry: Entry) -> str:
    """``gridded``, ``table``, ``item``, ``folder`` or ``other``."""
    netcdf, zarr, table = _suffixes()
    name = entry.name.lower()
    if entry.extra.get("type") == "Item":
        return "item"
    if entry.extra.get("zarr") or name.endswith(zarr):
        return "gridded"
    if entry.is_dir:
        return "folder"
    media_type = (entry.media_type or "").lower()
    href = str(entry.extra.get("href") or "").lower().split("?")[0]  # a STAC asset's key says nothing
    if space.kind == "opendap" or name.endswith(netcdf) or href.endswith(netcdf) or "netcdf" in media_type:
        return "gridded"
    if name.endswith(table) or href.endswith(table) or media_type in TABLE_MEDIA_TYPES:
        return "table"
    return "other"


def _max_bytes() -> int:
    return int(settings.ILIAD_DESCRIBE_MAX_MB) * 1_000_000


@contextmanager
def _local_file(space: DataSpace, connector: Connector, entry: Entry):
    """(path on this machine, root it may not leave) for ``entry``: the file itself in a local space,
    else a cached copy; DescribeError when it is larger than the describe limit."""
    if space.kind == "local":
        yield connector.local_path(entry.path), connector.root
        return
    if entry.is_dir:
        raise DescribeError(f"{entry.path!r} is a folder (a remote Zarr store?); only files can be described")
    limit = _max_bytes()
    if entry.size is not None and entry.size > limit:
        raise DescribeError(
            f"{entry.path!r} is {entry.size / 1e6:,.1f} MB, more than the {limit / 1e6:,.0f} MB the portal "
            "copies to describe a file (ILIAD_DESCRIBE_MAX_MB); a run can still open it"
        )
    stamp = f"{space.pk}:{space.updated_at.isoformat()}:{entry.path}:{entry.size}:{entry.modified}"
    key = hashlib.sha256(stamp.encode()).hexdigest()
    suffix = "".join(Path(entry.name).suffixes[-2:]) or ".bin"
    cached = Path(settings.ILIAD_DATASPACE_CACHE_DIR) / key[:2] / f"{key}{suffix}"
    if not cached.exists():
        partial = cached.with_name(cached.name + ".partial")
        try:
            connector.local_copy(entry.path, partial, max_bytes=limit)
        except ConnectorError as error:
            raise DescribeError(str(error)) from None
        partial.replace(cached)
    yield cached, cached.parent


def _open_gridded(space: DataSpace, connector: Connector, entry: Entry, stack):
    import xarray as xr

    from blocks import formatguard, netguard

    if space.kind == "opendap":
        url = connector.url_of(entry.path)
        proxy = netguard.GuardedWSGIProxy(url, max_bytes=_max_bytes(), deadline_s=60.0)
        try:
            return xr.open_dataset(url, engine="pydap", application=proxy, chunks={})
        except netguard.UnsafeURL as error:
            raise DescribeError(str(error)) from None
        except (OSError, ValueError, KeyError) as error:
            raise DescribeError(
                f"{entry.path!r} could not be opened as an OPeNDAP dataset: {error}"
            ) from None
    path, root = stack.enter_context(_local_file(space, connector, entry))
    try:
        formatguard.ensure_self_contained(path, source=entry.path, root=root)
    except ValueError as error:
        raise DescribeError(str(error).removeprefix("source: ")) from None
    try:
        if path.is_dir():
            from zarr.storage import LocalStore

            return xr.open_zarr(LocalStore(path, read_only=True), chunks={})
        return xr.open_dataset(path, engine="netcdf4", chunks={})
    except (OSError, ValueError, TypeError, KeyError) as error:
        raise DescribeError(
            f"{entry.path!r} could not be opened as a NetCDF file or Zarr store: {type(error).__name__}"
        ) from None


def _read_table(space: DataSpace, connector: Connector, entry: Entry, stack):
    import pandas as pd

    path, _ = stack.enter_context(_local_file(space, connector, entry))
    try:
        if entry.name.lower().endswith((".parquet", ".pq")):
            return pd.read_parquet(path)
        return pd.read_csv(path, sep="\t" if entry.name.lower().endswith(".tsv") else ",")
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise DescribeError(f"{entry.path!r} could not be read as a table: {type(error).__name__}") from None


def _table_metadata(table) -> dict[str, Any]:
    import pandas as pd

    metadata: dict[str, Any] = {
        "columns": [str(column) for column in table.columns],
        "rows": int(len(table)),
        "variables": {},
        "time_range": None,
        "bounding_box": None,
    }
    if {"variable", "value"} <= set(table.columns):
        for name in sorted(map(str, table["variable"].dropna().unique()))[:200]:
            units = None
            if "units" in table.columns:
                values = table.loc[table["variable"].astype(str) == name, "units"].dropna()
                units = str(values.iloc[0]) if len(values) else None
            metadata["variables"][name] = {"units": units, "standard_name": None, "long_name": None}
    if "station" in table.columns:
        metadata["stations"] = sorted(map(str, table["station"].dropna().unique()))[:200]
    if "time" in table.columns:
        times = pd.to_datetime(table["time"].astype("string"), utc=True, errors="coerce", format="ISO8601")
        if times.notna().any():
            metadata["time_range"] = {
                "start": times.min().isoformat(),
                "end": times.max().isoformat(),
                "steps": int(times.nunique()),
            }
    if {"lat", "lon"} <= set(table.columns):
        lat, lon = (pd.to_numeric(table[column], errors="coerce") for column in ("lat", "lon"))
        if lat.notna().any() and lon.notna().any():
            metadata["bounding_box"] = {
                "lat_min": float(lat.min()),
                "lat_max": float(lat.max()),
                "lon_min": float(lon.min()),
                "lon_max": float(lon.max()),
            }
    return metadata


def describe(*, space: DataSpace, path: str) -> dict[str, Any]:
    """What the file, folder or STAC item at ``path`` holds: its entry, size, the block and ``source``
    value that open it, and for data files the variables (units, standard names, dimensions), the time
    range and bounding box. Raises ConnectorError or DescribeError."""
    from contextlib import ExitStack

    connector = connector_for(space)
    entry = connector.stat(path)
    kind = _kind_of(space, entry)
    warning_bytes = int(settings.ILIAD_SIZE_WARNING_MB) * 1_000_000
    result: dict[str, Any] = {
        "entry": entry.to_dict(),
        "kind": kind,
        "size": entry.size,
        "size_warning": (
            f"{entry.size / 1e9:,.2f} GB: a run will copy or read all of it unless you choose "
            "an area, a period or variables"
            if entry.size and entry.size > warning_bytes
            else ""
        ),
        "reference": reference_for(space, entry.path),
        "block": None,
        "variables": {},
        "dimensions": {},
        "time_range": None,
        "bounding_box": None,
    }
    if kind == "item":
        bbox = entry.extra.get("bbox")
        result["bounding_box"] = (
            {"lon_min": bbox[0], "lat_min": bbox[1], "lon_max": bbox[2], "lat_max": bbox[3]}
            if bbox and len(bbox) >= 4
            else None
        )
        start = entry.extra.get("start_datetime") or entry.extra.get("datetime")
        end = entry.extra.get("end_datetime") or entry.extra.get("datetime")
        result["time_range"] = {"start": start, "end": end} if start else None
        result["assets"] = entry.extra.get("assets", {})
        result["reference"] = None
        return result
    if kind in ("folder", "other"):
        return result
    with ExitStack() as stack:
        if kind == "gridded":
            from blocks.library.data_access import gridded_metadata

            dataset = stack.enter_context(_open_gridded(space, connector, entry, stack))
            metadata = gridded_metadata(dataset, result["reference"])
            result["block"] = GRIDDED_BLOCK
            result["estimated_bytes"] = int(sum(variable.nbytes for variable in dataset.data_vars.values()))
        else:
            metadata = _table_metadata(_read_table(space, connector, entry, stack))
            result["block"] = TABLE_BLOCK
    result.update(
        {
            key: metadata.get(key)
            for key in (
                "variables",
                "dimensions",
                "time_range",
                "bounding_box",
                "attributes",
                "columns",
                "rows",
                "stations",
            )
            if key in metadata
        }
    )
    if space.kind != "local" and result["block"]:
        result["block_version"] = "1.1.0"  # the first version that opens space: references
    return result


def preview_png(*, space: DataSpace, path: str, variable: str | None = None) -> bytes:
    """A PNG quick look: a map of a gridded variable's first time step and level, a series for a
    variable with only a time axis, or the values of a table's variable over time."""
    from contextlib import ExitStack

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    connector = connector_for(space)
    entry = connector.stat(path)
    kind = _kind_of(space, entry)
    if kind not in ("gridded", "table"):
        raise DescribeError(f"{entry.path!r} is not a data file that can be previewed")
    figure, axes = plt.subplots(figsize=(6, 4), dpi=90)
    try:
        with ExitStack() as stack:
            if kind == "gridded":
                _plot_gridded(axes, _open_gridded(space, connector, entry, stack), variable, entry.name)
            else:
                _plot_table(axes, _read_table(space, connector, entry, stack), variable, entry.name)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        return buffer.getvalue()
    finally:
        plt.close(figure)


def _plot_gridded(axes, dataset, variable: str | None, title: str) -> None:
    from blocks.library.geo import find_coord

    names = [str(name) for name in dataset.data_vars]
    if not names:
        raise DescribeError(f"{title!r} has no data variables")
    if variable and variable not in names:
        raise DescribeError(f"variable: {variable!r} is not in the file; it has {', '.join(names)}")
    data = dataset[variable or names[0]]
    lat, lon = find_coord(dataset, "lat"), find_coord(dataset, "lon")
    if lat in data.dims and lon in data.dims:
        data = data.isel({dim: 0 for dim in data.dims if dim not in (lat, lon)})
        step = max(1, int((data.size / MAX_PREVIEW_CELLS) ** 0.5) + (data.size > MAX_PREVIEW_CELLS))
        data = data.isel({lat: slice(None, None, step), lon: slice(None, None, step)}).load()
        mesh = axes.pcolormesh(
            data[lon].values,
            data[lat].values,
            data.transpose(lat, lon).values,
            shading="auto",
            cmap="viridis",
        )
        axes.figure.colorbar(mesh, ax=axes, label=str(data.attrs.get("units", "")))
        axes.set_xlabel("longitude")
        axes.set_ylabel("latitude")
    else:
        first = data.dims[0] if data.dims else None
        if first is None:
            raise DescribeError(f"{data.name!r} is a single value")
        data = data.isel({dim: 0 for dim in data.dims[1:]}).isel({first: slice(0, 10_000)}).load()
        axes.plot(data[first].values, data.values)
        axes.set_xlabel(str(first))
        axes.set_ylabel(f"{data.name} ({data.attrs.get('units', '')})")
    axes.set_title(f"{data.name} — {title}", fontsize=9)


def _plot_table(axes, table, variable: str | None, title: str) -> None:
    import pandas as pd

    if not {"time", "value"} <= set(table.columns):
        raise DescribeError(f"{title!r} has no time and value columns to plot")
    if "variable" in table.columns:
        names = sorted(map(str, table["variable"].dropna().unique()))
        if variable and variable not in names:
            raise DescribeError(f"variable: {variable!r} is not in the table; it has {', '.join(names)}")
        chosen = variable or (names[0] if names else None)
        table = table[table["variable"].astype(str) == chosen] if chosen else table
    else:
        chosen = "value"
    times = pd.to_datetime(table["time"].astype("string"), utc=True, errors="coerce", format="ISO8601")
    groups = table.assign(_time=times).groupby("station") if "station" in table.columns else [("", table)]
    for station, rows in list(groups)[:12]:
        rows = rows.sort_values("_time") if "_time" in rows else rows
        axes.plot(
            rows.get("_time", rows["time"]), pd.to_numeric(rows["value"], errors="coerce"), label=station
        )
    if "station" in table.columns:
        axes.legend(fontsize=7)
    axes.set_title(f"{chosen} — {title}", fontsize=9)
    axes.figure.autofmt_xdate()


@transaction.atomic
def space_create(
    *,
    user,
    name: str,
    title: str,
    kind: str,
    config: dict,
    credentials: dict | None = None,
    description: str = "",
    access: str = DataSpace.Access.PRIVATE,
    project=None,
) -> DataSpace:
    """Register a data space owned by ``user``. Raises PermissionError for a kind or access level only
    administrators may choose."""
    if not user.is_staff and kind not in USER_KINDS:
        raise PermissionError(f"kind: only administrators may register {kind!r} spaces")
    if not user.is_staff and access == DataSpace.Access.PUBLIC:
        raise PermissionError("access: only administrators may make a space public")
    space = DataSpace(
        name=name,
        title=title,
        kind=kind,
        config=config,
        description=description,
        access=access,
        project=project,
        owner=user,
    )
    space.set_credentials(credentials)
    space.full_clean()
    space.save()
    return space


@transaction.atomic
def space_update(*, space: DataSpace, user, credentials: dict | None = None, **fields: Any) -> DataSpace:
    """Change a space's fields; ``credentials`` replace the stored ones when given (None keeps them)."""
    if not user.is_staff and "kind" in fields and fields["kind"] not in USER_KINDS:
        raise PermissionError(f"kind: only administrators may register {fields['kind']!r} spaces")
    if not user.is_staff and fields.get("access") == DataSpace.Access.PUBLIC:
        raise PermissionError("access: only administrators may make a space public")
    for key, value in fields.items():
        setattr(space, key, value)
    if credentials is not None:
        space.set_credentials(credentials)
    space.full_clean()
    space.save()
    return space
