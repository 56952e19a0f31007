"""Live co-editing latency: one participant's change → its arrival at all the others.

    python -m bench.collab [--participants 10] [--changes 20] [--gap-ms 50] [--rooms 5]

Sets up the embedded default (temporary SQLite + the embedded Redis-protocol server), serves the
portal's ASGI app with uvicorn in a subprocess, and opens ``--participants`` scripted Yjs clients
(pycrdt, the sync protocol y-websocket speaks) on one pipeline's shared document over real
WebSockets. Each participant in turn changes one parameter ``--changes`` times, ``--gap-ms`` apart;
latency = arrival at each other participant − the send (one clock, one machine). Prints p50/p95/p99
(target: p95 ≤ 250 ms) and the server's resident memory before and after the room is open. Then
``--rooms`` more pipelines are opened, each by ``--participants`` synced clients, as open workshops
are: (memory with them open − memory before) / rooms is the server memory per open workshop.
Exits 0 whether the target is met or not.
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
TARGET_P95_MS = 250.0


def log(message: str) -> None:
    print(f"[bench] {message}", flush=True)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def measure(server, pipeline_id: int, cookie: str, args) -> list[float]:
    import websockets
    from pycrdt import Doc, Map, YMessageType, create_sync_message, create_update_message, handle_sync_message

    url = server.url.replace("http", "ws") + f"/ws/collab/pipelines/{pipeline_id}"
    peers = []
    for _ in range(args.participants):
        socket = await websockets.connect(url, additional_headers={"Origin": server.url, "Cookie": cookie})
        doc = Doc()
        await socket.send(create_sync_message(doc))
        peers.append((socket, doc))
    arrivals: list[dict[str, float]] = [{} for _ in peers]

    async def listen(index: int) -> None:
        socket, doc = peers[index]
        async for message in socket:
            if message[0] != YMessageType.SYNC:
                continue
            reply = handle_sync_message(message[1:], doc)
            if reply is not None:
                await socket.send(reply)
            params = (
                doc.get("nodes", type=Map)["demo"]["params"] if "demo" in doc.get("nodes", type=Map) else {}
            )
            if "bench" in params:
                arrivals[index].setdefault(json.loads(params["bench"]), time.time())

    listeners = [asyncio.ensure_future(listen(index)) for index in range(len(peers))]
    await asyncio.sleep(1.0)  # everyone synced
    sent: dict[str, tuple[int, float]] = {}
    for n in range(args.changes):
        for index, (socket, doc) in enumerate(peers):
            tag = f"{index}-{n}"
            updates = []
            subscription = doc.observe(lambda event, updates=updates: updates.append(event.update))
            doc.get("nodes", type=Map)["demo"]["params"]["bench"] = json.dumps(tag)
            doc.unobserve(subscription)
            sent[tag] = (index, time.time())
            arrivals[index][tag] = sent[tag][1]
            for update in updates:
                await socket.send(create_update_message(update))
            await asyncio.sleep(args.gap_ms / 1000)
    await asyncio.sleep(2.0)
    log(f"server memory with the room open: {rss_mb(server.process.pid):.1f} MB")
    measure.room_open_mb = rss_mb(server.process.pid)
    for task in listeners:
        task.cancel()
    for socket, _ in peers:
        await socket.close()
    latencies, missing = [], 0
    for tag, (author, at) in sent.items():
        for index, seen in enumerate(arrivals):
            if index == author:
                continue
            if tag in seen:
                latencies.append(seen[tag] - at)
            else:
                missing += 1  # overwritten by a later change before this one arrived: not a loss
    if missing:
        log(f"{missing} (change, participant) pairs were superseded before they arrived")
    return latencies


async def open_rooms(server, pipeline_ids: list[int], cookie: str, participants: int) -> list:
    """Open each pipeline's room with ``participants`` synced clients; returns the sockets (open)."""
    import websockets
    from pycrdt import Doc, YMessageType, create_sync_message, handle_sync_message

    sockets = []
    for pipeline_id in pipeline_ids:
        url = server.url.replace("http", "ws") + f"/ws/collab/pipelines/{pipeline_id}"
        for _ in range(participants):
            socket = await websockets.connect(
                url, additional_headers={"Origin": server.url, "Cookie": cookie}
            )
            doc = Doc()
            await socket.send(create_sync_message(doc))
            sockets.append((socket, doc))
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:  # answer the server's sync messages for a while
        for socket, doc in sockets:
            try:
                message = await asyncio.wait_for(socket.recv(), 0.01)
            except TimeoutError:
                continue
            if message[0] == YMessageType.SYNC:
                reply = handle_sync_message(message[1:], doc)
                if reply is not None:
                    await socket.send(reply)
    return sockets


async def room_memory(server, pipeline_ids: list[int], cookie: str, participants: int) -> float:
    before = rss_mb(server.process.pid)
    sockets = await open_rooms(server, pipeline_ids, cookie, participants)
    await asyncio.sleep(1.0)
    after = rss_mb(server.process.pid)
    log(
        f"{len(pipeline_ids)} more rooms × {participants} participants open: "
        f"{after:.1f} MB (from {before:.1f})"
    )
    for socket, _ in sockets:
        await socket.close()
    return (after - before) / max(len(pipeline_ids), 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=10)
    parser.add_argument("--changes", type=int, default=20, help="changes per participant")
    parser.add_argument("--gap-ms", type=float, default=50.0)
    parser.add_argument("--rooms", type=int, default=5, help="more rooms opened to measure memory per room")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="iliad-bench-collab-"))
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
        from django.contrib.auth import get_user_model
        from django.core.management import call_command
        from django.test import Client

        from apps.catalog.services import catalog_sync
        from apps.pipelines.services import pipeline_create
        from blocks.registry import default_registry
        from tests.support.asgi_server import AsgiServer

        call_command("migrate", interactive=False, verbosity=0)
        catalog_sync(registry=default_registry())
        user = get_user_model().objects.create_user(username="bench", password="bench-password-1")
        document = {
            "format": "iliad.pipeline",
            "version": 1,
            "nodes": [
                {"id": "demo", "block": "ocean.demo_dataset", "version": "1.0.0", "params": {"days": 5}}
            ],
            "edges": [],
        }
        pipeline = pipeline_create(owner=user, name="bench", document=document)
        others = [
            pipeline_create(owner=user, name=f"bench {n}", document=document).pk for n in range(args.rooms)
        ]
        client = Client()
        client.force_login(user)
        cookie = f"sessionid={client.cookies['sessionid'].value}"
        server = AsgiServer(os.environ["DATABASE_URL"]).start()
        time.sleep(1.0)
        log(f"server memory before: {rss_mb(server.process.pid):.1f} MB")
        log(f"{args.participants} participants × {args.changes} changes, {args.gap_ms:g} ms apart")
        before_mb = rss_mb(server.process.pid)
        latencies = asyncio.run(measure(server, pipeline.pk, cookie, args))
        first_room_mb = measure.room_open_mb - before_mb
        per_room_mb = (
            asyncio.run(room_memory(server, others, cookie, args.participants)) if others else float("nan")
        )
    finally:
        if server is not None:
            server.stop()
        redis.stop()
        shutil.rmtree(home, ignore_errors=True)
    if len(latencies) < 2:
        log("nothing arrived: cannot measure")
        return 1
    cut = statistics.quantiles(sorted(latencies), n=100, method="inclusive")
    p50, p95, p99 = (cut[i] * 1000 for i in (49, 94, 98))
    print(f"\n{'n':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    print(f"{len(latencies):>6} {p50:>8.1f} {p95:>8.1f} {p99:>8.1f}")
    print(f"target p95 ≤ {TARGET_P95_MS:g} ms: {'MET' if p95 <= TARGET_P95_MS else 'NOT MET'}")
    print(
        f"server memory per open workshop ({args.participants} participants): first room "
        f"{first_room_mb:.1f} MB (includes warming up), each further room {per_room_mb:.2f} MB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
