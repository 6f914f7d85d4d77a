// The JSON Schema subset a filter's configSchema may use (docs/filter-abi.md), and the check
// of a WasmFilter's config against it. Pure code shared by the SDK build, the proxy and the
// control plane, so a config is judged the same everywhere.

const KEYWORDS = [
  "type",
  "title",
  "description",
  "properties",
  "required",
  "additionalProperties",
  "items",
  "enum",
  "minimum",
  "exclusiveMinimum",
  "maximum",
  "exclusiveMaximum",
  "minLength",
  "maxLength",
  "minItems",
  "maxItems",
  "pattern",
  "default",
] as const;
const TYPES = ["object", "array", "string", "number", "integer", "boolean", "null"] as const;

type Schema = { [K in (typeof KEYWORDS)[number]]?: unknown };

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function jsonType(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  return typeof value === "object" ? "object" : typeof value;
}

function hasType(value: unknown, type: string): boolean {
  if (type === "integer") return Number.isInteger(value);
  return jsonType(value) === type;
}

/** `base.key`, or `base["odd key"]` when the key is not an identifier. */
function child(base: string, key: string | number): string {
  if (typeof key === "number") return `${base}[${key}]`;
  return /^[A-Za-z_$][\w$]*$/.test(key) ? `${base}.${key}` : `${base}[${JSON.stringify(key)}]`;
}

function equal(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => equal(x, b[i]));
  if (isObject(a) && isObject(b)) {
    const keys = Object.keys(a);
    return keys.length === Object.keys(b).length && keys.every((k) => Object.hasOwn(b, k) && equal(a[k], b[k]));
  }
  return false;
}

const isCount = (value: unknown) => Number.isInteger(value) && (value as number) >= 0;

/** What is wrong with a schema itself (unsupported keywords, wrong keyword values), with paths. */
export function checkSchema(schema: unknown, path = "configSchema"): string[] {
  if (!isObject(schema)) return [`${path}: must be a JSON Schema object, got ${jsonType(schema)}`];
  const problems: string[] = [];
  const s = schema as Schema;
  for (const key of Object.keys(schema)) {
    if (!(KEYWORDS as readonly string[]).includes(key))
      problems.push(`${child(path, key)}: "${key}" is not supported; a configSchema may use ${KEYWORDS.join(", ")}`);
  }
  if (s.type !== undefined) {
    const types = Array.isArray(s.type) ? s.type : [s.type];
    if (types.length === 0 || !types.every((t) => (TYPES as readonly unknown[]).includes(t)))
      problems.push(`${path}.type: must be one of ${TYPES.join(", ")} or an array of them`);
  }
  // Annotations: they document a field and never change what is accepted.
  for (const key of ["title", "description"] as const)
    if (s[key] !== undefined && typeof s[key] !== "string") problems.push(`${path}.${key}: must be a string`);
  if (s.properties !== undefined) {
    if (!isObject(s.properties)) problems.push(`${path}.properties: must be an object of schemas`);
    else for (const [key, sub] of Object.entries(s.properties)) problems.push(...checkSchema(sub, child(`${path}.properties`, key)));
  }
  if (s.required !== undefined && !(Array.isArray(s.required) && s.required.every((r) => typeof r === "string")))
    problems.push(`${path}.required: must be an array of property names`);
  else if (Array.isArray(s.required) && s.additionalProperties === false) {
    for (const name of s.required as string[])
      if (!isObject(s.properties) || !Object.hasOwn(s.properties, name))
        problems.push(`${path}.required: "${name}" is not in properties, and additionalProperties is false`);
  }
  if (s.additionalProperties !== undefined && typeof s.additionalProperties !== "boolean")
    problems.push(`${path}.additionalProperties: must be true or false (schemas are not supported here)`);
  if (s.items !== undefined) problems.push(...checkSchema(s.items, `${path}.items`));
  if (s.enum !== undefined && !(Array.isArray(s.enum) && s.enum.length > 0)) problems.push(`${path}.enum: must be a non-empty array`);
  for (const key of ["minimum", "maximum"] as const)
    if (s[key] !== undefined && typeof s[key] !== "number") problems.push(`${path}.${key}: must be a number`);
  // JSON Schema 2020-12: the bound itself, not draft 4's boolean modifier of minimum/maximum.
  for (const key of ["exclusiveMinimum", "exclusiveMaximum"] as const) {
    if (s[key] !== undefined && typeof s[key] !== "number")
      problems.push(`${path}.${key}: must be a number (the bound itself, as in JSON Schema 2020-12), got ${jsonType(s[key])}`);
  }
  for (const key of ["minLength", "maxLength", "minItems", "maxItems"] as const)
    if (s[key] !== undefined && !isCount(s[key])) problems.push(`${path}.${key}: must be a non-negative integer`);
  if (s.pattern !== undefined) {
    if (typeof s.pattern !== "string") problems.push(`${path}.pattern: must be a string`);
    else {
      try {
        new RegExp(s.pattern, "u");
      } catch (e) {
        problems.push(`${path}.pattern: is not a valid regular expression (${(e as Error).message})`);
      }
    }
  }
  // A default that its own schema refuses would mislead whoever copies it.
  if (problems.length === 0 && s.default !== undefined) problems.push(...validate(s, s.default, `${path}.default`));
  return problems;
}

function validate(s: Schema, value: unknown, path: string): string[] {
  if (s.type !== undefined) {
    const types = (Array.isArray(s.type) ? s.type : [s.type]) as string[];
    if (!types.some((t) => hasType(value, t))) return [`${path}: expected ${types.join(" or ")}, got ${jsonType(value)}`];
  }
  if (s.enum !== undefined && !(s.enum as unknown[]).some((e) => equal(e, value))) {
    return [`${path}: must be one of ${(s.enum as unknown[]).map((e) => JSON.stringify(e)).join(", ")}, got ${JSON.stringify(value)}`];
  }
  const problems: string[] = [];
  if (typeof value === "number") {
    if (typeof s.minimum === "number" && value < s.minimum) problems.push(`${path}: must be at least ${s.minimum}, got ${value}`);
    if (typeof s.maximum === "number" && value > s.maximum) problems.push(`${path}: must be at most ${s.maximum}, got ${value}`);
    if (typeof s.exclusiveMinimum === "number" && value <= s.exclusiveMinimum)
      problems.push(`${path}: must be greater than ${s.exclusiveMinimum}, got ${value}`);
    if (typeof s.exclusiveMaximum === "number" && value >= s.exclusiveMaximum)
      problems.push(`${path}: must be less than ${s.exclusiveMaximum}, got ${value}`);
  }
  if (typeof value === "string") {
    const length = [...value].length; // characters, not UTF-16 units
    if (typeof s.minLength === "number" && length < s.minLength)
      problems.push(`${path}: must be at least ${s.minLength} characters long, got ${length}`);
    if (typeof s.maxLength === "number" && length > s.maxLength)
      problems.push(`${path}: must be at most ${s.maxLength} characters long, got ${length}`);
    if (typeof s.pattern === "string" && !new RegExp(s.pattern, "u").test(value))
      problems.push(`${path}: must match /${s.pattern}/, got ${JSON.stringify(value)}`);
  }
  if (Array.isArray(value)) {
    if (typeof s.minItems === "number" && value.length < s.minItems)
      problems.push(`${path}: must have at least ${s.minItems} items, got ${value.length}`);
    if (typeof s.maxItems === "number" && value.length > s.maxItems)
      problems.push(`${path}: must have at most ${s.maxItems} items, got ${value.length}`);
    if (isObject(s.items)) value.forEach((item, i) => problems.push(...validate(s.items as Schema, item, child(path, i))));
  }
  if (isObject(value)) {
    const properties = isObject(s.properties) ? (s.properties as Record<string, Schema>) : {};
    if (Array.isArray(s.required))
      for (const name of s.required as string[]) if (!Object.hasOwn(value, name)) problems.push(`${child(path, name)}: is required`);
    for (const [key, item] of Object.entries(value)) {
      if (Object.hasOwn(properties, key)) problems.push(...validate(properties[key]!, item, child(path, key)));
      else if (s.additionalProperties === false) {
        const known = Object.keys(properties);
        problems.push(`${child(path, key)}: is not a known field${known.length ? ` (known: ${known.join(", ")})` : ""}`);
      }
    }
  }
  return problems;
}

/**
 * The ways `config` does not match `schema`, each as "path: problem" ("config.rate: expected
 * number, got string"); empty when it matches. A schema outside the supported subset is
 * itself reported, so it never lets a config through unchecked.
 */
export function validateConfig(schema: unknown, config: unknown): string[] {
  const problems = checkSchema(schema);
  if (problems.length) return problems.map((p) => `the filter's ${p}`);
  return validate(schema as Schema, config, "config");
}
