"""Blocks that open data: gridded datasets (NetCDF, Zarr, OPeNDAP) and in-situ observation tables.

A ``source`` is either a path relative to the local data space (``ctx.data_dir``), an http(s)
URL, or (from version 1.1.0) a file in one of the portal's data spaces, ``space:<name>/<path>``
(:mod:`blocks.spaces`). Paths may not leave the data space (no absolute paths, no ``..``, no
symbolic links pointing out); URLs are fetched through :mod:`blocks.netguard`, which refuses
internal addresses.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import xarray as xr

from blocks import formatguard, netguard, spaces
from blocks.context import StepContext
from blocks.library.geo import OBSERVATION_COLUMNS, find_coord, iso_column, iso_times, parse_day
from blocks.library.ocean import DEPTH_PARAMETERS, SUBSET_PARAMETERS, subset_dataset
from blocks.spec import Derived, Port, Resources, block

MAX_DOWNLOAD_ENV = "ILIAD_MAX_DOWNLOAD_MB"
DEFAULT_MAX_DOWNLOAD_MB = 2048
NETCDF_SUFFIXES = (".nc", ".nc4", ".netcdf", ".cdf", ".h5", ".hdf5", ".he5")
ZARR_SUFFIXES = (".zarr",)
CSV_SUFFIXES = (".csv", ".csv.gz", ".tsv")
PARQUET_SUFFIXES = (".parquet", ".pq")
QUALITY_FLAG_MEANINGS = {
    0: "no quality control", 1: "good", 2: "probably good", 3: "probably bad", 4: "bad", 5: "value changed",
    6: "below detection limit", 7: "nominal value", 8: "interpolated", 9: "missing",
}
GLOBAL_ATTRIBUTES = (
    "title", "summary", "institution", "source", "references", "comment", "Conventions", "license",
    "product_id", "id", "naming_authority", "history", "time_coverage_start", "time_coverage_end",
)
"""Global attributes copied into the metadata output (long ones are shortened)."""
MAX_ATTRIBUTE_CHARS = 2000
MAX_LISTED_FILES = 30


# ---- where the data comes from -------------------------------------------------------------------

def _is_url(source: str) -> bool:
    return "://" in source


def _data_space_listing(root: Path) -> str:
    """Up to MAX_LISTED_FILES names in the data space (a Zarr store counts as one), to help a user."""
    found: list[str] = []
    for folder, directories, files in os.walk(root):
        directories[:] = sorted(name for name in directories if not name.startswith("."))
        here = Path(folder)
        stores = [name for name in directories if name.lower().endswith(ZARR_SUFFIXES)
                  or any((here / name / marker).exists() for marker in ("zarr.json", ".zgroup", ".zarray"))]
        directories[:] = [name for name in directories if name not in stores]
        for name in sorted([*stores, *(name for name in files if not name.startswith("."))]):
            found.append((here / name).relative_to(root).as_posix())
            if len(found) >= MAX_LISTED_FILES:
                return ", ".join([*found, "..."])
    return ", ".join(found) or "nothing"


def _local_path(ctx: StepContext, source: str) -> Path:
    """The file or directory ``source`` names inside the data space, or ValueError saying why not."""
    if ctx.data_dir is None:
        raise ValueError(f"source: {source!r} is a path, but this deployment has no local data space; "
                         "give an http(s) URL instead")
    relative = PurePosixPath(source.replace("\\", "/"))
    if relative.is_absolute() or source.startswith("~") or (len(source) > 1 and source[1] == ":"):
        raise ValueError(f"source: {source!r} is an absolute path; give a path relative to the data space, "
                         "e.g. demo/biscay_ocean.nc")
    if ".." in relative.parts:
        raise ValueError(f"source: {source!r} contains '..'; paths may not leave the data space")
    root = ctx.data_dir.resolve()
    try:
        path = (root / relative).resolve()
        exists = path.is_relative_to(root) and path.exists()
    except ValueError as error:  # an embedded NUL byte
        raise ValueError(f"source: {source!r} is not a usable path: {error}") from None
    except (OSError, RuntimeError) as error:  # their text holds the absolute path: keep it to ourselves
        reason = error.strerror if isinstance(error, OSError) and error.strerror else "a symbolic link loop"
        raise ValueError(f"source: {source!r} is not a usable path: {reason}") from None
    if not path.is_relative_to(root):
        raise ValueError(f"source: {source!r} points outside the data space (through a symbolic link)")
    if not exists:
        raise ValueError(f"source: {source!r} does not exist in the data space; it has: "
                         f"{_data_space_listing(root)}")
    return path


def _max_download_bytes(params: dict[str, Any]) -> int:
    """The download limit: the parameter, capped by ``ILIAD_MAX_DOWNLOAD_MB`` when that is set."""
    cap_text = os.environ.get(MAX_DOWNLOAD_ENV, "").strip()
    try:
        cap = float(cap_text) if cap_text else float(DEFAULT_MAX_DOWNLOAD_MB)
    except ValueError:
        cap = float(DEFAULT_MAX_DOWNLOAD_MB)
    wanted = params.get("max_download_mb")
    megabytes = min(wanted, cap) if wanted else cap
    return int(megabytes * 1_000_000)


def _url_suffix(url: str) -> str:
    name = PurePosixPath(urlsplit(url).path).name.lower()
    for suffix in (*CSV_SUFFIXES, *PARQUET_SUFFIXES, *NETCDF_SUFFIXES, *ZARR_SUFFIXES):
        if name.endswith(suffix):
            return suffix
    return ""


def _checked_url(url: str) -> str:
    try:
        netguard.check_url(url)
    except netguard.UnsafeURL as error:
        raise ValueError(f"source: {error}") from None
    return url


def _download(ctx: StepContext, url: str, params: dict[str, Any], suffix: str) -> Path:
    """Fetch ``url`` into the scratch directory through the SSRF guard, within the size limit and the
    download deadline (``ILIAD_DOWNLOAD_DEADLINE_S``); a cancelled run or a step out of walltime stops
    it within about a second, however slowly the server sends."""
    _checked_url(url)
    ctx.scratch_dir.mkdir(parents=True, exist_ok=True)
    destination = ctx.scratch_dir / f"download{suffix}"
    limit = _max_download_bytes(params)
    deadline_s = netguard.download_deadline_s()

    def progress(done: int, total: int | None) -> None:
        if total:
            ctx.progress(0.8 * done / total, f"downloaded {done / 1e6:,.1f} of {total / 1e6:,.1f} MB")
        else:
            ctx.progress(0.0, f"downloaded {done / 1e6:,.1f} MB")

    ctx.log(f"downloading {url} (limit {limit / 1e6:,.0f} MB, {deadline_s:g} s)")
    try:
        size = netguard.download(url, destination, max_bytes=limit, on_progress=progress,
                                 deadline_s=deadline_s, check_interrupt=ctx.raise_if_cancelled)
    except netguard.UnsafeURL as error:
        raise ValueError(f"source: {error}") from None
    except ValueError as error:
        raise ValueError(f"source: {error}") from None
    except OSError as error:  # requests' exceptions derive from OSError
        raise ValueError(f"source: could not download {url!r}: {error}") from None
    ctx.log(f"downloaded {size / 1e6:,.2f} MB")
    return destination



def _space_source(ctx: StepContext, source: str, params: dict[str, Any]) -> spaces.Resolved:
    """Where a ``space:<name>/<path>`` source can be read (a local file or a URL), or ValueError."""
    ctx.log(f"resolving {source}")
    return spaces.resolve(source, scratch_dir=ctx.scratch_dir, max_bytes=_max_download_bytes(params),
                          run_id=getattr(ctx, "run_id", None))


# ---- data.open_gridded ---------------------------------------------------------------------------

def _json_value(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, np.ndarray):
        return [_json_value(item) for item in value.tolist()]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str) and len(value) > MAX_ATTRIBUTE_CHARS:
        return value[:MAX_ATTRIBUTE_CHARS] + " [...]"
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if isinstance(value, list | tuple):
        return [_json_value(item) for item in value]
    return str(value)


def gridded_metadata(dataset: xr.Dataset, source: str) -> dict[str, Any]:
    """A JSON description of a dataset: variables, dimensions, time range, bounding box, attributes."""
    variables = {}
    for name, variable in dataset.data_vars.items():
        variables[str(name)] = {
            "units": _json_value(variable.attrs.get("units")),
            "standard_name": _json_value(variable.attrs.get("standard_name")),
            "long_name": _json_value(variable.attrs.get("long_name")),
            "dims": [str(dim) for dim in variable.dims],
            "shape": [int(size) for size in variable.shape],
            "dtype": str(variable.dtype),
        }
    metadata: dict[str, Any] = {
        "source": source,
        "variables": variables,
        "dimensions": {str(dim): int(size) for dim, size in dataset.sizes.items()},
        "time_range": None,
        "bounding_box": None,
        "attributes": {key: _json_value(dataset.attrs[key]) for key in GLOBAL_ATTRIBUTES
                       if key in dataset.attrs},
    }
    time = find_coord(dataset, "time", dimension=False)
    if time is not None and dataset[time].size and np.issubdtype(dataset[time].dtype, np.datetime64):
        values = dataset[time].values
        start, end = (iso_times([moment])[0] for moment in (values.min(), values.max()))
        metadata["time_range"] = {"start": start, "end": end, "steps": int(values.size)}
    elif time is not None and dataset[time].size:  # cftime calendars
        values = dataset[time].values
        metadata["time_range"] = {"start": str(values.min()), "end": str(values.max()),
                                  "steps": int(values.size)}
    lat, lon = (find_coord(dataset, kind, dimension=False) for kind in ("lat", "lon"))
    if lat is not None and lon is not None and dataset[lat].size and dataset[lon].size:
        metadata["bounding_box"] = {
            f"{axis}_{end}": _json_value(float(getattr(dataset[name], end)()))
            for axis, name in (("lat", lat), ("lon", lon)) for end in ("min", "max")
        }
    return metadata


def _is_opendap(url: str) -> bool:
    path = urlsplit(url).path
    return "dodsC" in path or "/opendap/" in path.lower() or _url_suffix(url) == ""


def _open_opendap(ctx: StepContext, url: str, params: dict[str, Any]) -> xr.Dataset:
    """Open an OPeNDAP URL lazily; every HTTP request pydap makes goes through the SSRF guard.

    pydap is given a :class:`~blocks.netguard.GuardedWSGIProxy` as its WSGI ``application``, so it
    makes no HTTP requests itself: each one (description, attributes, every data slice read later)
    is fetched by the proxy with the guard's checks, pinned connections and redirect checks, and each
    response is limited to the download limit and the download deadline, while cancel and walltime
    are checked. (A guarded requests *session* would not do: pydap 3.5 builds its own session from it.)
    """
    _checked_url(url)
    try:
        import pydap.client  # noqa: F401
    except ImportError:
        raise ValueError("source: OPeNDAP URLs need the pydap package, which is not installed") from None
    ctx.log(f"opening OPeNDAP {url}")
    deadline_s = netguard.download_deadline_s()
    try:
        proxy = netguard.GuardedWSGIProxy(url, max_bytes=_max_download_bytes(params), deadline_s=deadline_s,
                                          check_interrupt=ctx.raise_if_cancelled)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*unable to determine the DAP protocol.*")
            return xr.open_dataset(url, engine="pydap", application=proxy, chunks={})
    except netguard.UnsafeURL as error:
        raise ValueError(f"source: {error}") from None
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(f"source: could not open OPeNDAP {url!r}: {error}") from None


def _without_server_paths(error: BaseException, path: Path, source: str, root: Path | None) -> str:
    """The error's text with the file's server path shown as ``source`` and the data space as '.'."""
    text = str(error).replace(str(path), source)
    for folder in (root, path.parent):
        if folder is not None:
            text = text.replace(f"{folder}{os.sep}", "").replace(str(folder), ".")
    return text


def _open_file(path: Path, engine: str, source: str, *, root: Path | None = None) -> xr.Dataset:
    """Open a NetCDF file or Zarr store lazily, once :mod:`blocks.formatguard` found it self-contained.

    ``root`` is the data space the store lies in (a Zarr store's symbolic links must stay in it);
    None for a downloaded file. Raises ValueError naming ``source``, never a server path.
    """
    if engine == "auto":
        zarr = path.is_dir() or path.name.lower().endswith(ZARR_SUFFIXES)
        engine = "zarr" if zarr else "netcdf4"
    if path.is_dir() != (engine == "zarr"):
        kind = "a folder (a Zarr store?)" if path.is_dir() else "a file, not a Zarr store (a folder)"
        raise ValueError(f"source: {source!r} is {kind}; choose the engine 'auto' or "
                         f"{'zarr' if path.is_dir() else 'netcdf4'!r}")
    formatguard.ensure_self_contained(path, source=source, root=root)
    try:
        if engine == "zarr":
            from zarr.storage import LocalStore

            # A store object, not a path: zarr hands a path containing '::' to fsspec as a URL chain.
            return xr.open_zarr(LocalStore(path, read_only=True), chunks={})
        return xr.open_dataset(path, engine=engine, chunks={})
    except (OSError, ValueError, TypeError, KeyError) as error:
        kind = "a Zarr store" if engine == "zarr" else f"a NetCDF file (engine {engine})"
        raise ValueError(f"source: {source!r} could not be opened as {kind}: "
                         f"{_without_server_paths(error, path, source, root)}") from None


SELECTION_PARAMETERS: dict[str, Any] = {
    **{name: prop for name, prop in SUBSET_PARAMETERS["properties"].items() if name != "variables"},
    **DEPTH_PARAMETERS,
}
"""Area, period and depth, as ocean.subset 1.1.0 takes them, applied while opening."""


GRIDDED_OUTPUTS = (
    Port("dataset", "dataset", "Dataset", "The gridded dataset, opened without reading its values.",
         quantity=Derived(source="source", keep="variables")),
    Port("metadata", "json", "Description",
         "Variables (units, names, dimensions), time range, area and the file's global attributes."),
)

GRIDDED_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["source"],
    "properties": {
        "source": {"type": "string", "minLength": 1, "maxLength": 2048, "title": "Source",
                   "description": "A file or Zarr store in the data space, e.g. demo/biscay_ocean.nc, "
                                  "or an http(s) URL of a NetCDF file or an OPeNDAP dataset."},
        "variables": {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1,
                      "uniqueItems": True, "title": "Variables",
                      "description": "Names of the variables to keep, e.g. sst. Empty: keep all."},
        "engine": {"type": "string", "enum": ["auto", "netcdf4", "h5netcdf", "zarr", "opendap"],
                   "default": "auto", "title": "File format",
                   "description": "How to read the source. 'auto' decides from the name: a folder or "
                                  "'.zarr' is Zarr, a URL without a file name (or with 'dodsC') is "
                                  "OPeNDAP, anything else is NetCDF."},
        "max_download_mb": {"type": "number", "exclusiveMinimum": 0, "maximum": 1_000_000,
                            "title": "Download limit (MB)",
                            "description": "Refuse to download a file larger than this. Empty: "
                                           f"{DEFAULT_MAX_DOWNLOAD_MB} MB or the administrator's "
                                           "limit, which also caps this value."},
        **SELECTION_PARAMETERS,
    },
}

GRIDDED_SPACE_PARAMETERS: dict[str, Any] = {
    **GRIDDED_PARAMETERS,
    "properties": {
        **GRIDDED_PARAMETERS["properties"],
        "source": {**GRIDDED_PARAMETERS["properties"]["source"],
                   "description": "A file or Zarr store in the data space, e.g. demo/biscay_ocean.nc, a file "
                                  "in another data space, space:<name>/<path> (pick it in the data browser), "
                                  "or an http(s) URL of a NetCDF file or an OPeNDAP dataset."},
    },
}
"""1.1.0 also takes ``space:<name>/<path>`` sources."""


@block(
    id="data.open_gridded",
    version="1.0.0",
    title="Open gridded dataset",
    category="data",
    outputs=GRIDDED_OUTPUTS,
    parameters=GRIDDED_PARAMETERS,
    resources=Resources(cpus=1, memory_mb=2048, walltime_s=3600),
    cacheable=False,  # a URL's content (or a data-space file) can change under the same source
)
def open_gridded(ctx: StepContext, inputs: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """Open a gridded dataset (NetCDF, Zarr or OPeNDAP) from the data space or the web.

    **What goes in:** the *source*: either the path of a file in the portal's data space (for
    example `demo/biscay_ocean.nc`, see `demo/README.md`) or a web address: an http(s) link to a
    NetCDF file, which is downloaded, or an OPeNDAP address (THREDDS `dodsC`, ERDDAP `griddap`),
    which is read remotely. Optionally the names of the variables to keep.

    **What comes out:** the dataset, and a description of it: each variable's units, standard name,
    long name, dimensions and size, the time range, the area covered and the file's main attributes
    (title, institution, licence...). Copernicus Marine, ERDDAP and other CF files go through unchanged.

    **Area, period and depth (optional):** for a large source, set them here. Only that part is
    read and handed to the next step; without them the next step receives the whole dataset.

    **Good to know:** nothing is read beyond the description and the selection: values are read in
    pieces (chunks), and only those that are kept. Paths cannot reach outside the data space. Web addresses
    pointing into the portal's own network (private, loopback, link-local addresses such as the
    cloud metadata service) are refused, including through redirects. Downloads are limited in size
    (2 GB unless set lower). For OPeNDAP every request the OPeNDAP client makes while it reads goes
    through the same checks, and each answer is limited to the same size.
    """
    return _open_gridded(ctx, params, allow_spaces=False)


@block(
    id="data.open_gridded",
    version="1.1.0",
    title="Open gridded dataset",
    category="data",
    outputs=GRIDDED_OUTPUTS,
    parameters=GRIDDED_SPACE_PARAMETERS,
    resources=Resources(cpus=1, memory_mb=2048, walltime_s=3600),
    cacheable=False,  # a URL's content (or a data-space file) can change under the same source
)
def open_gridded_from_spaces(
    ctx: StepContext, inputs: dict[str, Any], params: dict[str, Any]
) -> dict[str, Any]:
    """Open a gridded dataset (NetCDF, Zarr or OPeNDAP) from the data space or the web.

    **What goes in:** the *source*: either the path of a file in the portal's data space (for
    example `demo/biscay_ocean.nc`, see `demo/README.md`), a file in another data space picked in
    the editor's data browser (`space:<name>/<path>`: an S3 bucket, a WebDAV drive, an OPeNDAP server,
    a STAC catalogue's asset...) or a web address: an http(s) link to a
    NetCDF file, which is downloaded, or an OPeNDAP address (THREDDS `dodsC`, ERDDAP `griddap`),
    which is read remotely. Optionally the names of the variables to keep.

    **What comes out:** the dataset, and a description of it: each variable's units, standard name,
    long name, dimensions and size, the time range, the area covered and the file's main attributes
    (title, institution, licence...). Copernicus Marine, ERDDAP and other CF files go through unchanged.

    **Area, period and depth (optional):** for a large source, set them here. Only that part is
    read and handed to the next step; without them the next step receives the whole dataset.

    **Good to know:** nothing is read beyond the description and the selection: values are read in
    pieces (chunks), and only those that are kept. Paths cannot reach outside the data space. Web addresses
    pointing into the portal's own network (private, loopback, link-local addresses such as the
    cloud metadata service) are refused, including through redirects. Downloads are limited in size
    (2 GB unless set lower). For OPeNDAP every request the OPeNDAP client makes while it reads goes
    through the same checks, and each answer is limited to the same size.
    """
    return _open_gridded(ctx, params, allow_spaces=True)


def _open_gridded(ctx: StepContext, params: dict[str, Any], *, allow_spaces: bool) -> dict[str, Any]:
    source, engine = params["source"].strip(), params.get("engine", "auto")
    ctx.progress(0.0, f"opening {source}")
    resolved = _space_source(ctx, source, params) if allow_spaces and spaces.is_reference(source) else None
    if resolved is not None and resolved.url:
        dataset = (_open_opendap(ctx, resolved.url, params)
                   if engine == "opendap" or (engine == "auto" and _is_opendap(resolved.url))
                   else _open_file(_download(ctx, resolved.url, params, _url_suffix(resolved.url) or ".nc"),
                                   "netcdf4" if engine == "auto" else engine, source))
    elif resolved is not None:
        if engine == "opendap":
            raise ValueError(f"engine: 'opendap' needs an OPeNDAP space or URL, but {source!r} is a file")
        dataset = _open_file(resolved.path, engine, source, root=resolved.root)
    elif _is_url(source):
        scheme = urlsplit(source).scheme.lower()
        if scheme not in netguard.ALLOWED_SCHEMES:
            raise ValueError(f"source: {source!r}: only http and https URLs (or paths in the data space) "
                             "are accepted")
        suffix = _url_suffix(source)
        if engine == "zarr" or suffix in ZARR_SUFFIXES:
            raise ValueError(f"source: {source!r}: remote Zarr stores are not supported; "
                             "copy the store into the data space or use its NetCDF or OPeNDAP address")
        if engine == "opendap" or (engine == "auto" and _is_opendap(source)):
            dataset = _open_opendap(ctx, source, params)
        else:
            path = _download(ctx, source, params, suffix or ".nc")
            dataset = _open_file(path, "netcdf4" if engine == "auto" else engine, source)
    else:
        if engine == "opendap":
            raise ValueError(f"engine: 'opendap' needs a URL, but source {source!r} is a path")
        if spaces.is_reference(source):
            raise ValueError(f"source: {source!r} names a data space; data.open_gridded 1.1.0 or later "
                             "opens those")
        dataset = _open_file(_local_path(ctx, source), engine, source, root=ctx.data_dir.resolve())
    variables = params.get("variables")
    if variables:
        known = [str(name) for name in dataset.data_vars]
        unknown = [name for name in variables if name not in known]
        if unknown:
            raise ValueError(f"variables: unknown variable {unknown[0]!r}; the dataset has: "
                             f"{', '.join(known) or 'no variables'}")
        dataset = dataset[variables]
    if not dataset.data_vars:
        raise ValueError(f"source: {source!r} contains no data variables")
    selection = {name: params[name] for name in SELECTION_PARAMETERS if params.get(name) is not None}
    if selection:
        dataset = subset_dataset(ctx, dataset, selection)
    metadata = gridded_metadata(dataset, source)
    sizes = " x ".join(f"{size} {dim}" for dim, size in dataset.sizes.items())
    ctx.log(f"opened {source}: {', '.join(metadata['variables'])} on {sizes}")
    ctx.progress(1.0, "opened")
    return {"dataset": dataset, "metadata": metadata}


# ---- data.open_observations ----------------------------------------------------------------------

def _read_table(path: Path, source: str) -> pd.DataFrame:
    name = path.name.lower()
    if not path.is_file():  # pyarrow would read a folder as a partitioned dataset, symbolic links and all
        raise ValueError(f"source: {source!r} is not a file; give a CSV or Parquet file")
    try:
        # Neither CSV nor Parquet can refer to other files: pyarrow ignores a column chunk's file_path.
        if name.endswith(PARQUET_SUFFIXES):
            return pd.read_parquet(path)
        if name.endswith(CSV_SUFFIXES):
            return pd.read_csv(path, sep="\t" if name.endswith(".tsv") else ",")
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"source: {source!r} could not be read as a table: "
                         f"{_without_server_paths(error, path, source, None)}") from None
    raise ValueError(f"source: {source!r} is neither CSV ({', '.join(CSV_SUFFIXES)}) nor Parquet "
                     f"({', '.join(PARQUET_SUFFIXES)})")


def _numeric(table: pd.DataFrame, column: str, *, allow_missing: bool) -> pd.Series:
    values = pd.to_numeric(table[column], errors="coerce")
    bad = values.isna() & table[column].notna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(f"source: column {column!r} must hold numbers; row {row + 2} has "
                         f"{_json_value(table[column].iloc[row])!r}")
    if not allow_missing and values.isna().any():
        row = int(np.flatnonzero(values.isna().to_numpy())[0])
        raise ValueError(f"source: column {column!r} has missing values (first at row {row + 2})")
    return values.astype(np.float64)


def _times(table: pd.DataFrame) -> pd.Series:
    column = table["time"]
    if pd.api.types.is_datetime64_any_dtype(column):
        times = pd.to_datetime(column, utc=True)
        bad = times.isna()
    else:
        times = pd.to_datetime(column.astype("string"), utc=True, errors="coerce", format="ISO8601")
        bad = times.isna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(f"source: column 'time' must hold ISO 8601 dates or times; row {row + 2} has "
                         f"{column.iloc[row]!r}")
    return times.dt.tz_convert(None)


def _flag_report(flags: pd.Series, keep: list[int]) -> str:
    dropped = flags[~flags.isin(keep)].value_counts().sort_index()
    if dropped.empty:
        return "quality flags: no rows dropped"
    parts = [f"{count} with flag {flag} ({QUALITY_FLAG_MEANINGS.get(int(flag), 'unknown')})"
             for flag, count in dropped.items()]
    return f"quality flags: dropped {int(dropped.sum())} rows: " + ", ".join(parts)


def _checked_names(table: pd.DataFrame, column: str, wanted: list[str] | None) -> pd.Series | None:
    if not wanted:
        return None
    known = sorted({str(value) for value in table[column].dropna().unique()})
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise ValueError(f"{column}s: unknown {column} {unknown[0]!r}; the data has: {', '.join(known)}")
    return table[column].astype(str).isin(wanted)


OBSERVATION_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["source"],
    "properties": {
        "source": {"type": "string", "minLength": 1, "maxLength": 2048, "title": "Source",
                   "description": "A CSV or Parquet file in the data space, e.g. demo/biscay_buoys.csv, "
                                  "or an http(s) URL of one."},
        "variables": {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1,
                      "uniqueItems": True, "title": "Variables",
                      "description": "Keep only these variables, e.g. sst. Empty: keep all."},
        "stations": {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1,
                     "uniqueItems": True, "title": "Stations",
                     "description": "Keep only these stations (their ids). Empty: keep all."},
        "quality_flags": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 9},
                          "minItems": 1, "uniqueItems": True, "default": [1, 2],
                          "title": "Accepted quality flags",
                          "description": "Keep measurements with these quality flags (1 good, 2 probably "
                                         "good, 3 probably bad, 4 bad, 9 missing)."},
        "lat_min": {"type": "number", "minimum": -90, "maximum": 90, "title": "Southern edge",
                    "description": "Keep stations from this latitude, degrees north. Empty: no limit."},
        "lat_max": {"type": "number", "minimum": -90, "maximum": 90, "title": "Northern edge",
                    "description": "Keep stations up to this latitude, degrees north. Empty: no limit."},
        "lon_min": {"type": "number", "minimum": -180, "maximum": 360, "title": "Western edge",
                    "description": "Keep stations from this longitude, degrees east. Empty: no limit."},
        "lon_max": {"type": "number", "minimum": -180, "maximum": 360, "title": "Eastern edge",
                    "description": "Keep stations up to this longitude, degrees east. Empty: no limit."},
        "start": {"type": "string", "format": "date", "title": "First day",
                  "description": "Keep measurements from this day (YYYY-MM-DD). Empty: from the beginning."},
        "end": {"type": "string", "format": "date", "title": "Last day",
                "description": "Keep measurements up to and including this day. Empty: to the end."},
        "max_download_mb": {"type": "number", "exclusiveMinimum": 0, "maximum": 1_000_000,
                            "title": "Download limit (MB)",
                            "description": "Refuse to download a larger file. Empty: "
                                           f"{DEFAULT_MAX_DOWNLOAD_MB} MB or the administrator's limit, "
                                           "which also caps this value."},
    },
}


OBSERVATION_SPACE_PARAMETERS: dict[str, Any] = {
    **OBSERVATION_PARAMETERS,
    "properties": {
        **OBSERVATION_PARAMETERS["properties"],
        "source": {**OBSERVATION_PARAMETERS["properties"]["source"],
                   "description": "A CSV or Parquet file in the data space, e.g. demo/biscay_buoys.csv, in "
                                  "another data space, space:<name>/<path> (pick it in the data browser), "
                                  "or an http(s) URL of one."},
    },
}
"""1.1.0 also takes ``space:<name>/<path>`` sources."""


@block(
    id="data.open_observations",
    version="1.0.0",
    title="Open observations",
    category="data",
    outputs=(Port("observations", "table", "Observations",
                  "One row per measurement: station, time, lat, lon, depth, variable, value, "
                  "quality_flag."),),
    parameters=OBSERVATION_PARAMETERS,
    cacheable=False,  # a URL's content (or a data-space file) can change under the same source
)
def open_observations(ctx: StepContext, inputs: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """Open in-situ measurements (buoys, moorings, floats) and keep the trustworthy ones.

    **What goes in:** the *source*: a CSV or Parquet file in the portal's data space (for example
    `demo/biscay_buoys.csv`) or an http(s) link to one. The table has one row per measurement with
    the columns `station, time, lat, lon, depth, variable, value, quality_flag` (the Copernicus
    Marine in-situ convention in long format); other columns are kept.

    **What comes out:** the same table, keeping only measurements whose quality flag is accepted
    (by default 1 "good" and 2 "probably good"; 3 is "probably bad", 4 "bad", 9 "missing"), and
    optionally only some variables, stations, an area (a box in degrees) and a period (days, both
    included). Times are written as dates (YYYY-MM-DD) when every measurement is at midnight, as
    date and time otherwise, in UTC.

    **Good to know:** the step log says how many measurements each quality flag removed. The step
    fails with an explanation when columns are missing (it names them), a column has the wrong kind
    of values, a station or variable does not exist (it lists those that do) or nothing is left.
    """
    return _open_observations(ctx, params, allow_spaces=False)


@block(
    id="data.open_observations",
    version="1.1.0",
    title="Open observations",
    category="data",
    outputs=(Port("observations", "table", "Observations",
                  "One row per measurement: station, time, lat, lon, depth, variable, value, "
                  "quality_flag."),),
    parameters=OBSERVATION_SPACE_PARAMETERS,
    cacheable=False,  # a URL's content (or a data-space file) can change under the same source
)
def open_observations_from_spaces(
    ctx: StepContext, inputs: dict[str, Any], params: dict[str, Any]
) -> dict[str, Any]:
    """Open in-situ measurements (buoys, moorings, floats) and keep the trustworthy ones.

    **What goes in:** the *source*: a CSV or Parquet file in the portal's data space (for example
    `demo/biscay_buoys.csv`), in another data space picked in the editor's data browser
    (`space:<name>/<path>`) or an http(s) link to one. The table has one row per measurement with
    the columns `station, time, lat, lon, depth, variable, value, quality_flag` (the Copernicus
    Marine in-situ convention in long format); other columns are kept.

    **What comes out:** the same table, keeping only measurements whose quality flag is accepted
    (by default 1 "good" and 2 "probably good"; 3 is "probably bad", 4 "bad", 9 "missing"), and
    optionally only some variables, stations, an area (a box in degrees) and a period (days, both
    included). Times are written as dates (YYYY-MM-DD) when every measurement is at midnight, as
    date and time otherwise, in UTC.

    **Good to know:** the step log says how many measurements each quality flag removed. The step
    fails with an explanation when columns are missing (it names them), a column has the wrong kind
    of values, a station or variable does not exist (it lists those that do) or nothing is left.
    """
    return _open_observations(ctx, params, allow_spaces=True)


def _open_observations(ctx: StepContext, params: dict[str, Any], *, allow_spaces: bool) -> dict[str, Any]:
    source = params["source"].strip()
    ctx.progress(0.0, f"reading {source}")
    resolved = _space_source(ctx, source, params) if allow_spaces and spaces.is_reference(source) else None
    if resolved is not None and resolved.url:
        suffix = _url_suffix(resolved.url)
        if suffix not in (*CSV_SUFFIXES, *PARQUET_SUFFIXES):
            raise ValueError(f"source: {source!r} is not a CSV or Parquet file")
        path = _download(ctx, resolved.url, params, suffix)
    elif resolved is not None:
        path = resolved.path
    elif _is_url(source):
        scheme = urlsplit(source).scheme.lower()
        if scheme not in netguard.ALLOWED_SCHEMES:
            raise ValueError(f"source: {source!r}: only http and https URLs (or paths in the data space) "
                             "are accepted")
        suffix = _url_suffix(source)
        if suffix not in (*CSV_SUFFIXES, *PARQUET_SUFFIXES):
            raise ValueError(f"source: {source!r} does not end in a CSV ({', '.join(CSV_SUFFIXES)}) or "
                             f"Parquet ({', '.join(PARQUET_SUFFIXES)}) file name")
        path = _download(ctx, source, params, suffix)
    else:
        if spaces.is_reference(source):
            raise ValueError(f"source: {source!r} names a data space; data.open_observations 1.1.0 or later "
                             "opens those")
        path = _local_path(ctx, source)
    table = _read_table(path, source)
    missing = [column for column in OBSERVATION_COLUMNS if column not in table.columns]
    if missing:
        raise ValueError(f"source: the table lacks the required columns {', '.join(missing)}; it has: "
                         f"{', '.join(map(str, table.columns))}")
    total = len(table)
    table = table.copy()
    for column in ("lat", "lon"):
        table[column] = _numeric(table, column, allow_missing=False)
    table["depth"] = _numeric(table, "depth", allow_missing=True)
    table["value"] = _numeric(table, "value", allow_missing=True)
    flags = _numeric(table, "quality_flag", allow_missing=True)
    if flags.isna().any():
        ctx.log(f"{int(flags.isna().sum())} rows have no quality flag; they count as flag 0 (no quality "
                "control)", level="warning")
    flags = flags.fillna(0)
    if (flags != np.round(flags)).any():
        row = int(np.flatnonzero((flags != np.round(flags)).to_numpy())[0])
        raise ValueError(f"source: column 'quality_flag' must hold whole numbers; row {row + 2} has "
                         f"{_json_value(table['quality_flag'].iloc[row])!r}")
    table["quality_flag"] = flags.astype(np.int64)
    bad_lat = ~table["lat"].between(-90, 90)
    if bad_lat.any():
        raise ValueError(f"source: latitude {table['lat'][bad_lat].iloc[0]} is outside -90 to 90")
    bad_lon = ~table["lon"].between(-180, 360)
    if bad_lon.any():
        raise ValueError(f"source: longitude {table['lon'][bad_lon].iloc[0]} is outside -180 to 360")
    times = _times(table)
    table["station"] = table["station"].astype(str)
    table["variable"] = table["variable"].astype(str)
    ctx.progress(0.5, f"read {total} rows")

    keep = pd.Series(True, index=table.index)
    for column, wanted in (("variable", params.get("variables")), ("station", params.get("stations"))):
        chosen = _checked_names(table, column, wanted)
        if chosen is not None:
            keep &= chosen
            if not keep.any():
                raise ValueError(f"{column}s: no measurements left after choosing {', '.join(wanted)}")
    accepted = [int(flag) for flag in params.get("quality_flags") or [1, 2]]
    ctx.log(_flag_report(table["quality_flag"][keep], accepted))
    keep &= table["quality_flag"].isin(accepted)
    if not keep.any():
        present = sorted(int(flag) for flag in table["quality_flag"].unique())
        raise ValueError(f"quality_flags: no measurements have flags {accepted}; "
                         f"the data has flags {present}")
    for axis in ("lat", "lon"):
        lower, upper = params.get(f"{axis}_min"), params.get(f"{axis}_max")
        if lower is not None and upper is not None and lower > upper:
            raise ValueError(f"{axis}_min ({lower}) must not be greater than {axis}_max ({upper})")
        if lower is not None:
            keep &= table[axis] >= lower
        if upper is not None:
            keep &= table[axis] <= upper
        if (lower is not None or upper is not None) and not keep.any():
            given = ", ".join(f"{axis}_{end}={value}" for end, value in (("min", lower), ("max", upper))
                              if value is not None)
            raise ValueError(f"{given}: no stations left; the stations span "
                             f"{table[axis].min():g} to {table[axis].max():g}")
    start = parse_day("start", params["start"]) if params.get("start") else None
    end = parse_day("end", params["end"]) if params.get("end") else None
    if start is not None and end is not None and start > end:
        raise ValueError(f"start ({params['start']}) must not be after end ({params['end']})")
    if start is not None:
        keep &= times >= start
    if end is not None:
        keep &= times < end + pd.Timedelta(days=1)
    if (start is not None or end is not None) and not keep.any():
        raise ValueError(f"start/end: no measurements from {params.get('start') or 'the beginning'} to "
                         f"{params.get('end') or 'the end'}; the data covers "
                         f"{times.min():%Y-%m-%d} to {times.max():%Y-%m-%d}")
    result = table[keep].copy()
    result["time"] = iso_column(times[keep])
    extra = [column for column in result.columns if column not in OBSERVATION_COLUMNS]
    result = result[[*OBSERVATION_COLUMNS, *extra]].reset_index(drop=True)
    ctx.log(f"kept {len(result)} of {total} measurements from {result['station'].nunique()} stations")
    ctx.progress(1.0, f"{len(result)} measurements")
    return {"observations": result}
