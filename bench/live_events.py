"""Latency of live run events, worker commit → browser, against a raw channels_redis group_send.

    python -m bench.live_events [--clients 100] [--events 200] [--gap-ms 30]

Sets up the embedded default (temporary SQLite + the embedded Redis-protocol server from
``iliad_portal.embedded.start_redis``), serves the portal's ASGI app with uvicorn in a subprocess,
and opens ``--clients`` real WebSocket clients on one run. Then, in the same run of the command:

* **portal:** ``--events`` events are appended one per transaction (``events_append``, as a worker
  does), ``--gap-ms`` apart; latency = receipt at each client − the moment the transaction committed;
* **raw:** as many ``group_send`` calls of channels_redis to a group of ``--clients`` channels on the
  same server; latency = receipt by each member (``layer.receive``) − the call.

On both sides the sending runs in a process of its own (as a worker does) and the receiving in this
one, so neither competes with the other for the GIL; both stamp with ``time.time()`` (one clock, one
machine). Prints p50/p95/p99 of each and the ratio portal / raw. Target: p95 ratio ≤ 4. Exits 0
whether it is met or not.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 4.0
RAW_GROUP = "bench-raw"


async def run_sender(kind: str, target: str, args) -> dict[int, float]:
    """Run the sending side in a process of its own, as a worker is: ``kind`` "portal" appends events
    to run ``target``, "raw" group_sends to group ``target``. Returns seq (or n) → time.time() of the
    commit (or of the call)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.live_events", "--send", kind, "--target", target,
        "--events", str(args.events), "--gap-ms", str(args.gap_ms),
        cwd=REPO_ROOT, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await process.communicate()
    if process.returncode:
        raise RuntimeError(f"the {kind} sender failed (exit {process.returncode})")
    return {int(n): at for n, at in json.loads(out.decode().strip().splitlines()[-1]).items()}


def send(kind: str, target: str, args) -> None:
    """The sender process: prints one JSON line {seq or n: time.time()}."""
    import django

    django.setup()
    stamps: dict[int, float] = {}
    if kind == "portal":
        from django.db import transaction

        from apps.runs.events import events_append, events_push_wait

        for _ in range(args.events):
            with transaction.atomic():
                (row,) = events_append(run_id=int(target), events=[("log", "bench", {"message": "tick"})])
            stamps[row.seq] = time.time()  # on_commit has run: the push is on its way
            time.sleep(args.gap_ms / 1000)
        events_push_wait(10)
    else:
        from channels.layers import get_channel_layer

        async def group_sends() -> None:
            layer = get_channel_layer()
            for n in range(args.events):
                stamps[n] = time.time()
                await layer.group_send(target, {"type": "bench", "n": n})
                await asyncio.sleep(args.gap_ms / 1000)

        asyncio.run(group_sends())
    print(json.dumps(stamps), flush=True)


def log(message: str) -> None:
    print(f"[bench] {message}", flush=True)


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    cut = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"p50": cut[49] * 1000, "p95": cut[94] * 1000, "p99": cut[98] * 1000, "n": len(ordered)}


async def measure_portal(server_url: str, port: int, cookie: str, run_id: int, args) -> list[float]:
    import websockets


    received: list[dict[int, float]] = [{} for _ in range(args.clients)]
    sockets = []
    for _ in range(args.clients):
        sockets.append(
            await websockets.connect(
                f"ws://127.0.0.1:{port}/ws/runs/{run_id}/",
                origin=server_url,
                additional_headers={"Cookie": cookie},
                proxy=None,
                open_timeout=30,
            )  # fmt: skip
        )

    async def listen(index: int, socket) -> None:
        async for message in socket:
            received[index][json.loads(message)["seq"]] = time.time()

    listeners = [asyncio.ensure_future(listen(i, s)) for i, s in enumerate(sockets)]
    committed = await run_sender("portal", str(run_id), args)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(len(r) < len(committed) for r in received):
        await asyncio.sleep(0.05)
    for socket in sockets:
        await socket.close()
    for task in listeners:
        task.cancel()
    missing = sum(len(committed) - len(r) for r in received)
    if missing:
        log(f"portal: {missing} (client, event) pairs never arrived")
    spans = [
        (min(times) - at, max(times) - at)
        for seq, at in committed.items()
        if (times := [r[seq] for r in received if seq in r])
    ]
    if spans:
        first, last = (statistics.median(column) * 1000 for column in zip(*spans, strict=True))
        log(f"portal: median per event, first client {first:.2f} ms, last client {last:.2f} ms after commit")
    return [r[seq] - at for r in received for seq, at in committed.items() if seq in r]


async def measure_raw(args) -> list[float]:
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    channels = [await layer.new_channel() for _ in range(args.clients)]
    for name in channels:
        await layer.group_add(RAW_GROUP, name)
    latencies: list[float] = []
    sent: dict[int, float] = {}

    async def member(name: str) -> None:
        while True:
            message = await layer.receive(name)
            latencies.append((message["n"], time.time()))

    members = [asyncio.ensure_future(member(name)) for name in channels]
    sent.update(await run_sender("raw", RAW_GROUP, args))
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and len(latencies) < args.events * args.clients:
        await asyncio.sleep(0.05)
    for task in members:
        task.cancel()
    return [at - sent[n] for n, at in latencies]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--gap-ms", type=float, default=30.0, help="pause between two events (default 30)")
    parser.add_argument("--send", choices=("portal", "raw"), help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.send:
        send(args.send, args.target, args)
        return 0

    home = Path(tempfile.mkdtemp(prefix="iliad-bench-live-"))
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "ILIAD_ARTIFACT_ROOT"):
        os.environ.pop(name, None)
    os.environ["ILIAD_HOME"] = str(home)
    os.environ["DATABASE_URL"] = f"sqlite:///{home / 'db.sqlite3'}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "iliad_portal.settings")
    sys.path.insert(0, str(REPO_ROOT))
    from iliad_portal.embedded import start_redis

    redis = start_redis(home / "redis")
    os.environ["REDIS_URL"] = redis.url
    os.environ["CELERY_BROKER_URL"] = redis.url
    server = None
    try:
        import django

        django.setup()
        from django.core.management import call_command
        from django.test import Client

        from apps.runs.models import Run
        from tests.support.asgi_server import AsgiServer

        call_command("migrate", interactive=False, verbosity=0)
        from django.contrib.auth import get_user_model

        user = get_user_model().objects.create_user(username="bench", password="bench-password-1")
        run = Run.objects.create(
            owner=user, pipeline_version=1, pipeline_name="bench", state="running",
            snapshot={"document": {"nodes": [], "edges": []}, "blocks": {}},
        )  # fmt: skip
        client = Client()
        client.force_login(user)
        cookie = f"sessionid={client.cookies['sessionid'].value}"
        server = AsgiServer(os.environ["DATABASE_URL"]).start()
        log(f"{args.clients} clients, {args.events} events {args.gap_ms:g} ms apart; uvicorn on {server.url}")
        raw = asyncio.run(measure_raw(args))
        portal = asyncio.run(measure_portal(server.url, server.port, cookie, run.pk, args))
    finally:
        if server is not None:
            server.stop()
        redis.stop()
        shutil.rmtree(home, ignore_errors=True)
    raw_p, portal_p = percentiles(raw), percentiles(portal)
    print()
    print(f"{'path':44} {'n':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    print(f"{'raw channels_redis group_send → member':44} {raw_p['n']:>6} "
          f"{raw_p['p50']:8.2f} {raw_p['p95']:8.2f} {raw_p['p99']:8.2f}")  # fmt: skip
    print(f"{'events_append commit → WebSocket client':44} {portal_p['n']:>6} "
          f"{portal_p['p50']:8.2f} {portal_p['p95']:8.2f} {portal_p['p99']:8.2f}")  # fmt: skip
    ratio = portal_p["p95"] / raw_p["p95"]
    verdict = "MET" if ratio <= TARGET_RATIO else "NOT MET"
    print(f"\np95 ratio portal / raw = {ratio:.2f} (target ≤ {TARGET_RATIO:g}: {verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
