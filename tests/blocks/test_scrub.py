"""blocks.scrub: server paths leave messages, everything else in them stays as it was."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from blocks.scrub import scrub_paths

DATA = Path("/srv/iliad/data")
ARTIFACTS = Path("/srv/iliad/artifacts")
OUTPUT = ARTIFACTS / "runs" / "7" / "subset"
SITE_PACKAGES = f"{sys.prefix}/lib/python3.11/site-packages"


def scrub(text: str) -> str:
    return scrub_paths(text, data_dir=DATA, output_dir=OUTPUT, artifact_root=ARTIFACTS)


@pytest.mark.parametrize(("text", "expected"), [
    ("[Errno -51] NetCDF: Unknown file format: '/srv/iliad/data/demo/sst.nc'",
     "[Errno -51] NetCDF: Unknown file format: 'demo/sst.nc'"),
    ("no file /srv/iliad/data/demo/missing.nc.", "no file demo/missing.nc."),
    ("nothing in /srv/iliad/data", "nothing in <data space>"),
    ("read file:///srv/iliad/data/my%20folder/a.nc", "read my folder/a.nc"),
    ("/srv/iliad/data/../secrets/key", "<server path>"),
    ("/srv/iliad/database/dump.sql", "<server path>"),
], ids=["quoted", "end-of-sentence", "the-data-space-itself", "file-uri", "dot-dot-out", "sibling-prefix"])
def test_paths_in_the_data_space_become_relative_to_it(text: str, expected: str) -> None:
    assert scrub(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("cannot write /srv/iliad/artifacts/runs/7/subset/dataset.nc", "cannot write <step output>/dataset.nc"),
    ("disk full in /srv/iliad/artifacts/runs/7/subset/.scratch/download.nc",
     "disk full in <step output>/.scratch/download.nc"),
    ("input file:///srv/iliad/artifacts/runs/7/demo/dataset.nc is truncated",
     "input <artifacts>/runs/7/demo/dataset.nc is truncated"),
])
def test_artifact_paths_name_the_step_output_or_the_artifacts(text: str, expected: str) -> None:
    assert scrub(text) == expected


@pytest.mark.parametrize("path", [
    f"{SITE_PACKAGES}/xarray/backends/netCDF4_.py",
    "/proc/self/status",
    "/tmp/tmpk2l3x9/download.nc",
    str(Path(__file__).resolve()),
    "/home/operator/.iliad/db.sqlite3",
])
def test_every_other_absolute_path_is_hidden(path: str) -> None:
    scrubbed = scrub(f'File "{path}", line 12, in open: [Errno 2] No such file: {path}')
    assert scrubbed == 'File "<server path>", line 12, in open: [Errno 2] No such file: <server path>'


@pytest.mark.parametrize("text", [
    "downloading https://data.example.org/thredds/fileServer/a/b.nc (limit 2,048 MB)",
    "http://127.0.0.1:8080/dodsC/x.nc?sst[0:1] s3://bucket/key/x.zarr",
    "period 2024-01-31T00:00:00Z to 2024-02-29T23:59:59+01:00, or 2024/01/31 to 31/12/2024",
    "speed in m/s, 1 / 2 of the area, ratio 3/4",
    "demo/biscay_ocean.nc, ./local/x.nc and ../up/y.nc",
    "opening <artifacts>/runs/7/demo/dataset.nc and <step output>/a.nc",
    "",
])
def test_urls_dates_units_relative_paths_and_labels_are_left_alone(text: str) -> None:
    assert scrub(text) == text


def test_a_data_space_with_spaces_and_symbolic_links(tmp_path: Path) -> None:
    real = tmp_path / "real data"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    text = f"opened {real}/a.nc and {link}/b.nc, not {tmp_path}/c.nc"
    assert scrub_paths(text, data_dir=link) == "opened a.nc and b.nc, not <server path>"


def test_without_known_directories_every_absolute_path_is_hidden() -> None:
    hidden = "home <server path>, PATH=<server path>:<server path>"
    assert scrub_paths("home ~/.cache/pip, PATH=/usr/bin:/bin") == hidden
    assert scrub_paths("root / stays") == "root / stays"
