// `npm run bench`: weft against direct, nginx and HAProxy, plain and with one mTLS hop, and at the
// operating point users compare meshes at (1000 req/s, 1 KB bodies, 16 connections, mTLS and
// telemetry on), on this machine, in one run; with --compare REV, weft at REV too, in the same
// rounds. See docs/benchmarks.md for what is measured and how to read it.
//
//   bash bench/setup.sh                      # once: nginx, haproxy, wrk, vegeta, openssl
//   npm run bench                            # full run (~25 minutes: 3 interleaved rounds)
//   npm run bench -- --quick                 # ~5 minutes, shorter phases
//   npm run bench -- --only nginx,weft-node --quick
//   npm run bench -- --compare a25949a       # this tree against a25949a
import { execFileSync, spawnSync } from "node:child_process";
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, tmpdir, totalmem } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { runVegeta, runWrk, writeWrkScript } from "./lib/load.ts";
import type { LatencyResult, WrkResult } from "./lib/load.ts";
import {
  assertAlive,
  busyFractions,
  cpuBusy,
  cpuSeconds,
  foreignSnapshot,
  foreignVcpu,
  killAll,
  memory,
  portsInUse,
  round,
  sleep,
  stop,
  summarizeLog,
  waitQuiet,
  waitUntil,
} from "./lib/proc.ts";
import type { Managed } from "./lib/proc.ts";
import { compareBuilds } from "./lib/compare.ts";
import { OP_BODY_BYTES, OP_CONNECTIONS, summarize, writeOpBody } from "./lib/operating-point.ts";
import { renderMarkdown } from "./lib/report.ts";
import type { BenchResult, RoundResult, ScenarioResult } from "./lib/report.ts";
import { prepareRevision, workTree } from "./lib/revision.ts";
import type { WeftBuild } from "./lib/revision.ts";
import { allScenarios, baseId, BEFORE, checkBody, makeCerts, PORTS, startUpstream, BODY } from "./lib/scenarios.ts";
import type { Bins, Ctx, Group, Scenario } from "./lib/scenarios.ts";
import { DISTURBED, disturbed, median, usedRounds } from "./lib/stats.ts";

const here = dirname(fileURLToPath(import.meta.url));
const repo = dirname(here);

const { values: opt } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    only: { type: "string" },
    skip: { type: "string" },
    connections: { type: "string", default: "32" },
    rate: { type: "string", default: "1000" },
    rounds: { type: "string" },
    "quiet-wait": { type: "string", default: "60" },
    duration: { type: "string" },
    warmup: { type: "string" },
    "latency-duration": { type: "string" },
    "proxy-cpu": { type: "string", default: "1" },
    "load-cpu": { type: "string", default: "0" },
    "op-rate": { type: "string", default: "1000" },
    "op-duration": { type: "string" },
    "op-warmup": { type: "string" },
    compare: { type: "string" },
    label: { type: "string" },
    "keep-workdir": { type: "boolean", default: false },
    "no-write": { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
  allowPositionals: false,
});

if (opt.help) {
  console.log(`usage: npm run bench -- [options]
  --quick                 one round, short phases (~5 minutes for everything)
  --only a,b              run only these scenario ids; the direct baseline of their kind runs too
                          (direct for the throughput tables, op-direct for the operating point)
  --skip a,b              skip these scenario ids
  --duration S            throughput phase seconds per round (default 5, quick 3)
  --warmup S              warm-up seconds after each start (default 2, quick 1)
  --latency-duration S    fixed-rate phase seconds per round (default 6, quick 3)
  --rate N                fixed request rate for the latency phase (default 1000)
  --rounds N              visit every scenario N times, interleaved, and report medians
                          (default 3, quick 1)
  --quiet-wait S          before each phase, wait up to S seconds for other processes on the
                          machine to go idle (default 60; at most 300 s in all, 60 s with --quick)
  --connections N         connections for the throughput phase (default 32)
  --proxy-cpu N           core for the proxies (default 1)
  --load-cpu N            core for the load generators and the upstream (default 0)

operating point (op-* scenarios: the mTLS hop with access logs on, a ${OP_BODY_BYTES}-byte POST body,
${OP_CONNECTIONS} connections, open loop; no throughput phase before it):
  --op-rate N             request rate (default 1000)
  --op-warmup S           unrecorded seconds at that rate after each start (default 5, quick 2)
  --op-duration S         recorded seconds per round (default 10, quick 4)

before/after:
  --compare REV           also build weft at REV (a commit, tag or branch) and run every weft
                          scenario for both, back to back in each round; the tables show REV's
                          row, this tree's row and after/before. REV's copy shares node_modules
                          when its package-lock.json is this tree's, else runs npm ci
  --label NAME            what the tables call this tree (default: its short commit, + if changed)

  --keep-workdir          keep the generated configs, certificates, access logs and REV's copy
  --no-write              print the tables but write nothing to bench/results/
scenario ids: ${allScenarios()
    .map((s) => s.id)
    .join(", ")}`);
  process.exit(0);
}

const quick = opt.quick === true;
const settings = {
  mode: quick ? "quick" : "full",
  connections: int(opt.connections, "--connections"),
  rounds: int(opt.rounds ?? (quick ? "1" : "3"), "--rounds"),
  throughputSeconds: num(opt.duration ?? (quick ? "3" : "5"), "--duration"),
  warmupSeconds: num(opt.warmup ?? (quick ? "1" : "2"), "--warmup"),
  latencyRate: int(opt.rate, "--rate"),
  latencySeconds: num(opt["latency-duration"] ?? (quick ? "3" : "6"), "--latency-duration"),
  latencyWarmupSeconds: 1,
  quietWaitSeconds: Number(opt["quiet-wait"] ?? "60"),
  bodyBytes: Buffer.byteLength(BODY),
  proxyCpu: opt["proxy-cpu"] ?? "1",
  loadCpu: opt["load-cpu"] ?? "0",
  operatingPoint: {
    rate: int(opt["op-rate"], "--op-rate"),
    connections: OP_CONNECTIONS,
    requestBodyBytes: OP_BODY_BYTES,
    warmupSeconds: num(opt["op-warmup"] ?? (quick ? "2" : "5"), "--op-warmup"),
    seconds: num(opt["op-duration"] ?? (quick ? "4" : "10"), "--op-duration"),
  },
};

function num(s: string | undefined, name: string): number {
  const n = Number(s);
  if (!Number.isFinite(n) || n <= 0) fail(`${name} must be a positive number, got ${s}`);
  return n;
}
function int(s: string | undefined, name: string): number {
  const n = num(s, name);
  if (!Number.isInteger(n)) fail(`${name} must be an integer, got ${s}`);
  return n;
}
function fail(msg: string): never {
  console.error(`bench: ${msg}`);
  process.exit(1);
}

// ---------------------------------------------------------------------------------------------
// Preflight: every tool present, enough cores.

function which(name: string, extra: string[] = []): string | undefined {
  const dirs = [...(process.env.PATH ?? "").split(":"), "/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/local/bin", ...extra];
  for (const d of dirs) {
    if (d === "") continue;
    const p = join(d, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return undefined;
}

function preflight(): Bins {
  if (process.platform !== "linux") fail("the benchmark needs Linux (taskset, /proc)");
  const missing: string[] = [];
  const need = (name: string) => {
    const p = which(name);
    if (!p) missing.push(name);
    return p ?? "";
  };
  const bins = {
    nginx: need("nginx"),
    haproxy: need("haproxy"),
    wrk: need("wrk"),
    vegeta: need("vegeta"),
    openssl: need("openssl"),
    node: join(repo, "node_modules", ".bin", "node"),
    deno: join(repo, "node_modules", ".bin", "deno"),
    bun: join(repo, "node_modules", ".bin", "bun"),
  };
  need("taskset");
  if (missing.length > 0) {
    fail(`missing ${missing.join(", ")}: run \`bash bench/setup.sh\` first (installs nginx, haproxy, wrk, vegeta, openssl)`);
  }
  for (const rt of ["node", "deno", "bun"] as const) {
    if (!existsSync(bins[rt])) fail(`missing ${bins[rt]}: run \`npm ci\` first (Node 24, Deno and Bun are devDependencies)`);
  }
  const allowed = new Set(cpusAllowed());
  for (const c of [settings.proxyCpu, settings.loadCpu]) {
    if (!allowed.has(Number(c))) {
      fail(
        `core ${c} is not available to this process (cores: ${[...allowed].join(",")}); the benchmark needs 2 cores, see --proxy-cpu/--load-cpu`,
      );
    }
  }
  if (settings.proxyCpu === settings.loadCpu) fail("--proxy-cpu and --load-cpu must differ");
  return bins;
}

function cpusAllowed(): number[] {
  const status = readFileSync("/proc/self/status", "utf8");
  const m = /^Cpus_allowed_list:\s*(.+)$/m.exec(status);
  if (!m?.[1]) return Array.from({ length: availableParallelism() }, (_, i) => i);
  const out: number[] = [];
  for (const part of m[1].trim().split(",")) {
    const [a, b] = part.split("-").map(Number);
    if (a === undefined || Number.isNaN(a)) continue;
    for (let i = a; i <= (b ?? a); i++) out.push(i);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Machine and versions

function versionOf(cmd: string, args: string[], pattern?: RegExp): string {
  // Some tools print their version on stderr (nginx -v), some exit non-zero (wrk -v).
  const r = spawnSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  const text = `${r.stdout ?? ""}${r.stderr ?? ""}`.trim();
  if (text === "") return "unknown";
  return ((pattern ? (pattern.exec(text)?.[0] ?? text) : text).split("\n")[0] ?? "unknown").trim();
}

function machineInfo(bins: Bins) {
  const cpuModel = cpus()[0]?.model ?? "unknown";
  let osName = "unknown";
  try {
    osName = /^PRETTY_NAME="?([^"\n]*)"?/m.exec(readFileSync("/etc/os-release", "utf8"))?.[1] ?? osName;
  } catch {
    /* keep */
  }
  const tree = workTree(repo);
  const git = { commit: tree.commit, dirty: tree.dirty };
  return {
    machine: {
      cpuModel,
      logicalCpus: cpus().length,
      cpusAllowed: cpusAllowed(),
      kernel: versionOf("uname", ["-r"]),
      os: osName,
      memoryGB: round(totalmem() / 1e9, 1),
      virtualization: versionOf("systemd-detect-virt", []) || "unknown",
    },
    versions: {
      node: versionOf(bins.node, ["--version"]),
      deno: versionOf(bins.deno, ["--version"]).replace(/^deno /, ""),
      bun: versionOf(bins.bun, ["--version"]),
      nginx: versionOf(bins.nginx, ["-v"]).replace(/^nginx version: /, ""),
      haproxy: versionOf(bins.haproxy, ["-v"], /HAProxy version \S+/).replace("HAProxy version ", ""),
      wrk: versionOf(bins.wrk, ["-v"], /wrk \S+/).replace(/^wrk /, ""),
      vegeta: vegetaVersion(bins.vegeta),
      openssl: versionOf(bins.openssl, ["version"]),
      weft: git,
    },
  };
}

function vegetaVersion(bin: string): string {
  // Built from source by bench/setup.sh, so `vegeta -version` has no version: ask Go.
  const go = which("go", ["/usr/local/go/bin"]);
  if (go) {
    const r = spawnSync(go, ["version", "-m", bin], { encoding: "utf8" });
    const mod = /\bmod\s+github\.com\/tsenart\/vegeta\/v12\s+(\S+)/.exec(r.stdout ?? "")?.[1];
    const goVer = /:\s*(go\S+)/.exec(r.stdout ?? "")?.[1];
    if (mod) return `${mod}${goVer ? ` (${goVer})` : ""}`;
  }
  const v = /Version:\s*(\S+)/.exec(versionOf(bin, ["-version"]))?.[1];
  return v ?? "unknown version";
}

// ---------------------------------------------------------------------------------------------
// One visit to a scenario: start its proxies, warm up, measure throughput, then latency and CPU at
// a fixed rate, then memory; stop. Each scenario is visited once per round.

class StartError extends Error {}

interface Visit {
  round: RoundResult;
  pinning: Record<string, string>;
  processes: ScenarioResult["processes"];
  logs?: Record<string, string>;
}

async function visit(ctx: Ctx, s: Scenario, roundNo: number, wrkScript: string): Promise<Visit> {
  const r: RoundResult = { round: roundNo, status: "failed" };
  const t0 = Date.now();
  let procs: Managed[] = [];
  let pinning: Record<string, string> = {};
  let processes: ScenarioResult["processes"] = [];
  let logs: Record<string, string> | undefined;
  try {
    let running;
    try {
      running = await s.start(ctx);
    } catch (err) {
      throw new StartError(err instanceof Error ? err.message : String(err));
    }
    r.startupSeconds = round2((Date.now() - t0) / 1000);
    procs = running.measured;
    pinning = { ...running.pinning, "upstream (nginx, 1 worker)": `cpu ${ctx.loadCpu}`, "wrk / vegeta": `cpu ${ctx.loadCpu}` };
    processes = procs.map((p) => ({ role: p.role, pid: p.pid, command: p.command.join(" ") }));
    if (s.group === "op") await operatingPoint(ctx, s, roundNo, running.url, procs, r);
    else await maximumThroughput(ctx, s, roundNo, running.url, procs, r, wrkScript);
    r.status = "ok";
  } catch (err) {
    r.status = "failed";
    r.startFailed = err instanceof StartError;
    r.error = (err instanceof Error ? err.message : String(err)).slice(0, 2000);
    log(`  FAILED: ${r.error}`);
  } finally {
    if (r.status === "failed" && procs.length > 0) {
      logs = {};
      for (const p of procs) logs[p.role] = summarizeLog(p.logTail());
    }
    await Promise.all(procs.map((p) => stop(p)));
    r.elapsedSeconds = round2((Date.now() - t0) / 1000);
    await sleep(300);
  }
  return { round: r, pinning, processes, logs };
}

/** The throughput and mTLS tables' visit: warm-up, throughput (wrk), latency at a fixed rate (vegeta), memory. */
async function maximumThroughput(
  ctx: Ctx,
  s: Scenario,
  roundNo: number,
  url: string,
  procs: Managed[],
  r: RoundResult,
  wrkScript: string,
): Promise<void> {
  const idle = procs.map((p) => memory(p.pid));

  // Memory is sampled through every phase; VmHWM gives the true peak on top.
  const sampler = sampleRss(procs);
  const peak = sampler.peak;

  try {
    log(`  warm-up ${settings.warmupSeconds}s`);
    const warm = await runWrk({
      wrk: ctx.bins.wrk,
      cpus: ctx.loadCpu,
      url,
      connections: settings.connections,
      seconds: settings.warmupSeconds,
      script: wrkScript,
    });
    assertAlive(procs, "warm-up");
    try {
      await checkBody(url);
    } catch (err) {
      const e = warm.errors;
      throw new Error(
        `after the warm-up (${warm.requests} requests, errors ${JSON.stringify(e)}), a GET on a new connection failed: ${err instanceof Error ? err.message : String(err)}`,
      );
    }

    const q1 = await quiet();
    log(`  throughput ${settings.throughputSeconds}s at ${settings.connections} connections`);
    const c0 = procs.map((p) => cpuSeconds(p.pid));
    const b0 = cpuBusy();
    const f0 = foreignSnapshot();
    const w: WrkResult = await runWrk({
      wrk: ctx.bins.wrk,
      cpus: ctx.loadCpu,
      url,
      connections: settings.connections,
      seconds: settings.throughputSeconds,
      script: wrkScript,
    });
    const fv = foreignVcpu(f0, foreignSnapshot());
    const busy = busyFractions(b0, cpuBusy());
    const c1 = procs.map((p) => cpuSeconds(p.pid));
    assertAlive(procs, "the throughput phase");
    const cpuUsed = sum(c1) - sum(c0);
    const errs = w.errors.connect + w.errors.read + w.errors.write + w.errors.status + w.errors.timeout;
    r.throughput = {
      rps: Math.round(w.rps),
      requests: w.requests,
      seconds: round2(w.seconds),
      errors: w.errors,
      proxyCpuSeconds: round(cpuUsed, 3),
      proxyVcpu: round(cpuUsed / w.seconds, 3),
      proxyCpuUsPerRequest: procs.length > 0 && w.requests > 0 ? round((cpuUsed / w.requests) * 1e6, 1) : null,
      coreBusy: { load: busy[`cpu${ctx.loadCpu}`] ?? null, proxy: busy[`cpu${ctx.proxyCpu}`] ?? null },
      foreignVcpu: round(fv, 3),
      waitedForQuietMs: q1.waitedMs,
    };
    log(
      `    ${r.throughput.rps} req/s, proxy ${r.throughput.proxyVcpu} vCPU, cores busy load ${r.throughput.coreBusy.load} proxy ${r.throughput.coreBusy.proxy}, ${errs} errors${fv >= DISTURBED ? `, DISTURBED (other processes used ${round(fv, 2)} vCPU)` : ""}`,
    );
    if (w.requests === 0) throw new Error("no request completed in the throughput phase");
    await sleep(500);

    const q2 = await quiet();
    log(
      `  latency at ${settings.latencyRate} req/s for ${settings.latencySeconds}s (open loop, after ${settings.latencyWarmupSeconds}s unrecorded)`,
    );
    const l: LatencyResult = await runVegeta({
      vegeta: ctx.bins.vegeta,
      cpus: ctx.loadCpu,
      url,
      rate: settings.latencyRate,
      warmupSeconds: settings.latencyWarmupSeconds,
      seconds: settings.latencySeconds,
      maxConnections: settings.connections,
      dir: ctx.dir,
      name: `${s.id}-r${roundNo}`,
      watch: procs.map((p) => ({ role: p.role, pid: p.pid })),
    });
    assertAlive(procs, "the latency phase");
    Object.assign(r, atRate(l, q2.waitedMs, procs));
    logLatency(r, l);
  } finally {
    sampler.stop();
  }

  if (procs.length > 0) {
    await sleep(1000);
    const after = procs.map((p) => memory(p.pid));
    r.rss = {
      perProcess: procs.map((p, i) => ({
        role: p.role,
        processes: after[i]?.processes ?? 0,
        idleMB: round(idle[i]?.rssMB ?? 0, 1),
        // VmHWM is each process's own high-water mark since start; take the larger of it and
        // the sampled maximum.
        peakMB: round(Math.max(peak[i] ?? 0, after[i]?.hwmMB ?? 0), 1),
        afterMB: round(after[i]?.rssMB ?? 0, 1),
      })),
    };
  }
}

/**
 * The operating point's visit: memory at idle, then open-loop load at the operating point's rate
 * and nothing else, so that memory and CPU are what that load costs (a throughput phase first
 * would leave the runtimes' heaps sized for 30,000 req/s).
 */
async function operatingPoint(ctx: Ctx, s: Scenario, roundNo: number, url: string, procs: Managed[], r: RoundResult): Promise<void> {
  const op = settings.operatingPoint;
  if (!ctx.opBody) throw new Error("the operating point's request body was not written");
  // Idle: once start-up's own work has settled, before any load (the readiness checks' few requests aside).
  await sleep(1000);
  const idle = procs.map((p) => memory(p.pid));
  const q = await quiet();
  log(
    `  operating point: ${op.rate} req/s, POST ${op.requestBodyBytes} B, ${op.connections} connections, ${op.seconds}s after ${op.warmupSeconds}s unrecorded`,
  );
  // The peak under load is sampled through the load only: VmHWM would also count start-up.
  const sampler = sampleRss(procs);
  let l: LatencyResult;
  try {
    l = await runVegeta({
      vegeta: ctx.bins.vegeta,
      cpus: ctx.loadCpu,
      url,
      rate: op.rate,
      warmupSeconds: op.warmupSeconds,
      seconds: op.seconds,
      maxConnections: op.connections,
      dir: ctx.dir,
      name: `${s.id}-r${roundNo}`,
      watch: procs.map((p) => ({ role: p.role, pid: p.pid })),
      bodyFile: ctx.opBody.path,
    });
  } finally {
    sampler.stop();
  }
  assertAlive(procs, "the operating point");
  Object.assign(r, atRate(l, q.waitedMs, procs));
  logLatency(r, l);
  if (procs.length > 0) {
    r.rss = {
      perProcess: procs.map((p, i) => {
        const end = l.cpu[i]?.endRssMB ?? NaN;
        return {
          role: p.role,
          processes: idle[i]?.processes ?? 0,
          idleMB: round(idle[i]?.rssMB ?? 0, 1),
          peakMB: round(Math.max(sampler.peak[i] ?? 0, end), 1),
          endMB: round(end, 1),
        };
      }),
    };
  }
}

/** Samples each process's RSS every 250 ms until stopped. */
function sampleRss(procs: Managed[]): { peak: number[]; stop(): void } {
  const peak = procs.map(() => 0);
  const timer = setInterval(() => {
    procs.forEach((p, i) => {
      peak[i] = Math.max(peak[i] as number, memory(p.pid).rssMB);
    });
  }, 250);
  return { peak, stop: () => clearInterval(timer) };
}

/** A fixed-rate run's latency and, with proxies, their CPU per 1000 req/s. */
function atRate(l: LatencyResult, waitedMs: number, procs: Managed[]): Pick<RoundResult, "latency" | "cpuAtRate"> {
  const per1k = l.achievedRps / 1000;
  return {
    latency: {
      achievedRps: round(l.achievedRps, 1),
      samples: l.samples,
      errors: l.errors,
      errorExamples: l.errorExamples,
      p50Ms: round(l.p50Ms, 3),
      p90Ms: round(l.p90Ms, 3),
      p99Ms: round(l.p99Ms, 3),
      p999Ms: round(l.p999Ms, 3),
      maxMs: round(l.maxMs, 3),
      meanMs: round(l.meanMs, 3),
      foreignVcpu: round(l.foreignVcpu, 3),
      waitedForQuietMs: waitedMs,
    },
    ...(procs.length > 0 && per1k > 0
      ? {
          cpuAtRate: {
            perProcess: l.cpu.map((c) => ({ role: c.role, vcpu: round(c.vcpu, 4), vcpuPer1kRps: round(c.vcpu / per1k, 4) })),
            vcpuPer1kRps: round(sum(l.cpu.map((c) => c.vcpu)) / per1k, 4),
          },
        }
      : {}),
  };
}

function logLatency(r: RoundResult, l: LatencyResult): void {
  if (!r.latency) return;
  log(
    `    p50 ${r.latency.p50Ms} ms, p99 ${r.latency.p99Ms} ms, p99.9 ${r.latency.p999Ms} ms, ${l.errors} errors` +
      (r.cpuAtRate ? `, ${r.cpuAtRate.vcpuPer1kRps} vCPU per 1k req/s` : "") +
      (l.foreignVcpu >= DISTURBED ? `, DISTURBED (other processes used ${round(l.foreignVcpu, 2)} vCPU)` : ""),
  );
}

let quietBudgetMs = (quick ? 60 : 300) * 1000;

async function quiet(): Promise<{ waitedMs: number }> {
  // Each phase waits at most --quiet-wait seconds, and the whole run at most 5 minutes (1 in
  // --quick), so a machine that never goes quiet still finishes.
  const q = await waitQuiet(Math.max(0, Math.min(settings.quietWaitSeconds * 1000, quietBudgetMs)));
  quietBudgetMs -= Math.max(0, q.waitedMs - 500);
  if (q.waitedMs > 1000) {
    log(
      `    (waited ${round(q.waitedMs / 1000, 1)} s for other processes to go quiet${q.quiet ? "" : `; still ${round(q.foreignVcpu, 2)} vCPU busy, measuring anyway`})`,
    );
  }
  return { waitedMs: q.waitedMs };
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const round2 = (n: number) => round(n, 2);

/** Medians over the undisturbed rounds (or all successful ones, flagged, if none was). */
function aggregate(
  s: Scenario,
  rounds: RoundResult[],
  pinning: Record<string, string>,
  processes: ScenarioResult["processes"],
  logs?: Record<string, string>,
): ScenarioResult {
  const ok = rounds.filter((r) => r.status === "ok");
  const retried = rounds.filter((r) => r.retried);
  const use = usedRounds(rounds);
  const res: ScenarioResult = {
    id: s.id,
    baseId: baseId(s.id),
    label: s.label,
    group: s.group,
    ...(s.build ? { build: { role: s.build.role, commit: s.build.commit, name: s.build.name } } : {}),
    kind: s.kind,
    runtime: s.runtime ?? null,
    sidecars: s.sidecars,
    ...(s.filters !== undefined ? { filters: s.filters } : {}),
    status: ok.length > 0 ? "ok" : "failed",
    pinning,
    processes,
    roundsOk: ok.length,
    roundsUsed: use.length,
    disturbed: use.length > 0 && use.every(disturbed),
    rounds,
  };
  const firstError = rounds.find((r) => r.status === "failed" && !r.retried)?.error;
  if (ok.length === 0) {
    res.error = firstError ?? "no round ran";
    if (logs) res.logs = logs;
    return res;
  }
  const realFailures = rounds.length - ok.length - retried.length;
  if (firstError) res.error = `${realFailures} of ${rounds.length - retried.length} rounds failed; first: ${firstError}`;
  const m = (f: (r: RoundResult) => number | null | undefined) => round(median(use.map((r) => f(r) ?? NaN)), 3);
  // The operating point has no throughput phase.
  const tp = use.filter((r) => r.throughput).map((r) => r.throughput?.rps ?? NaN);
  const errors = { connect: 0, read: 0, write: 0, status: 0, timeout: 0 };
  let requests = 0;
  for (const r of use) {
    if (!r.throughput) continue;
    requests += r.throughput.requests;
    for (const k of Object.keys(errors) as (keyof typeof errors)[]) errors[k] += r.throughput.errors[k];
  }
  if (tp.length > 0) {
    res.throughput = {
      rps: Math.round(median(tp)),
      rpsMin: Math.min(...tp),
      rpsMax: Math.max(...tp),
      requests,
      errors,
      proxyVcpu: s.sidecars > 0 ? m((r) => r.throughput?.proxyVcpu) : null,
      proxyCpuUsPerRequest: s.sidecars > 0 ? round(median(use.map((r) => r.throughput?.proxyCpuUsPerRequest ?? NaN)), 1) : null,
      coreBusy: { load: m((r) => r.throughput?.coreBusy.load), proxy: m((r) => r.throughput?.coreBusy.proxy) },
    };
  }
  res.latency = {
    rate: s.group === "op" ? settings.operatingPoint.rate : settings.latencyRate,
    achievedRps: m((r) => r.latency?.achievedRps),
    samples: sum(use.map((r) => r.latency?.samples ?? 0)),
    errors: sum(use.map((r) => r.latency?.errors ?? 0)),
    errorExamples: [...new Set(use.flatMap((r) => r.latency?.errorExamples ?? []))].slice(0, 3),
    p50Ms: m((r) => r.latency?.p50Ms),
    p90Ms: m((r) => r.latency?.p90Ms),
    p99Ms: m((r) => r.latency?.p99Ms),
    p999Ms: m((r) => r.latency?.p999Ms),
    maxMs: round(Math.max(...use.map((r) => r.latency?.maxMs ?? 0)), 3),
  };
  const withCpu = use.filter((r) => r.cpuAtRate);
  const first = withCpu[0]?.cpuAtRate;
  if (first) {
    const total = round(median(withCpu.map((r) => r.cpuAtRate?.vcpuPer1kRps ?? NaN)), 4);
    res.cpuAtRate = {
      perProcess: first.perProcess.map((p, i) => ({
        role: p.role,
        vcpuPer1kRps: round(median(withCpu.map((r) => r.cpuAtRate?.perProcess[i]?.vcpuPer1kRps ?? NaN)), 4),
      })),
      vcpuPer1kRps: total,
      vcpuPer1kRpsPerSidecar: round(total / Math.max(1, s.sidecars), 4),
    };
  }
  // The operating point's memory (idle, peak and end per sidecar, with their spread) is in its figures.
  const withRss = ok.filter((r) => r.rss);
  const r0 = withRss[0]?.rss;
  if (r0 && s.group !== "op") {
    const perProcess = r0.perProcess.map((p, i) => ({
      role: p.role,
      idleMB: round(median(withRss.map((r) => r.rss?.perProcess[i]?.idleMB ?? NaN)), 1),
      peakMB: round(Math.max(...withRss.map((r) => r.rss?.perProcess[i]?.peakMB ?? 0)), 1),
      afterMB: round(median(withRss.map((r) => r.rss?.perProcess[i]?.afterMB ?? NaN)), 1),
    }));
    res.rss = {
      idleMB: round(sum(perProcess.map((p) => p.idleMB)), 1),
      peakMB: round(sum(perProcess.map((p) => p.peakMB)), 1),
      afterMB: round(sum(perProcess.map((p) => p.afterMB)), 1),
      perProcess,
    };
  }
  return res;
}

function log(msg: string): void {
  console.log(msg);
}

// ---------------------------------------------------------------------------------------------
// Main

async function main(): Promise<void> {
  const bins = preflight();
  // The harness itself stays off the proxy core.
  try {
    execFileSync("taskset", ["-a", "-p", "-c", settings.loadCpu, String(process.pid)], { stdio: "ignore" });
  } catch {
    /* best effort */
  }

  const only = opt.only ? new Set(opt.only.split(",").map((s) => s.trim())) : null;
  const skip = new Set(
    (opt.skip ?? "")
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s !== ""),
  );
  const known = new Set(allScenarios().map((s) => s.id));
  for (const id of [...(only ?? []), ...skip]) if (!known.has(id)) fail(`unknown scenario id ${id}; known: ${[...known].join(", ")}`);
  const wanted = (s: Scenario) => (!only || only.has(baseId(s.id))) && !skip.has(baseId(s.id));
  const chosen = allScenarios().filter(wanted);
  // The direct baselines: what the added latency is measured against, run when a scenario needs one.
  const baselines = new Set<string>();
  if (chosen.some((s) => s.group !== "op")) baselines.add("direct");
  if (chosen.some((s) => s.group === "op")) baselines.add("op-direct");
  if (opt.compare !== undefined && !chosen.some((s) => s.kind === "weft")) fail("--compare compares weft scenarios, and none is selected");

  const busyPorts = portsInUse(Object.values(PORTS));
  if (busyPorts.length > 0) {
    fail(
      `ports ${busyPorts.join(", ")} are already in use (the benchmark needs ${Object.values(PORTS).join(", ")} on 127.0.0.1); stop whatever listens there (\`ss -ltnp\`) and retry`,
    );
  }
  // weft runs as it ships: the esbuild bundle (no type stripping at start-up).
  execFileSync("npm", ["run", "--silent", "build"], { cwd: repo, stdio: ["ignore", "ignore", "inherit"] });
  const dir = mkdtempSync(join(tmpdir(), "weft-bench-"));
  const info = machineInfo(bins);
  const startedAt = new Date();
  let compare: { before: WeftBuild; after: WeftBuild } | undefined;
  if (opt.compare !== undefined) {
    const t = Date.now();
    try {
      const before = prepareRevision(repo, opt.compare, join(dir, "revision"), log);
      compare = { before, after: workTree(repo, opt.label) };
      log(
        `compare: ${before.name} (${opt.compare}, ${before.commit}) before, ${compare.after.name} (this tree) after; ${before.name} built in ${round((Date.now() - t) / 1000, 1)} s, node_modules ${before.nodeModules === "linked" ? "linked (same package-lock.json)" : "from npm ci"}`,
      );
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      fail(err instanceof Error ? err.message : String(err));
    }
  }
  const groupOrder = { plain: 0, mtls: 1, op: 2 };
  const scenarios = allScenarios(compare)
    .filter((s) => baselines.has(s.id) || wanted(s))
    .sort((a, b) => groupOrder[a.group] - groupOrder[b.group]);
  log(
    `weft bench (${settings.mode}): ${scenarios.length} scenarios; proxies on cpu ${settings.proxyCpu}, load + upstream on cpu ${settings.loadCpu}`,
  );
  log(
    `  ${info.machine.cpuModel}, kernel ${info.machine.kernel}; node ${info.versions.node}, deno ${info.versions.deno}, bun ${info.versions.bun}, nginx ${info.versions.nginx}, haproxy ${info.versions.haproxy}`,
  );
  log(`  work dir ${dir}`);

  const ctx: Ctx = {
    dir,
    repo,
    proxyCpu: settings.proxyCpu,
    loadCpu: settings.loadCpu,
    bins,
    certs: makeCerts(dir, bins.openssl),
    ...(scenarios.some((s) => s.group === "op") ? { opBody: writeOpBody(dir) } : {}),
  };
  const wrkScript = writeWrkScript(dir);

  let upstream: Managed | undefined;
  const onSignal = () => {
    killAll();
    if (!opt["keep-workdir"]) rmSync(dir, { recursive: true, force: true });
    process.exit(130);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  const rounds = new Map<string, RoundResult[]>(scenarios.map((s) => [s.id, []]));
  const meta = new Map<
    string,
    { pinning: Record<string, string>; processes: ScenarioResult["processes"]; logs?: Record<string, string> }
  >();
  const gaveUp = new Set<string>();
  try {
    upstream = startUpstream(ctx);
    const up = upstream;
    await waitUntil("the upstream to answer", () => checkBody(`http://127.0.0.1:${PORTS.upstream}/`), [up], 10_000);
    for (let round = 1; round <= settings.rounds; round++) {
      for (const [i, s] of roundOrder(scenarios, round).entries()) {
        if (gaveUp.has(s.id)) continue;
        log(`[round ${round}/${settings.rounds}, ${i + 1}/${scenarios.length}] ${s.label}${s.build ? ` [${s.build.name}]` : ""}`);
        let v = await visit(ctx, s, round, wrkScript);
        const list = rounds.get(s.id) ?? [];
        // A round disturbed by other processes is retried once while the scenario has no clean
        // round yet (so a single-round --quick run still gets one clean measurement if it can).
        if (disturbed(v.round) && !list.some((r) => r.status === "ok" && !disturbed(r))) {
          log("  disturbed by other processes: retrying this visit once");
          list.push({ ...v.round, status: "failed", error: "disturbed by other processes; retried", retried: true });
          v = await visit(ctx, s, round, wrkScript);
        }
        list.push(v.round);
        rounds.set(s.id, list);
        const prev = meta.get(s.id);
        meta.set(s.id, {
          pinning: v.round.status === "ok" || !prev ? v.pinning : prev.pinning,
          processes: v.processes,
          logs: v.logs ?? prev?.logs,
        });
        // A scenario that cannot even start (weft not there yet, a runtime refusing a feature)
        // will not start in the next round either.
        if (v.round.startFailed) gaveUp.add(s.id);
        if (up.exited()) throw new Error(`the upstream nginx exited: ${summarizeLog(up.logTail())}`);
      }
    }
  } finally {
    if (upstream) await stop(upstream);
    if (!opt["keep-workdir"]) rmSync(dir, { recursive: true, force: true });
  }
  const results = scenarios.map((s) => {
    const m = meta.get(s.id);
    return aggregate(s, rounds.get(s.id) ?? [], m?.pinning ?? {}, m?.processes ?? [], m?.logs);
  });

  derive(results);
  compareBuilds(results);
  const finishedAt = new Date();
  const bench: BenchResult = {
    schema: "weft-bench/1",
    startedAt: startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    elapsedSeconds: round((finishedAt.getTime() - startedAt.getTime()) / 1000, 1),
    command: `node bench/run.ts ${process.argv.slice(2).join(" ")}`.trim(),
    settings,
    ...info,
    ...(compare
      ? {
          compare: {
            before: {
              rev: compare.before.rev ?? "",
              commit: compare.before.commit,
              name: compare.before.name,
              nodeModules: compare.before.nodeModules ?? "",
            },
            after: { commit: compare.after.commit, dirty: compare.after.dirty, name: compare.after.name },
          },
        }
      : {}),
    topology: {
      proxyCpu: settings.proxyCpu,
      loadCpu: settings.loadCpu,
      description:
        `Each proxy under test is pinned to cpu ${settings.proxyCpu} (taskset; all its threads and processes). ` +
        `The load generator (wrk, then vegeta) and the upstream (nginx, 1 worker, \`return 200\` with a ${settings.bodyBytes}-byte body) share cpu ${settings.loadCpu}. ` +
        `mTLS scenarios chain two proxies (A: plaintext in, mTLS out; B: mTLS in, plaintext to the upstream), both pinned to cpu ${settings.proxyCpu}. ` +
        `HTTP/1.1 keep-alive on every hop.` +
        (compare ? ` weft at ${compare.before.name} runs from its own copy and bundle, on the same Node, Deno and Bun.` : ""),
    },
    scenarios: results,
  };

  const md = renderMarkdown(bench);
  console.log(`\n${md}`);
  if (!opt["no-write"]) {
    const outDir = join(here, "results");
    mkdirSync(outDir, { recursive: true });
    const stamp = startedAt
      .toISOString()
      .replace(/[:.]/g, "-")
      .replace(/-\d{3}Z$/, "Z");
    const jsonPath = join(outDir, `${stamp}${quick ? "-quick" : ""}.json`);
    writeFileSync(jsonPath, `${JSON.stringify(bench, null, 2)}\n`);
    writeFileSync(join(outDir, "latest.md"), md.replaceAll("{{json}}", relative(outDir, jsonPath)));
    log(`wrote ${relative(repo, jsonPath)} and bench/results/latest.md`);
  }
  const failed = results.filter((r) => r.status !== "ok");
  if (failed.length > 0) log(`${failed.length} scenario(s) failed: ${failed.map((f) => f.id).join(", ")} (recorded with their errors)`);
}

/**
 * With --compare, each weft scenario's two builds are visited back to back, and which goes first
 * alternates by round, so that neither always follows the other (a warmer cache, a settling machine).
 */
function roundOrder(scenarios: Scenario[], roundNo: number): Scenario[] {
  const out = [...scenarios];
  if (roundNo % 2 === 1) return out;
  for (let i = 0; i + 1 < out.length; i++) {
    const a = out[i] as Scenario;
    const b = out[i + 1] as Scenario;
    if (b.build?.role === "before" && baseId(b.id) === a.id) {
      out[i] = b;
      out[i + 1] = a;
      i++;
    }
  }
  return out;
}

/**
 * Ratios to nginx (same group) and to the same runtime without filters, latency added over direct,
 * and the operating point's figures.
 */
function derive(results: ScenarioResult[]): void {
  const direct = results.find((r) => r.id === "direct" && r.status === "ok");
  const opDirect = results.find((r) => r.id === "op-direct" && r.status === "ok");
  const nginx: Partial<Record<Group, ScenarioResult>> = {
    plain: results.find((r) => r.id === "nginx" && r.status === "ok"),
    mtls: results.find((r) => r.id === "nginx-mtls" && r.status === "ok"),
  };
  for (const r of results) {
    if (r.status !== "ok") continue;
    if (r.group === "op") {
      r.operatingPoint = { figures: summarize(usedRounds(r.rounds), r.sidecars, usedRounds(opDirect?.rounds ?? [])) };
      continue;
    }
    const ref = nginx[r.group];
    if (r.throughput && ref?.throughput && r.kind !== "direct") {
      r.throughputVsNginx = round(r.throughput.rps / ref.throughput.rps, 3);
      const mine = r.throughput.proxyCpuUsPerRequest;
      const theirs = ref.throughput.proxyCpuUsPerRequest;
      if (mine && theirs) r.cpuEfficiencyVsNginx = round(theirs / mine, 3);
    }
    const unfilteredId = `weft-${r.runtime}${r.build?.role === "before" ? BEFORE : ""}`;
    const unfiltered = r.filters !== undefined ? results.find((x) => x.id === unfilteredId && x.status === "ok") : undefined;
    if (r.throughput && unfiltered?.throughput) r.throughputVsNoFilters = round(r.throughput.rps / unfiltered.throughput.rps, 3);
    if (r.latency && direct?.latency && r.kind !== "direct") {
      const added = r.latency.p99Ms - direct.latency.p99Ms;
      r.addedP99Ms = round(added, 3);
      r.addedP99MsPerSidecar = round(added / Math.max(1, r.sidecars), 3);
    }
  }
}

main().catch((err) => {
  killAll();
  console.error(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(1);
});
