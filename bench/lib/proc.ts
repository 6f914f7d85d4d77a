// Processes under test: start them pinned to a core, read their CPU time and memory from /proc,
// stop them. Linux only (the benchmark needs taskset and /proc anyway).
import { spawn, execFileSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { closeSync, openSync, readFileSync, readdirSync } from "node:fs";
import http from "node:http";
import { availableParallelism } from "node:os";

export const CLK_TCK = readClockTicks();

function readClockTicks(): number {
  try {
    const out = execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim();
    const n = Number(out);
    return Number.isFinite(n) && n > 0 ? n : 100;
  } catch {
    return 100;
  }
}

export interface Managed {
  role: string;
  cpus: string;
  command: string[];
  child: ChildProcess;
  pid: number;
  /** Last few KB of stdout+stderr, for error reports. */
  logTail(): string;
  exited(): { code: number | null; signal: string | null } | null;
}

const live = new Set<Managed>();
const helpers = new Set<ChildProcess>();

/** Registers a load-generator process so that killAll() ends it too. */
export function track(child: ChildProcess): void {
  helpers.add(child);
  child.on("exit", () => helpers.delete(child));
}

export function startPinned(
  role: string,
  cpus: string,
  command: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; stdoutFile?: string } = {},
): Managed {
  const [bin, ...args] = command;
  if (!bin) throw new Error(`${role}: empty command`);
  // An access log on stdout goes to a file, as a container runtime writes it to one: piped here,
  // this harness would read every line on the load generator's core. Errors stay on stderr. Each
  // start truncates it: about 10 MB per weft sidecar and visit would pile up over a run.
  const stdout = opts.stdoutFile !== undefined ? openSync(opts.stdoutFile, "w") : "pipe";
  // taskset execs the program, so the child's pid is the program's own; threads and child
  // processes inherit the affinity.
  let child: ChildProcess;
  try {
    child = spawn("taskset", ["-c", cpus, bin, ...args], {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ["ignore", stdout, "pipe"],
    });
  } finally {
    if (typeof stdout === "number") closeSync(stdout);
  }
  let tail = "";
  const keep = (chunk: Buffer) => {
    tail = (tail + chunk.toString("utf8")).slice(-8192);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  let exit: { code: number | null; signal: string | null } | null = null;
  child.on("exit", (code, signal) => {
    exit = { code, signal };
  });
  child.on("error", (err) => {
    exit = { code: null, signal: null };
    tail += `\n[spawn error] ${err.message}`;
  });
  const m: Managed = {
    role,
    cpus,
    command,
    child,
    pid: child.pid ?? -1,
    logTail: () => tail,
    exited: () => exit,
  };
  live.add(m);
  child.on("exit", () => live.delete(m));
  return m;
}

export async function stop(m: Managed, graceMs = 5000): Promise<void> {
  if (m.exited()) return;
  const done = new Promise<void>((resolve) => m.child.once("exit", () => resolve()));
  try {
    m.child.kill("SIGTERM");
  } catch {
    /* already gone */
  }
  const timer = setTimeout(() => {
    for (const pid of processTree(m.pid).reverse()) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        /* already gone */
      }
    }
  }, graceMs);
  await done;
  clearTimeout(timer);
}

/** Kills every process this harness started (on exit or Ctrl-C). */
export function killAll(): void {
  for (const c of helpers) {
    try {
      c.kill("SIGKILL");
    } catch {
      /* ignore */
    }
  }
  // Kill the whole tree: SIGKILL on nginx's master would leave its worker listening.
  for (const m of live) {
    for (const pid of processTree(m.pid).reverse()) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        /* gone */
      }
    }
  }
}

/** Ports among `ports` that something on this machine already listens on (IPv4 or IPv6). */
export function portsInUse(ports: number[]): number[] {
  const listening = new Set<number>();
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text = "";
    try {
      text = readFileSync(file, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[3] !== "0A") continue; // TCP_LISTEN
      const port = parseInt((f[1] ?? "").split(":")[1] ?? "", 16);
      if (Number.isFinite(port)) listening.add(port);
    }
  }
  return ports.filter((p) => listening.has(p));
}

/** The pid and all of its descendants (nginx's master and worker, for example). */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const ppid = parseStat(readFileSync(`/proc/${name}/stat`, "utf8")).ppid;
      const list = children.get(ppid) ?? [];
      list.push(Number(name));
      children.set(ppid, list);
    } catch {
      /* raced with exit */
    }
  }
  const out: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const pid = queue.shift() as number;
    out.push(pid);
    for (const c of children.get(pid) ?? []) queue.push(c);
  }
  return out;
}

function parseStat(text: string): { ppid: number; utime: number; stime: number } {
  // The command name is in parentheses and may contain spaces: split after the last ')'.
  const rest = text.slice(text.lastIndexOf(")") + 2).split(" ");
  // rest[0] is field 3 (state); ppid is field 4, utime 14, stime 15.
  return { ppid: Number(rest[1]), utime: Number(rest[11]), stime: Number(rest[12]) };
}

/** CPU seconds (user + system, all threads) used so far by the process tree. */
export function cpuSeconds(root: number): number {
  let ticks = 0;
  for (const pid of processTree(root)) {
    try {
      const s = parseStat(readFileSync(`/proc/${pid}/stat`, "utf8"));
      ticks += s.utime + s.stime;
    } catch {
      /* exited */
    }
  }
  return ticks / CLK_TCK;
}

export interface Memory {
  /** Sum of VmRSS over the process tree, MB (1e6 bytes). */
  rssMB: number;
  /** Sum of VmHWM (each process's peak RSS since start) over the tree, MB. */
  hwmMB: number;
  processes: number;
}

export function memory(root: number): Memory {
  let rss = 0;
  let hwm = 0;
  let processes = 0;
  for (const pid of processTree(root)) {
    try {
      const status = readFileSync(`/proc/${pid}/status`, "utf8");
      const r = /^VmRSS:\s+(\d+) kB/m.exec(status);
      const h = /^VmHWM:\s+(\d+) kB/m.exec(status);
      if (r) rss += Number(r[1]);
      if (h) hwm += Number(h[1]);
      processes += 1;
    } catch {
      /* exited */
    }
  }
  return { rssMB: (rss * 1024) / 1e6, hwmMB: (hwm * 1024) / 1e6, processes };
}

/** Per-CPU busy jiffies from /proc/stat, to show which side of the machine was saturated. */
export function cpuBusy(): Map<string, { busy: number; total: number }> {
  const out = new Map<string, { busy: number; total: number }>();
  for (const line of readFileSync("/proc/stat", "utf8").split("\n")) {
    const m = /^(cpu\d+)\s+(.*)$/.exec(line);
    if (!m?.[1] || m[2] === undefined) continue;
    const v = m[2].trim().split(/\s+/).map(Number);
    const idle = (v[3] ?? 0) + (v[4] ?? 0);
    const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
    out.set(m[1], { busy: total - idle, total });
  }
  return out;
}

export function busyFractions(
  before: Map<string, { busy: number; total: number }>,
  after: Map<string, { busy: number; total: number }>,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [cpu, a] of after) {
    const b = before.get(cpu);
    if (!b) continue;
    const dt = a.total - b.total;
    out[cpu] = dt > 0 ? round((a.busy - b.busy) / dt, 3) : 0;
  }
  return out;
}

export function round(n: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface HttpResult {
  status: number;
  body: string;
}

/** One GET on a fresh connection (no keep-alive pool left behind), or a POST when `body` is given. */
export function httpGet(url: string, timeoutMs = 2000, body?: Buffer): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { connection: "close" };
    if (body !== undefined) {
      headers["content-type"] = "application/octet-stream";
      headers["content-length"] = String(body.length);
    }
    const req = http.request(url, { method: body === undefined ? "GET" : "POST", agent: false, headers, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end(body);
  });
}

/**
 * Polls until `check` passes, the deadline passes, or one of the processes exits; throws with
 * the last error and the processes' log tails.
 */
export async function waitUntil(what: string, check: () => Promise<void>, procs: Managed[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  for (;;) {
    for (const p of procs) {
      const e = p.exited();
      if (e) {
        throw new Error(`${p.role} exited (code ${e.code}, signal ${e.signal}) before ${what}: ${summarizeLog(p.logTail())}`);
      }
    }
    try {
      await check();
      return;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    if (Date.now() > deadline) {
      const logs = procs.map((p) => `${p.role}: ${summarizeLog(p.logTail())}`).join(" | ");
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${last}); ${logs}`);
    }
    await sleep(100);
  }
}

export function summarizeLog(tail: string): string {
  const lines = tail
    .trim()
    .split("\n")
    .filter((l) => l.trim() !== "");
  const text = lines.slice(-6).join(" / ");
  return text === "" ? "(no output)" : text.slice(-1500);
}

export function assertAlive(procs: Managed[], during: string): void {
  for (const p of procs) {
    const e = p.exited();
    if (e) {
      throw new Error(`${p.role} exited (code ${e.code}, signal ${e.signal}) during ${during}: ${summarizeLog(p.logTail())}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Interference: CPU used by processes that are not this harness or its children (another
// benchmark, a test suite, a build). The machine has two cores, so anything else running skews
// every number; the harness waits for quiet before each phase and records what it saw.

/** CPU ticks (own + reaped children) of every user-space process outside this harness's tree. */
export function foreignSnapshot(): { at: number; ticks: Map<number, number> } {
  const at = performance.now();
  const info = new Map<number, { ppid: number; ticks: number }>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const text = readFileSync(`/proc/${name}/stat`, "utf8");
      const rest = text.slice(text.lastIndexOf(")") + 2).split(" ");
      // utime 14, stime 15, cutime 16, cstime 17 (rest[] starts at field 3)
      const ticks = Number(rest[11]) + Number(rest[12]) + Number(rest[13]) + Number(rest[14]);
      info.set(Number(name), { ppid: Number(rest[1]), ticks });
    } catch {
      /* exited */
    }
  }
  const ours = new Set<number>([process.pid]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const [pid, i] of info) {
      if (!ours.has(pid) && ours.has(i.ppid)) {
        ours.add(pid);
        grew = true;
      }
    }
  }
  const ticks = new Map<number, number>();
  for (const [pid, i] of info) {
    if (ours.has(pid) || pid === 2 || i.ppid === 2) continue; // ours, or a kernel thread
    ticks.set(pid, i.ticks);
  }
  return { at, ticks };
}

/** vCPUs used by foreign processes between two snapshots. */
export function foreignVcpu(a: ReturnType<typeof foreignSnapshot>, b: ReturnType<typeof foreignSnapshot>): number {
  let t = 0;
  for (const [pid, ticks] of b.ticks) t += Math.max(0, ticks - (a.ticks.get(pid) ?? 0));
  const seconds = (b.at - a.at) / 1000;
  // Reaped children's time arrives in one lump in their parent's cutime, which can overstate a
  // short window: an estimate, capped at the number of cores.
  return seconds > 0 ? Math.min(availableParallelism(), t / CLK_TCK / seconds) : 0;
}

/**
 * Waits until other processes use less than `threshold` vCPU over half a second, for at most
 * `maxMs`. Returns how long it waited and whether the machine got quiet.
 */
export async function waitQuiet(maxMs: number, threshold = 0.05): Promise<{ waitedMs: number; quiet: boolean; foreignVcpu: number }> {
  const start = performance.now();
  let last = 0;
  for (;;) {
    const a = foreignSnapshot();
    await sleep(500);
    last = foreignVcpu(a, foreignSnapshot());
    if (last < threshold) return { waitedMs: Math.round(performance.now() - start), quiet: true, foreignVcpu: last };
    if (performance.now() - start > maxMs) return { waitedMs: Math.round(performance.now() - start), quiet: false, foreignVcpu: last };
  }
}
