// Validation dashboard: draws the mean rating per version over time and the verdicts per version from
// the page's json_script block with the portal's own copy of plotly (no CDN: CSP script-src 'self').
(function () {
  const element = document.getElementById("validation-data");
  if (!element || !window.Plotly) return;
  const data = JSON.parse(element.textContent);
  const byVersion = {};
  for (const point of data.series) {
    (byVersion[point.version] = byVersion[point.version] || []).push(point);
  }
  const lines = Object.entries(byVersion).map(([version, points]) => ({
    type: "scatter",
    mode: "lines+markers",
    name: "v" + version,
    x: points.map((p) => p.day),
    y: points.map((p) => p.mean_rating),
    text: points.map((p) => p.count + " feedback"),
  }));
  // Whole days on the time axis; a single day gets a week around it instead of millisecond ticks.
  function dayAxis(days) {
    const axis = { type: "date", tickformat: "%Y-%m-%d", dtick: 86400000 };
    const distinct = Array.from(new Set(days)).sort();
    if (distinct.length <= 1 && distinct.length) {
      const day = Date.parse(distinct[0]);
      axis.range = [new Date(day - 3 * 86400000).toISOString(), new Date(day + 3 * 86400000).toISOString()];
    } else {
      delete axis.dtick;
    }
    return axis;
  }
  const layout = (title, extra) => Object.assign({
    margin: { t: 30, r: 10, b: 50, l: 50 },
    font: { family: "system-ui, sans-serif", color: "#0b2239" },
    legend: { orientation: "h" },
    title: { text: title, font: { size: 14 } },
  }, extra);
  window.Plotly.newPlot("rating-over-time", lines, layout("Mean rating", {
    yaxis: { range: [0.5, 5.5], title: { text: "rating (1–5)" }, dtick: 1 },
    xaxis: dayAxis(data.series.map((p) => p.day)),
  }), { responsive: true, displaylogo: false });
  const colours = { fit: "#1b6e3a", needs_changes: "#8a5a00", wrong: "#a4161a" };
  const bars = Object.keys(colours).map((verdict) => ({
    type: "bar",
    name: data.verdict_labels[verdict],
    marker: { color: colours[verdict] },
    x: data.versions.map((v) => "v" + v.version),
    y: data.versions.map((v) => v.verdicts[verdict]),
  }));
  window.Plotly.newPlot("verdicts-per-version", bars, layout("Verdicts", {
    barmode: "stack",
    yaxis: { title: { text: "feedback" } },
    xaxis: { type: "category" },
  }), { responsive: true, displaylogo: false });
})();
