// A server of another project that a suite runs beside weft (docker-registry, Prometheus,
// Jaeger): a child process whose output is kept for error messages, ready once `ready()` says
// so, stopped with SIGTERM (and SIGKILL if it hangs).
import { spawn } from "node:child_process";
import type { Buffer } from "node:buffer";

export interface ServerProcess {
  /** Everything it wrote, stdout and stderr. */
  output(): string;
  stop(): Promise<void>;
}

/** How long a SIGTERMed server may take before it is SIGKILLed. */
const STOP_GRACE_MS = 5000;

/**
 * Starts `command args` and waits until `ready()` holds, at most `readyWithinMs`; throws with
 * its output when it exits first or is not ready in time (it is stopped then). `name` says
 * which server in those errors.
 */
export async function startServerProcess(
  name: string,
  command: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; ready: () => Promise<boolean>; readyWithinMs: number },
): Promise<ServerProcess> {
  const child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout!.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const running = () => child.exitCode === null && child.signalCode === null;
  const stop = async () => {
    if (!running()) return;
    child.kill("SIGTERM");
    const killer = setTimeout(() => child.kill("SIGKILL"), STOP_GRACE_MS);
    await exited;
    clearTimeout(killer);
  };
  for (const deadline = Date.now() + options.readyWithinMs; ; ) {
    if (!running()) throw new Error(`${name} exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${output}`);
    if (await options.ready()) return { output: () => output, stop };
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`${name} was not ready within ${options.readyWithinMs / 1000} s:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
