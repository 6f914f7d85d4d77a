// Turns a valibot schema into a Kubernetes structural OpenAPI v3 schema (what a
// CustomResourceDefinition's `openAPIV3Schema` holds), so that the API server refuses what
// weft's own parser refuses. Anything that has no faithful equivalent is refused with its path
// and what to write instead, never approximated: a looser CRD would store resources the
// controller then rejects. The mapping is documented in docs/resources.md ("How the CRDs are
// generated").
import * as v from "valibot";
import { isRule } from "./cel.ts";

type Scalar = string | number | boolean;

/** The subset of apiextensions.k8s.io/v1 JSONSchemaProps that the generator writes. */
export interface StructuralSchema {
  type?: "object" | "array" | "string" | "integer" | "number" | "boolean";
  format?: string;
  enum?: Scalar[];
  pattern?: string;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: boolean;
  exclusiveMaximum?: boolean;
  multipleOf?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  properties?: Record<string, StructuralSchema>;
  required?: string[];
  additionalProperties?: StructuralSchema;
  items?: StructuralSchema;
  allOf?: StructuralSchema[];
  default?: unknown;
  title?: string;
  description?: string;
  "x-kubernetes-preserve-unknown-fields"?: true;
  "x-kubernetes-validations"?: { rule: string; message: string }[];
  [extension: `x-kubernetes-${string}`]: unknown;
}

export class SchemaError extends Error {
  constructor(at: string, what: string, instead: string) {
    super(`cannot express ${at || "(root)"} as a Kubernetes structural schema: ${what}; ${instead}`);
    this.name = "SchemaError";
  }
}

/** What the generator reads of a valibot schema or action (they are plain objects). */
interface Piece {
  readonly kind: string;
  readonly type: string;
  readonly [field: string]: unknown;
}

export function toStructural(schema: v.GenericSchema, at = ""): StructuralSchema {
  return convert(schema as unknown as Piece, at);
}

const child = (at: string, key: string) => (at ? `${at}.${key}` : key);

function convert(s: Piece, at: string): StructuralSchema {
  if (s.async) throw new SchemaError(at, `async valibot schema "${s.type}"`, "use the synchronous form");
  if (Array.isArray(s.pipe)) return pipe(s.pipe as Piece[], at);
  switch (s.type) {
    case "string":
    case "number":
    case "boolean":
      return { type: s.type };
    case "literal":
      return enumOf([s.literal], at);
    case "picklist":
    case "enum":
      return enumOf(s.options as unknown[], at);
    case "union":
      return union(s.options as Piece[], at);
    case "object":
      return object(s.entries as Record<string, Piece>, at);
    case "loose_object":
      return { ...object(s.entries as Record<string, Piece>, at), "x-kubernetes-preserve-unknown-fields": true };
    case "variant":
      return variant(s.key as string, s.options as Piece[], at);
    case "array":
      return { type: "array", items: convert(s.item as Piece, `${at}[]`) };
    case "record":
      return record(s.key as Piece, s.value as Piece, at);
    case "unknown":
    case "any":
      return { "x-kubernetes-preserve-unknown-fields": true };
    case "optional":
    case "exact_optional": {
      const node = convert(s.wrapped as Piece, at);
      const value = v.getDefault(s as unknown as v.OptionalSchema<v.GenericSchema, unknown>);
      if (value !== undefined) node.default = json(value, at);
      return node;
    }
    case "strict_object":
      throw new SchemaError(
        at,
        "v.strictObject",
        "the API server prunes unknown fields (or refuses them under kubectl's strict field validation), a schema cannot demand it: use v.object",
      );
    case "object_with_rest":
      throw new SchemaError(
        at,
        "v.objectWithRest",
        "a structural schema cannot have both properties and additionalProperties: use v.object, or v.record for a map",
      );
    case "nullable":
    case "nullish":
    case "undefinedable":
      throw new SchemaError(at, `v.${s.type}`, "a Kubernetes field is absent rather than null: use v.optional");
    case "lazy":
      throw new SchemaError(at, "v.lazy", "a CRD schema cannot be recursive: give the nesting a fixed depth");
    default:
      throw new SchemaError(
        at,
        `valibot schema "${s.type}" has no OpenAPI equivalent`,
        "use object, array, record, string, number, boolean, picklist, literal, variant, optional or unknown",
      );
  }
}

function pipe(items: Piece[], at: string): StructuralSchema {
  const [root, ...actions] = items;
  const node = convert(root, at);
  for (const a of actions) {
    if (a.kind === "metadata") metadata(node, a, at);
    else if (a.kind === "validation") validation(node, a, at);
    else if (a.kind === "transformation")
      throw new SchemaError(
        at,
        `valibot transformation "${a.type}"`,
        "the API server stores the input as written: transform it in the controller, not in the schema",
      );
    else
      throw new SchemaError(
        at,
        `a valibot ${a.kind} "${a.type}" after the first item of a pipe`,
        "pipe one schema, then validations and metadata",
      );
  }
  return node;
}

function metadata(node: StructuralSchema, a: Piece, at: string): void {
  switch (a.type) {
    case "description":
      node.description = a.description as string; // the last one wins, as in v.getDescription
      return;
    case "title":
      node.title = a.title as string;
      return;
    case "metadata":
      // the way to set list semantics (x-kubernetes-list-type, ...), which valibot has no word for
      for (const [key, value] of Object.entries(a.metadata as Record<string, unknown>)) {
        if (!key.startsWith("x-kubernetes-"))
          throw new SchemaError(at, `v.metadata key "${key}"`, "only x-kubernetes-* extensions are copied into the CRD");
        node[key as `x-kubernetes-${string}`] = json(value, at);
      }
      return;
    default:
      throw new SchemaError(at, `valibot metadata "${a.type}"`, "use v.description, v.title or v.metadata with x-kubernetes-* keys");
  }
}

type Keyword =
  | "minimum"
  | "maximum"
  | "exclusiveMinimum"
  | "exclusiveMaximum"
  | "multipleOf"
  | "minLength"
  | "maxLength"
  | "minItems"
  | "maxItems"
  | "format";

function set(node: StructuralSchema, key: Keyword, value: number | boolean | string, at: string): void {
  if (node[key] !== undefined && node[key] !== value)
    throw new SchemaError(at, `two different ${key} constraints (${node[key]} and ${value})`, "keep one");
  (node as Record<Keyword, unknown>)[key] = value;
}

function validation(node: StructuralSchema, a: Piece, at: string): void {
  const req = a.requirement;
  const number = () => {
    if (typeof req !== "number") throw new SchemaError(at, `v.${a.type}(${String(req)})`, "bounds must be numbers");
    return req;
  };
  const size = (min: boolean) => {
    if (node.type === "string") return min ? "minLength" : "maxLength";
    if (node.type === "array") return min ? "minItems" : "maxItems";
    throw new SchemaError(at, `a length constraint on a ${node.type ?? "free-form"} value`, "use it on strings or arrays");
  };
  switch (a.type) {
    case "integer":
      node.type = "integer";
      return;
    case "min_value":
      return set(node, "minimum", number(), at);
    case "max_value":
      return set(node, "maximum", number(), at);
    case "gt_value":
      set(node, "minimum", number(), at);
      return set(node, "exclusiveMinimum", true, at);
    case "lt_value":
      set(node, "maximum", number(), at);
      return set(node, "exclusiveMaximum", true, at);
    case "multiple_of":
      return set(node, "multipleOf", number(), at);
    case "min_length":
    case "non_empty":
      return set(node, size(true), a.type === "non_empty" ? 1 : number(), at);
    case "max_length":
      return set(node, size(false), number(), at);
    case "length":
      set(node, size(true), number(), at);
      return set(node, size(false), number(), at);
    case "regex": {
      const source = regexSource(req as RegExp, at);
      // The API server reports a failed `pattern` by printing the pattern. A pattern with its
      // own message on a bounded string outside any list becomes a CEL rule that prints the
      // message instead (in a list of unbounded length its estimated cost exceeds the budget).
      if (
        typeof a.message === "string" &&
        node.type === "string" &&
        node.maxLength !== undefined &&
        !at.includes("[]") &&
        !source.includes("'")
      ) {
        (node["x-kubernetes-validations"] ??= []).push({ rule: `self.matches(r'${source}')`, message: a.message });
        return;
      }
      return pattern(node, source);
    }
    case "starts_with":
      return pattern(node, `^${escapeRegex(req as string)}`);
    case "ends_with":
      return pattern(node, `${escapeRegex(req as string)}$`);
    case "iso_timestamp":
      return set(node, "format", "date-time", at);
    case "check":
      if (!isRule(a)) {
        throw new SchemaError(
          at,
          "v.check runs a function the API server cannot run",
          "use rule() from control/crd/cel.ts to pair it with a CEL expression",
        );
      }
      (node["x-kubernetes-validations"] ??= []).push({ rule: a.kubernetes.rule, message: a.kubernetes.message });
      return;
    default:
      throw new SchemaError(
        at,
        `valibot action "${a.type}" has no OpenAPI equivalent here`,
        "express it with v.regex, a bound, or rule() from control/crd/cel.ts",
      );
  }
}

// One field has one `pattern`; further ones go into allOf, which structural schemas allow for
// value validations.
function pattern(node: StructuralSchema, source: string): void {
  if (node.pattern === undefined) node.pattern = source;
  else (node.allOf ??= []).push({ pattern: source });
}

// The API server matches patterns with Go's RE2: no lookaround, no backreferences, no flags.
function regexSource(re: RegExp, at: string): string {
  if (re.flags.replace("u", "") !== "")
    throw new SchemaError(at, `regex ${re} has flags`, "RE2 patterns have no flags: spell out the cases, e.g. [A-Za-z]");
  if (/\(\?<?[=!]|\\[1-9]|\\k</.test(re.source))
    throw new SchemaError(at, `regex ${re} uses lookaround or a backreference`, "the API server's RE2 has neither: rewrite it");
  // RegExp.source writes "/" as "\/"; RE2 reads both, people read the first more easily
  return re.source.replace(/\\(.)/g, (escaped, c: string) => (c === "/" ? "/" : escaped));
}

const escapeRegex = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

function enumOf(values: unknown[], at: string): StructuralSchema {
  const types = new Set<string>(values.map((x) => typeof x));
  if (types.size !== 1 || !["string", "number", "boolean"].some((t) => types.has(t))) {
    throw new SchemaError(
      at,
      `an enum of ${[...types].join(" and ")} values`,
      "an enum holds strings, numbers or booleans, one kind at a time",
    );
  }
  const scalars = values as Scalar[];
  const type = types.has("string")
    ? "string"
    : types.has("boolean")
      ? "boolean"
      : scalars.every((x) => Number.isInteger(x))
        ? "integer"
        : "number";
  return { type, enum: [...scalars] };
}

function union(options: Piece[], at: string): StructuralSchema {
  if (options.every((o) => o.type === "literal" && !o.pipe))
    return enumOf(
      options.map((o) => o.literal),
      at,
    );
  throw new SchemaError(
    at,
    "v.union of non-literal schemas (structural schemas forbid type-changing oneOf)",
    "use v.variant (objects told apart by a literal key) or v.picklist",
  );
}

const isOptional = (s: Piece) => s.type === "optional" || s.type === "exact_optional";

function object(entries: Record<string, Piece>, at: string): StructuralSchema {
  const properties: Record<string, StructuralSchema> = {};
  const required: string[] = [];
  for (const [key, entry] of Object.entries(entries)) {
    properties[key] = convert(entry, child(at, key));
    if (!isOptional(entry)) required.push(key);
  }
  return required.length ? { type: "object", properties, required } : { type: "object", properties };
}

function record(key: Piece, value: Piece, at: string): StructuralSchema {
  if (key.type !== "string" || key.pipe)
    throw new SchemaError(
      at,
      "a v.record whose keys are checked",
      "map keys can only be checked by a CEL rule: use v.record(v.string(), ...) with rule()",
    );
  if ((value.type === "unknown" || value.type === "any") && !value.pipe)
    return { type: "object", "x-kubernetes-preserve-unknown-fields": true };
  return { type: "object", additionalProperties: convert(value, `${at}.*`) };
}

const CEL_RESERVED = new Set(
  "true false null in as break const continue else for function if import let loop package namespace return var void while".split(" "),
);

function celField(name: string, at: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name) || CEL_RESERVED.has(name)) {
    throw new SchemaError(
      child(at, name),
      `field name "${name}" in a generated CEL rule`,
      "use a plain identifier that is not a CEL keyword",
    );
  }
  return `self.${name}`;
}

// Structural schemas forbid a oneOf whose branches declare types or properties, so a variant
// becomes one object with the union of the options' properties, the discriminator as an enum,
// and, for each option that needs more fields than all options share, a CEL rule. A field that
// appears in several options must be the same in each, and a field with a default must appear
// in all of them: the API server applies a default whatever the discriminator says.
function variant(key: string, options: Piece[], at: string): StructuralSchema {
  const properties: Record<string, StructuralSchema> = {};
  const seen = new Map<string, number>();
  const values: Scalar[] = [];
  const shapes: { values: Scalar[]; required: string[] }[] = [];
  let discriminatorDescription: string | undefined;
  for (const option of options) {
    if (option.type !== "object" || option.pipe)
      throw new SchemaError(at, `a v.variant option of type "${option.type}"`, "variant options must be plain v.object schemas");
    const node = object(option.entries as Record<string, Piece>, at);
    const discriminator = node.properties![key];
    if (!discriminator?.enum)
      throw new SchemaError(
        child(at, key),
        "a variant option whose key is not a literal or picklist",
        `give every option a literal "${key}"`,
      );
    values.push(...discriminator.enum);
    discriminatorDescription ??= discriminator.description;
    shapes.push({ values: discriminator.enum, required: node.required ?? [] });
    for (const [name, prop] of Object.entries(node.properties!)) {
      if (name === key) continue;
      if (properties[name] && JSON.stringify(properties[name]) !== JSON.stringify(prop)) {
        throw new SchemaError(
          child(at, name),
          `the options of the variant on "${key}" define "${name}" differently`,
          "use one definition in every option",
        );
      }
      properties[name] = prop;
      seen.set(name, (seen.get(name) ?? 0) + 1);
    }
  }
  for (const [name, prop] of Object.entries(properties)) {
    if (prop.default !== undefined && seen.get(name) !== options.length) {
      throw new SchemaError(
        child(at, name),
        `a default in only some options of the variant on "${key}"`,
        "the API server would apply it to every option: move the default into the controller or into every option",
      );
    }
  }
  const common = shapes.map((o) => o.required).reduce((a, b) => a.filter((x) => b.includes(x)));
  const discriminator = enumOf([...new Set(values)], child(at, key));
  if (discriminatorDescription) discriminator.description = discriminatorDescription;
  const node: StructuralSchema = { type: "object", properties: { [key]: discriminator, ...properties }, required: common };
  const rules = shapes.flatMap((o) => {
    const extra = o.required.filter((x) => !common.includes(x));
    if (!extra.length) return [];
    const literals = o.values.map((x) => JSON.stringify(x));
    const has = extra.map((x) => `has(${celField(x, at)})`);
    const when = literals.length === 1 ? `${celField(key, at)} != ${literals[0]}` : `!(${celField(key, at)} in [${literals.join(", ")}])`;
    return [
      {
        rule: `${when} || ${has.length > 1 ? `(${has.join(" && ")})` : has[0]}`,
        message: `${extra.join(", ")} ${extra.length > 1 ? "are" : "is"} required when ${key} is ${o.values.join(" or ")}`,
      },
    ];
  });
  if (rules.length) node["x-kubernetes-validations"] = rules;
  return node;
}

function isJson(x: unknown): boolean {
  if (x === null || typeof x === "string" || typeof x === "boolean") return true;
  if (typeof x === "number") return Number.isFinite(x);
  if (Array.isArray(x)) return x.every(isJson);
  if (typeof x === "object" && Object.getPrototypeOf(x) === Object.prototype) return Object.values(x as object).every(isJson);
  return false;
}

function json<T>(value: T, at: string): T {
  if (!isJson(value))
    throw new SchemaError(at, `the value ${String(value)} is not plain JSON`, "defaults and extensions must be JSON values");
  return structuredClone(value);
}
