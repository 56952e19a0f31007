"""What a workshop waits for on the embedded default: click "Submit run" → the first progress the run
page shows, and a step's end → its figure drawn on the run page.

    python -m bench.run_page [--runs 20]

Starts the portal as ``make run`` does (``python -m iliad_portal.embedded``: embedded Redis, uvicorn,
one Celery worker with isolated steps, beat) in a temporary ``ILIAD_HOME`` on a free port, and drives
Debian's Chromium (Playwright) as the demo user through ``--runs`` runs of a two-step pipeline
(demo data → map), each with "Reuse results of identical earlier steps" unticked so that its steps
execute (a reused run ends at submission, before its page exists). For each run:

* **click → first progress**: from the click on "Submit run" in the editor's Run dialog (the page's
  own clock, kept across the navigation in ``sessionStorage``) to the first moment the run page shows
  the run or a step past "queued" (a MutationObserver's clock). Its baseline, measured in the same
  run: click → the run page's ``DOMContentLoaded`` (submitting and loading the page, nothing live).
* **step end → figure drawn**: from the ``succeeded`` event of the map step (the server's timestamp;
  one machine, one clock) to plotly's SVG appearing in the page's result previews. Its baseline:
  ``Plotly.newPlot`` of the same figure, already downloaded, on the same page. Also printed: how much
  of that wait is the push (the event's timestamp → its arrival over the page's WebSocket).

Prints p50/p95 of both with their baselines; target: p95 ≤ 300 ms each. Exits 0 whether the target
is met or not, 1 when it cannot measure.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime
from pathlib import Path

from bench.editor_load import CHROMIUM_ARGS
from iliad_portal.embedded import free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
TARGET_P95_MS = 300.0
CHROMIUM = os.environ.get("ILIAD_CHROMIUM", "/usr/bin/chromium")

# Runs in every page before its own scripts: on the run page, stamp the first visible progress and
# the moment a result preview's figure is drawn.
OBSERVER = """
(() => {
  if (!/^\\/runs\\/\\d+\\/$/.test(location.pathname)) return;
  const stamps = (window.__stamps = {});
  // When the map step's "succeeded" event arrives over the WebSocket: splits the figure's wait into
  // the push (server → page) and the page's own part (fetching and drawing the result).
  const Socket = window.WebSocket;
  window.WebSocket = function (...args) {
    const socket = new Socket(...args);
    socket.addEventListener("message", (message) => {
      const event = JSON.parse(message.data);
      if (!stamps.pushed && event.node === "map" && event.state === "succeeded") stamps.pushed = Date.now();
    });
    return socket;
  };
  window.WebSocket.prototype = Socket.prototype;
  const progressed = () => {
    const badge = document.getElementById("run-state");
    if (badge && badge.textContent.trim() !== "queued" && badge.textContent.trim() !== "pending") return true;
    return Boolean(document.querySelector("#steps .state:not(.state-queued):not(.state-pending)"));
  };
  const look = () => {
    const now = Date.now();
    if (!stamps.progress && progressed()) stamps.progress = now;
    if (!stamps.figure && document.querySelector("#result-previews .main-svg")) stamps.figure = now;
  };
  document.addEventListener("DOMContentLoaded", () => {
    stamps.loaded = Date.now();
    look();
    new MutationObserver(look).observe(document.body, {
      subtree: true, childList: true, characterData: true, attributes: true,
    });
  });
})();
"""


def log(message: str) -> None:
    print(f"[bench] {message}", flush=True)


def wait_for_portal(url: str, process: subprocess.Popen, log_path: Path, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the portal exited ({process.returncode}):\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the portal did not answer within {timeout:g} s:\n{log_path.read_text()[-3000:]}")


def percentile(values: list[float], p: int) -> float:
    return statistics.quantiles(sorted(values), n=100, method="inclusive")[p - 1]


def measure(url: str, cookie: str, pipeline_id: int, runs: int, warmup: int) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright

    found: dict[str, list[float]] = {"progress": [], "loaded": [], "figure": [], "draw": [], "pushed": []}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.add_cookies([{"name": "sessionid", "value": cookie, "url": url}])
        context.add_init_script(OBSERVER)
        page = context.new_page()
        for n in range(warmup + runs):
            page.goto(f"{url}/pipelines/{pipeline_id}/edit/")
            page.wait_for_selector("#editor-root[data-ready=true]")
            page.get_by_role("button", name="Run…").click()
            submit = page.get_by_role("button", name="Submit run")
            submit.wait_for()
            # Every run executes its steps: a reused (cached) result would end the run at submission.
            page.get_by_label("Reuse results of identical earlier steps").uncheck()
            page.evaluate(
                """() => document.querySelector('#run-dialog-title').closest('[role=dialog], dialog, div')
                   .querySelector('button[type=submit]').addEventListener(
                     'click', () => sessionStorage.setItem('clicked', String(Date.now())), {capture: true})"""
            )
            submit.click()
            try:
                page.wait_for_url("**/runs/*/", timeout=30_000)
            except Exception:
                said = page.locator("[role=alert], .ed-toast").all_inner_texts()
                raise RuntimeError(f"run {n + 1}: no run page opened; the editor says {said}") from None
            page.wait_for_function("() => window.__stamps && window.__stamps.progress", timeout=60_000)
            try:
                page.wait_for_function("() => window.__stamps.figure", timeout=90_000)
            except Exception:
                previews = page.locator("main").inner_text()[-1500:]
                raise RuntimeError(f"no figure was drawn on {page.url}; the page says:\n{previews}") from None
            stamps = page.evaluate("() => window.__stamps")
            clicked = float(page.evaluate("() => sessionStorage.getItem('clicked')"))
            run_id = int(page.url.rstrip("/").rsplit("/", 1)[-1])
            events = page.evaluate(
                f"async () => (await (await fetch('/api/runs/{run_id}/events/')).json()).events"
            )
            done = next(e for e in events if e["node"] == "map" and e.get("state") == "succeeded")
            succeeded = datetime.fromisoformat(done["created_at"].replace("Z", "+00:00")).timestamp() * 1000
            draw = page.evaluate(
                """async () => {
                  const url = document.querySelector('#artifacts a').href + '?inline=1';
                  const fig = await (await fetch(url)).json();
                  const div = document.createElement('div');
                  document.body.append(div);
                  const start = performance.now();
                  await window.Plotly.newPlot(div, fig.data, fig.layout);
                  return performance.now() - start;
                }"""
            )
            if n < warmup:
                continue
            found["progress"].append(stamps["progress"] - clicked)
            found["loaded"].append(stamps["loaded"] - clicked)
            found["figure"].append(stamps["figure"] - succeeded)
            found["draw"].append(draw)
            # The page may have drawn the figure before the push (a sibling step's event refreshed it).
            pushed = stamps.get("pushed", stamps["figure"]) - succeeded
            found["pushed"].append(pushed)
            log(
                f"run {n - warmup + 1}/{runs}: first progress {found['progress'][-1]:.0f} ms "
                f"(page loaded {found['loaded'][-1]:.0f}), figure {found['figure'][-1]:.0f} ms after its "
                f"step ended (pushed after {pushed:.0f}; plotly alone {draw:.0f})"
            )
        browser.close()
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2, help="runs first, not counted")
    parser.add_argument("--keep", action="store_true", help="keep the temporary ILIAD_HOME")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="iliad-bench-run-page-"))
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "ILIAD_ARTIFACT_ROOT")}  # fmt: skip
    port = free_port()
    # One user clicking through 20 runs a minute would meet the API's per-user rate limit (240/minute).
    env.update(ILIAD_HOME=str(home), PORT=str(port), HOST="127.0.0.1", ILIAD_API_RATE_USER="100000/minute")
    url = f"http://127.0.0.1:{port}"
    log_path = home / "portal.log"
    portal = None
    try:
        with open(log_path, "w") as portal_log:
            portal = subprocess.Popen(
                [sys.executable, "-m", "iliad_portal.embedded"], cwd=REPO_ROOT, env=env,
                stdout=portal_log, stderr=subprocess.STDOUT, process_group=0,
            )  # fmt: skip
            log(f"starting the portal as `make run` does on {url} (ILIAD_HOME={home})")
            wait_for_portal(url, portal, log_path)
            os.environ.update(ILIAD_HOME=str(home), DJANGO_SETTINGS_MODULE="iliad_portal.settings")
            for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "ILIAD_ARTIFACT_ROOT"):
                os.environ.pop(name, None)
            sys.path.insert(0, str(REPO_ROOT))
            import django

            django.setup()
            from django.contrib.auth import get_user_model
            from django.test import Client

            from apps.pipelines.services import pipeline_create

            user = get_user_model().objects.get(username="demo")
            document = {
                "format": "iliad.pipeline", "version": 1,
                "nodes": [
                    {"id": "demo", "block": "ocean.demo_dataset", "version": "1.0.0", "params": {"days": 3},
                     "position": {"x": 0, "y": 0}},
                    {"id": "map", "block": "plot.map", "version": "1.0.0", "params": {"variable": "sst"},
                     "position": {"x": 320, "y": 0}},
                ],
                "edges": [
                    {"source": "demo", "source_port": "dataset", "target": "map", "target_port": "dataset"},
                ],
            }  # fmt: skip
            pipeline = pipeline_create(owner=user, name="bench run page", document=document)
            client = Client()
            client.force_login(user)
            cookie = client.cookies["sessionid"].value
            log(f"{args.runs} runs (+{args.warmup} warm-up) of demo data → map, clicked in Chromium")
            found = measure(url, cookie, pipeline.pk, args.runs, args.warmup)
    except Exception as error:  # noqa: BLE001 - a benchmark that cannot measure says why and exits 1
        log(f"cannot measure: {error}")
        return 1
    finally:
        if portal is not None and portal.poll() is None:
            portal.send_signal(signal.SIGINT)
            try:
                portal.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(portal.pid, signal.SIGKILL)
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
    if len(found["progress"]) < 2:
        log("too few runs to measure")
        return 1
    rows = [
        ("click → first progress", found["progress"], "click → run page loaded", found["loaded"]),
        ("step end → figure drawn", found["figure"], "plotly draws it (alone)", found["draw"]),
    ]
    print()
    pushed = found["pushed"]
    print(f"of the figure's wait, the push (step end → its event in the page): p50 "
          f"{statistics.median(pushed):.0f} ms, p95 {percentile(pushed, 95):.0f} ms")
    print(f"{'':28} {'p50 ms':>8} {'p95 ms':>8}   baseline{'':19} {'p50 ms':>8} {'p95 ms':>8}   target")
    for name, values, base_name, base in rows:
        p95 = percentile(values, 95)
        verdict = "MET" if p95 <= TARGET_P95_MS else "NOT MET"
        print(
            f"{name:28} {statistics.median(values):8.0f} {p95:8.0f}   {base_name:27} "
            f"{statistics.median(base):8.0f} {percentile(base, 95):8.0f}   p95 ≤ {TARGET_P95_MS:g}: {verdict}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
