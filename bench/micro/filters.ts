// Micro-benchmark: what one filter call costs in the proxy's own filter runtime (the same
// Filter/instance code the request path uses), with a request carrying ~1 KB of headers.
//   node bench/micro/filters.ts; deno run -A bench/micro/filters.ts; bun bench/micro/filters.ts
// Prints one JSON line per case: median and p99 microseconds per call over batches.
import { createLogger } from "../../shared/log.ts";
import { Filter } from "../../proxy/filters/filter.ts";
import { FilterMetrics } from "../../proxy/filters/metrics.ts";
import { FilterModuleCache } from "../../proxy/filters/module.ts";
import { FilterState } from "../../proxy/filters/state.ts";
import { runPhase } from "../../proxy/filters/chain.ts";
import type { FilterMessage } from "../../proxy/filters/message.ts";
import { parseConfig } from "../../proxy/config/validate.ts";
import { Registry } from "prom-client";
import { currentRuntime } from "../../proxy/runtime/current.ts";
import { benchFilters } from "./filter-cases.ts";

const log = createLogger({}, "error");
const metrics = new FilterMetrics(new Registry());
const modules = new FilterModuleCache();

// ~1 KB of request headers, as a browser or an API gateway sends them.
const HEADERS = [
  "host",
  "catalog.shop.svc.cluster.local",
  "user-agent",
  "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
  "accept",
  "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
  "accept-language",
  "en-GB,en;q=0.9,de;q=0.8",
  "accept-encoding",
  "gzip, deflate, br, zstd",
  "cookie",
  `session=${"a".repeat(200)}; theme=dark; consent=${"b".repeat(120)}`,
  "x-request-id",
  "7f1c9b2e-2a55-4b8e-9a51-0d3c5f6e7a8b",
  "traceparent",
  "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
  "x-forwarded-for",
  "203.0.113.7",
  "x-client-context",
  "c".repeat(300),
];

function message(extra: string[]): FilterMessage {
  return {
    phase: "on_request_headers",
    request: {
      method: "GET",
      path: "/products/42?view=full",
      authority: "catalog.shop.svc.cluster.local",
      scheme: "http",
      headers: [...HEADERS, ...extra],
    },
    response: null,
    body: null,
    attributes: {
      direction: "inbound",
      sourceAddress: "10.0.0.7",
      sourcePrincipal: "spiffe://cluster.local/ns/shop/sa/frontend",
      requestId: "7f1c9b2e",
    },
    reply: null,
  };
}

async function load(name: string, wasmPath: string, sha256: string, config: unknown): Promise<Filter> {
  const parsed = parseConfig({ listeners: [], clusters: [], filters: [{ name, module: { path: wasmPath, sha256 }, config }] }).filters[0]!;
  const compiled = await modules.load(parsed.module!, parsed.limits.memoryMiB * 16, name);
  return new Filter(parsed, compiled, "", { log, metrics, state: new FilterState() });
}

function measure(filters: Filter[], extra: string[] = [], batches = 200, perBatch = 500): { median: number; p99: number } {
  const samples: number[] = [];
  for (let b = 0; b < batches; b++) {
    const t0 = performance.now();
    for (let i = 0; i < perBatch; i++) {
      const m = message(extra);
      if (runPhase(filters, "on_request_headers", m))
        throw new Error(`${filters.map((f) => f.id).join(" + ")} answered locally: the benchmark measures requests that pass`);
    }
    samples.push(((performance.now() - t0) * 1000) / perBatch);
  }
  samples.sort((a, b) => a - b);
  return { median: samples[samples.length >> 1]!, p99: samples[Math.floor(samples.length * 0.99)]! };
}

const cases = await benchFilters();
const loaded: Filter[] = [];
const chainHeaders: string[] = [];
const baseline = measure([]);
for (const c of cases) {
  const f = await load(c.name, c.path, c.sha256, c.config);
  const extra = Object.entries(c.headers).flatMap(([n, v]) => [n.toLowerCase(), v]);
  if (c.inChain) chainHeaders.push(...extra);
  loaded.push(f);
  measure([f], extra, 20); // warm-up
  const { median, p99 } = measure([f], extra);
  console.log(
    JSON.stringify({
      benchmark: `filter call: ${c.name}`,
      medianMicroseconds: Number((median - baseline.median).toFixed(2)),
      p99Microseconds: Number(p99.toFixed(2)),
    }),
  );
}
const chain = loaded.filter((f) => cases.find((c) => c.name === f.config.name)!.inChain);
if (chain.length > 1) {
  const { median, p99 } = measure(chain, chainHeaders);
  console.log(
    JSON.stringify({
      benchmark: `chain of ${chain.length}: ${chain.map((f) => f.config.name).join(" + ")}`,
      medianMicroseconds: Number((median - baseline.median).toFixed(2)),
      p99Microseconds: Number(p99.toFixed(2)),
    }),
  );
}
console.log(
  JSON.stringify({
    benchmark: "message setup (subtracted above)",
    medianMicroseconds: Number(baseline.median.toFixed(2)),
    runtime: currentRuntime().name,
  }),
);
