// Compare page: draws each run's figure of a pair next to the other's (plotly, loaded once).
(function () {
  "use strict";
  const figures = document.querySelectorAll(".compare-figure");
  if (!figures.length) return;
  const plotly = new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = "/static/plotly/plotly.min.js";
    script.onload = resolve;
    script.onerror = reject;
    document.head.append(script);
  });
  figures.forEach((box) => {
    Promise.all([plotly, fetch(box.dataset.url, { credentials: "same-origin" }).then((r) => r.json())])
      .then(([, fig]) => window.Plotly.newPlot(box, fig.data, fig.layout, { responsive: true }))
      .catch(() => (box.textContent = "The figure could not be drawn; download it from the run's page."));
  });
})();
