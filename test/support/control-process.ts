// The control plane and its sidecars as the processes a cluster runs them — `weft control` and
// `weft proxy --control-plane` — against a test API server (test/k8s/cluster.ts), for suites
// that kill, restart and inspect them from outside: test/control/faults.test.ts and
// security.test.ts. Also restarts the API server itself (same etcd, same port, same flags).
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { closeSync, openSync, readFileSync, readdirSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { request } from "node:https";
import { networkInterfaces } from "node:os";
import path from "node:path";
import process from "node:process";
import type { Cluster } from "../k8s/cluster.ts";
import { freePorts, waitEstablished } from "../k8s/cluster.ts";
import { gatewayApiCrd } from "../k8s/gateway-api.ts";

const root = path.resolve(import.meta.dirname ?? ".", "..", "..");
const node = path.join(root, "node_modules", ".bin", "node");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** This machine's first non-loopback IPv4 address: EndpointSlices refuse 127.0.0.0/8. */
export function hostAddress(): string {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === "IPv4" && !a.internal) return a.address;
  }
  throw new Error(
    "this machine has no non-loopback IPv4 address; the control plane tests need one for EndpointSlices (which refuse 127.0.0.0/8)",
  );
}

/** Polls `check` every 100 ms until it returns something truthy; the error names `what` and the last failure. */
export async function until<T>(what: string, check: () => Promise<T | undefined | null | false>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ""}`);
    await sleep(100);
  }
}

/** Installs weft's CRDs (deploy/crds) and waits until the API server serves them. */
/** A token for a sidecar of this ServiceAccount, as the injected projected token is (audience weft), written to `file`. */
/** Runs `weft status ARGS` against the test cluster; its stdout (stderr too with `withStderr`). */
export function weftStatus(k8s: Cluster, args: string[] = [], withStderr = false): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(
      path.join(root, "node_modules", ".bin", "node"),
      ["bin/weft.ts", "status", ...args, "--kubeconfig", k8s.kubeconfig],
      { cwd: root, encoding: "utf8" },
      (e, stdout, stderr) => (e ? reject(new Error(stderr || e.message)) : resolve(withStderr ? stdout + stderr : stdout)),
    ),
  );
}

export async function writeProxyToken(k8s: Cluster, namespace: string, serviceAccount: string, file: string): Promise<void> {
  await writeFile(
    file,
    (await k8s.kubectl(["create", "token", serviceAccount, "-n", namespace, "--audience", "weft", "--duration", "1h"])).trim(),
  );
}

/** weft's CRDs, and with `httpRoutes` the Gateway API's HTTPRoute CRD, each Established. */
export async function applyCrds(k8s: Cluster, options: { httpRoutes?: boolean } = {}): Promise<void> {
  const dir = path.join(root, "deploy", "crds");
  for (const file of readdirSync(dir)) await k8s.kubectl(["apply", "-f", path.join(dir, file)]);
  const crds = ["wasmfilters", "trafficpolicies", "accesspolicies"].map((plural) => `${plural}.weft.dev`);
  if (options.httpRoutes) {
    await k8s.kubectl(["apply", "-f", await gatewayApiCrd("httproutes")]);
    crds.push("httproutes.gateway.networking.k8s.io");
  }
  await waitEstablished(
    k8s.kubectl,
    crds.map((crd) => `crd/${crd}`),
  );
}

interface Child {
  child: ChildProcess;
  exited: Promise<number | null>;
  output: () => string;
}

function run(args: string[], env: Record<string, string>): Child {
  const child = spawn(node, args, { cwd: root, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout!.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return { child, exited, output: () => output };
}

/** Longer than a process's own stop deadline (drain timeout + 10 s), so this fires only when that failed too. */
const STOP_DEADLINE_MS = 45_000;

/** Signals the process and waits for it; one still running after STOP_DEADLINE_MS is killed, and that fails the test with its last output. */
async function stopChild(c: Child, signal: NodeJS.Signals): Promise<void> {
  if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill(signal);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hung = new Promise<"hung">((resolve) => (timer = setTimeout(() => resolve("hung"), STOP_DEADLINE_MS)));
  const outcome = await Promise.race([c.exited, hung]).finally(() => clearTimeout(timer));
  if (outcome !== "hung") return;
  c.child.kill("SIGKILL");
  await c.exited;
  throw new Error(
    `pid ${c.child.pid} did not exit within ${STOP_DEADLINE_MS / 1000} s of ${signal}; its last output:\n${c.output().slice(-4000)}`,
  );
}

export interface ControlProcess {
  pid: number;
  /** https://127.0.0.1:PORT */
  url: string;
  /** Everything it wrote (JSON log lines on stderr). */
  output(): string;
  /** SIGKILL: no graceful stop, as a node failure or an OOM kill. */
  kill(): Promise<void>;
  /** SIGTERM and wait. */
  stop(): Promise<void>;
}

export interface ControlOptions {
  port: number;
  /** Its dashboard's loopback port; default none (0), so several control planes can run at once. */
  dashboardPort?: number;
  /** The folder marketplace:// filters come from (--marketplace); default the one shipped with weft. */
  marketplace?: string;
  namespace?: string;
  insecureRegistries?: string[];
  env?: Record<string, string>;
}

/** `weft control` with the cluster's admin kubeconfig; resolves once its informers have synced. */
export async function startControl(k8s: Cluster, options: ControlOptions): Promise<ControlProcess> {
  const args = [
    "bin/weft.ts",
    "control",
    "--kubeconfig",
    k8s.kubeconfig,
    "--namespace",
    options.namespace ?? "weft-system",
    "--address",
    "127.0.0.1",
    "--port",
    String(options.port),
    "--dashboard-port",
    String(options.dashboardPort ?? 0),
    // One replica: the Lease hand-over is install.test.ts's subject, and a killed leader's Lease
    // would hold status writes back for its 15 s.
    "--no-leader-election",
    ...(options.insecureRegistries?.length ? ["--insecure-registries", options.insecureRegistries.join(",")] : []),
    ...(options.marketplace ? ["--marketplace", options.marketplace] : []),
  ];
  const c = run(args, options.env ?? {});
  let gone = false;
  void c.exited.then(() => (gone = true));
  await until(
    "weft control to sync its informers",
    async () => {
      if (gone) throw new Error(`weft control exited:\n${c.output()}`);
      return c.output().includes('"msg":"mesh resources synced"');
    },
    60_000,
  ).catch(async (e: Error) => {
    await stopChild(c, "SIGKILL");
    throw new Error(`${e.message}\nweft control output:\n${c.output()}`);
  });
  return {
    pid: c.child.pid!,
    url: `https://127.0.0.1:${options.port}`,
    output: c.output,
    kill: () => stopChild(c, "SIGKILL"),
    stop: () => stopChild(c, "SIGTERM"),
  };
}

/** Writes the mesh CA's root (Secret weft-ca, made by the first `weft control`) to `file`, as a sidecar's --ca-file. */
export async function writeMeshRoot(k8s: Cluster, namespace: string, file: string): Promise<string> {
  const b64 = await k8s.kubectl(["get", "secret", "weft-ca", "-n", namespace, "-o", "jsonpath={.data.ca\\.crt}"]);
  const pem = Buffer.from(b64, "base64").toString("utf8");
  await writeFile(file, pem);
  return pem;
}

export interface SidecarProcess {
  pod: string;
  admin: number;
  outbound: number;
  inbound: number;
  output(): string;
  /** GET /config_dump, parsed. */
  dump(): Promise<
    {
      version: string;
      filters?: { name: string; namespace?: string }[];
      filterStatus: { filter: string; sha256: string; ready: boolean; reason?: string }[];
    } & Record<string, unknown>
  >;
  stop(): Promise<void>;
}

export interface SidecarOptions {
  controlPlane: string;
  caFile: string;
  namespace: string;
  pod: string;
  tokenFile: string;
  /** Its own temporary directory, as the pod's /tmp emptyDir: filter modules are cached there. */
  tmp: string;
  /** Ports chosen beforehand (a Service's endpoint names the inbound one); default: free ones. */
  ports?: { admin: number; outbound: number; inbound: number };
  env?: Record<string, string>;
}

/** `weft proxy --control-plane` on Node with free loopback ports; resolves once /ready answers 200. */
export async function startSidecar(options: SidecarOptions): Promise<SidecarProcess> {
  const [admin, outbound, inbound] = options.ports
    ? [options.ports.admin, options.ports.outbound, options.ports.inbound]
    : ((await freePorts(3)) as [number, number, number]);
  await mkdir(options.tmp, { recursive: true });
  const c = run(
    [
      "bin/weft.ts",
      "proxy",
      "--control-plane",
      options.controlPlane,
      "--ca-file",
      options.caFile,
      "--namespace",
      options.namespace,
      "--pod",
      options.pod,
      "--token-file",
      options.tokenFile,
      "--admin-address",
      "127.0.0.1",
      "--admin-port",
      String(admin),
      "--outbound-port",
      String(outbound),
      "--inbound-port",
      String(inbound),
    ],
    { ...options.env, TMPDIR: options.tmp },
  );
  const sidecar: SidecarProcess = {
    pod: options.pod,
    admin,
    outbound,
    inbound,
    output: c.output,
    dump: async () => (await (await fetch(`http://127.0.0.1:${admin}/config_dump`)).json()) as Awaited<ReturnType<SidecarProcess["dump"]>>,
    stop: () => stopChild(c, "SIGTERM"),
  };
  await until(
    `sidecar ${options.namespace}/${options.pod} to be ready`,
    async () => (await fetch(`http://127.0.0.1:${admin}/ready`)).status === 200,
    30_000,
  ).catch(async (e: Error) => {
    await stopChild(c, "SIGKILL");
    throw new Error(`${e.message}\nits output:\n${c.output()}`);
  });
  return sidecar;
}

function readyz(k8s: Cluster): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(`${k8s.server}/readyz`, { ca: k8s.ca, cert: k8s.clientCert, key: k8s.clientKey, timeout: 2000 }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
    req.end();
  });
}

export interface RestartedApiserver {
  /** Stops the API server this module started; call it before the cluster's own stop(). */
  stop(): Promise<void>;
}

/**
 * SIGKILLs the cluster's kube-apiserver, runs `whileDown`, then starts it again with the same
 * command line (same etcd, same port, same certificates) and waits for /readyz. The cluster's
 * stop() no longer knows the new process: stop it with the handle returned.
 */
export async function restartApiserver(k8s: Cluster, whileDown: () => Promise<void>): Promise<RestartedApiserver> {
  const pid = k8s.pids["kube-apiserver"]!;
  const [binary, ...args] = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean) as [string, ...string[]];
  process.kill(pid, "SIGKILL");
  await until("the API server to be gone", async () =>
    readyz(k8s).then(
      () => false,
      () => true,
    ),
  );
  await whileDown();
  const fd = openSync(path.join(k8s.dir, "kube-apiserver.log"), "a");
  const child = spawn(binary, args, {
    cwd: k8s.dir,
    stdio: ["ignore", fd, fd],
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: k8s.dir },
  });
  closeSync(fd);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  // A test that fails half way must not leave an API server behind.
  const orphan = () => child.kill("SIGKILL");
  process.once("exit", orphan);
  await until("the restarted API server to be ready", async () => (await readyz(k8s)) === 200, 60_000);
  return {
    async stop() {
      process.off("exit", orphan);
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await exited;
    },
  };
}
