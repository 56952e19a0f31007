import { describe, expect, it } from "vitest";
import { formatList, humanErrors, isScalarList, parseList, uiSchemaFor } from "./params.js";

describe("list parameters on one line", () => {
  it("splits on commas, trims, drops empty parts, and leaves nothing typed absent", () => {
    expect(parseList(" sst, ssh ,,", "string")).toEqual(["sst", "ssh"]);
    expect(parseList("  ", "string")).toBeUndefined();
    expect(parseList("1, 2.5, x", "number")).toEqual([1, 2.5, "x"]); // the word stays for the validator
    expect(formatList(["sst", "ssh"])).toBe("sst, ssh");
    expect(formatList(undefined)).toBe("");
  });

  it("applies to lists of plain values only, and offers names only where the data have them", () => {
    const schema = {
      type: "object",
      properties: {
        variables: { type: "array", items: { type: "string" } },
        modes: { type: "array", items: { type: "string", enum: ["a", "b"] } },
        boxes: { type: "array", items: { type: "object" } },
        variable: { type: "string" },
        method: { type: "string", enum: ["x"] },
      },
    };
    expect(isScalarList(schema.properties.variables)).toBe(true);
    expect(isScalarList(schema.properties.modes)).toBe(false);
    const ui = uiSchemaFor(schema, { variable: ["sst"], method: ["x"] });
    expect(ui.variables).toEqual({ "ui:field": "scalarList" });
    expect(ui.modes).toBeUndefined();
    expect(ui.boxes).toBeUndefined();
    expect(ui.variable).toEqual({ "ui:widget": "choice" });
    expect(ui.method).toBeUndefined();
    expect(uiSchemaFor(schema).variable).toBeUndefined();
  });
});

describe("validation messages", () => {
  it("say what the server says, not ajv's operators", () => {
    const [max, req, other] = humanErrors([
      { name: "maximum", property: ".lat_max", message: "must be <= 90", params: { limit: 90 } },
      { name: "required", property: ".source", message: "must have required property 'source'", params: {} },
      { name: "if", property: ".x", message: "must match \"then\" schema", params: {} },
    ]);
    expect(max.message).toBe("is greater than the maximum of 90");
    expect(max.stack).toBe(".lat_max is greater than the maximum of 90");
    expect(req.message).toBe("is required");
    expect(other.message).toBe("must match \"then\" schema");
  });
});
