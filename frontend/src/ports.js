// Port types: each has a colour and a shape (so colour is never the only cue) and a legend text.
export const PORT_TYPES = [
  { type: "dataset", shape: "circle", label: "Gridded dataset" },
  { type: "table", shape: "square", label: "Table" },
  { type: "figure", shape: "diamond", label: "Figure" },
  { type: "json", shape: "triangle", label: "JSON" },
  { type: "geojson", shape: "hexagon", label: "GeoJSON features" },
  { type: "image", shape: "pentagon", label: "Image" },
  { type: "html", shape: "star", label: "HTML page" },
  { type: "any", shape: "ring", label: "Any type (input)" },
];

export const portClass = (type) =>
  `port-shape t-${PORT_TYPES.some((entry) => entry.type === type) ? type : "other"}`;
