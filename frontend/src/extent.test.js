import { describe, expect, it } from "vitest";
import { areaOf, areaProblem, boxFromCorners, daysProblem, describeArea, hasArea, hasDays, viewOf, withArea, withDays } from "./extent.js";

const BISCAY = { bbox: { west: -10, south: 43, east: -1, north: 48.5 }, time: { start: "2023-06-01", end: "2023-08-31" } };
const PACIFIC = { bbox: { west: 120, south: -10, east: 280, north: 10 } };

describe("area and days of a block", () => {
  it("finds the parameters that hold them", () => {
    const schema = { properties: { lat_min: {}, lat_max: {}, lon_min: {}, lon_max: {}, start: {} } };
    expect(hasArea(schema)).toBe(true);
    expect(hasDays(schema)).toBe(true);
    expect(hasArea({ properties: { lat_min: {}, lat_max: {} } })).toBe(false);
    expect(hasDays({ properties: {} })).toBe(false);
  });

  it("reads an area only when every edge is a number", () => {
    expect(areaOf({ lat_min: 44, lat_max: 46, lon_min: -5, lon_max: -2 })).toEqual({ west: -5, south: 44, east: -2, north: 46 });
    expect(areaOf({ lat_min: 44, lat_max: 46, lon_min: -5 })).toBeNull();
    expect(areaOf({ lat_min: "44", lat_max: 46, lon_min: -5, lon_max: -2 })).toBeNull();
  });

  it("writes a drawn box as rounded edges and clears it, keeping other parameters", () => {
    const params = withArea({ variables: ["sst"] }, { west: -5.123, south: 44.456, east: -2.001, north: 46.999 });
    expect(params).toEqual({ variables: ["sst"], lat_min: 44.46, lat_max: 47, lon_min: -5.12, lon_max: -2 });
    expect(withArea(params, null)).toEqual({ variables: ["sst"] });
    expect(withDays({ a: 1 }, BISCAY.time)).toEqual({ a: 1, start: "2023-06-01", end: "2023-08-31" });
  });

  it("turns dragged corners into a box in the data's longitude convention", () => {
    expect(boxFromCorners([-2, 47], [-6, 44], BISCAY)).toEqual({ west: -6, south: 44, east: -2, north: 47 });
    expect(boxFromCorners([-150, 5], [170, -5], PACIFIC)).toEqual({ west: 170, south: -5, east: 210, north: 5 });
    expect(boxFromCorners([0, 95], [1, -100], null)).toEqual({ west: 0, south: -90, east: 1, north: 90 });
  });

  it("shows the data with a margin, or the world", () => {
    const view = viewOf(BISCAY, null);
    expect(view.west).toBeCloseTo(-13.6);
    expect(view.east).toBeCloseTo(2.6);
    expect(view.south).toBeCloseTo(40.8);
    expect(view.north).toBeCloseTo(50.7);
    expect(viewOf(null, null)).toEqual({ west: -180, south: -90, east: 180, north: 90 });
    expect(viewOf(PACIFIC, null, true)).toEqual({ west: 0, south: -90, east: 360, north: 90 });
    const wide = viewOf({ bbox: { west: -180, south: -80, east: 180, north: 80 } }, null);
    expect(wide.east - wide.west).toBe(360);
  });

  it("says in words where the data are and what does not fit them", () => {
    expect(describeArea(BISCAY.bbox)).toBe("43.00°N–48.50°N, 10.00°W–1.00°W");
    expect(describeArea(PACIFIC.bbox)).toBe("10.00°S–10.00°N, 120.00°E–80.00°W");
    expect(daysProblem({ start: "2024-01-01" }, BISCAY)).toBe("The first day is after the data end: the data cover 2023-06-01 to 2023-08-31.");
    expect(daysProblem({ end: "2023-05-31" }, BISCAY)).toMatch(/^The last day is before the data begin/);
    expect(daysProblem({ start: "2023-07-01", end: "2023-07-31" }, BISCAY)).toBe("");
    expect(areaProblem({ lat_min: 30, lat_max: 35, lon_min: -5, lon_max: -2 }, BISCAY)).toMatch(/^The area lies outside the data/);
    expect(areaProblem({ lat_min: 44, lat_max: 45, lon_min: -5, lon_max: -2 }, BISCAY)).toBe("");
    expect(areaProblem({ lat_min: 0, lat_max: 5, lon_min: -150, lon_max: -140 }, PACIFIC)).toBe("");
  });
});
