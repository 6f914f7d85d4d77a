// runtimes: node deno bun
// needs: k8s
// The weft CRDs, generated from the valibot schemas in control/resources/, on a real
// kube-apiserver (test/k8s/cluster.ts, binaries from test/k8s/build.sh): valid resources are
// stored with their defaults, invalid ones are refused naming the field, and weft's own parser
// agrees with the API server both ways. Also the generator itself on small schemas.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import * as v from "valibot";
import { startCluster, waitEstablished, type Cluster } from "./k8s/cluster.ts";
import { rule } from "../control/crd/cel.ts";
import { KINDS, objectSchema } from "../control/crd/crds.ts";
import { ROOT, generatedFiles, staleFiles } from "../control/crd/generate.ts";
import { toStructural, type StructuralSchema } from "../control/crd/openapi.ts";
import { toYaml } from "../control/crd/yaml.ts";
import { parseAccessPolicy } from "../control/resources/access-policy.ts";
import type { Parsed } from "../control/resources/parse.ts";
import { parseTrafficPolicy } from "../control/resources/traffic-policy.ts";
import { parseWasmFilter } from "../control/resources/wasm-filter.ts";

// Bun gives hooks 5 s and ignores before()'s timeout option; starting the cluster takes 3-6 s.
if ("Bun" in globalThis) (await import("bun:test" as string)).setDefaultTimeout(60_000);

describe("valibot -> structural OpenAPI", () => {
  it("maps objects, required keys, defaults, enums, bounds, patterns and descriptions", () => {
    const schema = v.object({
      name: v.pipe(v.string(), v.regex(/^[a-z]+\/x$/), v.startsWith("a.b"), v.maxLength(10), v.description("The name.")),
      port: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(65535)), 8080),
      ratio: v.optional(v.pipe(v.number(), v.gtValue(0), v.ltValue(1))),
      mode: v.optional(v.picklist(["A", "B"]), "A"),
      tags: v.optional(v.pipe(v.array(v.string()), v.minLength(1)), ["x"]),
      labels: v.optional(v.record(v.string(), v.string())),
      config: v.optional(v.record(v.string(), v.unknown()), {}),
      at: v.optional(v.pipe(v.string(), v.isoTimestamp())),
    });
    assert.deepEqual(toStructural(schema), {
      type: "object",
      properties: {
        // "/" is written unescaped (RE2 reads either); a second pattern goes into allOf
        name: { type: "string", pattern: "^[a-z]+/x$", allOf: [{ pattern: "^a\\.b" }], maxLength: 10, description: "The name." },
        port: { type: "integer", minimum: 1, maximum: 65535, default: 8080 },
        ratio: { type: "number", minimum: 0, exclusiveMinimum: true, maximum: 1, exclusiveMaximum: true },
        mode: { type: "string", enum: ["A", "B"], default: "A" },
        tags: { type: "array", items: { type: "string" }, minItems: 1, default: ["x"] },
        labels: { type: "object", additionalProperties: { type: "string" } },
        config: { type: "object", "x-kubernetes-preserve-unknown-fields": true, default: {} },
        at: { type: "string", format: "date-time" },
      },
      required: ["name"],
    });
  });

  it("turns a variant into one object with the discriminator as an enum and a CEL rule per option", () => {
    const lb = v.variant("policy", [
      v.object({ policy: v.literal("RoundRobin") }),
      v.object({ policy: v.literal("ConsistentHash"), header: v.string(), seed: v.number() }),
    ]);
    assert.deepEqual(toStructural(lb, "lb"), {
      type: "object",
      properties: {
        policy: { type: "string", enum: ["RoundRobin", "ConsistentHash"] },
        header: { type: "string" },
        seed: { type: "number" },
      },
      required: ["policy"],
      "x-kubernetes-validations": [
        {
          rule: 'self.policy != "ConsistentHash" || (has(self.header) && has(self.seed))',
          message: "header, seed are required when policy is ConsistentHash",
        },
      ],
    });
  });

  it("pairs rule() with x-kubernetes-validations and copies x-kubernetes-* metadata", () => {
    const both = rule<{ a?: number; b?: number }>(
      "!(has(self.a) && has(self.b))",
      "a or b, not both",
      (x) => x.a === undefined || x.b === undefined,
    );
    const schema = v.pipe(
      v.object({ a: v.optional(v.number()), b: v.optional(v.number()) }),
      both,
      v.metadata({ "x-kubernetes-map-type": "atomic" }),
    );
    assert.deepEqual(toStructural(schema), {
      type: "object",
      properties: { a: { type: "number" }, b: { type: "number" } },
      "x-kubernetes-validations": [{ rule: "!(has(self.a) && has(self.b))", message: "a or b, not both" }],
      "x-kubernetes-map-type": "atomic",
    });
    assert.equal(v.safeParse(schema, { a: 1, b: 2 }).success, false, "valibot runs the same check");
  });

  it("refuses what a structural schema cannot express, naming the field and the way out", () => {
    const refused: [v.GenericSchema, RegExp][] = [
      [v.object({ x: v.strictObject({}) }), /x as a Kubernetes structural schema: v\.strictObject.*use v\.object/],
      [v.object({ x: v.union([v.string(), v.number()]) }), /x .*v\.union of non-literal.*use v\.variant/],
      [
        v.object({
          x: v.pipe(
            v.string(),
            v.check((s) => s !== ""),
          ),
        }),
        /x .*v\.check .*use rule\(\)/,
      ],
      [
        v.object({
          x: v.pipe(
            v.string(),
            v.transform((s) => s.length),
          ),
        }),
        /x .*transformation "transform".*stores the input as written/,
      ],
      [v.object({ x: v.nullable(v.string()) }), /x .*v\.nullable.*use v\.optional/],
      [v.object({ x: v.array(v.pipe(v.string(), v.regex(/^(?!a)/))) }), /x\[\] .*lookaround/],
      [v.object({ x: v.pipe(v.string(), v.regex(/^a$/i)) }), /x .*has flags/],
      [v.object({ x: v.tuple([v.string()]) }), /x .*"tuple" has no OpenAPI equivalent/],
      [v.object({ x: v.pipe(v.string(), v.email()) }), /x .*action "email"/],
      [v.object({ x: v.pipe(v.string(), v.minLength(1), v.minLength(2)) }), /x .*two different minLength/],
      [v.object({ m: v.record(v.pipe(v.string(), v.regex(/^a/)), v.string()) }), /m .*keys are checked/],
      [
        v.variant("k", [v.object({ k: v.literal("a"), n: v.optional(v.number(), 1) }), v.object({ k: v.literal("b") })]),
        /cannot express n as .*default in only some options/,
      ],
      [
        v.variant("k", [v.object({ k: v.literal("a"), n: v.number() }), v.object({ k: v.literal("b"), n: v.string() })]),
        /cannot express n as .*define "n" differently/,
      ],
    ];
    for (const [schema, message] of refused) assert.throws(() => toStructural(schema), message);
  });
});

/** The path of every property of the schema (kubectl explain's FIELD) that has no description. */
function undescribed(s: StructuralSchema, at: string): string[] {
  const out: string[] = [];
  for (const [name, field] of Object.entries(s.properties ?? {})) {
    const path = `${at}.${name}`;
    if (!field.description?.trim()) out.push(path);
    out.push(...undescribed(field, path));
  }
  if (s.items) out.push(...undescribed(s.items, `${at}[]`));
  if (s.additionalProperties) out.push(...undescribed(s.additionalProperties, `${at}.*`));
  return out;
}

describe("CRD descriptions", () => {
  it("describe every field of every kind, spec and status, nested objects and list items included", () => {
    // metadata is ObjectMeta, which the API server describes (a CRD may not say more than its type)
    const missing = KINDS.flatMap((k) => undescribed(objectSchema(k), k.kind.toLowerCase())).filter((p) => !p.endsWith(".metadata"));
    assert.deepEqual(missing, [], `fields kubectl explain would show as <no description>: give them a v.description`);
  });

  it("give the unit of every number that has one", () => {
    const unit: [RegExp, RegExp][] = [
      [/Ms$/, /millisecond/],
      [/MiB$/, /MiB/],
      [/Bytes$/, /bytes/],
      [/Percent$/, /percent/],
    ];
    const numbers = (s: StructuralSchema, at: string): [string, StructuralSchema][] =>
      Object.entries(s.properties ?? {}).flatMap(([name, f]) => [
        ...(f.type === "number" || f.type === "integer" ? [[`${at}.${name}`, f] as [string, StructuralSchema]] : []),
        ...numbers(f, `${at}.${name}`),
        ...(f.items ? numbers(f.items, `${at}.${name}[]`) : []),
      ]);
    const wrong = KINDS.flatMap((k) => numbers(objectSchema(k), k.kind.toLowerCase()))
      .filter(([path, f]) => unit.some(([name, says]) => name.test(path) && !says.test(f.description ?? "")))
      .map(([path]) => path);
    assert.deepEqual(wrong, []);
  });
});

describe("YAML emitter", () => {
  it("writes block YAML, quoting every string that could read back as something else", () => {
    const yaml = toYaml({
      a: "plain text",
      b: ["5xx", "", "true", "No", "a: b", "#c", "x\ny", "trail ", 1.5, false, null],
      c: [{ d: 1, e: [] }, [2]],
      f: {},
      g: undefined,
    });
    assert.equal(
      yaml,
      [
        "a: plain text",
        "b:",
        '  - "5xx"',
        '  - ""',
        '  - "true"',
        '  - "No"',
        '  - "a: b"',
        '  - "#c"',
        '  - "x\\ny"',
        '  - "trail "',
        "  - 1.5",
        "  - false",
        "  - null",
        "c:",
        "  - d: 1",
        "    e: []",
        "  - - 2",
        "f: {}",
        "",
      ].join("\n"),
    );
  });
});

const run = (file: string, args: string[], cwd: string) =>
  new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(file, args, { cwd, encoding: "utf8" }, (err, stdout, stderr) =>
      resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
    );
  });

describe("generate.ts --check", () => {
  it("passes for the files in the repository", async () => {
    const r = await run(path.join(ROOT, "node_modules", ".bin", "node"), ["control/crd/generate.ts", "--check"], ROOT);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /match the schemas/);
  });

  it("names a generated file that was edited by hand", () => {
    const copy = mkdtempSync(path.join(tmpdir(), "weft-crds-"));
    try {
      for (const file of generatedFiles().keys()) cpSync(path.join(ROOT, file), path.join(copy, file), { recursive: true });
      assert.deepEqual(staleFiles(copy), []);
      const crd = path.join(copy, "deploy/crds/weft.dev_wasmfilters.yaml");
      writeFileSync(crd, readFileSync(crd, "utf8").replace("FailClose", "FailOpen"));
      assert.deepEqual(staleFiles(copy), ["deploy/crds/weft.dev_wasmfilters.yaml"]);
    } finally {
      rmSync(copy, { recursive: true, force: true });
    }
  });
});

const NS = "shop";
const wasmFilter = (name: string, spec: Record<string, unknown>) => ({
  apiVersion: "weft.dev/v1alpha1",
  kind: "WasmFilter",
  metadata: { name, namespace: NS },
  spec,
});
const validSpec = { url: "oci://registry.example.com/filters/auth:1.0.0", sha256: "a".repeat(64) };

describe("weft CRDs on a real kube-apiserver", () => {
  let k8s: Cluster;
  const kubectl = (args: string[], input?: string) => k8s.kubectl(args, input);
  /** The API server's error for an object it must refuse. */
  const refusal = async (object: unknown, args: string[] = []) => {
    const error = await kubectl(["apply", "-f", "-", ...args], JSON.stringify(object)).then(
      (out) => assert.fail(`the API server accepted ${JSON.stringify(object)}: ${out}`),
      (e: Error) => e.message,
    );
    return error;
  };
  const problems = (parsed: Parsed<unknown>) => (parsed.ok ? [] : parsed.problems);

  before(async () => {
    // no controller-manager: CRDs are served by the apiserver itself; start-up is faster
    k8s = await startCluster({ controllerManager: false });
    await kubectl(["apply", "-f", path.join(ROOT, "deploy", "crds")]);
    await waitEstablished(
      kubectl,
      KINDS.map((k) => `crd/${k.plural}.weft.dev`),
    );
    await kubectl(["create", "namespace", NS]);
  });
  after(async () => {
    await k8s?.stop();
  });

  it("stores the generated schemas and columns exactly (the YAML reads back as the objects)", async () => {
    for (const k of KINDS) {
      const crd = JSON.parse(await kubectl(["get", "crd", `${k.plural}.weft.dev`, "-o", "json"]));
      const [version] = crd.spec.versions;
      assert.deepEqual(version.schema.openAPIV3Schema, objectSchema(k), k.kind);
      assert.deepEqual(version.additionalPrinterColumns, k.columns, k.kind);
      assert.deepEqual(crd.spec.names.shortNames, k.shortNames);
    }
  });

  it("accepts the examples in docs/resources.md, fills in defaults, and weft's parser reads them the same", async () => {
    const doc = readFileSync(path.join(ROOT, "docs", "resources.md"), "utf8");
    const examples = [...doc.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]).filter((y) => y.includes("apiVersion: weft.dev/"));
    assert.equal(examples.length, 5);
    const parsers: Record<string, (x: unknown) => Parsed<{ spec: unknown }>> = {
      WasmFilter: parseWasmFilter,
      TrafficPolicy: parseTrafficPolicy,
      AccessPolicy: parseAccessPolicy,
    };
    for (const yaml of examples) {
      const stored = JSON.parse(await kubectl(["apply", "-o", "json", "-f", "-"], yaml));
      const parsed = parsers[stored.kind](stored);
      assert.ok(parsed.ok, `${stored.kind} ${stored.metadata.name}: ${problems(parsed).join("; ")}`);
      // the API server's defaults are valibot's defaults: parsing adds nothing
      assert.deepEqual(parsed.value.spec, stored.spec, `${stored.kind} ${stored.metadata.name}`);
    }
    const wf = JSON.parse(await kubectl(["get", "wf", "rate-limit", "-n", NS, "-o", "json"]));
    assert.equal(wf.spec.limits.memoryMiB, 16);
    assert.equal(wf.spec.logLevel, "info");
    assert.deepEqual(wf.spec.match[0].ports, []);
    assert.deepEqual(wf.spec.targetRefs, [{ group: "", kind: "Service", name: "checkout" }]);
    const tp = JSON.parse(await kubectl(["get", "tp", "checkout", "-n", NS, "-o", "json"]));
    assert.equal(tp.spec.circuitBreaker.maxRequests, 1024);
    assert.equal(tp.spec.retry.backoffBaseMs, 25);
    assert.equal(tp.spec.outlierDetection.maxEjectionPercent, 50);
  });

  it("refuses invalid resources naming the field, and weft's parser refuses them too", async () => {
    const cases: [string, unknown, RegExp, string][] = [
      [
        "bad enum",
        wasmFilter("bad-enum", { ...validSpec, failStrategy: "Never" }),
        /spec\.failStrategy: Unsupported value: "Never": supported values: "FailClose", "FailOpen", "FailReload"/,
        "spec.failStrategy",
      ],
      [
        "bad sha256",
        wasmFilter("bad-digest", { ...validSpec, sha256: "abc" }),
        /spec\.sha256: Invalid value: "abc": spec\.sha256 in body should match '\^\[0-9a-f\]\{64\}\$'/,
        "spec.sha256",
      ],
      [
        "wrong type",
        wasmFilter("wrong-type", { ...validSpec, priority: "high" }),
        /spec\.priority: Invalid value: "string": spec\.priority in body must be of type integer/,
        "spec.priority",
      ],
      [
        "http url",
        wasmFilter("http-url", { url: "http://example.com/f.wasm" }),
        /spec\.url: Invalid value: "http:\/\/example\.com\/f\.wasm": must be oci:\/\/REGISTRY\/REPO:TAG, https:\/\/\.\.\., file:\/\/\.\.\. or marketplace:\/\/NAME@VERSION/,
        "spec.url",
      ],
      ["missing url", wasmFilter("no-url", {}), /spec\.url: Required value/, "spec.url"],
      [
        "nested bound",
        wasmFilter("big-port", { ...validSpec, match: [{ ports: [70000] }] }),
        /spec\.match\[0\]\.ports\[0\]: Invalid value: 70000: spec\.match\[0\]\.ports\[0\] in body should be less than or equal to 65535/,
        "spec.match[0].ports[0]",
      ],
      [
        "both targets",
        wasmFilter("both", { ...validSpec, selector: { matchLabels: { app: "web" } }, targetRefs: [{ kind: "Service", name: "web" }] }),
        /spec: Invalid value: set selector or targetRefs, not both/,
        "spec",
      ],
      [
        "ConsistentHash without header",
        {
          apiVersion: "weft.dev/v1alpha1",
          kind: "TrafficPolicy",
          metadata: { name: "hash", namespace: NS },
          spec: { targetRefs: [{ kind: "Service", name: "web" }], loadBalancer: { policy: "ConsistentHash" } },
        },
        /spec\.loadBalancer: Invalid value: header is required when policy is ConsistentHash/,
        "spec.loadBalancer.header",
      ],
      [
        "bad principal",
        {
          apiVersion: "weft.dev/v1alpha1",
          kind: "AccessPolicy",
          metadata: { name: "who", namespace: NS },
          spec: { rules: [{ from: [{ principals: ["web"] }] }] },
        },
        /spec\.rules\[0\]\.from\[0\]\.principals\[0\]: Invalid value: "web"/,
        "spec.rules[0].from[0].principals[0]",
      ],
    ];
    const parse: Record<string, (x: unknown) => Parsed<unknown>> = {
      WasmFilter: parseWasmFilter,
      TrafficPolicy: parseTrafficPolicy,
      AccessPolicy: parseAccessPolicy,
    };
    await Promise.all(
      cases.map(async ([what, object, message, field]) => {
        assert.match(await refusal(object), message, what);
        const kind = (object as { kind: string }).kind;
        const found = problems(parse[kind](object));
        assert.ok(
          found.some((p) => p.startsWith(`${field}: `)),
          `${what}: weft's parser should name ${field}, said ${JSON.stringify(found)}`,
        );
      }),
    );
  });

  it("kubectl explain describes the fields, with their units", async () => {
    const memory = await kubectl(["explain", "wasmfilter.spec.limits.memoryMiB"]);
    assert.match(memory, /FIELD: memoryMiB <integer>/);
    assert.match(memory, /Ceiling of one filter instance's linear memory, in MiB/);
    assert.doesNotMatch(memory, /<no description>/);
    for (const field of [
      "wasmfilter.spec",
      "wasmfilter.status",
      "wasmfilter.spec.match",
      "wasmfilter.spec.limits",
      "trafficpolicy.spec.retry",
      "accesspolicy.spec.rules",
      "wasmfilter.status.inForce",
      "accesspolicy.status.inForce",
    ]) {
      const out = await kubectl(["explain", field]);
      assert.doesNotMatch(out, /<no description>/, field);
    }
    const retry = await kubectl(["explain", "trafficpolicy.spec.retry", "--recursive=false"]);
    assert.match(retry, /perTryTimeoutMs\t*<number>\n\s+How long each try may take, in milliseconds/);
  });

  it("agrees with weft's parser on which filter urls are valid", async () => {
    const urls: [string, boolean][] = [
      ["oci://ghcr.io/acme/auth:1.0.0", true],
      ["ghcr.io/acme/auth:1.0.0", true], // no scheme: oci://
      ["localhost:5000/auth@sha256:" + "b".repeat(64), true],
      ["https://filters.example.com/auth.wasm", true],
      ["file:///var/lib/weft/auth.wasm", true],
      ["marketplace://rate-limit@1.0.0", true],
      ["marketplace://rate-limit@2.1.0-rc.1", true],
      ["marketplace://rate-limit", false], // a marketplace filter is always pinned to a version
      ["http://filters.example.com/auth.wasm", false],
      ["auth.wasm", false],
    ];
    await Promise.all(
      urls.map(async ([url, valid], i) => {
        const object = wasmFilter(`url-${i}`, { url });
        const server = await kubectl(["apply", "--dry-run=server", "-f", "-"], JSON.stringify(object)).then(
          () => true,
          () => false,
        );
        assert.equal(server, valid, `the API server on ${url}`);
        assert.equal(parseWasmFilter(object).ok, valid, `weft's parser on ${url}`);
      }),
    );
  });

  it("refuses an unknown field under kubectl's strict validation and prunes it otherwise, as weft's parser drops it", async () => {
    const object = wasmFilter("unknown-field", { ...validSpec, failstrategy: "FailOpen" });
    assert.match(await refusal(object), /unknown field "spec\.failstrategy"/);
    await kubectl(["apply", "--validate=false", "-f", "-"], JSON.stringify(object));
    const stored = JSON.parse(await kubectl(["get", "wf", "unknown-field", "-n", NS, "-o", "json"]));
    assert.equal(stored.spec.failstrategy, undefined);
    assert.equal(stored.spec.failStrategy, "FailClose");
    const parsed = parseWasmFilter(object);
    assert.ok(parsed.ok && !("failstrategy" in parsed.value.spec));
  });

  it("writes status only through the status subresource, and kubectl get shows it in the columns", async () => {
    await kubectl(["apply", "-f", "-"], JSON.stringify(wasmFilter("status", validSpec)));
    const status = {
      conditions: [
        {
          type: "Accepted",
          status: "True",
          reason: "Valid",
          message: "spec and config are valid",
          lastTransitionTime: "2026-01-02T03:04:05Z",
          observedGeneration: 1,
        },
        {
          type: "Resolved",
          status: "True",
          reason: "Resolved",
          message: `resolved to sha256:${validSpec.sha256}`,
          lastTransitionTime: "2026-01-02T03:04:05Z",
        },
        {
          type: "Ready",
          status: "False",
          reason: "Updating",
          message: "2 of 3 selected pods run it",
          lastTransitionTime: "2026-01-02T03:04:05Z",
        },
      ],
      sha256: validSpec.sha256,
      ready: "2/3",
      // any JSON object, as spec.config: the API server keeps it as written
      inForce: {
        generation: 1,
        config: { response: { set: [{ name: "x-a", value: "1" }] }, n: 1.5, on: true },
        limits: { memoryMiB: 16, callTimeoutMs: 5, bodyBytes: 65536 },
      },
    };
    const get = async () => JSON.parse(await kubectl(["get", "wf", "status", "-n", NS, "-o", "json"]));
    // through the main resource, status is ignored
    await kubectl(["patch", "wf", "status", "-n", NS, "--type=merge", "-p", JSON.stringify({ status })]);
    assert.equal((await get()).status, undefined);
    await kubectl(["patch", "wf", "status", "-n", NS, "--subresource=status", "--type=merge", "-p", JSON.stringify({ status })]);
    assert.deepEqual((await get()).status, status);
    assert.ok(parseWasmFilter(await get()).ok);
    // a spec change keeps the status; the status subresource keeps the spec
    await kubectl(["patch", "wf", "status", "-n", NS, "--type=merge", "-p", JSON.stringify({ spec: { priority: 5 } })]);
    assert.deepEqual((await get()).status, status);
    const bad = { conditions: [{ ...status.conditions[0], status: "Maybe" }] };
    await assert.rejects(
      kubectl(["patch", "wf", "status", "-n", NS, "--subresource=status", "--type=merge", "-p", JSON.stringify({ status: bad })]),
      /status\.conditions\[0\]\.status: Unsupported value: "Maybe"/,
    );

    const table = await kubectl(["get", "wasmfilters", "status", "-n", NS]);
    assert.match(table, /^NAME\s+PHASE\s+ACCEPTED\s+RESOLVED\s+READY\s+REASON\s+AGE\n/);
    assert.match(table, /\nstatus\s+True\s+True\s+2\/3\s+Updating\s+\d+s\n/); // Phase is empty: runs just before routing
    const wide = await kubectl(["get", "wf", "status", "-n", NS, "-o", "wide"]);
    assert.match(wide, /^NAME\s+PHASE\s+ACCEPTED\s+RESOLVED\s+READY\s+REASON\s+AGE\s+URL\s+DIGEST\s+GENERATION\s+INFORCE\n/);
    // the spec's generation (2: the priority patch) and the one status.inForce names (1)
    assert.match(wide, new RegExp(`oci://registry\\.example\\.com/filters/auth:1\\.0\\.0\\s+${validSpec.sha256}\\s+2\\s+1\\n`));
    const all = await kubectl(["get", "weft", "-n", NS, "-o", "name"]);
    for (const kind of ["wasmfilter", "trafficpolicy", "accesspolicy"]) assert.match(all, new RegExp(`^${kind}\\.weft\\.dev/`, "m"));
  });
});
