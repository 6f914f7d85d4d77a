// One abusive client pattern against the sidecar (issue 17): 8 concurrent clients whose requests
// make a FailOpen filter loop until its deadline stops it, beside a well-behaved caller at a
// fixed rate. Reports the caller's latency beside 8 ordinary clients sending as often, then beside
// the 8 abusers (once the filter's quarantine has tripped), per runtime, so that "one abusive
// client slows everyone" is a number.
//   taskset -c 0 node bench/filter-abuse.ts [--runtimes node,bun,deno] [--seconds 10] [--no-write]
// The sidecar is the bundle (dist/weft.mjs, built first) pinned to cpu 1 with the pod's
// heap settings; the callers and the upstream run in this process.
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { quantityValue } from "../control/inject/quantity.ts";
import { runtimeEnv } from "../control/inject/runtime-env.ts";
import { DEFAULT_SETTINGS } from "../control/inject/settings.ts";
import { compileAssemblyScript } from "../test/support/asc.ts";
import { simpleConfig } from "../test/support/proxy.ts";
import { startUpstream } from "../test/support/upstream.ts";

const root = path.resolve(import.meta.dirname ?? ".", "..");
const { values } = parseArgs({
  options: {
    runtimes: { type: "string", default: "node,bun,deno" },
    seconds: { type: "string", default: "10" },
    rate: { type: "string", default: "200" },
    abusers: { type: "string", default: "8" },
    "no-write": { type: "boolean", default: false },
  },
});
const SECONDS = Number(values.seconds);
const RATE = Number(values.rate);
const ABUSERS = Number(values.abusers);
const LISTENER_PORT = 18095;
const ADMIN_PORT = 18096;
// Each abuser sends at most 25 requests a second.
const ABUSER_INTERVAL_MS = 40;
// Long enough for the quarantine to trip (5 failures within 10 s, a tenth of the calls or more).
const SETTLE_MS = 2000;

type Runtime = "node" | "bun" | "deno";
const bin = (name: string) => path.join(root, "node_modules", ".bin", name);

function proxyCommand(runtime: Runtime, config: string): string[] {
  const entry = path.join(root, "dist", "weft.mjs");
  if (runtime === "deno") return [bin("deno"), "run", "-A", entry, "proxy", "--config", config];
  return [bin(runtime), entry, "proxy", "--config", config];
}

function get(port: number, target: string, agent: http.Agent): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path: target, agent }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.setTimeout(10_000, () => req.destroy(new Error(`GET ${target}: no answer in 10 s`)));
    req.on("error", reject);
  });
}

async function waitReady(): Promise<void> {
  const agent = new http.Agent();
  for (let i = 0; i < 150; i++) {
    if ((await get(ADMIN_PORT, "/ready", agent).catch(() => 0)) === 200) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error("the sidecar did not become ready in 30 s");
}

/** The caller: `RATE` GETs a second for `SECONDS`, open loop; each latency from when it was due. */
async function caller(): Promise<{ latencies: number[]; failed: number }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const latencies: number[] = [];
  let failed = 0;
  const count = RATE * SECONDS;
  const start = performance.now();
  const pending: Promise<void>[] = [];
  for (let i = 0; i < count; i++) {
    const due = start + (i * 1000) / RATE;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    pending.push(
      get(LISTENER_PORT, `/echo/${i}`, agent).then(
        (status) => {
          if (status === 200) latencies.push(performance.now() - due);
          else failed++;
        },
        () => void failed++,
      ),
    );
  }
  await Promise.all(pending);
  agent.destroy();
  return { latencies, failed };
}

/**
 * Eight more clients, paced, until `stop`: sending requests the filter loops on (`abusive`), or
 * ordinary ones, so that the caller's baseline carries the same load without the abuse.
 */
function otherClients(abusive: boolean): { stop: () => Promise<number> } {
  let running = true;
  let sent = 0;
  const agent = new http.Agent({ keepAlive: true, maxSockets: ABUSERS });
  const loops = Array.from({ length: ABUSERS }, async (_, n) => {
    while (running) {
      const started = performance.now();
      await get(LISTENER_PORT, `/${abusive ? "loop" : "echo"}/${n}/${sent++}`, agent).catch(() => 0);
      // Paced, so that once the filter is quarantined (and the abusive requests are cheap) the
      // abusers do not become a load test of their own.
      const left = ABUSER_INTERVAL_MS - (performance.now() - started);
      if (left > 0) await new Promise((r) => setTimeout(r, left));
    }
  });
  return {
    stop: async () => {
      running = false;
      await Promise.all(loops);
      agent.destroy();
      return sent;
    },
  };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? Number.NaN;
}

function summary(r: { latencies: number[]; failed: number }) {
  const sorted = [...r.latencies].sort((a, b) => a - b);
  const round = (x: number) => Number(x.toFixed(2));
  return { ok: sorted.length, failed: r.failed, p50Ms: round(percentile(sorted, 0.5)), p99Ms: round(percentile(sorted, 0.99)) };
}

/** The filter's failures by kind and its quarantines, from the sidecar's metrics. */
async function filterCounts(): Promise<Record<string, number>> {
  const text = await new Promise<string>((resolve, reject) => {
    http
      .get({ host: "127.0.0.1", port: ADMIN_PORT, path: "/metrics" }, (res) => {
        let body = "";
        res.on("data", (c) => (body += c));
        res.on("end", () => resolve(body));
      })
      .on("error", reject);
  });
  const counts: Record<string, number> = {};
  for (const line of text.split("\n")) {
    const value = Number(line.split(" ").pop());
    if (line.startsWith("weft_filter_quarantines_total{")) counts.quarantines = (counts.quarantines ?? 0) + value;
    const kind = /^weft_filter_failures_total\{.*kind="([a-z]+)"/.exec(line)?.[1];
    if (kind) counts[kind] = (counts[kind] ?? 0) + value;
  }
  return counts;
}

async function measure(runtime: Runtime, module: { path: string; sha256: string }, upstreamPort: number, dir: string) {
  const config = simpleConfig([upstreamPort], {
    admin: { address: "127.0.0.1", port: ADMIN_PORT },
    filters: [{ name: "looper", namespace: "bench", module, config: { tag: "on" }, failStrategy: "FailOpen" }],
  });
  const listener = (config.listeners as { port: number }[])[0]!;
  listener.port = LISTENER_PORT;
  const file = path.join(dir, `${runtime}.json`);
  writeFileSync(file, JSON.stringify(config));
  const memoryLimit = quantityValue(DEFAULT_SETTINGS.resources.limits.memory);
  const [command, ...args] = ["taskset", "-c", "1", ...proxyCommand(runtime, file)];
  const proxy: ChildProcess = spawn(command!, args, {
    cwd: root,
    stdio: ["ignore", "ignore", "inherit"],
    env: { ...process.env, NODE_ENV: "production", ...runtimeEnv(runtime, memoryLimit) },
  });
  try {
    await waitReady();
    await caller(); // warm-up, not recorded
    const calm = otherClients(false);
    const alone = summary(await caller());
    await calm.stop();
    const abuse = otherClients(true);
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const abused = summary(await caller());
    const abusive = await abuse.stop();
    return {
      runtime,
      alone,
      abused,
      abusiveRequests: abusive,
      filter: await filterCounts(),
      p99Ratio: Number((abused.p99Ms / alone.p99Ms).toFixed(2)),
    };
  } finally {
    proxy.kill("SIGTERM");
    await new Promise((r) => proxy.once("exit", r));
  }
}

// The bundle of this tree, as bench/run.ts builds it: what a sidecar image runs.
execFileSync("npm", ["run", "--silent", "build"], { cwd: root, stdio: ["ignore", "ignore", "inherit"] });
const dir = mkdtempSync(path.join(tmpdir(), "weft-bench-abuse-"));
const module = await compileAssemblyScript(path.join(root, "test", "fixtures", "filters", "basic.ts"));
const upstream = await startUpstream("app");
const results = [];
for (const runtime of values.runtimes.split(",") as Runtime[]) {
  const result = await measure(runtime, module, upstream.port, dir);
  process.stdout.write(`${JSON.stringify(result)}\n`);
  results.push(result);
}
await upstream.close();
if (!values["no-write"]) {
  const out = path.join(root, "bench", "results", `filter-abuse-${new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19)}Z.json`);
  const commit = execFileSync("git", ["rev-parse", "HEAD"], { cwd: root, encoding: "utf8" }).trim();
  writeFileSync(
    out,
    `${JSON.stringify({ commit, rate: RATE, seconds: SECONDS, abusers: ABUSERS, filter: "test/fixtures/filters/basic.ts (FailOpen, loops on /loop)", results }, null, 2)}\n`,
  );
  process.stdout.write(`wrote ${path.relative(root, out)}\n`);
}
