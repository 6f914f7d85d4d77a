// runtimes: node deno bun
// The filter SDK's tooling: reproducible builds that carry their manifest, build errors that
// point at the file and line, manifest/config/sample validation, the scaffold, and the
// marketplace index. (Running filters is covered where the proxy runs them.)
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { cp, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { buildFilter } from "../sdk/build/build.ts";
import { BuildError } from "../sdk/build/error.ts";
import { MANIFEST_SECTION, validateManifest } from "../sdk/manifest/manifest.ts";
import { validateConfig } from "../shared/filter-config-schema.ts";
import { scaffoldFilter } from "../sdk/cli/new.ts";
import { loadFixtures, validateFixtures } from "../sdk/cli/fixtures.ts";
import { checkIndex } from "../sdk/marketplace/catalog.ts";
import { builtFilter } from "../sdk/build/cache.ts";

const root = path.resolve(import.meta.dirname ?? ".", "..");
const pluginsDir = path.join(root, "plugins");
const plugins = (await readdir(pluginsDir, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name);
let scratch: string;

before(async () => {
  scratch = await mkdtemp(path.join(tmpdir(), "weft-sdk-"));
});
after(async () => {
  await rm(scratch, { recursive: true, force: true });
});

/** A filter folder in the scratch space with this manifest and code. */
async function filterDir(name: string, code: string, manifest: Record<string, unknown> = {}): Promise<string> {
  const dir = path.join(scratch, name);
  await mkdir(dir, { recursive: true });
  await writeFile(
    path.join(dir, "filter.json"),
    JSON.stringify({ name, version: "0.1.0", description: "a test filter", abi: 1, ...manifest }),
  );
  await writeFile(path.join(dir, "filter.ts"), code);
  return dir;
}

async function buildError(dir: string): Promise<BuildError> {
  const error = await buildFilter(dir).then(
    () => null,
    (e: unknown) => e,
  );
  assert.ok(error instanceof BuildError, `expected a BuildError, got ${String(error)}`);
  return error;
}

describe("weft filter new and build", () => {
  it("scaffolds a filter that builds, with its manifest in a weft.manifest section", async () => {
    const dir = path.join(scratch, "my-auth");
    const files = await scaffoldFilter(dir, "my-auth");
    assert.deepEqual(files.map((f) => path.relative(dir, f)).sort(), [
      "README.md",
      "filter.json",
      "filter.ts",
      path.join("test", "requests.json"),
    ]);
    const built = await buildFilter(dir);
    assert.match(built.sha256, /^[0-9a-f]{64}$/);
    const module = new WebAssembly.Module(built.wasm as Uint8Array<ArrayBuffer>);
    const sections = WebAssembly.Module.customSections(module, MANIFEST_SECTION);
    assert.equal(sections.length, 1);
    const manifest = JSON.parse(new TextDecoder().decode(sections[0])) as Record<string, unknown>;
    assert.deepEqual(manifest, built.manifest);
    assert.equal(manifest.name, "my-auth");
    assert.deepEqual(
      WebAssembly.Module.exports(module)
        .map((e) => e.name)
        .sort(),
      ["memory", "on_request_headers"],
    );
    // Its samples are valid and their configs match the schema it ships.
    for (const f of await loadFixtures(path.join(dir, "test", "requests.json")))
      assert.deepEqual(validateConfig(manifest.configSchema, f.config ?? {}), [], f.name);
    assert.match(await readFile(path.join(dir, "README.md"), "utf8"), /kind: WasmFilter/);
  });

  it("builds the same bytes from the same sources, wherever they are", async () => {
    const a = path.join(scratch, "same-a");
    const b = path.join(scratch, "elsewhere", "same-b");
    await scaffoldFilter(a, "same");
    await cp(a, b, { recursive: true });
    const first = await buildFilter(a);
    // From the cache when another runtime built it already, so this also compares runtimes.
    const second = await builtFilter(b);
    assert.equal(second.sha256, first.sha256);
    assert.deepEqual(new Uint8Array(second.wasm), first.wasm);
  });

  it("refuses to scaffold into a folder that is not empty, or under a bad name", async () => {
    const dir = await filterDir("taken", "");
    await assert.rejects(scaffoldFilter(dir, "taken"), /is not empty; choose a new folder/);
    await assert.rejects(scaffoldFilter(path.join(scratch, "bad"), "My_Filter"), /name: must be lower-case letters/);
  });

  it("reports a compile error with its file, line and column", async () => {
    const dir = await filterDir(
      "broken",
      'import { Continue, request } from "@weft/sdk";\n\nexport function on_request_headers(): i32 {\n  request.setHeader("x-a", 42);\n  return Continue;\n}\n',
    );
    const error = await buildError(dir);
    assert.equal(error.diagnostics.length, 1);
    assert.match(error.diagnostics[0]!, new RegExp(`^${path.join(dir, "filter.ts").replace(/[\\.]/g, "\\$&")}:4:\\d+: error AS\\d+: `));
    assert.match(error.message, /cannot build .*broken: 1 error\(s\) in its AssemblyScript/);
  });

  it("builds only from the filter's folder and the SDK", async () => {
    const dir = await filterDir(
      "outside",
      'import { x } from "../secret";\nimport { y } from "@extism/as-pdk";\nexport function on_request_headers(): i32 { return x + y; }\n',
    );
    await writeFile(path.join(scratch, "secret.ts"), "export const x = 1;\n");
    const error = await buildError(dir);
    assert.ok(
      error.diagnostics.some((d) => /filter\.ts:1:\d+: .*secret.* not found/.test(d)),
      error.message,
    );
    assert.ok(
      error.diagnostics.some((d) => /filter\.ts:2:\d+: .*as-pdk.* not found/.test(d)),
      error.message,
    );
  });

  it("refuses a module that would not load as a filter", async () => {
    const dir = await filterDir("no-phase", "export function on_request(): i32 { return 0; }\n");
    const error = await buildError(dir);
    assert.match(
      error.message,
      /exports none of the phase functions on_request_headers, on_request_body, on_response_headers, on_response_body/,
    );
  });

  it("refuses a bad manifest with every problem, and accepts the typescript engine", async () => {
    const bad = await filterDir("bad-manifest", "", {
      version: "1.0",
      abi: 2,
      phase: "Routing",
      configSchema: { type: "object", properties: { rate: { type: "float" } }, oneOf: [] },
    });
    const error = await buildError(bad);
    assert.deepEqual(
      error.diagnostics.map((d) => d.slice(d.indexOf("filter.json: ") + 13)),
      [
        'version: must be a semantic version such as "1.0.0"',
        "abi: must be 1, the filter ABI this weft builds for (docs/filter-abi.md)",
        "phase: must be one of Authn, Authz, Stats (or left out: just before routing)",
        'configSchema.oneOf: "oneOf" is not supported; a configSchema may use type, title, description, properties, required, additionalProperties, items, enum, minimum, exclusiveMinimum, maximum, exclusiveMaximum, minLength, maxLength, minItems, maxItems, pattern, default',
        "configSchema.properties.rate.type: must be one of object, array, string, number, integer, boolean, null or an array of them",
      ],
    );
    // Full-TypeScript filters are built and run in test/ts-filters.test.ts.
    const ts = validateManifest({ name: "ts-engine", version: "0.1.0", description: "a test filter", abi: 1, engine: "typescript" });
    assert.equal(ts.ok && ts.manifest.engine, "typescript");
  });
});

describe("manifest and config validation", () => {
  it("names each missing or unknown manifest field", () => {
    const check = validateManifest({ name: "x", version: "1.0.0", abi: 1, configschema: {} });
    assert.equal(check.ok, false);
    assert.deepEqual(!check.ok && check.problems, [
      "description: is required",
      "configschema: is not a manifest field (the fields are name, version, description, abi, phase, priority, configSchema, engine)",
    ]);
    assert.deepEqual(validateManifest([]), { ok: false, problems: ["the manifest must be a JSON object"] });
  });

  it("checks a config against the schema subset, naming each field", () => {
    const schema = {
      type: "object",
      required: ["requestsPerSecond"],
      additionalProperties: false,
      properties: {
        requestsPerSecond: { type: "number", minimum: 0.001 },
        burst: { type: "integer", minimum: 1, maximum: 1000 },
        keyBy: { enum: ["clientIp", "header"] },
        header: { type: "string", pattern: "^[a-z-]+$", minLength: 2, maxLength: 5 },
        origins: { type: "array", minItems: 1, maxItems: 2, items: { type: "string" } },
        "x-extra": { type: ["string", "null"] },
      },
    };
    assert.deepEqual(
      validateConfig(schema, { requestsPerSecond: 5, burst: 10, keyBy: "header", header: "x-k", origins: ["a"], "x-extra": null }),
      [],
    );
    assert.deepEqual(
      validateConfig(schema, {
        requestsPerSecond: "10",
        burst: 1.5,
        keyBy: "ip",
        header: "X_KEY_LONG",
        origins: ["a", 2, "c"],
        "x-extra": 1,
        burts: 3,
      }),
      [
        "config.requestsPerSecond: expected number, got string",
        "config.burst: expected integer, got number",
        'config.keyBy: must be one of "clientIp", "header", got "ip"',
        "config.header: must be at most 5 characters long, got 10",
        'config.header: must match /^[a-z-]+$/, got "X_KEY_LONG"',
        "config.origins: must have at most 2 items, got 3",
        "config.origins[1]: expected string, got number",
        'config["x-extra"]: expected string or null, got number',
        "config.burts: is not a known field (known: requestsPerSecond, burst, keyBy, header, origins, x-extra)",
      ],
    );
    assert.deepEqual(validateConfig(schema, { burst: 0, origins: [] }), [
      "config.requestsPerSecond: is required",
      "config.burst: must be at least 1, got 0",
      "config.origins: must have at least 1 items, got 0",
    ]);
    assert.deepEqual(validateConfig(schema, "fast"), ["config: expected object, got string"]);
    // Characters, not UTF-16 units.
    assert.deepEqual(validateConfig({ type: "string", maxLength: 2 }, "😀😀"), []);
  });

  it("never lets a config through a schema it cannot apply", () => {
    assert.deepEqual(validateConfig({ type: "object", properties: { a: { format: "uri" } } }, { a: "x" }), [
      `the filter's configSchema.properties.a.format: "format" is not supported; a configSchema may use type, title, description, properties, required, additionalProperties, items, enum, minimum, exclusiveMinimum, maximum, exclusiveMaximum, minLength, maxLength, minItems, maxItems, pattern, default`,
    ]);
  });

  it("checks sample requests and names each problem", () => {
    const check = validateFixtures([
      { name: "ok", request: { method: "GET", path: "/" }, expect: { continue: true } },
      { name: "both", request: { method: "get", path: "x" }, expect: { status: 403, continue: true } },
      { name: "ok", request: { method: "GET", path: "/" }, expect: { status: 700 }, extra: 1 },
    ]);
    assert.equal(check.ok, false);
    assert.deepEqual(!check.ok && check.problems, [
      "[1].request.method: must be an upper-case method such as GET",
      '[1].request.path: must start with "/"',
      '[1].expect: give either "status" (the filter answers locally) or "continue": true',
      "[2].expect.status: must be 200-599",
      "[2].extra: is not a field here",
    ]);
    const duplicate = validateFixtures([
      { name: "same", request: { method: "GET", path: "/" }, expect: { continue: true } },
      { name: "same", request: { method: "GET", path: "/" }, expect: { status: 403, headers: { "retry-after": "1", "x-gone": null } } },
      { name: "neither", request: { method: "GET", path: "/" }, expect: {} },
    ]);
    assert.deepEqual(!duplicate.ok && duplicate.problems, [
      '[2].expect: give either "status" (the filter answers locally) or "continue": true',
    ]);
  });
});

describe("the marketplace", () => {
  const indexFile = path.join(pluginsDir, "index.json");

  it("has plugins with valid manifests and sample configs that fit their schemas", async () => {
    assert.deepEqual(plugins.sort(), ["cors", "header-rewrite", "ip-filter", "jwt-auth", "rate-limit"]);
    for (const name of plugins) {
      const manifest = JSON.parse(await readFile(path.join(pluginsDir, name, "filter.json"), "utf8")) as { configSchema: unknown };
      assert.ok(validateManifest(manifest).ok, name);
      const fixtures = await loadFixtures(path.join(pluginsDir, name, "test", "requests.json"));
      assert.ok(fixtures.length >= 4, `${name} has a few sample requests`);
      for (const f of fixtures) assert.deepEqual(validateConfig(manifest.configSchema, f.config ?? {}), [], `${name}: ${f.name}`);
    }
  });

  it("its index matches every plugin's build", async () => {
    assert.deepEqual(await checkIndex(pluginsDir, indexFile, builtFilter), []);
  });

  it("its check fails when a digest in the index differs from the build", async () => {
    const index = JSON.parse(await readFile(indexFile, "utf8")) as { plugins: { name: string; versions: { sha256: string }[] }[] };
    const entry = index.plugins.find((p) => p.name === "rate-limit")!.versions[0]!;
    const real = entry.sha256;
    entry.sha256 = "0".repeat(64);
    const tampered = path.join(scratch, "index.json");
    await writeFile(tampered, JSON.stringify(index));
    assert.deepEqual(await checkIndex(pluginsDir, tampered, builtFilter), [
      `rate-limit 1.0.0: ${tampered} says sha256 ${"0".repeat(64)}, but ${path.join(pluginsDir, "rate-limit")} builds to ${real} (a changed plugin needs a new version in filter.json)`,
    ]);
  });
});
