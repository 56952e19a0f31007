// Run page: follows the run's events live (WebSocket, falling back to polling the events API)
// and keeps the step table, log and results current.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("run-data").textContent);
  const runId = data.id;
  const log = document.getElementById("log");
  const runState = document.getElementById("run-state");
  const finished = new Set(["succeeded", "failed", "cancelled"]);
  let lastSeq = 0;
  let pollTimer = null;

  function setState(el, state) {
    el.textContent = state;
    el.className = "state state-" + state;
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
        setState(runState, event.state);
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
          if (a.type === "figure") item.append(" ", previewButton(a.download_url + "?inline=1"));
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

  function previewButton(url) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "preview";
    button.dataset.url = url;
    button.textContent = "Preview";
    return button;
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
    if (button) {
      Promise.all([loadPlotly(), fetch(button.dataset.url).then((r) => r.json())]).then(([, fig]) => {
        window.Plotly.newPlot("preview", fig.data, fig.layout, { responsive: true });
      });
    }
    if (e.target.id === "cancel-run") {
      const csrf = document.cookie.split("; ").find((c) => c.startsWith("csrftoken="));
      fetch(e.target.dataset.url, {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRFToken": csrf ? csrf.split("=")[1] : "" },
      });
    }
  });

  function poll() {
    fetch("/api/runs/" + runId + "/events/?after=" + lastSeq, { credentials: "same-origin" })
      .then((response) => response.json())
      .then((page) => {
        page.events.forEach(apply);
        if (!finished.has(page.state) || page.events.length) pollTimer = setTimeout(poll, 2000);
      });
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + location.host + "/ws/runs/" + runId + "/?after=" + lastSeq);
    socket.onmessage = (message) => apply(JSON.parse(message.data));
    socket.onclose = (close) => {
      if (finished.has(runState.textContent)) return;
      if (close.code === 4401 || close.code === 4404) return;
      if (!pollTimer) poll();
    };
  }

  connect();
})();
