// Checks a weft resource as the API server's schema would, for what reads resources without an
// API server in front (local mode) and for the controller's own checks. Problems name the
// field the way kubectl does: "spec.match[0].ports[1]: ...".
import * as v from "valibot";

export type Parsed<T> = { ok: true; value: T } | { ok: false; problems: string[] };

function problem(issue: v.BaseIssue<unknown>): string {
  const path = (issue.path ?? [])
    .map((p) => (typeof p.key === "number" ? `[${p.key}]` : `.${String(p.key)}`))
    .join("")
    .replace(/^\./, "");
  const message = issue.received === "undefined" && issue.kind === "schema" ? "is required" : issue.message;
  return `${path || "(root)"}: ${message}`;
}

export function parseResource<TSchema extends v.GenericSchema>(schema: TSchema, input: unknown): Parsed<v.InferOutput<TSchema>> {
  const result = v.safeParse(schema, input);
  return result.success ? { ok: true, value: result.output } : { ok: false, problems: result.issues.map(problem) };
}
