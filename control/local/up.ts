// `weft up [DIR]` (its command line: bin/commands/up.ts): the whole mesh on this machine. The
// control plane in local mode reads DIR, every LocalWorkload replica gets a sidecar (with a
// certificate from the local CA) and its app; what changes in DIR is applied as it is saved, and
// Ctrl-C stops everything.
import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import process from "node:process";
import { createLogger } from "../../shared/log.ts";
import { currentRuntime, RUNTIME_NAMES, type RuntimeName } from "../../proxy/runtime/current.ts";
import { UsageError, type Running } from "../../shared/command.ts";
import { labelsMatch } from "../mesh/world.ts";
import { parseOutboundTraffic } from "../mesh/outbound-traffic.ts";
import { startLocalControl, type LocalControl } from "./control.ts";
import type { LocalInstance } from "./mesh.ts";
import { Supervised } from "./processes.ts";

const ROOT = path.resolve(import.meta.dirname ?? path.dirname(new URL(import.meta.url).pathname), "..", "..");

/** The program for "node", "deno" or "bun": this one, the project's own, or the one on PATH. */
function runtimeBinary(name: string): string {
  if (name === currentRuntime().name) return process.execPath;
  const local = path.join(ROOT, "node_modules", ".bin", name);
  return existsSync(local) ? local : name;
}

function weftCommand(runtime: RuntimeName): { command: string; args: string[] } {
  const entry = process.argv[1] ?? path.join(ROOT, "bin", "weft.ts");
  return { command: runtimeBinary(runtime), args: runtime === "deno" ? ["run", "-A", entry] : [entry] };
}

/** What a replica's processes are started from: a change restarts them. */
const fingerprintOf = (i: LocalInstance) => JSON.stringify([i.spec, i.ports, i.labels, i.dir]);

interface Replica {
  instance: LocalInstance;
  fingerprint: string;
  sidecar: Supervised;
  app: Supervised;
}

/** What `weft up`'s flags give (bin/commands/up.ts declares them, and checks at compile time that they fit this). */
export interface UpValues {
  port?: number;
  "base-port"?: number;
  runtime: RuntimeName;
  state?: string;
  "outbound-traffic"?: string;
}

/** Runs the mesh in `given` (the shop demo when absent) until the returned Running is stopped. */
export async function up(values: UpValues, [given]: string[]): Promise<number | Running> {
  const dir = path.resolve(given ?? path.join(ROOT, "examples", "shop"));
  const outboundTraffic =
    values["outbound-traffic"] === undefined ? undefined : parseOutboundTraffic(values["outbound-traffic"], "--outbound-traffic");
  if (!existsSync(dir)) throw new UsageError(`${dir} does not exist; give a directory of YAML resources (or nothing, for the demo)`);
  const stateDir = path.resolve(values.state ?? path.join(dir, ".weft"));
  const logDir = path.join(stateDir, "logs");
  const tokenDir = path.join(stateDir, "tokens");
  await mkdir(logDir, { recursive: true });
  await mkdir(tokenDir, { recursive: true, mode: 0o700 });
  // The control plane's own log is a file too: the terminal is for the summary and progress.
  const log = createLogger({ component: "control" }, "info", (line: string) => void controlLog.push(line));
  const controlLog: string[] = [];
  const say = (line: string) => process.stdout.write(`${line}\n`);

  say(`weft up: ${path.relative(process.cwd(), dir) || "."} (state and logs in ${path.relative(process.cwd(), stateDir)})`);
  let control: LocalControl;
  try {
    control = await startLocalControl({
      dir,
      stateDir,
      log,
      port: values.port,
      basePort: values["base-port"],
      ...(outboundTraffic ? { outboundTraffic } : {}),
      progress: (e) =>
        say(
          e.state === "building"
            ? `  building filter ${e.filter} ...`
            : e.state === "built"
              ? `  built filter ${e.filter} (${((e.ms ?? 0) / 1000).toFixed(1)} s)`
              : `  filter ${e.filter} failed to build: ${e.error}`,
        ),
    });
  } catch (e) {
    process.stderr.write(`weft up: cannot start the control plane: ${(e as Error).message}\n`);
    return 1;
  }
  const flushControlLog = async () => {
    if (controlLog.length === 0) return;
    const lines = controlLog.splice(0).join("");
    await writeFile(path.join(logDir, "control.log"), lines, { flag: "a" });
  };
  const logTimer = setInterval(() => void flushControlLog(), 1000);

  const running = new Map<string, Replica>();
  const weft = weftCommand(values.runtime);
  const events = {
    exited: (name: string, code: number | null, signal: string | null, restartInMs: number) =>
      say(
        `  ${name} exited (${signal ?? `code ${code}`}); restarting in ${(restartInMs / 1000).toFixed(1)} s (log: ${path.relative(process.cwd(), path.join(logDir, `${name.replace("/", "_")}.log`))})`,
      ),
    failed: (name: string, error: Error) => say(`  ${name}: ${error.message}`),
  };

  const start = async (i: LocalInstance): Promise<Replica> => {
    const key = `${i.namespace}/${i.pod}`;
    const tokenFile = path.join(tokenDir, `${i.namespace}_${i.pod}`);
    await writeFile(tokenFile, i.token, { mode: 0o600 });
    const base = `${i.namespace}_${i.pod}`;
    const sidecar = new Supervised(
      {
        name: `${key} sidecar`,
        ...weft,
        args: [
          ...weft.args,
          "proxy",
          "--control-plane",
          control.url,
          "--namespace",
          i.namespace,
          "--pod",
          i.pod,
          "--token-file",
          tokenFile,
          "--admin-address",
          "127.0.0.1",
          "--admin-port",
          String(i.ports.admin),
          "--outbound-port",
          String(i.ports.outbound),
          "--inbound-port",
          String(i.ports.inbound),
        ],
        cwd: dir,
        env: process.env as Record<string, string>,
        logFile: path.join(logDir, `${base}.sidecar.log`),
      },
      events,
    );
    const [program, ...args] = i.spec.command;
    const app = new Supervised(
      {
        name: key,
        command: (RUNTIME_NAMES as readonly string[]).includes(program!) ? runtimeBinary(program!) : program!,
        args,
        cwd: i.dir,
        env: {
          ...(process.env as Record<string, string>),
          ...i.spec.env,
          HOST: "127.0.0.1",
          PORT: String(i.ports.app),
          POD_NAME: i.pod,
          POD_NAMESPACE: i.namespace,
          // What the app uses as an HTTP proxy to call Services by name (iptables does it in a pod).
          WEFT_OUTBOUND_PROXY: `http://127.0.0.1:${i.ports.outbound}`,
        },
        logFile: path.join(logDir, `${base}.log`),
      },
      events,
    );
    return { instance: i, fingerprint: fingerprintOf(i), sidecar, app };
  };

  let reconciling = Promise.resolve();
  const reconcile = () => {
    reconciling = reconciling.then(async () => {
      const wanted = new Map(control.mesh.instances().map((i) => [`${i.namespace}/${i.pod}`, i]));
      for (const [key, r] of running) {
        const next = wanted.get(key);
        if (next && fingerprintOf(next) === r.fingerprint) continue;
        say(`  stopping ${key}${next ? " (its LocalWorkload changed)" : ""}`);
        running.delete(key);
        await Promise.all([r.app.stop(), r.sidecar.stop()]);
      }
      for (const [key, i] of wanted) {
        if (running.has(key)) continue;
        say(
          `  starting ${key}: app on 127.0.0.1:${i.ports.app}, sidecar inbound :${i.ports.inbound}, outbound :${i.ports.outbound}, admin :${i.ports.admin}`,
        );
        running.set(key, await start(i));
      }
      await writeFile(
        path.join(stateDir, "up.json"),
        JSON.stringify(
          {
            controlPlane: control.url,
            dashboard: `${control.url}/dashboard/`,
            workloads: [...running.values()].map((r) => ({
              namespace: r.instance.namespace,
              pod: r.instance.pod,
              workload: r.instance.workload,
              labels: r.instance.labels,
              ports: r.instance.ports,
            })),
          },
          null,
          2,
        ),
      );
    });
    return reconciling;
  };
  control.mesh.onReload(() => void reconcile());
  await reconcile();
  for (const [file, problem] of control.mesh.problems()) say(`  ${path.relative(process.cwd(), file)}: ${problem}`);

  // Ready when every sidecar has its first configuration (its /ready).
  const deadline = Date.now() + 60_000;
  let ready = 0;
  while (Date.now() < deadline) {
    const checks = await Promise.all(
      [...running.values()].map((r) =>
        fetch(`http://127.0.0.1:${r.instance.ports.admin}/ready`).then(
          (res) => res.ok,
          () => false,
        ),
      ),
    );
    const now = checks.filter(Boolean).length;
    if (now !== ready) say(`  sidecars ready: ${now}/${checks.length}`);
    ready = now;
    if (ready === checks.length) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  // Then every WasmFilter resolved (built) and running in the sidecars it selects.
  let filtersSaid = "";
  while (Date.now() < deadline) {
    const statuses = [...control.filterStatus()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([key, st]) => ({
        key,
        ready: st.ready,
        resolved: st.conditions?.find((c) => c.type === "Resolved"),
        isReady: st.conditions?.some((c) => c.type === "Ready" && c.status === "True"),
      }));
    const line = statuses
      .map((st) => `${st.key} ${st.ready}${st.resolved?.status === "False" ? ` (${st.resolved.message})` : ""}`)
      .join(", ");
    if (line !== filtersSaid && line) say(`  filters running (in proxies / selected): ${line}`);
    filtersSaid = line;
    const settled = statuses.every((st) => st.isReady || st.resolved?.status === "False");
    if (settled) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  say(
    summary(
      control,
      [...running.values()].map((r) => r.instance),
      logDir,
    ),
  );

  return {
    async stop(signal) {
      say(`\nweft up: ${signal === "SIGINT" ? "Ctrl-C" : signal}, stopping ${running.size} workloads and their sidecars`);
      await reconciling;
      await Promise.all([...running.values()].flatMap((r) => [r.app.stop(), r.sidecar.stop()]));
      await control.stop();
      clearInterval(logTimer);
      await flushControlLog();
      say("weft up: stopped");
    },
  };
}

/** What to try: each Service's address at a sidecar, the dashboard, where the logs are. */
function summary(control: LocalControl, instances: LocalInstance[], logDir: string): string {
  const lines = ["", `weft up: ${instances.length} workloads running, each with a sidecar; mTLS between them.`, ""];
  const world = control.plane.world;
  for (const s of [...world.services.values()].sort((a, b) => a.name.localeCompare(b.name))) {
    // A Service without a selector (an ExternalName one, say) has no workload here to show.
    const selects = Object.keys(s.selector).length > 0;
    const first = selects ? instances.find((i) => i.namespace === s.namespace && labelsMatch(s.selector, i.labels)) : undefined;
    if (first)
      lines.push(`  ${`${s.name}.${s.namespace}`.padEnd(24)} http://127.0.0.1:${first.ports.inbound}/   (through ${first.pod}'s sidecar)`);
  }
  const caller = instances[0];
  if (caller) {
    lines.push(
      "",
      `  a Service as ${caller.pod}'s app calls it (its sidecar is its HTTP proxy):`,
      `    curl -x http://127.0.0.1:${caller.ports.outbound} http://${[...world.services.values()].sort((a, b) => a.name.localeCompare(b.name)).find((s) => s.namespace === caller.namespace && !labelsMatch(s.selector, caller.labels))?.name ?? "SERVICE"}.${caller.namespace}/`,
    );
  }
  lines.push(
    "",
    `  dashboard                ${control.url}/dashboard/`,
    `  logs                     ${path.relative(process.cwd(), logDir)}/`,
    "",
    "Edit and save the YAML: it is applied at once. Ctrl-C stops everything.",
    "",
  );
  return lines.join("\n");
}
