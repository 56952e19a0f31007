"""File-format escapes: data files that make a reader fetch bytes from elsewhere are refused.

A canary file lies outside the data space. Each crafted file (made here with h5py, or a Zarr store
with symbolic links) tries to make data.open_gridded deliver the canary's bytes; the block must
refuse it with a message naming the source and the reason, and the canary must appear nowhere: not
in the message, the events, nor any file the step leaves. Honest files keep opening.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from zarr.storage import LocalStore

from blocks import formatguard, netguard
from blocks.context import StepContext
from blocks.library import data_access
from blocks.library.data_access import open_gridded, open_observations
from blocks.library.demo_data import make_demo_dataset
from blocks.manifest import StepManifest, uri_from_path
from blocks.registry import Registry, discover
from blocks.runner import run_step, validated_params
from blocks.spec import Block
from blocks.types import PORT_TYPES
from tests.blocks.test_netguard import LocalServer

ENGINES = ("auto", "netcdf4", "h5netcdf")
SIZE = 32


@pytest.fixture
def canary(tmp_path: Path) -> bytes:
    """SIZE secret bytes in ``outside/canary.bin`` and, as variable ``secret``, in ``outside/other.h5``."""
    token = ("CANARY" + secrets.token_hex(SIZE))[:SIZE].encode()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "canary.bin").write_bytes(token)
    with h5py.File(outside / "other.h5", "w") as other:
        other.create_dataset("secret", data=np.frombuffer(token, dtype="u1"))
    return token


@pytest.fixture
def space(tmp_path: Path) -> Path:
    root = tmp_path / "space"
    root.mkdir()
    return root


def _netcdf_like(path: Path, add_sst: Callable[[h5py.File], None]) -> None:
    """An HDF5 file with a coordinate ``x`` and a variable ``sst`` made by ``add_sst``."""
    with h5py.File(path, "w") as file:
        file.create_dataset("x", data=np.arange(SIZE, dtype="i4"))
        add_sst(file)


def external_storage(path: Path, outside: Path) -> None:
    _netcdf_like(path, lambda file: file.create_dataset(
        "sst", shape=(SIZE,), dtype="u1", external=[(str(outside / "canary.bin"), 0, SIZE)]))


def external_link(path: Path, outside: Path) -> None:
    def add(file: h5py.File) -> None:
        file.create_group("nested/deeper")["sst"] = h5py.ExternalLink(str(outside / "other.h5"), "/secret")
    _netcdf_like(path, add)


def virtual_dataset(path: Path, outside: Path) -> None:
    layout = h5py.VirtualLayout(shape=(SIZE,), dtype="u1")
    layout[:] = h5py.VirtualSource(str(outside / "other.h5"), "secret", shape=(SIZE,))
    _netcdf_like(path, lambda file: file.create_virtual_dataset("sst", layout))


CRAFTED = {
    "external_storage": (external_storage, "variable 'sst' stores its data in an external file"),
    "external_link": (external_link, "it contains an external link 'nested/deeper/sst' to another file"),
    "virtual_dataset": (virtual_dataset, "variable 'sst' is a virtual dataset"),
}


def call(target: Block, params: dict[str, Any], data_dir: Path | None, scratch: Path,
         events: list[dict]) -> dict[str, Any]:
    context = StepContext(scratch_dir=scratch, data_dir=data_dir, emit=events.append)
    return dict(target.function(context, {}, validated_params(target.spec, params)))


def files_under(folder: Path) -> Iterator[Path]:
    return (path for path in folder.rglob("*") if path.is_file())


def assert_refused(
    params: dict[str, Any], data_dir: Path | None, scratch: Path, canary: bytes, reason: str,
) -> str:
    """open_gridded refuses: the message names source and reason; the canary is nowhere."""
    events: list[dict] = []
    with pytest.raises(ValueError) as caught:
        call(open_gridded, params, data_dir, scratch, events)
    message = str(caught.value)
    assert message.startswith(f"source: {params['source']!r}")
    assert reason in message
    assert canary.decode() not in message and canary.decode() not in json.dumps(events)
    for path in files_under(scratch) if scratch.exists() else ():
        assert canary not in path.read_bytes(), path
    return message


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("kind", CRAFTED)
def test_crafted_files_in_the_data_space_are_refused(
    kind: str, engine: str, space: Path, canary: bytes, tmp_path: Path,
) -> None:
    make, reason = CRAFTED[kind]
    make(space / "crafted.nc", tmp_path / "outside")
    message = assert_refused({"source": "crafted.nc", "engine": engine}, space, tmp_path / "scratch", canary,
                             reason)
    assert str(tmp_path) not in message


@pytest.fixture
def server() -> Iterator[LocalServer]:
    local = LocalServer()
    yield local
    local.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_crafted_file_delivered_by_url_is_refused(
    engine: str, server: LocalServer, canary: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(netguard.ALLOWED_HOSTS_ENV, "127.0.0.1")
    monkeypatch.delenv(data_access.MAX_DOWNLOAD_ENV, raising=False)
    crafted = tmp_path / "crafted.nc"
    external_storage(crafted, tmp_path / "outside")  # names the canary by its absolute path on the server
    server.files["/data/crafted.nc"] = crafted.read_bytes()
    source = f"{server.url}/data/crafted.nc"
    message = assert_refused({"source": source, "engine": engine}, None, tmp_path / "scratch", canary,
                             "variable 'sst' stores its data in an external file")
    assert str(tmp_path / "scratch") not in message


@pytest.fixture(scope="module")
def registry() -> Registry:
    return discover(extra_modules=["blocks.library.data_access"])


@pytest.mark.parametrize("kind", CRAFTED)
def test_a_step_leaves_no_trace_of_the_canary(
    kind: str, registry: Registry, space: Path, canary: bytes, tmp_path: Path,
) -> None:
    make, reason = CRAFTED[kind]
    make(space / "crafted.nc", tmp_path / "outside")
    output = tmp_path / "run" / "step"
    manifest = StepManifest.from_dict({
        "manifest_version": 1, "run_id": "run-1", "step_id": "step",
        "block": {"id": "data.open_gridded", "version": "1.0.0"}, "params": {"source": "crafted.nc"},
        "inputs": {}, "output_dir": uri_from_path(output),
    })
    events: list[dict] = []
    result = run_step(manifest, registry=registry, emit=events.append, data_dir=space)
    assert not result.ok and result.artifacts == []
    assert reason in result.error["message"]
    assert canary.decode() not in json.dumps(events)
    written = list(files_under(output))
    assert written  # the result manifest at least
    for path in written:
        assert canary not in path.read_bytes(), path


# ---- what still opens ------------------------------------------------------------------------------

def test_honest_netcdf_files_still_open_and_their_artifacts_are_self_contained(
    space: Path, tmp_path: Path,
) -> None:
    expected = make_demo_dataset(days=3)
    expected.to_netcdf(space / "ocean.nc", engine="netcdf4")
    expected.to_netcdf(space / "classic.nc", format="NETCDF3_64BIT")
    with h5py.File(space / "soft.nc", "w") as file:  # a soft link stays inside the file
        file.create_dataset("sst", data=np.arange(SIZE, dtype="f4"))
        file["alias"] = h5py.SoftLink("/sst")
    for source, engine in (("ocean.nc", "auto"), ("ocean.nc", "h5netcdf"), ("classic.nc", "netcdf4")):
        params = {"source": source, "engine": engine}
        dataset = call(open_gridded, params, space, tmp_path / "s", [])["dataset"]
        np.testing.assert_array_equal(dataset.sst.values, expected.sst.values)
        saved = tmp_path / "artifact.nc"
        PORT_TYPES["dataset"].save(dataset, saved)  # what the runner writes for the next step
        formatguard.ensure_self_contained(saved, source="artifact")
    params = {"source": "soft.nc", "engine": "h5netcdf"}
    dataset = call(open_gridded, params, space, tmp_path / "s", [])["dataset"]
    np.testing.assert_array_equal(dataset.alias.values, np.arange(SIZE))


def test_the_demo_file_passes_the_check(tmp_path: Path) -> None:
    path = tmp_path / "biscay_ocean.nc"
    make_demo_dataset().to_netcdf(path, engine="netcdf4")
    formatguard.ensure_self_contained(path, source="demo/biscay_ocean.nc")
    assert formatguard.netcdf_format(path) == "hdf5"


def test_hdf5_after_a_user_block_is_recognised(tmp_path: Path) -> None:
    path = tmp_path / "userblock.nc"
    with h5py.File(path, "w", userblock_size=1024) as file:
        file.create_dataset("sst", data=np.arange(SIZE))
    with path.open("r+b") as stream:
        stream.write(b"free text in the user block")
    assert formatguard.netcdf_format(path) == "hdf5"
    formatguard.ensure_self_contained(path, source="userblock.nc")


@pytest.mark.parametrize(("content", "reason"), [
    (b"GRIB\x00\x00\x00\x02" + bytes(600), "it is neither NetCDF-4/HDF5 nor classic NetCDF"),
    (b'<?xml version="1.0"?><netcdf xmlns="http://www.unidata.ucar.edu/namespaces/netcdf/ncml-2.2"/>',
     "neither NetCDF-4/HDF5 nor classic NetCDF"),
    (json.dumps({"version": 1, "refs": {"sst/0": ["file:///etc/passwd", 0, 32]}}).encode(),
     "neither NetCDF-4/HDF5 nor classic NetCDF"),
    (formatguard.HDF5_SIGNATURE + bytes(100), "it is not a readable NetCDF-4/HDF5 file"),
], ids=["grib", "ncml", "kerchunk-references", "damaged-hdf5"])
def test_other_formats_are_refused_without_server_paths(
    content: bytes, reason: str, space: Path, tmp_path: Path,
) -> None:
    (space / "data.nc").write_bytes(content)
    with pytest.raises(ValueError) as caught:
        call(open_gridded, {"source": "data.nc"}, space, tmp_path / "s", [])
    assert str(caught.value).startswith("source: 'data.nc'")
    assert reason in str(caught.value) and str(tmp_path) not in str(caught.value)


def test_reader_errors_do_not_show_server_paths(space: Path, tmp_path: Path) -> None:
    (space / "ocean").mkdir()
    (space / "ocean" / "broken.nc").write_bytes(b"CDF\x01" + b"\xff" * 40)  # passes the guard, not netCDF
    with pytest.raises(ValueError, match=r"^source: 'ocean/broken.nc' could not be opened") as caught:
        call(open_gridded, {"source": "ocean/broken.nc"}, space, tmp_path / "s", [])
    assert str(space) not in str(caught.value)
    os.symlink(space / "loop", space / "loop")
    with pytest.raises(ValueError, match=r"^source: 'loop/x.nc' is not a usable path") as caught:
        call(open_gridded, {"source": "loop/x.nc"}, space, tmp_path / "s", [])
    assert str(space) not in str(caught.value)


def test_a_folder_needs_the_zarr_engine_and_a_file_a_netcdf_one(space: Path, tmp_path: Path) -> None:
    make_demo_dataset(days=2).to_netcdf(space / "ocean.nc")
    make_demo_dataset(days=2).to_zarr(space / "ocean.zarr")
    with pytest.raises(ValueError, match=r"^source: 'ocean.zarr' is a folder \(a Zarr store\?\); choose the "
                                         r"engine 'auto' or 'zarr'$"):
        call(open_gridded, {"source": "ocean.zarr", "engine": "h5netcdf"}, space, tmp_path / "s", [])
    with pytest.raises(ValueError, match=r"^source: 'ocean.nc' is a file, not a Zarr store"):
        call(open_gridded, {"source": "ocean.nc", "engine": "zarr"}, space, tmp_path / "s", [])


# ---- Zarr ------------------------------------------------------------------------------------------

def zarr_store(path: Path, values: np.ndarray, zarr_format: int, **attrs: Any) -> None:
    dataset = xr.Dataset({"sst": ("x", values, attrs)}, coords={"x": np.arange(SIZE)})
    # A store object: given a path containing '::', zarr would write through fsspec somewhere else.
    dataset.chunk({"x": SIZE // 2}).to_zarr(LocalStore(path), zarr_format=zarr_format, consolidated=False)


def chunk_key(zarr_format: int) -> str:
    return "sst/1" if zarr_format == 2 else "sst/c/1"


def link(entry: Path, target: Path) -> None:
    entry.unlink()
    os.symlink(target, entry)


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_zarr_chunk_linked_out_of_the_data_space_is_refused(
    zarr_format: int, space: Path, canary: bytes, tmp_path: Path,
) -> None:
    zarr_store(tmp_path / "outside" / "other.zarr", np.frombuffer(canary, dtype="u1"), zarr_format)
    zarr_store(space / "ocean.zarr", np.full(SIZE, 7, dtype="u1"), zarr_format)
    key = chunk_key(zarr_format)
    link(space / "ocean.zarr" / key, tmp_path / "outside" / "other.zarr" / key)
    message = assert_refused({"source": "ocean.zarr"}, space, tmp_path / "scratch", canary,
                             f"contains a symbolic link {key!r} that points outside the data space")
    assert str(tmp_path) not in message


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_zarr_metadata_linked_out_of_the_data_space_is_refused(
    zarr_format: int, space: Path, canary: bytes, tmp_path: Path,
) -> None:
    zarr_store(tmp_path / "outside" / "other.zarr", np.full(SIZE, 7, dtype="u1"), zarr_format,
               secret=canary.decode())
    zarr_store(space / "ocean.zarr", np.full(SIZE, 7, dtype="u1"), zarr_format)
    key = "sst/.zattrs" if zarr_format == 2 else "sst/zarr.json"  # v2 .zarray: see the folder test below
    link(space / "ocean.zarr" / key, tmp_path / "outside" / "other.zarr" / key)
    assert_refused({"source": "ocean.zarr", "engine": "zarr"}, space, tmp_path / "scratch", canary,
                   f"contains a symbolic link {key!r} that points outside the data space")


def test_zarr_folder_linked_out_of_the_data_space_is_refused(
    space: Path, canary: bytes, tmp_path: Path,
) -> None:
    zarr_store(tmp_path / "outside" / "other.zarr", np.frombuffer(canary, dtype="u1"), 2)
    zarr_store(space / "ocean.zarr", np.full(SIZE, 7, dtype="u1"), 2)
    shutil.rmtree(space / "ocean.zarr" / "sst")
    os.symlink(tmp_path / "outside" / "other.zarr" / "sst", space / "ocean.zarr" / "sst")
    assert_refused({"source": "ocean.zarr"}, space, tmp_path / "scratch", canary,
                   "contains a symbolic link 'sst' that points outside the data space")


def test_zarr_link_inside_the_data_space_leading_out_again_is_refused(
    space: Path, canary: bytes, tmp_path: Path,
) -> None:
    zarr_store(tmp_path / "outside" / "other.zarr", np.frombuffer(canary, dtype="u1"), 2)
    zarr_store(space / "ocean.zarr", np.full(SIZE, 7, dtype="u1"), 2)
    shutil.move(space / "ocean.zarr" / "sst", space / "shared_sst")  # linked from the store, inside
    os.symlink(space / "shared_sst", space / "ocean.zarr" / "sst")
    link(space / "shared_sst" / "1", tmp_path / "outside" / "other.zarr" / "sst" / "1")
    assert_refused({"source": "ocean.zarr"}, space, tmp_path / "scratch", canary,
                   "contains a symbolic link 'sst/1' that points outside the data space")


def test_consolidated_metadata_naming_members_outside_the_store_is_refused(
    space: Path, tmp_path: Path,
) -> None:
    zarr_store(space / "ocean.zarr", np.full(SIZE, 7, dtype="u1"), 3)
    original = xr.open_zarr(space / "ocean.zarr", consolidated=False)
    original.to_zarr(space / "consolidated.zarr", zarr_format=3, consolidated=True)
    document = json.loads((space / "consolidated.zarr" / "zarr.json").read_text())
    members = document["consolidated_metadata"]["metadata"]
    members["../ocean.zarr/sst"] = members.pop("sst")
    (space / "consolidated.zarr" / "zarr.json").write_text(json.dumps(document))
    with pytest.raises(ValueError, match=r"^source: 'consolidated.zarr' has metadata 'zarr.json' naming a "
                                         r"member '../ocean.zarr/sst' outside the store"):
        call(open_gridded, {"source": "consolidated.zarr"}, space, tmp_path / "s", [])



def test_zarr_with_a_link_loop_or_a_pipe_is_refused(space: Path, tmp_path: Path) -> None:
    zarr_store(space / "ocean.zarr", np.full(SIZE, 7, dtype="u1"), 2)
    os.symlink(space / "ocean.zarr" / "sst" / "loop", space / "ocean.zarr" / "sst" / "loop")
    loop = r"^source: 'ocean.zarr' contains a symbolic link loop at 'sst/loop'$"
    with pytest.raises(ValueError, match=loop):
        call(open_gridded, {"source": "ocean.zarr"}, space, tmp_path / "s", [])
    (space / "ocean.zarr" / "sst" / "loop").unlink()
    (space / "ocean.zarr" / "sst" / "1").unlink()
    os.mkfifo(space / "ocean.zarr" / "sst" / "1")  # reading a chunk would wait forever
    with pytest.raises(ValueError, match=r"^source: 'ocean.zarr' has an entry 'sst/1' that is not a regular"):
        call(open_gridded, {"source": "ocean.zarr"}, space, tmp_path / "s", [])


def test_zarr_link_dangling_inside_the_data_space_reads_as_a_missing_chunk(
    space: Path, tmp_path: Path,
) -> None:
    zarr_store(space / "ocean.zarr", np.full(SIZE, 7, dtype="u1"), 2)
    link(space / "ocean.zarr" / "sst" / "1", space / "nowhere")
    dataset = call(open_gridded, {"source": "ocean.zarr"}, space, tmp_path / "s", [])["dataset"]
    assert dataset.sst.values.tolist() == [7] * (SIZE // 2) + [0] * (SIZE // 2)  # 0: the fill value

@pytest.mark.parametrize("zarr_format", [2, 3])
def test_zarr_with_links_inside_the_data_space_still_opens(
    zarr_format: int, space: Path, tmp_path: Path,
) -> None:
    values = np.arange(SIZE, dtype="u1")
    zarr_store(space / "ocean.zarr", values, zarr_format)
    zarr_store(space / "odd::name.zarr", values, zarr_format)  # zarr would read '::' as an fsspec chain
    key = chunk_key(zarr_format)
    (space / "chunks").mkdir()
    shutil.move(space / "ocean.zarr" / key, space / "chunks" / "1")
    os.symlink(space / "chunks" / "1", space / "ocean.zarr" / key)
    os.symlink(space / "ocean.zarr", space / "alias.zarr")
    for source in ("ocean.zarr", "alias.zarr", "odd::name.zarr"):
        dataset = call(open_gridded, {"source": source}, space, tmp_path / "s", [])["dataset"]
        np.testing.assert_array_equal(dataset.sst.values, values)


def test_demo_zarr_still_opens(space: Path, tmp_path: Path) -> None:
    make_demo_dataset(days=3).chunk({"time": 1}).to_zarr(space / "demo.zarr")
    dataset = call(open_gridded, {"source": "demo.zarr"}, space, tmp_path / "s", [])["dataset"]
    np.testing.assert_array_equal(dataset.so.values, make_demo_dataset(days=3).so.values)


# ---- observations ----------------------------------------------------------------------------------

def test_a_parquet_folder_is_refused(space: Path, canary: bytes, tmp_path: Path) -> None:
    table = pd.DataFrame({"station": [canary.decode()], "time": ["2021-01-01"], "lat": [45.0], "lon": [-3.0],
                          "depth": [1.0], "variable": ["sst"], "value": [12.0], "quality_flag": [1]})
    table.to_parquet(tmp_path / "outside" / "part.parquet")
    (space / "buoys.parquet").mkdir()
    os.symlink(tmp_path / "outside" / "part.parquet", space / "buoys.parquet" / "part.parquet")
    events: list[dict] = []
    with pytest.raises(ValueError, match=r"^source: 'buoys.parquet' is not a file; give a CSV or Parquet"):
        call(open_observations, {"source": "buoys.parquet"}, space, tmp_path / "s", events)
    assert canary.decode() not in json.dumps(events)

