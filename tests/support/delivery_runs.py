"""A finished run made directly in the database, with real files in the artifact store: a NetCDF
subset, a CSV table and a PNG picture (the last two from deliver.* steps), for report, provenance,
STAC and delivery tests that need no worker."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from blocks.library.demo_data import make_demo_dataset

DOCUMENT = {
    "format": "iliad.pipeline",
    "version": 1,
    "nodes": [
        {
            "id": "demo",
            "block": "ocean.demo_dataset",
            "version": "1.0.0",
            "params": {"days": 3},
            "position": {"x": 0, "y": 0},
        },
        {
            "id": "subset",
            "block": "data.open_gridded",
            "version": "1.0.0",
            "params": {"source": "demo/biscay.nc"},
            "position": {"x": 260, "y": 0},
        },
        {
            "id": "table",
            "block": "deliver.csv",
            "version": "1.1.0",
            "params": {"decimals": 2},
            "position": {"x": 520, "y": -80},
        },
        {
            "id": "picture",
            "block": "deliver.png",
            "version": "1.0.0",
            "params": {"title": "SST"},
            "position": {"x": 520, "y": 80},
        },
    ],
    "edges": [
        {"source": "demo", "source_port": "dataset", "target": "subset", "target_port": "dataset"},
        {"source": "subset", "source_port": "dataset", "target": "table", "target_port": "table"},
        {"source": "subset", "source_port": "dataset", "target": "picture", "target_port": "data"},
    ],
}
BLOCKS = {
    "ocean.demo_dataset@1.0.0": {"title": "Demo ocean dataset", "category": "data"},
    "data.open_gridded@1.0.0": {"title": "Open gridded data", "category": "data"},
    "deliver.csv@1.1.0": {"title": "Deliver as CSV", "category": "deliver"},
    "deliver.png@1.0.0": {"title": "Deliver as PNG image", "category": "deliver"},
}
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63f8cfc0f01f0005000201a5b2e8e50000000049454e44ae426082"
)


def _artifact(run, step, port: str, name: str, data: bytes, kind: str, media_type: str):
    from apps.runs.models import Artifact

    folder = Path(settings.ILIAD_ARTIFACT_ROOT) / f"run-{run.pk}" / step.node_id
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    return Artifact.objects.create(
        run=run,
        step=step,
        port=port,
        uri=path.resolve().as_uri(),
        type=kind,
        media_type=media_type,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
    )


def make_finished_run(owner, *, pipeline=None, state: str = "succeeded", tmp_path: Path):
    """A run of ``pipeline`` (or none) by ``owner`` that ended in ``state``, with its artifacts."""
    from apps.runs.models import Run, RunEvent, StepRun

    now = timezone.now()
    run = Run.objects.create(
        owner=owner,
        pipeline=pipeline,
        pipeline_version=1,
        pipeline_name=pipeline.name if pipeline else "SST at the site",
        snapshot={"document": DOCUMENT, "blocks": BLOCKS},
        state=state,
        started_at=now - timedelta(seconds=30),
        finished_at=now,
    )
    steps = {}
    for offset, node in enumerate(DOCUMENT["nodes"]):
        steps[node["id"]] = StepRun.objects.create(
            run=run,
            node_id=node["id"],
            block_id=node["block"],
            block_version=node["version"],
            params=node["params"],
            state="succeeded",
            attempts=1,
            walltime_s=600,
            worker="celery@test",
            started_at=now - timedelta(seconds=30 - 5 * offset),
            finished_at=now - timedelta(seconds=26 - 5 * offset),
        )
    dataset = make_demo_dataset(
        start="2022-06-01", days=3, lat_min=43.5, lat_max=46.0, lon_min=-6.0, lon_max=0.0, resolution=0.5
    )
    netcdf = tmp_path / "subset.nc"
    dataset.to_netcdf(netcdf)
    _artifact(
        run, steps["demo"], "dataset", "dataset.nc", netcdf.read_bytes(), "dataset", "application/x-netcdf"
    )
    _artifact(
        run, steps["subset"], "dataset", "dataset.nc", netcdf.read_bytes(), "dataset", "application/x-netcdf"
    )
    table = b"time,lat,lon,sst\n2022-06-01,44.0,-5.0,17.5\n2022-06-03,45.5,-2.0,18.25\n"
    _artifact(run, steps["table"], "table", "table.csv", table, "table", "text/csv")
    _artifact(run, steps["picture"], "image", "image.png", PNG, "image", "image/png")
    RunEvent.objects.bulk_create(
        [
            RunEvent(
                run=run, seq=1, kind="log", node_id="subset", payload={"level": "info", "message": "opened"}
            ),
            RunEvent(
                run=run,
                seq=2,
                kind="log",
                node_id="table",
                payload={"level": "warning", "message": "rounded"},
            ),
        ]
    )
    Run.objects.filter(pk=run.pk).update(last_event_seq=2)
    run.refresh_from_db()
    return run
