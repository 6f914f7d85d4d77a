// Sample requests for `weft filter test` (a filter's test/requests.json): each gives a
// request, optionally the filter's config, and what the filter should do with it.
import { readFile } from "node:fs/promises";
import * as v from "valibot";

const HeaderName = v.pipe(v.string(), v.regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, "must be a header name"));
const Status = v.pipe(
  v.number("must be a number"),
  v.integer("must be an integer"),
  v.minValue(200, "must be 200-599"),
  v.maxValue(599, "must be 200-599"),
);

const Fixture = v.pipe(
  v.strictObject({
    name: v.pipe(v.string("must be a string"), v.nonEmpty("must not be empty")),
    request: v.strictObject({
      method: v.pipe(v.string("must be a string"), v.regex(/^[A-Z]+$/, "must be an upper-case method such as GET")),
      /** Path with query. */
      path: v.pipe(v.string("must be a string"), v.startsWith("/", 'must start with "/"')),
      headers: v.optional(v.record(HeaderName, v.string("must be a string")), {}),
      body: v.optional(v.string("must be a string")),
      /** Who is asking (weft.source.*): the address defaults to 127.0.0.1, no principal. */
      source: v.optional(v.strictObject({ address: v.optional(v.string()), principal: v.optional(v.string()) })),
    }),
    /** The filter's config for this request (default {}). */
    config: v.optional(v.record(v.string(), v.unknown(), "must be an object")),
    expect: v.strictObject({
      /** The filter answers locally with this status. */
      status: v.optional(Status),
      /** The filter lets the request through to the upstream. */
      continue: v.optional(v.literal(true, "must be true (or left out)")),
      /** Headers of the local reply (with status) or of the upstream request (with continue); null: absent. */
      headers: v.optional(v.record(HeaderName, v.nullable(v.string("must be a string or null")))),
      /** Headers of the response the client gets, after the response phases (with continue); null: absent. */
      responseHeaders: v.optional(v.record(HeaderName, v.nullable(v.string("must be a string or null")))),
    }),
  }),
  v.check(
    (f) => (f.expect.status === undefined) !== (f.expect.continue === undefined),
    'expect: give either "status" (the filter answers locally) or "continue": true',
  ),
  v.check(
    (f) => f.expect.responseHeaders === undefined || f.expect.continue === true,
    'expect.responseHeaders: only with "continue": true (a local reply has no response phases)',
  ),
);

export type FilterFixture = v.InferOutput<typeof Fixture>;

export class FixtureError extends Error {
  readonly problems: string[];
  constructor(file: string, problems: string[]) {
    super(`${file} is not a valid list of sample requests:\n${problems.map((p) => `  ${file}: ${p}`).join("\n")}`);
    this.name = "FixtureError";
    this.problems = problems;
  }
}

function where(issue: v.BaseIssue<unknown>): string {
  return (issue.path ?? []).map((p) => (typeof p.key === "number" ? `[${p.key}]` : `.${String(p.key)}`)).join("");
}

/** Checks sample requests; problems read "[2].expect.status: must be 200-599". */
export function validateFixtures(input: unknown): { ok: true; fixtures: FilterFixture[] } | { ok: false; problems: string[] } {
  const result = v.safeParse(v.array(Fixture, "must be an array of sample requests"), input, { abortEarly: false });
  if (!result.success) {
    return {
      ok: false,
      problems: result.issues.map((issue) => {
        const path = where(issue);
        if (issue.received === "undefined") return `${path}: is required`;
        if (issue.type === "strict_object") return `${path}: is not a field here`;
        return path ? `${path}${issue.type === "check" ? "." : ": "}${issue.message}` : issue.message;
      }),
    };
  }
  const seen = new Set<string>();
  const problems: string[] = [];
  result.output.forEach((f, i) => {
    if (seen.has(f.name)) problems.push(`[${i}].name: "${f.name}" is used twice; names say which sample failed`);
    seen.add(f.name);
  });
  return problems.length ? { ok: false, problems } : { ok: true, fixtures: result.output };
}

/** Reads and checks a requests.json; throws a FixtureError naming the file and each problem. */
export async function loadFixtures(file: string): Promise<FilterFixture[]> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(file, "utf8"));
  } catch (e) {
    throw new FixtureError(file, [
      (e as NodeJS.ErrnoException).code === "ENOENT" ? "does not exist" : `is not JSON: ${(e as Error).message}`,
    ]);
  }
  const check = validateFixtures(parsed);
  if (!check.ok) throw new FixtureError(file, check.problems);
  return check.fixtures;
}
