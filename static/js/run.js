// Run page: follows the run's events live and keeps the step table, log and results current.
// The WebSocket resumes after the last event the page has (after=<seq>); a dropped connection is
// retried with back-off, and while it stays down the events API is polled as an announced fallback.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("run-data").textContent);
  const runId = data.id;
  const log = document.getElementById("log");
  const runState = document.getElementById("run-state");
  const liveStatus = document.getElementById("live-status");
  const finished = new Set(["succeeded", "failed", "cancelled"]);
  const RETRY_FIRST_MS = 1000;
  const RETRY_MAX_MS = 30000;
  const POLL_MS = 3000;
  // Polling starts once the connection has been down this long (at once if it never opened).
  const FALLBACK_AFTER_MS = 10000;
  let lastSeq = 0;
  let live = false;
  let everConnected = false;
  let failedAttempts = 0;
  let downSince = null;
  let retryTimer = null;
  let polling = false;
  let pollTimer = null;
  let pollFailures = 0;

  function setState(el, state) {
    el.textContent = state;
    el.className = "state state-" + state;
  }

  // The run's badge only moves forward (queued → running → finished): the page is rendered with the
  // run's current state, and replaying its older events must not take the badge back.
  const RUN_STATE_RANK = { pending: 0, queued: 1, running: 2, succeeded: 3, failed: 3, cancelled: 3 };

  function setRunState(state) {
    const current = runState.textContent.trim();
    if (finished.has(current) || (RUN_STATE_RANK[state] ?? 0) < (RUN_STATE_RANK[current] ?? 0)) return;
    setState(runState, state);
  }

  function showError(row, error) {
    const cell = row.querySelector(".state").parentElement;
    let box = cell.querySelector(".error");
    if (!error) return;
    if (!box) {
      box = document.createElement("div");
      box.className = "error";
      cell.append(box);
    }
    box.textContent = error.type + ": " + error.message;
  }

  function apply(event) {
    if (event.seq <= lastSeq) return;
    lastSeq = event.seq;
    const row = event.node ? document.querySelector('#steps tr[data-node="' + CSS.escape(event.node) + '"]') : null;
    const time = event.created_at.substring(11, 19);
    if (event.kind === "state") {
      if (row) {
        setState(row.querySelector(".state"), event.state);
        showError(row, event.error);
        if (event.state === "succeeded") row.querySelector("progress").value = 1;
      } else {
        setRunState(event.state);
        if (finished.has(event.state)) refreshResults();
      }
      const where = event.node ? event.node : "run";
      let why = event.error ? " — " + event.error.type + ": " + event.error.message : "";
      if (!why && event.reason) why = " (" + event.reason + ")";
      log.textContent += time + " " + where + " → " + event.state + why + "\n";
    } else if (event.kind === "progress" && row) {
      row.querySelector("progress").value = event.fraction;
    } else if (event.kind === "log") {
      log.textContent += time + " " + (event.node || "") + " [" + event.level + "] " + event.message + "\n";
    }
  }

  function refreshResults() {
    const cancel = document.getElementById("cancel-run");
    if (cancel) cancel.remove();
    fetch("/api/runs/" + runId + "/", { credentials: "same-origin" })
      .then((response) => response.json())
      .then((run) => {
        const list = document.getElementById("artifacts");
        list.innerHTML = "";
        for (const a of run.artifacts) {
          const item = document.createElement("li");
          const link = document.createElement("a");
          link.href = a.download_url;
          link.textContent = a.node + " · " + a.port;
          item.append(link, " (" + a.media_type + ", " + a.size + " bytes)");
          if (PREVIEWS.has(a.type)) item.append(" ", previewButton(a));
          list.append(item);
        }
        for (const step of run.steps) {
          const row = document.querySelector('#steps tr[data-node="' + CSS.escape(step.node) + '"]');
          if (row) {
            setState(row.querySelector(".state"), step.state);
            showError(row, step.error);
          }
        }
      });
  }

  // Artifact types the page can preview; the template renders the same buttons.
  const PREVIEWS = new Set(["figure", "html", "image"]);

  function previewButton(artifact) {
    const label = artifact.node + " · " + artifact.port;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "preview";
    button.dataset.url = artifact.download_url + "?inline=1";
    button.dataset.kind = artifact.type;
    button.dataset.label = label;
    button.setAttribute("aria-label", "Preview " + label);
    button.textContent = "Preview";
    return button;
  }

  function showPreview(button) {
    const preview = document.getElementById("preview");
    const title = "Preview of " + button.dataset.label;
    const url = button.dataset.url;
    if (button.dataset.kind === "html") {
      // A user's page runs its scripts with an opaque origin, never as the portal: the server sends
      // it with CSP "sandbox allow-scripts" too. Never add allow-same-origin here.
      const frame = document.createElement("iframe");
      frame.setAttribute("sandbox", "allow-scripts");
      frame.title = title;
      frame.width = "100%";
      frame.height = "600";
      frame.src = url;
      preview.replaceChildren(frame);
    } else if (button.dataset.kind === "image") {
      const image = document.createElement("img");
      image.alt = title;
      image.src = url;
      preview.replaceChildren(image);
    } else {
      Promise.all([loadPlotly(), fetch(url).then((r) => r.json())]).then(([, fig]) => {
        const plot = document.createElement("div");
        preview.replaceChildren(plot);
        window.Plotly.newPlot(plot, fig.data, fig.layout, { responsive: true });
      });
    }
  }

  function loadPlotly() {
    if (window.Plotly) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = "/static/plotly/plotly.min.js";
      script.onload = resolve;
      script.onerror = reject;
      document.head.append(script);
    });
  }

  document.addEventListener("click", (e) => {
    const button = e.target.closest("button.preview");
    if (button) showPreview(button);
    if (e.target.id === "cancel-run") {
      const csrf = document.cookie.split("; ").find((c) => c.startsWith("csrftoken="));
      fetch(e.target.dataset.url, {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRFToken": csrf ? csrf.split("=")[1] : "" },
      });
    }
  });

  // "Retry failed step" and "Rerun from here" start a new run and open its page.
  document.addEventListener("click", (e) => {
    const button = e.target.closest("#retry-run, button.rerun-step");
    if (!button) return;
    const status = document.getElementById("run-again-status");
    const csrf = document.cookie.split("; ").find((c) => c.startsWith("csrftoken="));
    button.disabled = true;
    fetch(button.dataset.url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf ? csrf.split("=")[1] : "" },
      body: JSON.stringify(button.dataset.node ? { from: button.dataset.node } : {}),
    })
      .then((response) => response.json().then((body) => ({ ok: response.ok, body })))
      .then(({ ok, body }) => {
        if (ok) {
          window.location.assign("/runs/" + body.id + "/");
          return;
        }
        button.disabled = false;
        status.textContent = "Could not start the new run: " + (body.detail || JSON.stringify(body));
      })
      .catch(() => {
        button.disabled = false;
        status.textContent = "Could not start the new run: the server did not answer.";
      });
  });

  // --- live connection ------------------------------------------------------------------------
  let refusedCode = null;
  let retryAt = 0;
  let done = false;

  function announce(text) {
    if (liveStatus.textContent !== text) liveStatus.textContent = text;
  }

  function showStatus() {
    if (refusedCode === 4401) return announce("Your session has ended: sign in again to follow this run.");
    if (refusedCode === 4404) return announce("This run is no longer available to you.");
    if (live) return announce("Live updates connected.");
    if (done) return announce("");
    const parts = [];
    if (retryTimer !== null) {
      const seconds = Math.max(1, Math.round((retryAt - Date.now()) / 1000));
      parts.push(
        everConnected
          ? "Connection lost. Reconnecting in " + seconds + " s (retry " + failedAttempts + ")…"
          : "Live updates are unavailable. Trying again in " + seconds + " s…",
      );
      if (polling && !pollFailures) parts.push("Meanwhile checking for new events every " + POLL_MS / 1000 + " s.");
    }
    if (polling && pollFailures) parts.push("Checking for new events failed; trying again shortly.");
    announce(parts.join(" "));
  }

  function finish() {
    done = true;
    stopPolling();
    clearTimeout(retryTimer);
    retryTimer = null;
    showStatus();
  }

  function startPolling() {
    if (polling) return;
    polling = true;
    poll();
  }

  function stopPolling() {
    polling = false;
    clearTimeout(pollTimer);
    pollTimer = null;
  }

  // The fallback while the socket is down: read what the page misses from the events API. A failed
  // request is retried with back-off, never given up.
  function poll() {
    pollTimer = null;
    fetch("/api/runs/" + runId + "/events/?after=" + lastSeq, { credentials: "same-origin" })
      .then((response) => {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then((page) => {
        page.events.forEach(apply);
        pollFailures = 0;
        if (!polling) return;
        if (finished.has(page.state) && lastSeq >= page.last_seq) return finish();
        pollTimer = setTimeout(poll, lastSeq < page.last_seq ? 0 : POLL_MS);
        showStatus();
      })
      .catch(() => {
        if (!polling) return;
        pollFailures += 1;
        pollTimer = setTimeout(poll, Math.min(RETRY_MAX_MS, POLL_MS * 2 ** pollFailures));
        showStatus();
      });
  }

  function connect() {
    retryTimer = null;
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + location.host + "/ws/runs/" + runId + "/?after=" + lastSeq);
    socket.onopen = () => {
      live = true;
      everConnected = true;
      failedAttempts = 0;
      downSince = null;
      stopPolling();
      showStatus();
    };
    socket.onmessage = (message) => apply(JSON.parse(message.data));
    socket.onclose = (close) => {
      live = false;
      if (close.code === 4401 || close.code === 4404) {
        refusedCode = close.code;
        stopPolling();
        showStatus();
        return;
      }
      if (finished.has(runState.textContent)) {
        startPolling(); // only to fetch anything still missing: it stops once it has everything
        return;
      }
      failedAttempts += 1;
      if (downSince === null) downSince = Date.now();
      const backoff = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** (failedAttempts - 1));
      const delay = Math.round(backoff * (0.8 + 0.4 * Math.random())); // jitter: not all pages at once
      retryAt = Date.now() + delay;
      retryTimer = setTimeout(connect, delay);
      if (!everConnected || Date.now() - downSince >= FALLBACK_AFTER_MS) startPolling();
      showStatus();
    };
  }

  // Back on the network: try at once rather than at the end of the back-off.
  window.addEventListener("online", () => {
    if (retryTimer === null) return;
    clearTimeout(retryTimer);
    connect();
  });

  connect();
})();
