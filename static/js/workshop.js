// Workshop pages: count the current agenda item's timer down, and on the follow-me view follow the
// facilitator (poll the workshop's state every 3 s and show the current item, agenda and decisions).
(function () {
  const stateElement = document.getElementById("workshop-state");
  if (!stateElement) return;
  let state = JSON.parse(stateElement.textContent);
  let loadedAt = Date.now();

  function format(seconds) {
    const sign = seconds < 0 ? "−" : "";
    const s = Math.abs(seconds);
    return sign + Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
  }

  function tick() {
    const left = state.current ? state.current.left_s - Math.floor((Date.now() - loadedAt) / 1000) : null;
    document.querySelectorAll("[data-timer]").forEach((timer) => {
      if (left === null) { timer.textContent = ""; return; }
      timer.textContent = format(left);
      timer.classList.toggle("over", left < 0);
      timer.setAttribute("aria-label", left < 0 ? "over time by " + format(left) : format(left) + " left");
    });
  }

  function list(element, items, render) {
    if (!element) return;
    element.replaceChildren(...items.map((item) => {
      const li = document.createElement("li");
      render(li, item);
      return li;
    }));
  }

  function show() {
    const title = document.getElementById("current-title");
    if (title) title.textContent = state.current ? state.current.title : "Waiting for the facilitator to start the agenda";
    list(document.getElementById("follow-agenda"), state.agenda, (li, item) => {
      li.textContent = item.title + " ";
      const minutes = document.createElement("span");
      minutes.className = "meta";
      minutes.textContent = item.minutes + " min";
      li.append(minutes);
      if (state.current && state.current.item === item.id) {
        li.className = "current";
        li.setAttribute("aria-current", "step");
      }
    });
    const decisions = document.getElementById("follow-decisions");
    if (decisions && state.decisions.length) list(decisions, state.decisions, (li, d) => { li.textContent = d.text; });
  }

  const follow = document.querySelector("[data-state-url]");
  if (follow) {
    setInterval(() => {
      fetch(follow.dataset.stateUrl, { credentials: "same-origin" })
        .then((response) => (response.ok ? response.json() : null))
        .then((next) => {
          if (!next) return;
          state = next;
          loadedAt = Date.now();
          show();
        })
        .catch(() => {});
    }, 3000);
  }
  tick();
  setInterval(tick, 1000);
})();
