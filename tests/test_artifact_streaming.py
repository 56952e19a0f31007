"""A large artifact downloaded through the ASGI server (what `make run` and the compose file serve) is
streamed: the web process never holds the file in memory. Django's FileResponse under ASGI reads the
whole file into a list before sending its first byte."""

from __future__ import annotations

import hashlib
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from apps.runs.models import Artifact, Run, StepRun
from blocks.manifest import uri_from_path
from tests.conftest import _database_url_for_worker
from tests.support.asgi_server import AsgiServer

pytestmark = pytest.mark.django_db(transaction=True)

SIZE = 400 * 1024 * 1024
MIB = 1024 * 1024


def resident_mib(pid: int) -> float:
    """The process's resident memory now, MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for process {pid}")


def test_a_large_artifact_streams_through_the_asgi_server_without_being_held_in_memory(user):
    run = Run.objects.create(
        owner=user, pipeline_version=1, pipeline_name="p", snapshot={"document": {}, "blocks": {}}
    )
    step = StepRun.objects.create(
        run=run, node_id="model", block_id="ocean.model", block_version="1.0.0", walltime_s=60
    )
    settings.ILIAD_ARTIFACT_ROOT.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="streaming-test-", dir=settings.ILIAD_ARTIFACT_ROOT))
    path = directory / "big.nc"
    with path.open("wb") as file:  # sparse: costs no disk, reads as zeros
        file.truncate(SIZE)
        file.seek(SIZE - 5)
        file.write(b"tail!")
    artifact = Artifact.objects.create(
        run=run, step=step, port="dataset", uri=uri_from_path(path), type="dataset",
        media_type="application/x-netcdf", sha256="0" * 64, size=SIZE,
    )  # fmt: skip
    client = Client()
    client.force_login(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}"

    server = AsgiServer(_database_url_for_worker()).start()
    try:
        url = f"{server.url}/api/runs/{run.pk}/artifacts/{artifact.pk}/download/"
        # Warm the server (imports, first database connection) before its baseline is read.
        warm = urllib.request.Request(f"{server.url}/api/runs/{run.pk}/", headers={"Cookie": cookie})
        urllib.request.urlopen(warm, timeout=30).read()
        baseline = resident_mib(server.process.pid)
        request = urllib.request.Request(url, headers={"Cookie": cookie})
        with urllib.request.urlopen(request, timeout=60) as response:
            assert response.status == 200
            assert int(response.headers["Content-Length"]) == SIZE
            digest = hashlib.sha256()
            first = response.read(MIB)
            digest.update(first)
            time.sleep(1.0)  # the server is now blocked on a full socket, or has buffered everything
            during = resident_mib(server.process.pid)
            received = len(first)
            while chunk := response.read(4 * MIB):
                digest.update(chunk)
                received += len(chunk)
    except urllib.error.HTTPError as error:
        pytest.fail(f"{error}\n--- server log ---\n{server.log()}")
    finally:
        server.stop()

    assert received == SIZE
    assert digest.hexdigest() == hashlib.sha256(path.read_bytes()).hexdigest()
    grown = during - baseline
    assert grown < 64, (
        f"the ASGI server's memory grew by {grown:.0f} MiB while sending a {SIZE // MIB} MiB file "
        f"({baseline:.0f} → {during:.0f} MiB): it read the file into memory\n{server.log()}"
    )
