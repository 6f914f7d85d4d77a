// `weft up` as a user runs it, for the suites that need a whole mesh on this machine: the real
// CLI in a process, on a copy of a directory of YAML (the shop demo, with a test's extra files),
// waited for until it prints its summary, and the ports of every replica from its up.json.
import { spawn, type ChildProcess } from "node:child_process";
import { cp, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import process from "node:process";

const ROOT = path.resolve(import.meta.dirname ?? ".", "..", "..");
const NODE = path.join(ROOT, "node_modules", ".bin", "node");

export interface UpPorts {
  app: number;
  admin: number;
  outbound: number;
  inbound: number;
}

export interface RunningUp {
  /** The copy of the directory weft up runs (a test may edit its files). */
  dir: string;
  /** Every replica's ports, by pod name. */
  ports: Record<string, UpPorts>;
  /** The weft up process (a test may signal it). */
  process: ChildProcess;
  /** What weft up printed so far. */
  output(): string;
  /** Ctrl-C if it still runs (SIGKILL after 15 s), then removes the copy. */
  stop(): Promise<void>;
}

export interface UpOptions {
  /** The directory of YAML to copy (default: the shop demo). */
  source?: string;
  /** Folders copied into the copy, beside the source's files. */
  extra?: string[];
  /** weft up's --port and --base-port. */
  port: number;
  basePort: number;
  /** More environment for weft up, and so for its sidecars and apps. */
  env?: Record<string, string>;
}

export async function startUp(options: UpOptions): Promise<RunningUp> {
  const dir = await mkdtemp(path.join(tmpdir(), "weft-up-"));
  const source = options.source ?? path.join(ROOT, "examples", "shop");
  await cp(source, dir, { recursive: true, filter: (src) => !src.includes(`${path.sep}.weft`) });
  for (const extra of options.extra ?? []) await cp(extra, path.join(dir, path.basename(extra)), { recursive: true });
  const up = spawn(
    NODE,
    [path.join(ROOT, "bin", "weft.ts"), "up", dir, "--port", String(options.port), "--base-port", String(options.basePort)],
    { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...options.env } },
  );
  let output = "";
  up.stdout!.on("data", (d: Buffer) => (output += d.toString()));
  up.stderr!.on("data", (d: Buffer) => (output += d.toString()));
  const stop = async () => {
    if (up.exitCode === null && up.signalCode === null) {
      const exited = new Promise((resolve) => up.once("exit", resolve));
      up.kill("SIGINT");
      const killer = setTimeout(() => up.kill("SIGKILL"), 15_000);
      await exited;
      clearTimeout(killer);
    }
    await rm(dir, { recursive: true, force: true });
  };
  // Building the marketplace filters on a cold cache takes most of this.
  const deadline = Date.now() + 180_000;
  while (!output.includes("workloads running")) {
    if (up.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(
        `weft up ${up.exitCode !== null ? `exited (${up.exitCode})` : "printed no summary within 180 s"}; it said:\n${output}`,
      );
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  const state = JSON.parse(await readFile(path.join(dir, ".weft", "up.json"), "utf8")) as { workloads: { pod: string; ports: UpPorts }[] };
  return { dir, ports: Object.fromEntries(state.workloads.map((w) => [w.pod, w.ports])), process: up, output: () => output, stop };
}
