// Pure helpers of the area and days a block works on: which parameters hold them, what the data
// cover (the server's ``extents``), and the parameters a box drawn on the map or a "whole period"
// choice becomes. Longitudes follow the data's convention (0…360 when the data use it).

export const AREA_PARAMS = ["lat_min", "lat_max", "lon_min", "lon_max"];
export const DAY_PARAMS = ["start", "end"];
export const WORLD = { west: -180, south: -90, east: 180, north: 90 };

const propertiesOf = (schema) => (schema && schema.properties) || {};

/** Whether a block's parameters hold an area (all four edges). */
export function hasArea(schema) {
  const properties = propertiesOf(schema);
  return AREA_PARAMS.every((name) => name in properties);
}

/** Whether a block's parameters hold a time range (a first and/or a last day). */
export function hasDays(schema) {
  const properties = propertiesOf(schema);
  return DAY_PARAMS.some((name) => name in properties);
}

const isNumber = (value) => typeof value === "number" && Number.isFinite(value);

/** The area the parameters set, or null while any edge is missing. */
export function areaOf(params) {
  const p = params || {};
  if (!AREA_PARAMS.every((name) => isNumber(p[name]))) return null;
  return { west: p.lon_min, south: p.lat_min, east: p.lon_max, north: p.lat_max };
}

const round = (value) => Math.round(value * 100) / 100;

/** ``params`` with the area set to ``box`` (edges to 0.01°), or removed when ``box`` is null. */
export function withArea(params, box) {
  const next = { ...(params || {}) };
  if (!box) {
    AREA_PARAMS.forEach((name) => delete next[name]);
    return next;
  }
  next.lat_min = round(box.south);
  next.lat_max = round(box.north);
  next.lon_min = round(box.west);
  next.lon_max = round(box.east);
  return next;
}

/** ``params`` with the first and last day set to ``span`` ({start, end}). */
export function withDays(params, span) {
  return { ...(params || {}), start: span.start, end: span.end };
}

/** Whether the data use longitudes from 0 to 360 east. */
export function eastOnly(extent) {
  return Boolean(extent && extent.bbox && extent.bbox.east > 180);
}

/** A longitude (−180…180, from the map) in the data's convention. */
export function inConvention(lon, extent) {
  if (eastOnly(extent) && lon < 0) return lon + 360;
  return lon;
}

/** The box two dragged corners ([lon, lat] each) span, in the data's convention. */
export function boxFromCorners(a, b, extent) {
  const clampLat = (lat) => Math.max(-90, Math.min(90, lat));
  let west = inConvention(Math.min(a[0], b[0]), extent);
  let east = inConvention(Math.max(a[0], b[0]), extent);
  if (west > east) [west, east] = [inConvention(a[0], extent), inConvention(b[0], extent)].sort((x, y) => x - y);
  return { west, south: clampLat(Math.min(a[1], b[1])), east, north: clampLat(Math.max(a[1], b[1])) };
}

/** What the map shows: the data's area and the chosen one with a margin around them (the world when
 * neither is known, or when ``world``). */
export function viewOf(extent, area, world = false) {
  const boxes = [extent && extent.bbox, area].filter(Boolean);
  if (world || !boxes.length) return { ...WORLD, west: eastOnly(extent) ? 0 : -180, east: eastOnly(extent) ? 360 : 180 };
  let west = Math.min(...boxes.map((box) => box.west));
  let east = Math.max(...boxes.map((box) => box.east));
  let south = Math.min(...boxes.map((box) => box.south));
  let north = Math.max(...boxes.map((box) => box.north));
  const padLon = Math.max(2, (east - west) * 0.4);
  const padLat = Math.max(2, (north - south) * 0.4);
  west -= padLon;
  east += padLon;
  south = Math.max(-90, south - padLat);
  north = Math.min(90, north + padLat);
  if (east - west > 360) {
    const middle = (east + west) / 2;
    [west, east] = [middle - 180, middle + 180];
  }
  return { west, south, east, north };
}

const lat = (value) => `${Math.abs(value).toFixed(2)}°${value < 0 ? "S" : "N"}`;
const lon = (value) => {
  const east = value > 180 ? value - 360 : value;
  return `${Math.abs(east).toFixed(2)}°${east < 0 ? "W" : "E"}`;
};

/** "43.00°N–48.50°N, 10.00°W–1.00°W" */
export function describeArea(box) {
  return `${lat(box.south)}–${lat(box.north)}, ${lon(box.west)}–${lon(box.east)}`;
}

/** What is wrong with the chosen days against the data's, in words, or "" when nothing is. */
export function daysProblem(params, extent) {
  const span = extent && extent.time;
  const p = params || {};
  if (!span) return "";
  const covers = `the data cover ${span.start} to ${span.end}`;
  if (typeof p.start === "string" && p.start.slice(0, 10) > span.end) return `The first day is after the data end: ${covers}.`;
  if (typeof p.end === "string" && p.end.slice(0, 10) < span.start) return `The last day is before the data begin: ${covers}.`;
  return "";
}

/** What is wrong with the chosen area against the data's, in words, or "" when nothing is. */
export function areaProblem(params, extent) {
  const data = extent && extent.bbox;
  const area = areaOf(params);
  if (!data || !area) return "";
  const west = inConvention(area.west, extent);
  const east = inConvention(area.east, extent);
  const apart = area.north < data.south || area.south > data.north || east < data.west || west > data.east;
  return apart ? `The area lies outside the data: they cover ${describeArea(data)}.` : "";
}
