// Run page: the delivery panel follows the run's latest delivery and offers "Deliver again".
(function () {
  "use strict";
  const panel = document.getElementById("delivery-panel");
  if (!panel) return;
  const stateEl = document.getElementById("delivery-state");
  const whereEl = document.getElementById("delivery-where");
  const filesEl = document.getElementById("delivery-files");
  const attemptsEl = document.getElementById("delivery-attempts");
  const errorEl = document.getElementById("delivery-error");
  const statusEl = document.getElementById("delivery-status");
  const again = document.getElementById("deliver-again");
  const form = document.getElementById("delivery-form");
  const FINAL = ["delivered", "failed", "skipped"];
  let timer = null;

  function csrf() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  function show(data) {
    const latest = data.latest;
    if (!latest) return;
    stateEl.textContent = latest.state_label;
    stateEl.className = "state state-" + latest.state;
    const code = document.createElement("code");
    code.textContent = latest.space + ":" + (latest.target_path || latest.folder || "/");
    whereEl.replaceChildren(code, document.createTextNode(" (" + latest.space_title + ")"));
    filesEl.textContent = String(latest.files);
    attemptsEl.textContent = String(latest.attempts);
    errorEl.textContent = latest.error ? "Last attempt: " + latest.error : "";
    errorEl.hidden = !latest.error;
    if (again) again.hidden = !["delivered", "failed", "retrying"].includes(latest.state);
    if (FINAL.includes(latest.state)) statusEl.textContent = "";
    else schedule();
  }

  function refresh() {
    timer = null;
    fetch(panel.dataset.url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then((response) => (response.ok ? response.json() : null))
      .then((data) => data && show(data))
      .catch(() => schedule());
  }

  function schedule() {
    if (timer === null) timer = setTimeout(refresh, 1500);
  }

  function post(url, body) {
    statusEl.textContent = "Sending…";
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrf() },
      body: body ? JSON.stringify(body) : null,
    }).then((response) =>
      response.json().then((data) => {
        if (!response.ok) {
          const messages = Object.entries(data).map(([field, value]) =>
            (field === "detail" ? "" : field + ": ") + (Array.isArray(value) ? value.join(" ") : value));
          statusEl.textContent = messages.join("; ") || "The request failed (" + response.status + ").";
          return;
        }
        statusEl.textContent = "Delivery queued.";
        refresh();
      }));
  }

  if (again) again.addEventListener("click", () => post(panel.dataset.againUrl));
  if (form) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      post(panel.dataset.url, { space: form.elements.space.value, folder: form.elements.folder.value });
    });
  }
  const initial = stateEl.className.replace("state state-", "");
  if (!FINAL.includes(initial) && initial !== "none") schedule();
  // The run finishing starts a waiting delivery: look again whenever the run's state changes.
  const runState = document.getElementById("run-state");
  if (runState) new MutationObserver(() => schedule()).observe(runState, { childList: true, characterData: true, subtree: true });
})();
