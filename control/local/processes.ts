// The processes of `weft up`: each runs with its output in a log file, is restarted with a
// growing pause when it exits on its own, and is stopped with SIGTERM, then SIGKILL.
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, type WriteStream } from "node:fs";

export interface ProcessSpec {
  name: string;
  command: string;
  args: string[];
  cwd: string;
  env: Record<string, string>;
  logFile: string;
}

export interface ProcessEvents {
  exited(name: string, code: number | null, signal: string | null, restartInMs: number): void;
  failed(name: string, error: Error): void;
}

const STOP_GRACE_MS = 5000;
const MAX_PAUSE_MS = 10_000;

export class Supervised {
  readonly spec: ProcessSpec;
  private readonly events: ProcessEvents;
  private child: ChildProcess | null = null;
  private log: WriteStream;
  private stopping = false;
  private pauseMs = 500;
  private restartTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(spec: ProcessSpec, events: ProcessEvents) {
    this.spec = spec;
    this.events = events;
    this.log = createWriteStream(spec.logFile, { flags: "a" });
    this.start();
  }

  private start(): void {
    const { command, args, cwd, env } = this.spec;
    const startedAt = Date.now();
    const child = spawn(command, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    this.child = child;
    child.stdout!.pipe(this.log, { end: false });
    child.stderr!.pipe(this.log, { end: false });
    child.on("error", (e) => this.events.failed(this.spec.name, new Error(`cannot start ${command}: ${e.message}`)));
    child.on("exit", (code, signal) => {
      this.child = null;
      if (this.stopping) return;
      // A process that ran a while starts again at once; one that keeps dying waits longer each time.
      this.pauseMs = Date.now() - startedAt > 30_000 ? 500 : Math.min(this.pauseMs * 2, MAX_PAUSE_MS);
      this.events.exited(this.spec.name, code, signal, this.pauseMs);
      this.restartTimer = setTimeout(() => this.start(), this.pauseMs);
    });
  }

  get running(): boolean {
    return this.child !== null;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    const child = this.child;
    if (child) {
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), STOP_GRACE_MS);
      await exited;
      clearTimeout(timer);
    }
    await new Promise<void>((resolve) => this.log.end(resolve));
  }
}
