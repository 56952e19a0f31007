// The editing operations on the cases the server's validation is tested with
// (editing-cases.json; tests/test_editing_cases.py checks the server side): each operation either
// refuses with the issue code the server would report, or gives exactly the document listed.
import { describe, expect, it } from "vitest";
import { makeCatalog, serialise } from "../document.js";
import * as operations from "./operations.js";
import cases from "./editing-cases.json";

const catalog = makeCatalog(cases.catalog);

function apply(testCase) {
  const operation = operations[testCase.op];
  if (typeof operation !== "function") throw new Error(`no operation ${testCase.op}`);
  const args = testCase.op === "connect" ? [...testCase.args, catalog] : testCase.args;
  return operation(testCase.before, ...args);
}

describe("editing operations agree with the server's validation", () => {
  for (const testCase of cases.cases) {
    it(testCase.name, () => {
      const before = serialise(testCase.before);
      if (testCase.code) {
        let refusal = null;
        try {
          apply(testCase);
        } catch (error) {
          refusal = error;
        }
        expect(refusal).toBeInstanceOf(operations.OperationError);
        expect(refusal.code).toBe(testCase.code);
      } else {
        expect(serialise(apply(testCase))).toBe(serialise(testCase.after));
      }
      expect(serialise(testCase.before)).toBe(before); // pure: the input is untouched
    });
  }

  it("names only codes the server lists as refusals", () => {
    for (const testCase of cases.cases) if (testCase.code) expect(cases.refused_codes).toContain(testCase.code);
  });
});
