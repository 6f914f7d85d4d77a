// The result file's shape and its Markdown rendering (bench/results/latest.md).
import type { LatencyResult } from "./load.ts";
import { SIDECAR_NAMES } from "./operating-point.ts";
import type { OpFigures } from "./operating-point.ts";
import type { Group } from "./scenarios.ts";
import type { Spread, Versus } from "./stats.ts";

/** The latency figures a result keeps, as the load generator measured them. */
type LatencyFigures = Pick<
  LatencyResult,
  "achievedRps" | "samples" | "errors" | "errorExamples" | "p50Ms" | "p90Ms" | "p99Ms" | "p999Ms" | "maxMs"
>;

export interface RoundResult {
  round: number;
  status: "ok" | "failed";
  error?: string;
  /** A disturbed visit that was discarded and visited again. */
  retried?: boolean;
  /** The scenario could not start (it is not retried in later rounds). */
  startFailed?: boolean;
  startupSeconds?: number;
  elapsedSeconds?: number;
  throughput?: {
    rps: number;
    requests: number;
    seconds: number;
    errors: { connect: number; read: number; write: number; status: number; timeout: number };
    proxyCpuSeconds: number;
    proxyVcpu: number;
    proxyCpuUsPerRequest: number | null;
    coreBusy: { load: number | null; proxy: number | null };
    /** vCPU used by processes outside the harness during the phase. */
    foreignVcpu: number;
    waitedForQuietMs: number;
  };
  latency?: LatencyFigures & {
    meanMs: number;
    foreignVcpu: number;
    waitedForQuietMs: number;
  };
  cpuAtRate?: {
    perProcess: { role: string; vcpu: number; vcpuPer1kRps: number }[];
    vcpuPer1kRps: number;
  };
  /**
   * idle: after start, before any load. peak: the highest sampled (and, outside the operating
   * point, VmHWM). after: 1 s after the load; end: at the end of the operating point's window, under load.
   */
  rss?: {
    perProcess: { role: string; processes: number; idleMB: number; peakMB: number; afterMB?: number; endMB?: number }[];
  };
}

/** A scenario over all rounds: medians of the undisturbed rounds, peak RSS over all. */
export interface ScenarioResult {
  id: string;
  /** The id without the comparison's suffix (`weft-node` for `weft-node@before`). */
  baseId: string;
  label: string;
  group: Group;
  /** The weft build, in a comparison (--compare). */
  build?: { role: "before" | "after"; commit: string; name: string };
  kind: "direct" | "nginx" | "haproxy" | "weft";
  runtime: string | null;
  sidecars: number;
  status: "ok" | "failed";
  error?: string;
  logs?: Record<string, string>;
  pinning: Record<string, string>;
  processes?: { role: string; pid: number; command: string }[];
  roundsOk: number;
  roundsUsed: number;
  /** Every successful round had other processes busy on the machine. */
  disturbed: boolean;
  throughput?: {
    rps: number;
    rpsMin: number;
    rpsMax: number;
    requests: number;
    errors: { connect: number; read: number; write: number; status: number; timeout: number };
    proxyVcpu: number | null;
    proxyCpuUsPerRequest: number | null;
    /** Median busy fraction of the load core and the proxy core during the throughput phase. */
    coreBusy: { load: number; proxy: number };
  };
  latency?: LatencyFigures & { rate: number };
  cpuAtRate?: {
    perProcess: { role: string; vcpuPer1kRps: number }[];
    vcpuPer1kRps: number;
    vcpuPer1kRpsPerSidecar: number;
  };
  rss?: {
    idleMB: number;
    peakMB: number;
    afterMB: number;
    perProcess: { role: string; idleMB: number; peakMB: number; afterMB: number }[];
  };
  rounds: RoundResult[];
  throughputVsNginx?: number;
  /** nginx's proxy CPU per request divided by this scenario's: throughput per CPU-second vs nginx. */
  cpuEfficiencyVsNginx?: number;
  addedP99Ms?: number;
  addedP99MsPerSidecar?: number;
  /** WebAssembly filters on the proxy (weft only). */
  filters?: number;
  /** Throughput divided by the same runtime's without filters. */
  throughputVsNoFilters?: number;
  /** The operating point's figures (group "op"), and in a comparison this build's against the revision's. */
  operatingPoint?: { figures: OpFigures; vsBefore?: Record<string, Versus> };
  /** In a comparison, this build against the revision's, per pair of rounds (bench/lib/compare.ts). */
  vsBefore?: Record<string, Versus>;
}

export interface BenchResult {
  schema: string;
  startedAt: string;
  finishedAt: string;
  elapsedSeconds: number;
  command: string;
  settings: {
    mode: string;
    rounds: number;
    quietWaitSeconds: number;
    connections: number;
    throughputSeconds: number;
    warmupSeconds: number;
    latencyRate: number;
    latencySeconds: number;
    latencyWarmupSeconds: number;
    bodyBytes: number;
    proxyCpu: string;
    loadCpu: string;
    operatingPoint: { rate: number; connections: number; requestBodyBytes: number; warmupSeconds: number; seconds: number };
  };
  machine: {
    cpuModel: string;
    logicalCpus: number;
    cpusAllowed: number[];
    kernel: string;
    os: string;
    memoryGB: number;
    virtualization: string;
  };
  versions: Record<string, unknown> & { weft: { commit: string; dirty: boolean } };
  /** --compare: the two builds (after is this work tree, as versions.weft). */
  compare?: {
    before: { rev: string; commit: string; name: string; nodeModules: string };
    after: { commit: string; dirty: boolean; name: string };
  };
  topology: { proxyCpu: string; loadCpu: string; description: string };
  scenarios: ScenarioResult[];
}

const f = (n: number | null | undefined, digits = 2): string =>
  n === null || n === undefined || Number.isNaN(n) ? "–" : n.toFixed(digits);
const int = (n: number | null | undefined): string =>
  n === null || n === undefined || Number.isNaN(n) ? "–" : Math.round(n).toLocaleString("en-US");
const pipeSafe = (s: string) => s.replace(/\|/g, "\\|").replace(/\n/g, " ");

function latencyCell(r: ScenarioResult): string {
  const l = r.latency;
  if (!l) return "–";
  return `${f(l.p50Ms, 3)} / ${f(l.p90Ms, 3)} / ${f(l.p99Ms, 3)} / ${f(l.p999Ms, 3)}`;
}

function perSidecar(values: number[], digits: number): string {
  if (values.length <= 1) return f(values[0], digits);
  return values.map((v) => f(v, digits)).join(" + ");
}

function errorsNote(r: ScenarioResult): string {
  const notes: string[] = [];
  const t = r.throughput;
  if (t) {
    const e = t.errors;
    const total = e.connect + e.read + e.write + e.status + e.timeout;
    if (total > 0) notes.push(`throughput errors: ${total} (${JSON.stringify(e)})`);
  }
  if (r.latency && r.latency.errors > 0) {
    notes.push(`latency errors: ${r.latency.errors}/${r.latency.samples} (${r.latency.errorExamples.join("; ")})`);
  }
  return notes.join("; ");
}

/** The row's name: the scenario, and in a comparison which build it ran. */
function labelOf(r: ScenarioResult): string {
  return r.build ? `${r.label}, ${r.build.role} (${r.build.name})` : r.label;
}

/** A figure over rounds: the median, and its range when the rounds differed. */
function spreadCell(x: Spread | undefined, digits: number): string {
  if (!x || x.n === 0) return "–";
  return x.n > 1 && x.max > x.min ? `${f(x.median, digits)} (${f(x.min, digits)}–${f(x.max, digits)})` : f(x.median, digits);
}

/** after ÷ before over pairs of rounds: the median ratio, and its range when there were several pairs. */
function ratioCell(v: Versus | undefined): string {
  if (!v || v.ratio.n === 0) return "–";
  const x = v.ratio;
  return x.n > 1 && x.max > x.min ? `×${f(x.median, 2)} (${f(x.min, 2)}–${f(x.max, 2)})` : `×${f(x.median, 2)}`;
}

/** after − before, for figures near zero (added latency) whose ratio would swing with noise. */
function deltaCell(v: Versus | undefined, digits: number, divisor = 1): string {
  if (!v || v.delta.n === 0) return "–";
  const sign = (n: number) => `${n >= 0 ? "+" : ""}${f(n / divisor, digits)}`;
  const x = v.delta;
  return x.n > 1 && x.max > x.min ? `${sign(x.median)} (${sign(x.min)}…${sign(x.max)})` : sign(x.median);
}

/**
 * The rows in table order; in a comparison, each of this tree's weft rows is preceded by the
 * revision's and followed by a ratio row (`ratio` renders it).
 */
function withComparison(results: ScenarioResult[], row: (r: ScenarioResult) => string[], ratio: (r: ScenarioResult) => string[]): string[] {
  const lines: string[] = [];
  for (const r of results) {
    const partner = r.build ? results.find((x) => x.baseId === r.baseId && x.build?.role !== r.build?.role) : undefined;
    if (r.build?.role === "before" && partner) continue; // shown above its partner
    if (partner) lines.push(...row(partner));
    lines.push(...row(r));
    if (partner && (r.vsBefore || r.operatingPoint?.vsBefore)) lines.push(...ratio(r));
  }
  return lines;
}

function table(results: ScenarioResult[], mtls: boolean, rate: number): string[] {
  const lines: string[] = [];
  const both = mtls ? " (A + B)" : "";
  lines.push(
    `| scenario | req/s @ 32 conns | vs nginx | proxy core busy | proxy CPU µs/req${both} | vs nginx per CPU-s | p50 / p90 / p99 / p99.9 ms @ ${rate} req/s | added p99 vs direct, ms${mtls ? " (per sidecar)" : ""} | vCPU per 1k req/s${both} | RSS peak / after, MB${both} |`,
  );
  lines.push("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
  const row = (r: ScenarioResult): string[] => {
    if (r.status !== "ok") return [`| ${labelOf(r)} | failed | | | | | | | | |`];
    const t = r.throughput;
    const range = t && t.rpsMax > t.rpsMin ? ` (${int(t.rpsMin)}–${int(t.rpsMax)})` : "";
    const flag = r.disturbed ? " ⚠" : "";
    const direct = r.kind === "direct";
    const vs = direct ? "—" : f(r.throughputVsNginx, 2);
    const eff = direct ? "—" : f(r.cpuEfficiencyVsNginx, 2);
    const busy = direct || !t ? "—" : `${Math.round(t.coreBusy.proxy * 100)}%`;
    const usPerReq = direct || !t ? "—" : f(t.proxyCpuUsPerRequest, 1);
    const added = r.addedP99Ms === undefined ? "—" : mtls ? `${f(r.addedP99Ms, 3)} (${f(r.addedP99MsPerSidecar, 3)})` : f(r.addedP99Ms, 3);
    const cpu = r.cpuAtRate
      ? perSidecar(
          r.cpuAtRate.perProcess.map((p) => p.vcpuPer1kRps),
          3,
        )
      : "—";
    const rss = r.rss
      ? r.rss.perProcess.length > 1
        ? `${r.rss.perProcess.map((p) => f(p.peakMB, 1)).join(" + ")} / ${r.rss.perProcess.map((p) => f(p.afterMB, 1)).join(" + ")}`
        : `${f(r.rss.peakMB, 1)} / ${f(r.rss.afterMB, 1)}`
      : "—";
    return [
      `| ${labelOf(r)}${flag} | ${int(t?.rps)}${range} | ${vs} | ${busy} | ${usPerReq} | ${eff} | ${latencyCell(r)} | ${added} | ${cpu} | ${rss} |`,
    ];
  };
  // The added p99's change is the p99's: both builds are measured against the same direct rounds.
  const ratio = (r: ScenarioResult): string[] => {
    const v = r.vsBefore ?? {};
    const lat = ["p50Ms", "p90Ms", "p99Ms", "p999Ms"].map((k) => ratioCell(v[k])).join(" / ");
    const added = mtls ? `${deltaCell(v.p99Ms, 3)} (${deltaCell(v.p99Ms, 3, 2)})` : deltaCell(v.p99Ms, 3);
    return [
      `| ${r.label}: after ÷ before | ${ratioCell(v.rps)} | | | ${ratioCell(v.proxyCpuUsPerRequest)} | | ${lat} | ${added} | ${ratioCell(v.vcpuPer1kRps)} | ${ratioCell(v.peakMB)} / ${ratioCell(v.afterMB)} |`,
    ];
  };
  lines.push(...withComparison(results, row, ratio));
  return lines;
}

/** The operating point, one row per scenario: what it costs per sidecar and the latency it adds. */
function opTable(results: ScenarioResult[]): string[] {
  const lines = [
    "| scenario | req/s sent | vCPU per 1k req/s, per sidecar | added p50 per sidecar, ms | added p90 per sidecar, ms | added p99 per sidecar, ms | p50 / p90 / p99 ms, whole path |",
    "|---|--:|--:|--:|--:|--:|--:|",
  ];
  const row = (r: ScenarioResult): string[] => {
    const x = r.operatingPoint?.figures;
    if (r.status !== "ok" || !x) return [`| ${labelOf(r)} | failed | | | | | |`];
    const path = ["p50Ms", "p90Ms", "p99Ms"].map((k) => f(x[k]?.median, 3)).join(" / ");
    const direct = r.kind === "direct";
    const added = (k: string) => (direct ? "—" : spreadCell(x[k], 3));
    return [
      `| ${labelOf(r)}${r.disturbed ? " ⚠" : ""} | ${spreadCell(x.achievedRps, 0)} | ${direct ? "—" : spreadCell(x.vcpuPer1kRpsPerSidecar, 3)} | ${added("addedP50MsPerSidecar")} | ${added("addedP90MsPerSidecar")} | ${added("addedP99MsPerSidecar")} | ${path} |`,
    ];
  };
  const ratio = (r: ScenarioResult): string[] => {
    const v = r.operatingPoint?.vsBefore ?? {};
    const path = ["p50Ms", "p90Ms", "p99Ms"].map((k) => ratioCell(v[k])).join(" / ");
    return [
      `| ${r.label}: after ÷ before (added latency: after − before) | ${ratioCell(v.achievedRps)} | ${ratioCell(v.vcpuPer1kRpsPerSidecar)} | ${deltaCell(v.addedP50MsPerSidecar, 3)} | ${deltaCell(v.addedP90MsPerSidecar, 3)} | ${deltaCell(v.addedP99MsPerSidecar, 3)} | ${path} |`,
    ];
  };
  lines.push(...withComparison(results, row, ratio));
  return lines;
}

/** The operating point, one row per sidecar: CPU and memory (idle, and under load). */
function opSidecarTable(results: ScenarioResult[]): string[] {
  const lines = [
    "| scenario | sidecar | vCPU per 1k req/s | RSS idle, MB | RSS peak under load, MB | RSS at end of load, MB |",
    "|---|---|--:|--:|--:|--:|",
  ];
  const roles = (r: ScenarioResult) => r.processes?.map((p) => p.role) ?? [];
  const row = (r: ScenarioResult): string[] => {
    const x = r.operatingPoint?.figures;
    if (r.kind === "direct") return [];
    if (r.status !== "ok" || !x) return [`| ${labelOf(r)} | failed | | | | |`];
    return roles(r).map((role, i) => {
      const who = SIDECAR_NAMES[i];
      const cell = (k: string, digits: number) => spreadCell(x[`${who}.${k}`], digits);
      return `| ${labelOf(r)}${r.disturbed ? " ⚠" : ""} | ${pipeSafe(role)} | ${cell("vcpuPer1kRps", 3)} | ${cell("idleMB", 1)} | ${cell("peakMB", 1)} | ${cell("endMB", 1)} |`;
    });
  };
  const ratio = (r: ScenarioResult): string[] => {
    const v = r.operatingPoint?.vsBefore ?? {};
    return roles(r).map((role, i) => {
      const who = SIDECAR_NAMES[i];
      const cell = (k: string) => ratioCell(v[`${who}.${k}`]);
      return `| ${r.label}: after ÷ before | ${pipeSafe(role)} | ${cell("vcpuPer1kRps")} | ${cell("idleMB")} | ${cell("peakMB")} | ${cell("endMB")} |`;
    });
  };
  lines.push(...withComparison(results, row, ratio));
  return lines;
}

interface Target {
  what: string;
  goal: string;
  measured: string;
  status: string;
}

function targets(b: BenchResult): Target[] {
  const ok = (id: string) => b.scenarios.find((s) => s.id === id && s.status === "ok");
  const weftPlain = ["node", "deno", "bun"].map((rt) => ok(`weft-${rt}`)).filter((s): s is ScenarioResult => !!s);
  const weftMtls = ["node", "deno", "bun"].map((rt) => ok(`weft-${rt}-mtls`)).filter((s): s is ScenarioResult => !!s);
  const out: Target[] = [];
  // A disturbed baseline makes a ratio meaningless: say so instead of "met".
  const nginxDisturbed = b.scenarios.find((s) => s.id === "nginx")?.disturbed ?? false;
  const directDisturbed = b.scenarios.find((s) => s.id === "direct")?.disturbed ?? false;
  const basic = (pass: boolean | null) => (pass === null ? "not measured" : pass ? "met" : "not met");
  const status = (pass: boolean | null) =>
    pass !== null && nginxDisturbed ? `${basic(pass)}? (unreliable: the nginx baseline was disturbed)` : basic(pass);

  const fastest = weftPlain
    .filter((s) => s.throughputVsNginx !== undefined)
    .sort((a, c) => (c.throughputVsNginx ?? 0) - (a.throughputVsNginx ?? 0))[0];
  out.push({
    what: "throughput per core, fastest runtime, vs nginx",
    goal: ">= 0.60x",
    measured: fastest
      ? `${f(fastest.throughputVsNginx, 2)}x (${fastest.runtime}, ${int(fastest.throughput?.rps)} req/s; per CPU-second ${f(fastest.cpuEfficiencyVsNginx, 2)}x)`
      : "–",
    status: status(fastest ? (fastest.throughputVsNginx ?? 0) >= 0.6 : null),
  });
  const node = ok("weft-node");
  out.push({
    what: "throughput per core, Node, vs nginx",
    goal: ">= 0.40x",
    measured:
      node?.throughputVsNginx !== undefined
        ? `${f(node.throughputVsNginx, 2)}x (${int(node.throughput?.rps)} req/s; per CPU-second ${f(node.cpuEfficiencyVsNginx, 2)}x)`
        : "–",
    status: status(node?.throughputVsNginx !== undefined ? node.throughputVsNginx >= 0.4 : null),
  });
  const cpuList = weftMtls.filter((s) => s.cpuAtRate);
  out.push({
    what: `CPU with mTLS (and metrics), per sidecar, at ${b.settings.latencyRate} req/s`,
    goal: "<= 0.10 vCPU per 1000 req/s",
    measured: cpuList.length > 0 ? cpuList.map((s) => `${s.runtime} ${f(s.cpuAtRate?.vcpuPer1kRpsPerSidecar, 3)}`).join(", ") : "–",
    status:
      cpuList.length > 0
        ? cpuList.some((s) => (s.cpuAtRate?.vcpuPer1kRpsPerSidecar ?? 1) <= 0.1)
          ? `met on ${cpuList
              .filter((s) => (s.cpuAtRate?.vcpuPer1kRpsPerSidecar ?? 1) <= 0.1)
              .map((s) => s.runtime)
              .join(", ")}`
          : "not met"
        : "not measured",
  });
  const lat = [...weftPlain, ...weftMtls].filter((s) => s.addedP99MsPerSidecar !== undefined);
  out.push({
    what: `added p99 latency per sidecar at ${b.settings.latencyRate} req/s`,
    goal: "<= 1 ms",
    measured:
      lat.length > 0 ? lat.map((s) => `${s.runtime}${s.group === "mtls" ? "+mTLS" : ""} ${f(s.addedP99MsPerSidecar, 3)}`).join(", ") : "–",
    status:
      (lat.length > 0
        ? lat.every((s) => (s.addedP99MsPerSidecar ?? 99) <= 1)
          ? "met"
          : `not met on ${lat
              .filter((s) => (s.addedP99MsPerSidecar ?? 99) > 1)
              .map((s) => `${s.runtime}${s.group === "mtls" ? "+mTLS" : ""}`)
              .join(", ")}`
        : "not measured") + (lat.length > 0 && directDisturbed ? " (unreliable: the direct baseline was disturbed)" : ""),
  });
  // The same two goals at the operating point, where Istio quotes its own figures.
  const o = b.settings.operatingPoint;
  const opWeft = ["node", "deno", "bun"].map((rt) => ok(`op-weft-${rt}`)).filter((s): s is ScenarioResult => !!s?.operatingPoint);
  const opGoal = (what: string, goal: string, key: string, limit: number, digits: number) => {
    const got = opWeft.filter((s) => Number.isFinite(s.operatingPoint?.figures[key]?.median));
    const value = (s: ScenarioResult) => s.operatingPoint?.figures[key]?.median ?? NaN;
    const met = got.filter((s) => value(s) <= limit).map((s) => s.runtime);
    out.push({
      what: `${what} at the operating point (${o.rate} req/s, ${o.requestBodyBytes}-byte POST, ${o.connections} connections, mTLS, telemetry)`,
      goal,
      measured: got.length > 0 ? got.map((s) => `${s.runtime} ${f(value(s), digits)}`).join(", ") : "–",
      status:
        got.length === 0 ? "not measured" : met.length === got.length ? "met" : met.length > 0 ? `met on ${met.join(", ")}` : "not met",
    });
  };
  opGoal("CPU per sidecar", "<= 0.10 vCPU per 1000 req/s", "vcpuPer1kRpsPerSidecar", 0.1, 3);
  opGoal("added p99 latency per sidecar", "<= 1 ms", "addedP99MsPerSidecar", 1, 3);
  const chains = ["node", "deno", "bun"]
    .map((rt) => ok(`weft-${rt}-filters3`))
    .filter((s): s is ScenarioResult => s?.throughputVsNoFilters !== undefined);
  out.push({
    what: "throughput with a chain of three filters, vs none (issue 3)",
    goal: ">= 0.90x (the chain costs <= 10%)",
    measured: chains.length > 0 ? chains.map((s) => `${s.runtime} ${f(s.throughputVsNoFilters, 2)}x`).join(", ") : "–",
    status:
      chains.length > 0
        ? chains.every((s) => (s.throughputVsNoFilters ?? 0) >= 0.9)
          ? "met"
          : `not met on ${chains
              .filter((s) => (s.throughputVsNoFilters ?? 0) < 0.9)
              .map((s) => s.runtime)
              .join(", ")}`
        : "not measured",
  });
  out.push({
    what: "RSS (peak) on the fastest runtime",
    goal: "<= 50 MB",
    measured: fastest?.rss ? `${f(fastest.rss.peakMB, 1)} MB (${fastest.runtime}; after load ${f(fastest.rss.afterMB, 1)} MB)` : "–",
    status: basic(fastest?.rss ? fastest.rss.peakMB <= 50 : null),
  });
  return out;
}

export function renderMarkdown(b: BenchResult): string {
  const s = b.settings;
  const v = b.versions;
  const lines: string[] = [];
  lines.push("# weft benchmark: latest run");
  lines.push("");
  const args = b.command.replace(/^node bench\/run\.ts\s*/, "");
  lines.push(
    `Generated by \`npm run bench${args !== "" ? ` -- ${args}` : ""}\` on ${b.startedAt} (${s.mode} mode, ${b.elapsedSeconds} s). ` +
      `Raw numbers: [\`{{json}}\`]({{json}}). How to read this: [docs/benchmarks.md](../../docs/benchmarks.md).`,
  );
  lines.push("");
  lines.push(
    `Machine: ${b.machine.cpuModel}, ${b.machine.logicalCpus} logical CPUs, ${b.machine.memoryGB} GB, ${b.machine.os}, kernel ${b.machine.kernel}. ` +
      `Node ${v.node}, Deno ${String(v.deno).split(" ")[0]}, Bun ${v.bun}, nginx ${v.nginx}, HAProxy ${v.haproxy}, wrk ${v.wrk}, vegeta ${v.vegeta}, ${String(v.openssl).replace(/ \(Library.*$/, "")}. ` +
      `weft commit ${v.weft.commit}${v.weft.dirty ? " (with uncommitted changes)" : ""}.`,
  );
  lines.push("");
  const c = b.compare;
  if (c) {
    lines.push(
      `**Before/after:** weft at ${c.before.commit} (\`--compare ${c.before.rev}\`, called ${c.before.name}) is **before**; ` +
        `this work tree, ${c.after.commit}${c.after.dirty ? " with uncommitted changes" : ""} (called ${c.after.name}), is **after**. ` +
        `Every weft scenario ran for both, back to back in each round (which one first alternating by round), on the same runtimes; ` +
        `the "after ÷ before" rows are the median over rounds of each round's ratio, its range in parentheses.`,
    );
    lines.push("");
  }
  lines.push(
    `Each scenario was visited ${s.rounds} time${s.rounds > 1 ? "s (rounds interleaved across scenarios; medians shown, throughput range in parentheses)" : ""}. ` +
      `Per visit: start, ${s.warmupSeconds} s warm-up, ${s.throughputSeconds} s closed-loop throughput (wrk, ${s.connections} keep-alive connections), ` +
      `then ${s.latencySeconds} s open-loop at ${s.latencyRate} req/s (vegeta, after ${s.latencyWarmupSeconds} s unrecorded), then memory; stop. ${b.topology.description}`,
  );
  lines.push("");
  const plain = b.scenarios.filter((r) => r.group === "plain");
  const mtls = b.scenarios.filter((r) => r.group === "mtls");
  const op = b.scenarios.filter((r) => r.group === "op");
  if (plain.length > 0) {
    lines.push("## Plain HTTP/1.1, one proxy");
    lines.push("");
    lines.push(...table(plain, false, s.latencyRate));
    lines.push("");
  }
  if (mtls.length > 0) {
    lines.push(`## One mTLS hop: client → A → (mTLS) → B → upstream, A and B both on cpu ${s.proxyCpu}`);
    lines.push("");
    lines.push(...table(mtls, true, s.latencyRate));
    lines.push("");
  }
  const o = s.operatingPoint;
  if (op.length > 0) {
    lines.push(
      `## Operating point: ${o.rate} req/s, ${o.requestBodyBytes}-byte POST, ${o.connections} connections, mTLS hop, telemetry on (per sidecar)`,
    );
    lines.push("");
    lines.push(
      `The way meshes are compared (Istio's method): client → A → (mTLS) → B → upstream at a fixed ${o.rate} req/s, open loop (vegeta), ` +
        `each request a POST of ${o.requestBodyBytes} bytes over ${o.connections} keep-alive connections; the upstream answers ${s.bodyBytes} bytes. ` +
        `Every proxy writes an access log line per request to a file (weft: \`accessLog: "stdout"\`, an injected sidecar's default, with stdout to a file; metrics are always on). ` +
        `Per visit: start, RSS idle, ${o.warmupSeconds} s at the rate unrecorded, ${o.seconds} s recorded (CPU from /proc over that window); no throughput phase. ` +
        `Per sidecar: CPU ÷ 2 (A + B), added latency = (this − direct in the same round) ÷ 2. ` +
        (s.rounds > 1 ? `Medians over ${s.rounds} rounds, the range over rounds in parentheses.` : "One round: no spread to show."),
    );
    lines.push("");
    lines.push(...opTable(op));
    lines.push("");
    lines.push(...opSidecarTable(op));
    lines.push("");
  }
  const withFilters = plain.filter((r) => r.filters !== undefined && r.status === "ok");
  if (withFilters.length > 0) {
    lines.push("## WebAssembly filters on the proxy");
    lines.push("");
    lines.push(
      "One filter: `header-rewrite`; three: `ip-filter`, `rate-limit`, `header-rewrite` (bench/lib/scenarios.ts), every request passing all of them.",
    );
    lines.push("");
    lines.push("| scenario | req/s | vs the same runtime without filters | vs nginx | proxy CPU µs/req |");
    lines.push("|---|--:|--:|--:|--:|");
    lines.push(
      ...withComparison(
        withFilters,
        (r) => [
          `| ${labelOf(r)}${r.disturbed ? " ⚠" : ""} | ${int(r.throughput?.rps)} | ${f(r.throughputVsNoFilters, 2)} | ${f(r.throughputVsNginx, 2)} | ${f(r.throughput?.proxyCpuUsPerRequest, 1)} |`,
        ],
        (r) => [`| ${r.label}: after ÷ before | ${ratioCell(r.vsBefore?.rps)} | | | ${ratioCell(r.vsBefore?.proxyCpuUsPerRequest)} |`],
      ),
    );
    lines.push("");
  }
  lines.push("## Targets (issues 2 and 3)");
  lines.push("");
  lines.push("| target | goal | measured | status |");
  lines.push("|---|---|---|---|");
  for (const t of targets(b)) lines.push(`| ${t.what} | ${t.goal} | ${pipeSafe(t.measured)} | ${t.status} |`);
  lines.push("");
  const disturbed = b.scenarios.filter((r) => r.disturbed);
  if (disturbed.length > 0) {
    lines.push(
      `⚠ Other processes on the machine used more than 0.1 vCPU during every round of: ${disturbed.map(labelOf).join("; ")}. Treat those numbers as unreliable.`,
    );
    lines.push("");
  }
  const failed = b.scenarios.filter((r) => r.status !== "ok");
  const noted = b.scenarios.filter((r) => r.status === "ok" && (errorsNote(r) !== "" || r.error));
  if (failed.length > 0 || noted.length > 0) {
    lines.push("## Failures and errors");
    lines.push("");
    for (const r of failed) lines.push(`- **${labelOf(r)}** (\`${r.id}\`) failed: ${pipeSafe(r.error ?? "unknown error")}`);
    for (const r of noted) lines.push(`- ${labelOf(r)}: ${pipeSafe([r.error ?? "", errorsNote(r)].filter((x) => x !== "").join("; "))}`);
    lines.push("");
  }
  return lines.join("\n");
}
