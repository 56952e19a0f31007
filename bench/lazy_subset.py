"""Laziness of the data blocks: a small box out of a multi-GB file reads a few MB, not the file.

    python -m bench.lazy_subset                 # 3 GB NetCDF4 + Zarr under bench/out/lazy_subset/
    python -m bench.lazy_subset --size-gb 1     # smaller; the files are regenerated when settings change
    python -m bench.lazy_subset --no-drop-caches

Generates once (kept and reused while the settings are the same) a global 0.25 degree float32
``sst(time, lat, lon)`` of ``--size-gb`` gigabytes as

* a NetCDF4 file, uncompressed, chunked ``--chunks`` (default 24 x 120 x 120, about 1.4 MB a chunk);
* a Zarr store with the same chunks (zstd compressed, the Zarr default);

writing one time slab at a time so memory stays around a few hundred MB. Then, for each store:

(a) **subset**: the real blocks, ``data.open_gridded`` then ``ocean.subset`` on a ``--box`` (default
    2 x 2 degrees) over the whole period, and the subset's values computed;
(b) **whole**: ``data.open_gridded`` then the mean of the whole variable (every value read, through
    dask, in chunks).

Before each measurement the page cache is dropped (``sync; echo 3 > /proc/sys/vm/drop_caches``,
needs root; otherwise each file of the store is evicted with ``posix_fadvise(DONTNEED)``), so
``read_bytes`` from ``/proc/self/io`` (bytes this process caused to be read from the block device)
is what was really read. ``rchar`` (bytes returned by read system calls, cached or not) is shown too.
Prints a table and the ratios whole / subset.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "bench" / "out" / "lazy_subset"
RESOLUTION = 0.25
NETCDF_NAME = "lazy_sst.nc"
ZARR_NAME = "lazy_sst.zarr"
MARKER = "settings.json"


def log(message: str) -> None:
    print(f"[bench] {message}", flush=True)


def _grid() -> tuple[Any, Any]:
    import numpy as np

    lat = np.round(-90 + RESOLUTION / 2 + RESOLUTION * np.arange(int(180 / RESOLUTION)), 4)
    lon = np.round(-180 + RESOLUTION / 2 + RESOLUTION * np.arange(int(360 / RESOLUTION)), 4)
    return lat, lon


def _slab(first: int, count: int, base: Any, noise: Any) -> Any:
    """Values for time steps first .. first + count - 1: climatology, a seasonal cycle and noise."""
    import numpy as np

    days = np.arange(first, first + count, dtype=np.float32)
    season = (3.0 * np.sin(2 * np.pi * days / 365.25)).astype(np.float32)[:, None, None]
    values = base[None, :, :] + season
    for step in range(count):  # a different, cheap noise pattern each day
        values[step] += np.roll(noise, (first + step) * 7, axis=1)
    return values.astype(np.float32)


def generate(out: Path, steps: int, chunks: tuple[int, int, int]) -> None:
    """Write the NetCDF file and the Zarr store, one slab of ``chunks[0]`` time steps at a time."""
    import dask.array
    import netCDF4
    import numpy as np
    import pandas as pd
    import xarray as xr

    lat, lon = _grid()
    rng = np.random.default_rng(0)
    base = (28.0 * np.cos(np.deg2rad(lat))[:, None] - 2.0 + 0 * lon[None, :]).astype(np.float32)
    noise = (0.3 * rng.standard_normal((lat.size, lon.size))).astype(np.float32)
    times = pd.date_range("2000-01-01", periods=steps, freq="D")
    out.mkdir(parents=True, exist_ok=True)
    netcdf_path, zarr_path = out / NETCDF_NAME, out / ZARR_NAME
    netcdf_path.unlink(missing_ok=True)
    shutil.rmtree(zarr_path, ignore_errors=True)

    started = time.perf_counter()
    with netCDF4.Dataset(netcdf_path, "w", format="NETCDF4") as nc:
        nc.Conventions = "CF-1.8"
        nc.title = "Iliad Portal laziness benchmark (synthetic)"
        nc.createDimension("time", steps)
        nc.createDimension("lat", lat.size)
        nc.createDimension("lon", lon.size)
        time_var = nc.createVariable("time", "i4", ("time",))
        time_var.units, time_var.calendar = "days since 2000-01-01", "standard"
        time_var.standard_name, time_var.axis = "time", "T"
        time_var[:] = np.arange(steps)
        for name, values, units, axis, standard in (("lat", lat, "degrees_north", "Y", "latitude"),
                                                    ("lon", lon, "degrees_east", "X", "longitude")):
            variable = nc.createVariable(name, "f8", (name,))
            variable.units, variable.axis, variable.standard_name = units, axis, standard
            variable[:] = values
        sst = nc.createVariable("sst", "f4", ("time", "lat", "lon"), chunksizes=chunks, fill_value=np.nan)
        sst.units, sst.standard_name = "degree_Celsius", "sea_surface_temperature"
        sst.long_name = "Sea surface temperature"
        for first in range(0, steps, chunks[0]):
            count = min(chunks[0], steps - first)
            sst[first:first + count] = _slab(first, count, base, noise)
    log(f"wrote {netcdf_path.name}: {netcdf_path.stat().st_size / 1e9:.2f} GB in "
        f"{time.perf_counter() - started:.1f} s")

    started = time.perf_counter()
    template = xr.Dataset(
        {"sst": (("time", "lat", "lon"),
                 dask.array.zeros((steps, lat.size, lon.size), chunks=chunks, dtype=np.float32),
                 {"units": "degree_Celsius", "standard_name": "sea_surface_temperature"})},
        coords={"time": times, "lat": ("lat", lat, {"standard_name": "latitude", "units": "degrees_north"}),
                "lon": ("lon", lon, {"standard_name": "longitude", "units": "degrees_east"})},
        attrs={"Conventions": "CF-1.8", "title": "Iliad Portal laziness benchmark (synthetic)"},
    )
    template.to_zarr(zarr_path, compute=False, encoding={"sst": {"chunks": chunks}})
    for first in range(0, steps, chunks[0]):
        count = min(chunks[0], steps - first)
        slab = xr.Dataset({"sst": (("time", "lat", "lon"), _slab(first, count, base, noise))})
        slab.to_zarr(zarr_path, region={"time": slice(first, first + count)}, mode="r+")
    zarr_size = sum(path.stat().st_size for path in zarr_path.rglob("*") if path.is_file())
    log(f"wrote {zarr_path.name}: {zarr_size / 1e9:.2f} GB in {time.perf_counter() - started:.1f} s")


def _store_files(path: Path) -> list[Path]:
    return [path] if path.is_file() else [item for item in path.rglob("*") if item.is_file()]


def drop_caches(path: Path, use_drop_caches: bool) -> str:
    """Empty the page cache (all of it, or the store's files); return how."""
    os.sync()
    if use_drop_caches:
        try:
            Path("/proc/sys/vm/drop_caches").write_text("3\n")
            return "drop_caches"
        except OSError:
            pass
    for item in _store_files(path):
        descriptor = os.open(item, os.O_RDONLY)
        try:
            os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(descriptor)
    return "fadvise"


def io_counters() -> dict[str, int]:
    counters = {}
    for line in Path("/proc/self/io").read_text().splitlines():
        key, value = line.split(":")
        counters[key] = int(value)
    return counters


def measure(label: str, store: Path, work: Callable[[], Any], use_drop_caches: bool) -> dict[str, Any]:
    how = drop_caches(store, use_drop_caches)
    before, started = io_counters(), time.perf_counter()
    detail = work()
    elapsed = time.perf_counter() - started
    after = io_counters()
    row = {"label": label, "wall_s": elapsed, "read_bytes": after["read_bytes"] - before["read_bytes"],
           "rchar": after["rchar"] - before["rchar"], "cache": how, "detail": detail}
    log(f"{label}: {row['read_bytes'] / 1e6:,.1f} MB read, {elapsed:.2f} s ({detail})")
    return row


def _context(out: Path) -> Any:
    from blocks.context import StepContext

    return StepContext(scratch_dir=out / "scratch", data_dir=out)


def subset_through_blocks(out: Path, source: str, box: tuple[float, float, float, float]) -> str:
    import numpy as np

    from blocks.library.data_access import open_gridded
    from blocks.library.ocean import subset
    from blocks.runner import validated_params

    ctx = _context(out)
    opened = open_gridded.function(ctx, {}, validated_params(open_gridded.spec, {"source": source}))
    params = dict(zip(("lat_min", "lat_max", "lon_min", "lon_max"), box, strict=True))
    cut = subset.function(ctx, {"dataset": opened["dataset"]}, validated_params(subset.spec, params))
    values = cut["dataset"].sst.values  # computes: reads only the chunks the box touches
    opened["dataset"].close()
    return f"{values.shape} values, {values.nbytes / 1e6:.2f} MB, mean {float(np.nanmean(values)):.3f}"


def open_only(out: Path, source: str) -> str:
    """Open and describe, read no values: the fixed cost (metadata, coordinates, page faults of
    shared libraries evicted with the page cache) included in every other row."""
    from blocks.library.data_access import open_gridded
    from blocks.runner import validated_params

    opened = open_gridded.function(_context(out), {}, validated_params(open_gridded.spec, {"source": source}))
    opened["dataset"].close()
    return f"{len(opened['metadata']['variables'])} variable(s) described"


def whole_through_blocks(out: Path, source: str) -> str:
    from blocks.library.data_access import open_gridded
    from blocks.runner import validated_params

    ctx = _context(out)
    opened = open_gridded.function(ctx, {}, validated_params(open_gridded.spec, {"source": source}))
    dataset = opened["dataset"]
    mean = float(dataset.sst.mean().compute())
    shape, nbytes = dataset.sst.shape, dataset.sst.nbytes
    dataset.close()
    return f"{shape} values, {nbytes / 1e9:.2f} GB, mean {mean:.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.lazy_subset", description=__doc__.split("\n")[0])
    parser.add_argument("--size-gb", type=float, default=3.0, help="size of the variable (default 3)")
    parser.add_argument("--chunks", default="24,120,120",
                        help="time,lat,lon chunk sizes (default 24,120,120)")
    parser.add_argument("--box", default="44,46,-6,-4",
                        help="lat_min,lat_max,lon_min,lon_max of the subset (default 44,46,-6,-4)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"cache directory (default {DEFAULT_OUT})")
    parser.add_argument("--regenerate", action="store_true", help="write the files even if they exist")
    parser.add_argument("--no-drop-caches", action="store_true",
                        help="evict only the store's files (posix_fadvise) instead of the whole page cache")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO_ROOT))

    chunks = tuple(int(part) for part in args.chunks.split(","))
    box = tuple(float(part) for part in args.box.split(","))
    if len(chunks) != 3 or len(box) != 4:
        parser.error("--chunks needs 3 numbers and --box 4")
    lat, lon = _grid()
    steps = max(chunks[0], int(args.size_gb * 1e9 / (lat.size * lon.size * 4)))
    settings = {"steps": steps, "chunks": list(chunks), "resolution": RESOLUTION, "version": 1}
    marker = args.out / MARKER
    fresh = (marker.exists() and json.loads(marker.read_text()) == settings
             and (args.out / NETCDF_NAME).exists() and (args.out / ZARR_NAME).exists())
    if args.regenerate or not fresh:
        log(f"generating {steps} daily global {RESOLUTION} degree grids ({lat.size} x {lon.size}), "
            f"chunks {chunks}, into {args.out}")
        marker.unlink(missing_ok=True)
        generate(args.out, steps, chunks)
        marker.write_text(json.dumps(settings))
    else:
        log(f"reusing {args.out} ({steps} time steps)")

    # Import everything before measuring, so module loading is not counted as data read.
    import dask.array  # noqa: F401
    import netCDF4  # noqa: F401
    import xarray  # noqa: F401
    import zarr  # noqa: F401

    import blocks.library.data_access  # noqa: F401
    import blocks.library.ocean  # noqa: F401

    rows, baselines = [], []
    for name in (NETCDF_NAME, ZARR_NAME):
        store = args.out / name
        baselines.append(measure(f"{name} open", store, lambda n=name: open_only(args.out, n),
                                 not args.no_drop_caches))
        rows.append(measure(f"{name} subset", store, lambda n=name: subset_through_blocks(args.out, n, box),
                            not args.no_drop_caches))
        rows.append(measure(f"{name} whole", store, lambda n=name: whole_through_blocks(args.out, n),
                            not args.no_drop_caches))
    sizes = {name: sum(item.stat().st_size for item in _store_files(args.out / name))
             for name in (NETCDF_NAME, ZARR_NAME)}

    print()
    print(f"Box {box} (lat_min, lat_max, lon_min, lon_max) over {steps} days; chunks {chunks}; "
          f"page cache emptied with {rows[0]['cache']} before each row.")
    header = f"{'store / operation':<26} {'on disk':>10} {'read_bytes':>12} {'rchar':>12} {'wall':>9}"
    print(header)
    print("-" * len(header))
    for row in [*baselines, *rows]:
        size = sizes[row["label"].split()[0]]
        print(f"{row['label']:<26} {size / 1e9:>8.2f} GB {row['read_bytes'] / 1e6:>9.1f} MB "
              f"{row['rchar'] / 1e6:>9.1f} MB {row['wall_s']:>7.2f} s")
    print()
    for first in range(0, len(rows), 2):
        sub, whole = rows[first], rows[first + 1]
        store = sub["label"].split()[0]
        ratio = whole["read_bytes"] / max(sub["read_bytes"], 1)
        print(f"{store}: whole / subset = {ratio:,.0f} x bytes read, "
              f"{whole['wall_s'] / max(sub['wall_s'], 1e-9):,.1f} x wall time; subset read "
              f"{100 * sub['read_bytes'] / sizes[store]:.2f} % of the store")
    if args.json:
        args.json.write_text(json.dumps({"settings": settings, "box": box, "sizes": sizes, "rows": rows},
                                        indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
