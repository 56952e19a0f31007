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

  // --- steps: table rows, graph nodes, timing ----------------------------------------------------
  const labels = new Map(data.steps.map((step) => [step.node, step.label || step.node]));
  const stepState = new Map(data.steps.map((step) => [step.node, step.state]));
  const timingOf = (step) => ({
    start: step.started_at ? Date.parse(step.started_at) : null,
    end: step.finished_at ? Date.parse(step.finished_at) : null,
  });
  const timing = new Map(data.steps.map((step) => [step.node, timingOf(step)]));
  const fraction = new Map();
  const message = new Map();
  const STEP_DONE = new Set(["succeeded", "failed", "cancelled", "skipped"]);

  function graphNode(node) {
    return document.querySelector('#run-graph .graph-node[data-node="' + CSS.escape(node) + '"]');
  }

  function duration(ms) {
    const total = Math.max(0, Math.round(ms / 1000));
    const h = Math.floor(total / 3600);
    const m = Math.floor((total % 3600) / 60);
    const sec = String(total % 60).padStart(2, "0");
    return h ? h + ":" + String(m).padStart(2, "0") + ":" + sec : m + ":" + sec;
  }

  // What a step's node and row say besides its state: how far, what it does, how long, how long left.
  function showStep(node) {
    const state = stepState.get(node);
    const row = document.querySelector('#steps tr[data-node="' + CSS.escape(node) + '"]');
    const g = graphNode(node);
    const f = fraction.get(node);
    const t = timing.get(node) || {};
    let time = "";
    if (t.start && state === "running") {
      const elapsed = Date.now() - t.start;
      time = duration(elapsed) + " elapsed";
      if (f > 0.02 && f < 1) time += " · about " + duration((elapsed * (1 - f)) / f) + " left";
    } else if (t.start && t.end && state === "succeeded") {
      time = "took " + duration(t.end - t.start);
    }
    if (row) {
      row.querySelector(".progress-message").textContent = message.get(node) || "";
      row.querySelector(".elapsed").textContent = time;
      if (state === "succeeded") row.querySelector("progress").value = 1;
      else if (f !== undefined) row.querySelector("progress").value = f;
    }
    if (g) {
      g.setAttribute("class", "graph-node state-" + state);
      g.setAttribute("aria-label", labels.get(node) + ": " + state + (time ? ", " + time : ""));
      const done = state === "succeeded" ? 1 : f || 0;
      const bar = g.querySelector(".graph-progress");
      bar.setAttribute("width", String(Math.round(Number(bar.dataset.full) * done)));
      let status = state;
      if (state === "running" && f !== undefined) status += " · " + Math.round(f * 100) + " %";
      if (state === "running" && message.get(node)) status += " · " + message.get(node);
      else if (time && state === "succeeded") status += " · " + time;
      g.querySelector(".graph-status").textContent = status.length > 30 ? status.slice(0, 29) + "…" : status;
    }
  }

  function setStepState(node, state, at) {
    stepState.set(node, state);
    const t = timing.get(node) || { start: null, end: null };
    if (state === "running") t.start = at;
    if (STEP_DONE.has(state)) t.end = at;
    timing.set(node, t);
    showStep(node);
  }

  // Running steps' clocks move on between events.
  setInterval(() => {
    for (const [node, state] of stepState) if (state === "running") showStep(node);
  }, 1000);
  for (const node of stepState.keys()) showStep(node);

  // Each step's own log lines, for its details panel.
  const nodeLog = new Map();

  function logLine(line, node) {
    log.textContent += line;
    if (!node) return;
    if (!nodeLog.has(node)) nodeLog.set(node, []);
    nodeLog.get(node).push(line);
    if (panelNode === node) panel.querySelector(".step-panel-log").textContent += line;
  }

  function apply(event) {
    if (event.seq <= lastSeq) return;
    lastSeq = event.seq;
    const row = event.node ? document.querySelector('#steps tr[data-node="' + CSS.escape(event.node) + '"]') : null;
    const time = event.created_at.substring(11, 19);
    const name = event.node ? labels.get(event.node) || event.node : "run";
    if (event.kind === "state") {
      if (event.node) {
        if (row) {
          setState(row.querySelector(".state"), event.state);
          showError(row, event.error);
        }
        setStepState(event.node, event.state, Date.parse(event.created_at));
        if (event.state === "succeeded") scheduleResults(); // its results show while the run goes on
      } else {
        setRunState(event.state);
        if (finished.has(event.state)) {
          const cancel = document.getElementById("cancel-run");
          if (cancel) cancel.remove();
          // Once the run has ended it can be run again from any step (a failed one: retried).
          document.querySelectorAll("button.rerun-step").forEach((button) => (button.hidden = false));
          const retry = document.getElementById("retry-run");
          if (retry) retry.hidden = event.state !== "failed";
          if (panelNode) showPanel();
          refreshResults();
        }
      }
      const where = event.node ? name : "run";
      let why = event.error ? " — " + event.error.type + ": " + event.error.message : "";
      if (!why && event.reason) why = " (" + event.reason + ")";
      logLine(time + " " + where + " → " + event.state + why + "\n", event.node);
      if (event.node && event.node === panelNode) showPanel();
    } else if (event.kind === "progress" && event.node) {
      if (typeof event.fraction === "number") fraction.set(event.node, event.fraction);
      if (event.message) message.set(event.node, event.message);
      showStep(event.node);
      if (event.node === panelNode) showPanelState();
    } else if (event.kind === "log") {
      logLine(time + " " + (event.node ? name : "") + " [" + event.level + "] " + event.message + "\n", event.node);
    }
  }

  // --- results ----------------------------------------------------------------------------------
  let resultsTimer = null;
  let artifacts = data.artifacts;

  // Steps ending together (a fan-out) are fetched once; short enough not to delay a figure.
  function scheduleResults() {
    if (resultsTimer === null) resultsTimer = setTimeout(refreshResults, 30);
  }

  function humanSize(bytes) {
    if (bytes < 1024) return bytes + (bytes === 1 ? "\u00a0byte" : "\u00a0bytes");
    const units = ["KB", "MB", "GB", "TB"];
    let value = bytes / 1024;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return value.toFixed(1) + "\u00a0" + units[unit];
  }

  function artifactItem(a) {
    const item = document.createElement("li");
    item.dataset.artifact = a.id;
    const link = document.createElement("a");
    link.href = a.download_url;
    link.textContent = (a.label || a.node) + " · " + a.port;
    item.append(link, " (" + (a.type_title || a.media_type) + ", " + humanSize(a.size) + ")");
    if (PREVIEWS.has(a.type)) item.append(" ", previewButton(a));
    return item;
  }

  function refreshResults() {
    resultsTimer = null;
    fetch("/api/runs/" + runId + "/", { credentials: "same-origin" })
      .then((response) => response.json())
      .then((run) => {
        // In pipeline order (the steps table's), not in the order their steps happened to end.
        const rank = new Map([...document.querySelectorAll("#steps tr[data-node]")].map((row, i) => [row.dataset.node, i]));
        const ordered = [...run.artifacts].sort(
          (x, y) => (rank.get(x.node) ?? 1e9) - (rank.get(y.node) ?? 1e9) || (x.port < y.port ? -1 : x.port > y.port ? 1 : 0),
        );
        artifacts = ordered;
        if (panelNode) showPanelOutputs();
        const deliverables = ordered.filter((a) => a.deliverable);
        const intermediates = ordered.filter((a) => !a.deliverable);
        const list = document.getElementById("artifacts");
        if (deliverables.length) list.replaceChildren(...deliverables.map(artifactItem));
        const folded = document.getElementById("intermediates");
        document.getElementById("intermediate-artifacts").replaceChildren(...intermediates.map(artifactItem));
        folded.querySelector(".count").textContent = intermediates.length;
        folded.hidden = intermediates.length === 0;
        deliverables.forEach(autoPreview);
        for (const step of run.steps) {
          const row = document.querySelector('#steps tr[data-node="' + CSS.escape(step.node) + '"]');
          if (row) {
            setState(row.querySelector(".state"), step.state);
            showError(row, step.error);
          }
          if (STEP_DONE.has(step.state) && stepState.get(step.node) !== step.state) {
            timing.set(step.node, timingOf(step));
            stepState.set(step.node, step.state);
            showStep(step.node);
          }
        }
      });
  }

  // Deliverables are shown as soon as their step has made them: figures drawn, tables' first rows,
  // images. Above these sizes only the Preview button and the download are offered, so that one
  // huge result cannot freeze the page.
  const AUTO_PREVIEW_MAX_BYTES = { figure: 5 * 1024 * 1024, image: 5 * 1024 * 1024, html: 8 * 1024 * 1024 };
  const TABLE_PREVIEW_ROWS = 10;
  const previewed = new Set();

  const isTable = (a) => a.media_type.split(";")[0].trim() === "text/csv";
  const previewable = (a) => isTable(a) || a.type in AUTO_PREVIEW_MAX_BYTES;

  function autoPreview(a) {
    if (previewed.has(a.id) || !previewable(a)) return;
    previewed.add(a.id);
    document.getElementById("result-previews").append(previewCard(a));
  }

  // A result shown in place: a plotly figure drawn, a table's first rows, an image, or an HTML page
  // (a bokeh explorer) in a sandboxed frame.
  function previewCard(a) {
    const table = isTable(a);
    const name = (a.label || a.node) + " · " + a.port;
    const card = document.createElement("figure");
    card.className = "result-preview" + (a.type === "html" ? " result-preview-wide" : "");
    card.dataset.artifact = a.id;
    const caption = document.createElement("figcaption");
    caption.textContent = name;
    const body = document.createElement("div");
    body.className = "result-preview-body";
    card.append(caption, body);
    if (!table && a.size > AUTO_PREVIEW_MAX_BYTES[a.type]) {
      body.textContent = "Too large to show here (" + humanSize(a.size) + "): use Preview or download it.";
    } else if (table) {
      fetch(a.download_url.replace(/download\/$/, "rows/") + "?limit=" + TABLE_PREVIEW_ROWS, { credentials: "same-origin" })
        .then((response) => (response.ok ? response.json() : Promise.reject(response.status)))
        .then((head) => body.replaceChildren(tableOf(head, name)))
        .catch(() => (body.textContent = "The table could not be read for a preview; download it instead."));
    } else if (a.type === "image") {
      const image = document.createElement("img");
      image.alt = name;
      image.src = a.download_url + "?inline=1";
      body.append(image);
    } else if (a.type === "html") {
      body.append(sandboxedFrame(a.download_url + "?inline=1", name, "480"));
    } else {
      Promise.all([loadPlotly(), fetch(a.download_url + "?inline=1").then((r) => r.json())])
        .then(([, fig]) => window.Plotly.newPlot(body, fig.data, fig.layout, { responsive: true }))
        .catch(() => (body.textContent = "The figure could not be drawn; download it instead."));
    }
    return card;
  }

  // A user's page runs its scripts with an opaque origin, never as the portal: the server sends it
  // with CSP "sandbox allow-scripts" too. Never add allow-same-origin here.
  function sandboxedFrame(url, title, height) {
    const frame = document.createElement("iframe");
    frame.setAttribute("sandbox", "allow-scripts");
    frame.title = title;
    frame.width = "100%";
    frame.height = height;
    frame.src = url;
    return frame;
  }

  function tableOf(head, name) {
    const wrap = document.createElement("div");
    wrap.className = "table-preview";
    const table = document.createElement("table");
    const caption = document.createElement("caption");
    caption.textContent = head.truncated
      ? "First " + head.rows.length + " rows of " + name
      : name + " (" + head.rows.length + (head.rows.length === 1 ? " row)" : " rows)");
    const headRow = document.createElement("tr");
    for (const column of head.columns) {
      const th = document.createElement("th");
      th.scope = "col";
      th.textContent = column;
      headRow.append(th);
    }
    const body = document.createElement("tbody");
    for (const row of head.rows) {
      const tr = document.createElement("tr");
      for (const cell of row) {
        const td = document.createElement("td");
        td.textContent = cell;
        tr.append(td);
      }
      body.append(tr);
    }
    const thead = document.createElement("thead");
    thead.append(headRow);
    table.append(caption, thead, body);
    wrap.append(table);
    return wrap;
  }

  // Artifact types the page can preview; the template renders the same buttons.
  const PREVIEWS = new Set(["figure", "html", "image"]);

  function previewButton(artifact) {
    const label = (artifact.label || artifact.node) + " · " + artifact.port;
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
      preview.replaceChildren(sandboxedFrame(url, title, "600"));
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

  // --- a step's details: chosen on the graph --------------------------------------------------
  const panel = document.getElementById("step-panel");
  let panelNode = null;
  let panelShown = new Set(); // the outputs the panel already shows

  function showPanelState() {
    const row = document.querySelector('#steps tr[data-node="' + CSS.escape(panelNode) + '"]');
    const parts = [stepState.get(panelNode)];
    const f = fraction.get(panelNode);
    if (stepState.get(panelNode) === "running" && f !== undefined) parts.push(Math.round(f * 100) + " %");
    if (stepState.get(panelNode) === "running" && message.get(panelNode)) parts.push(message.get(panelNode));
    const elapsed = row ? row.querySelector(".elapsed").textContent : "";
    if (elapsed) parts.push(elapsed);
    panel.querySelector(".step-panel-state").textContent = parts.join(" · ");
    const error = row ? row.querySelector(".error") : null;
    const box = panel.querySelector(".step-panel-error");
    box.textContent = error ? error.textContent : "";
    box.hidden = !error;
  }

  function showPanelOutputs() {
    const mine = artifacts.filter((a) => a.node === panelNode);
    const fresh = mine.filter((a) => !panelShown.has(a.id));
    const list = panel.querySelector(".step-panel-outputs");
    if (!mine.length) {
      list.replaceChildren(Object.assign(document.createElement("li"), { className: "empty", textContent: "No outputs yet." }));
      return;
    }
    if (!fresh.length) return;
    list.replaceChildren(...mine.map(artifactItem));
    const previews = panel.querySelector(".step-panel-previews");
    for (const a of fresh) {
      panelShown.add(a.id);
      if (previewable(a)) previews.append(previewCard(a));
    }
  }

  function showPanel() {
    const row = document.querySelector('#steps tr[data-node="' + CSS.escape(panelNode) + '"]');
    panel.querySelector("#step-panel-title").textContent = labels.get(panelNode) + (row ? " (" + row.cells[1].textContent.trim() + ")" : "");
    showPanelState();
    const actions = panel.querySelector(".step-panel-actions");
    const cell = row && row.querySelector("td.step-actions");
    actions.replaceChildren(...(cell ? [...cell.childNodes].map((child) => child.cloneNode(true)) : []));
  }

  function openPanel(node) {
    document.querySelectorAll("#run-graph .graph-node").forEach((g) => g.removeAttribute("aria-current"));
    graphNode(node).setAttribute("aria-current", "true");
    if (node !== panelNode) {
      panelNode = node;
      panelShown = new Set();
      panel.querySelector(".step-panel-previews").replaceChildren();
      panel.querySelector(".step-panel-outputs").replaceChildren();
      panel.querySelector(".step-panel-log").textContent = (nodeLog.get(node) || []).join("") || "";
    }
    panel.hidden = false;
    showPanel();
    showPanelOutputs();
    const title = panel.querySelector("#step-panel-title");
    title.focus({ preventScroll: true });
    panel.scrollIntoView({ block: "nearest" });
  }

  function closePanel() {
    const node = panelNode;
    panelNode = null;
    panel.hidden = true;
    document.querySelectorAll("#run-graph .graph-node").forEach((g) => g.removeAttribute("aria-current"));
    if (node && graphNode(node)) graphNode(node).focus();
  }

  if (panel) {
    document.getElementById("run-graph").addEventListener("click", (e) => {
      const g = e.target.closest(".graph-node");
      if (!g) return;
      e.preventDefault();
      openPanel(g.dataset.node);
    });
    panel.querySelector("#step-panel-close").addEventListener("click", closePanel);
    panel.addEventListener("keydown", (e) => {
      if (e.key === "Escape") closePanel();
    });
  }

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

  data.artifacts.filter((a) => a.deliverable).forEach(autoPreview);
  // While the run goes on, have plotly parsed before a figure arrives (it is cached after the first
  // page; parsing it still takes a tenth of a second).
  if (!finished.has(data.state)) {
    const early = () => loadPlotly().catch(() => {});
    if ("requestIdleCallback" in window) window.requestIdleCallback(early, { timeout: 1000 });
    else setTimeout(early, 200);
  }
  connect();
})();
