// Where the machine's CPU goes, second by second, while the shop runs on the real node: to explain
// a loss under load with numbers (which part of the 2 cores each kind of process took) rather
// than guesses. Reads /proc once a second. A process that ends between two samples loses its
// last partial second; the machine's own total (/proc/stat) has it, so "unattributed" holds
// short-lived processes (runc, kubectl, iptables) and the kernel's softirq work.
import { readdir, readFile } from "node:fs/promises";

/** What a process is, for the table. */
export type CpuGroup =
  | "sidecars"
  | "apps"
  | "load generator"
  | "weft control plane"
  | "node"
  | "kubernetes control plane"
  | "kernel threads"
  | "other";

export const CPU_GROUPS: readonly CpuGroup[] = [
  "sidecars",
  "apps",
  "load generator",
  "weft control plane",
  "node",
  "kubernetes control plane",
  "kernel threads",
  "other",
];

const KUBERNETES_CONTROL = new Set(["kube-apiserver", "etcd", "kube-controller", "kube-scheduler"]);
const NODE = new Set([
  "kubelet",
  "containerd",
  "containerd-shim",
  "containerd-shim-runc-v2",
  "runc",
  "kube-proxy",
  "coredns",
  "docker-registry",
  "registry",
  "conmon",
]);
const TICKS_PER_SECOND = 100;

interface Sample {
  at: number;
  /** The machine's busy ticks (all CPUs). */
  busy: number;
  /** Ticks per process, with its group. */
  processes: Map<number, { ticks: number; group: CpuGroup }>;
}

/** One second's share of the machine, in cores. */
export interface CpuSecond {
  /** When the second ended, ms since the epoch. */
  at: number;
  busy: number;
  byGroup: Record<CpuGroup, number> & { unattributed: number };
}

async function machineBusy(): Promise<number> {
  const fields = (await readFile("/proc/stat", "utf8")).split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal: busy is all but idle and iowait
  return fields.reduce((a, b) => a + b, 0) - fields[3]! - fields[4]!;
}

function groupOf(comm: string, cmdline: string, cgroup: string): CpuGroup {
  if (cgroup.includes("/kubepods/")) {
    if (cmdline.includes("weft.mjs") && cmdline.includes("control")) return "weft control plane";
    if (cmdline.includes("weft.mjs")) return "sidecars";
    // test/support/shop-load.ts runs its generator as `node -e`
    if (cmdline.startsWith("node -e")) return "load generator";
    return "apps";
  }
  if (KUBERNETES_CONTROL.has(comm)) return "kubernetes control plane";
  // ksoftirqd and kworkers: packets through veths, the bridge and iptables are processed here
  if (cmdline === "") return "kernel threads";
  if (NODE.has(comm) || comm.startsWith("containerd-shim")) return "node";
  return "other";
}

async function sample(): Promise<Sample> {
  const processes = new Map<number, { ticks: number; group: CpuGroup }>();
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, "utf8");
      const close = stat.lastIndexOf(")");
      const comm = stat.slice(stat.indexOf("(") + 1, close);
      const fields = stat.slice(close + 2).split(" ");
      const ticks = Number(fields[11]) + Number(fields[12]);
      const [cmdline, cgroup] = await Promise.all([readFile(`/proc/${entry}/cmdline`, "utf8"), readFile(`/proc/${entry}/cgroup`, "utf8")]);
      processes.set(Number(entry), { ticks, group: groupOf(comm, cmdline.replaceAll("\0", " "), cgroup) });
    } catch {
      // it ended meanwhile
    }
  }
  return { at: Date.now(), busy: await machineBusy(), processes };
}

function difference(before: Sample, after: Sample): CpuSecond {
  const seconds = (after.at - before.at) / 1000;
  const byGroup = Object.fromEntries([...CPU_GROUPS, "unattributed"].map((g) => [g, 0])) as CpuSecond["byGroup"];
  let attributed = 0;
  for (const [pid, now] of after.processes) {
    // a process born since the last sample counts from zero
    const ticks = now.ticks - (before.processes.get(pid)?.ticks ?? 0);
    byGroup[now.group] += ticks;
    attributed += ticks;
  }
  const busy = after.busy - before.busy;
  byGroup.unattributed = Math.max(0, busy - attributed);
  const cores = (ticks: number) => Math.round((ticks / TICKS_PER_SECOND / seconds) * 100) / 100;
  for (const g of Object.keys(byGroup) as (keyof CpuSecond["byGroup"])[]) byGroup[g] = cores(byGroup[g]);
  return { at: after.at, busy: cores(busy), byGroup };
}

/** Samples every second from now until `stop()`, which returns one row per second. */
export function sampleCpu(): { stop(): Promise<CpuSecond[]> } {
  const rows: CpuSecond[] = [];
  let last = sample();
  let running = true;
  const loop = (async () => {
    while (running) {
      await new Promise((r) => setTimeout(r, 1000));
      const previous = await last;
      last = sample();
      const now = await last;
      rows.push(difference(previous, now));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return rows;
    },
  };
}

/** The rows as a Markdown table, in cores, each second counted from `zero` (ms since the epoch). */
export function cpuTable(rows: CpuSecond[], zero: number): string {
  const columns = [...CPU_GROUPS, "unattributed"] as const;
  const head = `| second | machine busy | ${columns.join(" | ")} |\n|--:|--:|${columns.map(() => "--:").join("|")}|`;
  return [
    head,
    ...rows.map(
      (r) => `| ${Math.floor((r.at - zero) / 1000)} | ${r.busy.toFixed(2)} | ${columns.map((c) => r.byGroup[c].toFixed(2)).join(" | ")} |`,
    ),
  ].join("\n");
}
