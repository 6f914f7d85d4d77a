// A filter's manifest: its filter.json, stored by the build in the module's custom section
// "weft.manifest" (docs/filter-abi.md). Unknown fields are refused so that a misspelt one
// ("configschema") is not silently dropped.
import * as v from "valibot";
import { FilterPhase } from "../../proxy/config/filters.ts";
import { checkSchema } from "../../shared/filter-config-schema.ts";

export const MANIFEST_SECTION = "weft.manifest";

const SEMVER = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$/;

const Manifest = v.strictObject({
  // It names the OCI repository and the marketplace entry.
  name: v.pipe(
    v.string("must be a string"),
    v.regex(
      /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/,
      "must be lower-case letters, digits and '-', at most 63, starting and ending with a letter or digit (like rate-limit)",
    ),
  ),
  version: v.pipe(v.string("must be a string"), v.regex(SEMVER, 'must be a semantic version such as "1.0.0"')),
  description: v.pipe(v.string("must be a string"), v.nonEmpty("must say in a sentence what the filter does")),
  abi: v.literal(1, "must be 1, the filter ABI this weft builds for (docs/filter-abi.md)"),
  phase: v.optional(v.picklist(FilterPhase.options, `must be one of ${FilterPhase.options.join(", ")} (or left out: just before routing)`)),
  priority: v.optional(v.pipe(v.number("must be a number"), v.integer("must be an integer"))),
  configSchema: v.optional(v.record(v.string(), v.unknown(), "must be a JSON Schema object")),
  engine: v.optional(v.picklist(["assemblyscript", "typescript"], 'must be "assemblyscript" or "typescript"'), "assemblyscript"),
});

export type Manifest = v.InferOutput<typeof Manifest>;
export type ManifestCheck = { ok: true; manifest: Manifest } | { ok: false; problems: string[] };

const FIELDS = Object.keys(Manifest.entries);

function describe(issue: v.BaseIssue<unknown>): string {
  const path = issue.path?.map((p) => String(p.key)).join(".") ?? "";
  if (issue.received === "undefined") return `${path}: is required`;
  if (issue.type === "strict_object" && path) return `${path}: is not a manifest field (the fields are ${FIELDS.join(", ")})`;
  return path ? `${path}: ${issue.message}` : `the manifest ${issue.message}`;
}

/** Checks a manifest (parsed filter.json); problems read "version: must be a semantic version ...". */
export function validateManifest(input: unknown): ManifestCheck {
  if (typeof input !== "object" || input === null || Array.isArray(input))
    return { ok: false, problems: ["the manifest must be a JSON object"] };
  const result = v.safeParse(Manifest, input, { abortEarly: false });
  const problems = result.success ? [] : result.issues.map(describe);
  const schema = (input as { configSchema?: unknown }).configSchema;
  if (typeof schema === "object" && schema !== null) problems.push(...checkSchema(schema));
  return result.success && problems.length === 0 ? { ok: true, manifest: result.output } : { ok: false, problems };
}
