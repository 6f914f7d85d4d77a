// Load generators: wrk (closed loop, for throughput) and vegeta (open loop at a fixed rate, for
// latency). Both run pinned to the load core.
import { execFile, spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cpuSeconds, foreignSnapshot, foreignVcpu, memory, sleep, track } from "./proc.ts";

export interface WrkResult {
  requests: number;
  seconds: number;
  rps: number;
  errors: { connect: number; read: number; write: number; status: number; timeout: number };
  /** Mean of wrk's own (closed-loop, coordinated-omission-prone) latency; for reference only. */
  meanLatencyMs: number;
}

const WRK_DONE_SCRIPT = `
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_JSON {\\"requests\\":%d,\\"duration_us\\":%d,\\"connect\\":%d,\\"read\\":%d,\\"write\\":%d,\\"status\\":%d,\\"timeout\\":%d,\\"mean_us\\":%f}\\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout, latency.mean))
end
`;

export function writeWrkScript(dir: string): string {
  const path = join(dir, "wrk-done.lua");
  writeFileSync(path, WRK_DONE_SCRIPT);
  return path;
}

export async function runWrk(opts: {
  wrk: string;
  cpus: string;
  url: string;
  connections: number;
  seconds: number;
  script: string;
}): Promise<WrkResult> {
  const args = [
    "-c",
    opts.cpus,
    opts.wrk,
    "-t1",
    `-c${opts.connections}`,
    `-d${opts.seconds}s`,
    "--timeout",
    "5s",
    "-s",
    opts.script,
    opts.url,
  ];
  const out = await run("taskset", args, (opts.seconds + 30) * 1000);
  const m = /WRK_JSON (\{.*\})/.exec(out);
  if (!m?.[1]) throw new Error(`wrk printed no summary: ${out.slice(-800)}`);
  const j = JSON.parse(m[1]) as {
    requests: number;
    duration_us: number;
    connect: number;
    read: number;
    write: number;
    status: number;
    timeout: number;
    mean_us: number;
  };
  const seconds = j.duration_us / 1e6;
  return {
    requests: j.requests,
    seconds,
    rps: seconds > 0 ? j.requests / seconds : 0,
    errors: { connect: j.connect, read: j.read, write: j.write, status: j.status, timeout: j.timeout },
    meanLatencyMs: j.mean_us / 1000,
  };
}

export interface LatencyResult {
  rate: number;
  seconds: number;
  samples: number;
  achievedRps: number;
  errors: number;
  errorExamples: string[];
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
  meanMs: number;
  /** CPU seconds used by each watched process tree during the measured window, and its RSS at the window's end (MB). */
  cpu: { role: string; cpuSeconds: number; vcpu: number; endRssMB: number }[];
  windowSeconds: number;
  /** vCPU used by processes outside the harness during the window (interference). */
  foreignVcpu: number;
}

/**
 * vegeta attacks at a fixed rate for warmup + measure seconds on keep-alive connections; only
 * requests started in the measured window count, so connection set-up and JIT warm-up stay out
 * of the percentiles. CPU of the watched processes is sampled at the window's edges, their RSS
 * at its end (still under load). With `bodyFile`, every request is a POST of that file.
 */
export async function runVegeta(opts: {
  vegeta: string;
  cpus: string;
  url: string;
  rate: number;
  warmupSeconds: number;
  seconds: number;
  maxConnections: number;
  dir: string;
  name: string;
  watch: { role: string; pid: number }[];
  bodyFile?: string;
}): Promise<LatencyResult> {
  const bin = join(opts.dir, `${opts.name}.vegeta.bin`);
  const targets = join(opts.dir, `${opts.name}.targets`);
  // vegeta's targets format: a request line, header lines, then `@file` for the body.
  writeFileSync(
    targets,
    opts.bodyFile === undefined ? `GET ${opts.url}\n` : `POST ${opts.url}\nContent-Type: application/octet-stream\n@${opts.bodyFile}\n`,
  );
  const total = opts.warmupSeconds + opts.seconds;
  const args = [
    "-c",
    opts.cpus,
    opts.vegeta,
    "attack",
    `-targets=${targets}`,
    `-rate=${opts.rate}/1s`,
    `-duration=${total}s`,
    "-keepalive=true",
    `-max-connections=${opts.maxConnections}`,
    `-connections=${opts.maxConnections}`,
    `-workers=${opts.maxConnections}`,
    "-timeout=5s",
    `-output=${bin}`,
  ];
  const started = Date.now();
  const child = spawn("taskset", args, {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, GOMAXPROCS: "1" },
  });
  track(child);
  let stderr = "";
  child.stderr?.on("data", (c: Buffer) => {
    stderr = (stderr + c.toString("utf8")).slice(-4000);
  });
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on("exit", (code) => resolve(code));
    child.on("error", reject);
  });

  await sleep(opts.warmupSeconds * 1000);
  const t0 = performance.now();
  const f0 = foreignSnapshot();
  const cpu0 = opts.watch.map((w) => cpuSeconds(w.pid));
  await sleep(opts.seconds * 1000);
  const t1 = performance.now();
  const cpu1 = opts.watch.map((w) => cpuSeconds(w.pid));
  const rss1 = opts.watch.map((w) => memory(w.pid).rssMB);
  const foreign = foreignVcpu(f0, foreignSnapshot());
  const code = await Promise.race([exited, sleep(30_000).then(() => "timeout" as const)]);
  if (code === "timeout") {
    child.kill("SIGKILL");
    throw new Error("vegeta did not finish 30 s after its duration");
  }
  if (code !== 0) throw new Error(`vegeta attack exited with ${code}: ${stderr.trim()}`);

  const csv = await run(opts.vegeta, ["encode", "-to=csv", bin], 60_000);
  const windowStartNs = BigInt(started + opts.warmupSeconds * 1000) * 1_000_000n;
  const lat: number[] = [];
  let errors = 0;
  const errorExamples = new Set<string>();
  let firstNs = 0n;
  let lastNs = 0n;
  for (const line of csv.split("\n")) {
    if (line === "") continue;
    // timestamp(ns),code,latency(ns),bytes_out,bytes_in,"error",body(base64),name,seq,method,url,headers
    const f = csvFields(line, 6);
    const ts = BigInt(f[0] ?? "0");
    if (ts < windowStartNs) continue;
    if (firstNs === 0n || ts < firstNs) firstNs = ts;
    if (ts > lastNs) lastNs = ts;
    const status = Number(f[1]);
    const latencyNs = Number(f[2]);
    const err = f[5] ?? "";
    if (status < 200 || status >= 300 || err !== "") {
      errors += 1;
      if (errorExamples.size < 3) errorExamples.add(err !== "" ? err : `HTTP ${status}`);
      continue;
    }
    lat.push(latencyNs / 1e6);
  }
  lat.sort((a, b) => a - b);
  const windowSeconds = (t1 - t0) / 1000;
  const samples = lat.length + errors;
  const span = Number(lastNs - firstNs) / 1e9;
  return {
    rate: opts.rate,
    seconds: opts.seconds,
    samples,
    achievedRps: span > 0 ? samples / span : 0,
    errors,
    errorExamples: [...errorExamples],
    p50Ms: pct(lat, 0.5),
    p90Ms: pct(lat, 0.9),
    p99Ms: pct(lat, 0.99),
    p999Ms: pct(lat, 0.999),
    maxMs: lat.length > 0 ? (lat[lat.length - 1] as number) : NaN,
    meanMs: lat.length > 0 ? lat.reduce((a, b) => a + b, 0) / lat.length : NaN,
    cpu: opts.watch.map((w, i) => {
      const used = (cpu1[i] as number) - (cpu0[i] as number);
      return { role: w.role, cpuSeconds: used, vcpu: windowSeconds > 0 ? used / windowSeconds : 0, endRssMB: rss1[i] as number };
    }),
    windowSeconds,
    foreignVcpu: foreign,
  };
}

/** The first `n` fields of a CSV line (RFC 4180 quoting: vegeta quotes the error text). */
function csvFields(line: string, n: number): string[] {
  const out: string[] = [];
  let i = 0;
  while (out.length < n && i <= line.length) {
    if (line[i] === '"') {
      let v = "";
      i += 1;
      while (i < line.length) {
        if (line[i] === '"' && line[i + 1] === '"') {
          v += '"';
          i += 2;
        } else if (line[i] === '"') {
          i += 1;
          break;
        } else {
          v += line[i];
          i += 1;
        }
      }
      out.push(v);
      i += 1; // the comma
    } else {
      const j = line.indexOf(",", i);
      const end = j === -1 ? line.length : j;
      out.push(line.slice(i, end));
      i = end + 1;
    }
  }
  return out;
}

/** Nearest-rank percentile of sorted values. */
function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1));
  return sorted[i] as number;
}

export function run(cmd: string, args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 256 * 1024 * 1024, encoding: "utf8" }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(" ")}: ${err.message} ${String(stderr).slice(-800)}`));
      else resolve(stdout + stderr);
    });
    track(child);
  });
}

export function readText(path: string): string {
  return readFileSync(path, "utf8");
}
