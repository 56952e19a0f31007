"""How fast the visual editor opens a large pipeline, in headless Chromium.

    python -m bench.editor_load                 # 300 nodes, 5 repeats, Debian's /usr/bin/chromium
    python -m bench.editor_load --nodes 300 --repeat 5 --json bench/out/editor.json

Sets up a temporary portal (SQLite in a temporary ILIAD_HOME, catalog synced), saves three pipelines
made of real catalog blocks — chains of ``utility.noop`` (input ``trigger``, output ``result``), 10
nodes per chain, every chain's nodes connected ``result`` → ``trigger`` — with 0 (empty editor),
10 and ``--nodes`` nodes, serves the portal with uvicorn and opens each pipeline's edit page
``--repeat`` times in a fresh browser page. For each it measures:

* **time to interactive** (ms): from navigation start to the moment the editor signals ready —
  ``performance.mark("iliad-editor-ready")``, set one animation frame after React Flow's ``onInit``
  once every node has been rendered and measured (the page's ``#editor-root[data-ready=true]``) —
  and it then checks the editor really responds: a click on a node selects it;
* **click response** (ms): from that click's ``pointerdown`` to the frame in which the node shows
  as selected (measured in the page);
* **frame times while panning** (ms): a programmatic pan (the viewport moves a little every
  animation frame, as a drag would) for ``--pan-seconds`` (2 s), with the ``requestAnimationFrame``
  deltas' median and 95th percentile.

The empty editor and the 10-node pipeline are the baseline measured in the same run. Target: the
large pipeline is interactive in ≤ 1.5 s (median); the last line says MET or NOT MET. Like the other
benchmarks, this is a command, not a test: it exits 0 whether the target is met or not, 1 when it
cannot measure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
TARGET_MS = 1500.0
CHAIN = 10
PASSWORD = "bench-password-1"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def log(message: str) -> None:
    print(f"[bench] {message}", flush=True)


def noop_document(nodes: int) -> dict[str, Any]:
    """``nodes`` utility.noop blocks in chains of CHAIN, laid out on a grid, each chain connected."""
    doc_nodes, edges = [], []
    for index in range(nodes):
        chain, step = divmod(index, CHAIN)
        node_id = f"n{index}"
        doc_nodes.append(
            {
                "id": node_id,
                "block": "utility.noop",
                "version": "1.0.0",
                "params": {"sleep_s": 0},
                "position": {"x": step * 300, "y": chain * 170},
            }
        )
        if step:
            edges.append({"source": f"n{index - 1}", "source_port": "result", "target": node_id,
                          "target_port": "trigger"})
    return {"format": "iliad.pipeline", "version": 1, "nodes": doc_nodes, "edges": edges}


def setup_portal(home: Path, sizes: list[int]) -> dict[int, int]:
    """Migrate, sync the catalog, create the user and one pipeline per size; {size: pipeline id}."""
    import io

    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", interactive=False, verbosity=0)
    out = io.StringIO()
    call_command("sync_catalog", stdout=out, stderr=out)
    from django.contrib.auth import get_user_model

    from apps.pipelines.services import pipeline_create

    user = get_user_model().objects.create_user(username="bench", password=PASSWORD)
    ids = {}
    for size in sizes:
        pipeline = pipeline_create(owner=user, name=f"{size} nodes", document=noop_document(size))
        ids[size] = pipeline.pk
    return ids


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(port: int, log_path: Path) -> subprocess.Popen:
    log_file = open(log_path, "w")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "iliad_portal.asgi:application", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning"],
        cwd=REPO_ROOT, env=os.environ.copy(), stdout=log_file, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited; its log:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/login/", timeout=1) as response:
                if response.status == 200:
                    return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the server did not answer within 30 s")


MEASURE_CLICK = """
async (nodeId) => {
  const node = document.querySelector(`.react-flow__node[data-id="${nodeId}"]`);
  window.__benchClick = new Promise((resolve) => {
    let down = null;
    const options = {capture: true, once: true};
    node.addEventListener('pointerdown', () => { down = performance.now(); }, options);
    const observer = new MutationObserver(() => {
      if (node.classList.contains('selected') && down !== null) {
        observer.disconnect();
        requestAnimationFrame(() => resolve(performance.now() - down));
      }
    });
    observer.observe(node, {attributes: true, attributeFilter: ['class']});
  });
}
"""

MEASURE_PAN = """
async (seconds) => {
  const editor = window.iliadEditor;
  const start = editor.getViewport();
  const deltas = [];
  await new Promise((resolve) => {
    let first = null, last = null;
    const frame = (now) => {
      if (first === null) first = now;
      if (last !== null) deltas.push(now - last);
      last = now;
      const t = (now - first) / 1000;
      editor.setViewport({x: start.x - 400 * t, y: start.y - 120 * Math.sin(t * 3), zoom: start.zoom});
      if (t < seconds) requestAnimationFrame(frame); else resolve();
    };
    requestAnimationFrame(frame);
  });
  return deltas;
}
"""


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def measure(page, url: str, size: int, pan_seconds: float) -> dict[str, float]:
    page.goto(url, wait_until="commit")
    # Poll every 100 ms (not every frame): the waiting must not load the page it measures.
    page.wait_for_function(
        "() => performance.getEntriesByName('iliad-editor-ready').length > 0", polling=100, timeout=60_000
    )
    ready_ms = page.evaluate("() => performance.getEntriesByName('iliad-editor-ready')[0].startTime")
    phases = page.evaluate(
        "() => { const n = performance.getEntriesByType('navigation')[0];"
        " const s = performance.getEntriesByName('iliad-editor-start')[0];"
        " return {response_ms: n.responseEnd, script_ms: s ? s.startTime : null}; }"
    )
    nodes = page.locator(".react-flow__node").count()
    if nodes != size:
        raise RuntimeError(f"{nodes} nodes rendered, expected {size}")
    result = {"ready_ms": ready_ms, "nodes_rendered": nodes, **phases}
    if size:
        page.evaluate(MEASURE_CLICK, "n0")
        page.locator('.react-flow__node[data-id="n0"] .block-title').click()
        result["click_ms"] = page.evaluate("() => window.__benchClick")
        page.keyboard.press("Escape")
    deltas = page.evaluate(MEASURE_PAN, pan_seconds)
    result["pan_frames"] = len(deltas)
    result["pan_median_ms"] = statistics.median(deltas) if deltas else float("nan")
    result["pan_p95_ms"] = percentile(deltas, 0.95)
    return result


def summarise(samples: list[dict[str, float]]) -> dict[str, float]:
    summary: dict[str, float] = {}
    for key in ("response_ms", "script_ms", "ready_ms", "click_ms", "pan_median_ms", "pan_p95_ms"):
        values = [sample[key] for sample in samples if key in sample]
        if values:
            summary[key] = statistics.median(values)
            summary[f"{key}_min"] = min(values)
            summary[f"{key}_max"] = max(values)
    return summary


def report(results: dict[int, dict[str, float]], large: int, repeat: int) -> str:
    def fmt(value: float | None) -> str:
        return "—" if value is None else f"{value:7.0f}" if value >= 100 else f"{value:7.1f}"

    lines = [
        "",
        f"Editor load, headless Chromium, median of {repeat} (min–max for time to interactive)",
        f"{'pipeline':<16}{'interactive ms':>24}{'click ms':>10}{'pan frame ms':>14}{'pan p95 ms':>12}",
    ]
    for size, summary in results.items():
        name = "empty editor" if size == 0 else f"{size} nodes"
        tti = f"{fmt(summary['ready_ms'])} ({summary['ready_ms_min']:.0f}–{summary['ready_ms_max']:.0f})"
        lines.append(
            f"{name:<16}{tti:>24}{fmt(summary.get('click_ms')):>10}"
            f"{fmt(summary['pan_median_ms']):>14}{fmt(summary['pan_p95_ms']):>12}"
        )
    big = results[large]["ready_ms"]
    verdict = "MET" if big <= TARGET_MS else "NOT MET"
    lines.append(f"Target: {large} nodes interactive in <= {TARGET_MS:.0f} ms: {big:.0f} ms -> {verdict}")
    load = os.getloadavg()
    lines.append(
        f"(machine: {os.cpu_count()} CPUs, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} at the end)"
    )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=300, help="size of the large pipeline (default 300)")
    parser.add_argument("--repeat", type=int, default=5, help="page loads per pipeline (default 5)")
    parser.add_argument("--pan-seconds", type=float, default=2.0, help="length of the pan (default 2 s)")
    parser.add_argument("--chromium", default=os.environ.get("ILIAD_CHROMIUM", "/usr/bin/chromium"))
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not Path(args.chromium).exists():
        log(f"{args.chromium} is missing: run `make browser-deps`")
        return 1
    if not (REPO_ROOT / "static" / "editor" / "editor.js").exists():
        log("static/editor/editor.js is missing: run `make frontend`")
        return 1
    home = Path(tempfile.mkdtemp(prefix="iliad-bench-editor-"))
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "ILIAD_ARTIFACT_ROOT"):
        os.environ.pop(name, None)
    os.environ.update(
        {
            "ILIAD_HOME": str(home),
            "DJANGO_SETTINGS_MODULE": "iliad_portal.settings",
            "DJANGO_ALLOW_ASYNC_UNSAFE": "true",
        }
    )
    server = None
    try:
        sizes = [0, 10, args.nodes]
        log(f"setting up a portal in {home}")
        ids = setup_portal(home, [size for size in sizes if size])
        port = free_port()
        server = start_server(port, home / "server.log")
        base = f"http://127.0.0.1:{port}"
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
            context = browser.new_context(viewport={"width": 1500, "height": 950})
            page = context.new_page()
            page.goto(f"{base}/login/")
            page.fill("input[name=username]", "bench")
            page.fill("input[name=password]", PASSWORD)
            page.click("form button[type=submit]")
            page.wait_for_load_state()
            page.close()
            results: dict[int, dict[str, float]] = {}
            raw: dict[int, list[dict[str, float]]] = {}
            for size in sizes:
                url = f"{base}/pipelines/new/" if size == 0 else f"{base}/pipelines/{ids[size]}/edit/"
                measure(context.new_page(), url, size, 0.2)  # warm-up: server caches, browser cache
                samples = []
                for _ in range(args.repeat):
                    page = context.new_page()
                    samples.append(measure(page, url, size, args.pan_seconds))
                    page.close()
                raw[size] = samples
                results[size] = summarise(samples)
                log(f"{size} nodes: interactive in {results[size]['ready_ms']:.0f} ms (median)")
            browser.close()
        print(report(results, args.nodes, args.repeat))
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            figures = {"target_ms": TARGET_MS, "summary": results, "samples": raw}
            args.json.write_text(json.dumps(figures, indent=2))
        return 0
    except Exception as error:  # noqa: BLE001 - a benchmark reports why it cannot measure
        log(f"cannot measure: {error}")
        return 1
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
