// Pure helpers of the parameter form: list parameters typed as one comma-separated line, and the
// validator's messages in the words the server's Problems use.

/** Whether a JSON Schema is a list of plain values (strings or numbers) that one text field can hold. */
export function isScalarList(schema) {
  const items = schema && schema.type === "array" ? schema.items : null;
  return Boolean(items && !Array.isArray(items) && ["string", "number", "integer"].includes(items.type) && !items.enum);
}

/** The uiSchema of a block's form: every list-of-values property as one comma-separated field, and a
 * text property the data offer names for (``choices``: parameter → names) with those names beside it. */
export function uiSchemaFor(schema, choices = {}) {
  const ui = { "ui:submitButtonOptions": { norender: true } };
  for (const [name, property] of Object.entries((schema && schema.properties) || {})) {
    if (isScalarList(property)) ui[name] = { "ui:field": "scalarList" };
    else if (property && property.type === "string" && !property.enum && choices[name]) ui[name] = { "ui:widget": "choice" };
  }
  return ui;
}

/** "sst, ssh" → ["sst", "ssh"]; numbers for number items (a word stays a word, for the validator to
 * name); nothing typed → undefined (the parameter is left out, never an empty list invented). */
export function parseList(text, itemType) {
  const parts = String(text)
    .split(",")
    .map((part) => part.trim())
    .filter((part) => part !== "");
  if (!parts.length) return undefined;
  if (itemType === "number" || itemType === "integer") {
    return parts.map((part) => (Number.isFinite(Number(part)) ? Number(part) : part));
  }
  return parts;
}

export function formatList(value) {
  return Array.isArray(value) ? value.join(", ") : "";
}

const WORDS = {
  maximum: (e) => `is greater than the maximum of ${e.params.limit}`,
  minimum: (e) => `is less than the minimum of ${e.params.limit}`,
  exclusiveMaximum: (e) => `must be less than ${e.params.limit}`,
  exclusiveMinimum: (e) => `must be greater than ${e.params.limit}`,
  required: () => "is required",
  type: (e) => `must be ${e.params.type === "integer" ? "a whole number" : `a ${e.params.type}`}`,
  minLength: (e) => (e.params.limit === 1 ? "must not be empty" : `must be at least ${e.params.limit} characters long`),
  maxLength: (e) => `must be at most ${e.params.limit} characters long`,
  minItems: (e) => (e.params.limit === 1 ? "needs at least one entry" : `needs at least ${e.params.limit} entries`),
  maxItems: (e) => `takes at most ${e.params.limit} entries`,
  uniqueItems: () => "lists the same entry twice",
  enum: (e) => `must be one of ${(e.params.allowedValues || []).join(", ")}`,
  format: (e) => (e.params.format === "date" ? "must be a date (YYYY-MM-DD)" : `must be a ${e.params.format}`),
};

/** rjsf's ``transformErrors``: ajv's terse messages ("must be <= 90") in the server's words ("is
 * greater than the maximum of 90", which Problems shows after the value), so both say the same. */
export function humanErrors(errors) {
  return errors.map((error) => {
    const words = WORDS[error.name];
    if (!words) return error;
    const message = words(error);
    return { ...error, message, stack: `${error.property} ${message}`.trim() };
  });
}
