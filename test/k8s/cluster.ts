// A real Kubernetes control plane on loopback for tests, the way kubebuilder's envtest does it:
// etcd + kube-apiserver + kube-controller-manager, built by test/k8s/build.sh from the Go
// module proxy. Certificates are made with openssl in a temp dir; every port is a free
// loopback port; stop() ends all three processes and removes the dir.
//
//   import { startCluster } from "./k8s/cluster.ts";
//   const k8s = await startCluster();            // ~5-10 s
//   await k8s.kubectl(["apply", "-f", "-"], manifest);
//   ... use k8s.kubeconfig / k8s.server / k8s.ca / k8s.clientCert / k8s.clientKey ...
//   await k8s.stop();
//
// By hand (Node >= 22.18, which runs .ts directly):
//   node test/k8s/cluster.ts up       # start, print KUBECONFIG, run until Ctrl-C
//   node test/k8s/cluster.ts smoke    # start, prove it works (namespaces, a Deployment's
//                                     # ReplicaSet and Pods, namespace deletion), stop
//   node test/k8s/cluster.ts up --node    # the same plus a real node (test/k8s/node.ts):
//                                     # containerd, kubelet, kube-proxy, kube-scheduler, CoreDNS
// See docs/k8s-test-env.md.
import { execFile, execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, openSync, closeSync } from "node:fs";
import { request } from "node:https";
import { createServer } from "node:net";
import os from "node:os";
import path from "node:path";
import process from "node:process";

export const DEFAULT_K8S_VERSION = "v1.36.3";
const here = import.meta.dirname ?? path.dirname(new URL(import.meta.url).pathname);
export const BUILD_SCRIPT = path.join(here, "build.sh");
const BINARIES = ["etcd", "kube-apiserver", "kube-controller-manager", "kubectl"] as const;

export interface ClusterOptions {
  /** Directory holding the four binaries. Default: $WEFT_K8S_BIN, else the build cache for `version`. */
  binDir?: string;
  /** Kubernetes version to look up in the cache. Default: $WEFT_K8S_VERSION or DEFAULT_K8S_VERSION. */
  version?: string;
  /** Run test/k8s/build.sh when the binaries are missing (slow on a cold cache). Default false. */
  build?: boolean;
  /** Start kube-controller-manager (Deployments -> Pods, namespace deletion, ...). Default true. */
  controllerManager?: boolean;
  /** Service CIDR. Default 10.0.0.0/24 (the `kubernetes` Service gets 10.0.0.1). */
  serviceCidr?: string;
  /** Extra kube-apiserver flags, e.g. ["--feature-gates=..."]. */
  apiserverArgs?: string[];
  /** Keep the temp dir (certificates, logs, etcd data) after stop(). Default: $WEFT_K8S_KEEP set. */
  keep?: boolean;
  /** How long to wait for readiness. Default 60 s (plus the node's own wait with `node`). */
  timeoutMs?: number;
  /**
   * Also start a real node (test/k8s/node.ts): root only, one per machine, binaries from
   * test/k8s/build-node.sh. The apiserver then binds the node network's host address instead of
   * 127.0.0.1 (so pods reach it) and publishes it as the `kubernetes` Service's endpoint.
   * `true` or the node's options.
   */
  node?: boolean | import("./node.ts").NodeOptions;
}

export interface Cluster {
  /** https://127.0.0.1:PORT */
  server: string;
  /** Path of a kubeconfig for a client-certificate user in system:masters. */
  kubeconfig: string;
  /** PEM: the CA that signed the serving and client certificates (also the caBundle for webhooks). */
  ca: string;
  caCertFile: string;
  caKeyFile: string;
  /** PEM client certificate/key of the system:masters user. */
  clientCert: string;
  clientKey: string;
  /** Temp dir with certs, kubeconfig, logs (etcd.log, kube-apiserver.log, ...), etcd data. */
  dir: string;
  binDir: string;
  version: string;
  etcdUrl: string;
  pids: Record<string, number>;
  /** The node, when started with `node` (images, registry, its own stop is part of stop()). */
  node?: import("./node.ts").Node;
  /** Run the matching kubectl against this cluster; rejects with stderr on a non-zero exit. */
  kubectl(args: string[], input?: string): Promise<string>;
  /** Resident memory in KiB of each running process (from /proc). */
  rss(): Record<string, number>;
  /** SIGTERM everything (controller-manager, apiserver, etcd), wait, remove the temp dir. */
  stop(): Promise<void>;
}

export function cacheDir(): string {
  return process.env.WEFT_K8S_CACHE ?? path.join(os.homedir(), ".cache", "weft", "k8s");
}

/** The bin dir for a version, or null when some binary is missing. */
export function findBinaries(
  version = process.env.WEFT_K8S_VERSION ?? DEFAULT_K8S_VERSION,
  binDir = process.env.WEFT_K8S_BIN,
): string | null {
  const dir = binDir ?? path.join(cacheDir(), version, "bin");
  return BINARIES.every((b) => existsSync(path.join(dir, b))) ? dir : null;
}

/** Build (or find in the cache) the binaries for a version; returns the bin dir. */
export function buildBinaries(version = process.env.WEFT_K8S_VERSION ?? DEFAULT_K8S_VERSION): string {
  const out = execFileSync("bash", [BUILD_SCRIPT, version], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
  return out.trim().split("\n").pop()!;
}

/** n distinct free TCP ports on 127.0.0.1 (all bound at once, read, released). */
// Ports a test binds later (a sidecar's listeners, the control plane's) come from below the
// kernel's ephemeral range (ip_local_port_range, 32768-60999 by default): the kernel never
// takes those as the local port of an outgoing connection. A port picked with listen(0) comes
// from that range, and one of the many connections to the API server took it before the test
// bound it (EADDRINUSE) in about one full run in ten.
const PORTS_FROM = 20000;
const handedOut = new Set<number>();

function ephemeralLow(): number {
  try {
    return Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]) || 32768;
  } catch {
    return 32768;
  }
}

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once("error", () => resolve(false));
    s.listen(port, "0.0.0.0", () => s.close(() => resolve(true)));
  });
}

/** `n` ports free now, below the ephemeral range, never the same twice in one process. */
export async function freePorts(n: number): Promise<number[]> {
  const high = ephemeralLow() - 1;
  const ports: number[] = [];
  let candidate = PORTS_FROM + Math.floor(Math.random() * (high - PORTS_FROM));
  for (let tried = 0; ports.length < n; tried++) {
    if (tried > high - PORTS_FROM) throw new Error(`no free port between ${PORTS_FROM} and ${high}`);
    candidate = candidate >= high ? PORTS_FROM : candidate + 1;
    if (handedOut.has(candidate) || !(await canBind(candidate))) continue;
    handedOut.add(candidate);
    ports.push(candidate);
  }
  return ports;
}

export function openssl(dir: string, args: string[]): void {
  try {
    execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
  } catch (e) {
    const err = e as { stderr?: Buffer };
    throw new Error(`openssl ${args.join(" ")} failed: ${err.stderr?.toString() ?? e}`);
  }
}

const CERT_DAYS = "30";

/** `<name>.key` + `<name>.crt` in `dir`, signed by the `ca.crt`/`ca.key` there; `ext` is an openssl extfile. */
export function signLeaf(dir: string, name: string, subj: string, ext: string): void {
  writeFileSync(path.join(dir, `${name}.ext`), ext);
  openssl(dir, [
    "req",
    "-new",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    `${name}.key`,
    "-out",
    `${name}.csr`,
    "-subj",
    subj,
  ]);
  openssl(dir, [
    "x509",
    "-req",
    "-in",
    `${name}.csr`,
    "-CA",
    "ca.crt",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    `${name}.crt`,
    "-days",
    CERT_DAYS,
    "-sha256",
    "-extfile",
    `${name}.ext`,
  ]);
}

/** A client certificate (`<name>.crt`/`.key`) for user `cn` in groups `orgs`. */
export function signClient(dir: string, name: string, cn: string, orgs: string[] = []): void {
  signLeaf(
    dir,
    name,
    `${orgs.map((o) => `/O=${o}`).join("")}/CN=${cn}`,
    "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n",
  );
}

/** CA, apiserver serving cert (IP SAN 127.0.0.1 + extraIps), system:masters client cert, SA signing key. */
function makePki(dir: string, serviceIp: string, extraIps: string[] = []): void {
  openssl(dir, [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    "ca.key",
    "-out",
    "ca.crt",
    "-days",
    CERT_DAYS,
    "-subj",
    "/CN=weft-test-kubernetes-ca",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
  ]);
  signLeaf(
    dir,
    "apiserver",
    "/CN=kube-apiserver",
    "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n" +
      `subjectAltName=IP:127.0.0.1,IP:${serviceIp},${extraIps.map((ip) => `IP:${ip},`).join("")}DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n`,
  );
  signClient(dir, "admin", "weft-test-admin", ["system:masters"]);
  openssl(dir, ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "sa.key"]);
  openssl(dir, ["pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub"]);
}

/** A kubeconfig for the client certificate `<user>.crt`/`.key` in `dir`. */
export function kubeconfigYaml(server: string, dir: string, user = "admin"): string {
  const b64 = (f: string) => readFileSync(path.join(dir, f)).toString("base64");
  return `apiVersion: v1
kind: Config
clusters:
- name: weft-test
  cluster:
    server: ${server}
    certificate-authority-data: ${b64("ca.crt")}
users:
- name: weft-test-admin
  user:
    client-certificate-data: ${b64(`${user}.crt`)}
    client-key-data: ${b64(`${user}.key`)}
contexts:
- name: weft-test
  context:
    cluster: weft-test
    user: weft-test-admin
current-context: weft-test
`;
}

/** The first IP of a CIDR (the `kubernetes` Service's ClusterIP), IPv4 only. */
export function firstIp(cidr: string, offset = 1): string {
  const [ip] = cidr.split("/");
  const n = ip.split(".").reduce((a, o) => a * 256 + Number(o), 0) + offset;
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join(".");
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function tail(file: string, lines = 30): string {
  try {
    return readFileSync(file, "utf8").split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

export interface Proc {
  name: string;
  child: ChildProcess;
  log: string;
  exited: Promise<number | null>;
  exitCode: number | null | undefined;
}

export function startProc(name: string, bin: string, args: string[], dir: string): Proc {
  const log = path.join(dir, `${name}.log`);
  const fd = openSync(log, "a");
  const child = spawn(bin, args, { cwd: dir, stdio: ["ignore", fd, fd], env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: dir } });
  closeSync(fd);
  const p: Proc = { name, child, log, exitCode: undefined, exited: Promise.resolve(null) };
  p.exited = new Promise((resolve) => {
    child.once("exit", (code, signal) => {
      p.exitCode = code ?? (signal ? -1 : null);
      resolve(code);
    });
    child.once("error", (e) => {
      p.exitCode = -1;
      writeFileSync(log, `spawn failed: ${e}\n`, { flag: "a" });
      resolve(-1);
    });
  });
  return p;
}

export async function waitFor(what: string, proc: Proc, deadline: number, check: () => Promise<boolean>): Promise<void> {
  for (;;) {
    if (proc.exitCode !== undefined)
      throw new Error(`${proc.name} exited (${proc.exitCode}) while waiting for ${what}; last log lines:\n${tail(proc.log)}`);
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last lines of ${proc.log}:\n${tail(proc.log)}`);
    await sleep(200);
  }
}

function httpsGet(url: string, tls: { ca: string; cert: string; key: string }): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ...tls, timeout: 2000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
    req.end();
  });
}

export const live = new Set<Proc>();
let exitHookInstalled = false;
export function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // last resort if a test forgets stop() or the runner exits: no orphaned apiservers
  process.on("exit", () => {
    for (const p of live) if (p.exitCode === undefined) p.child.kill("SIGKILL");
  });
}

export async function stopProc(p: Proc, graceMs = 10_000): Promise<void> {
  if (p.exitCode === undefined) {
    p.child.kill("SIGTERM");
    const timer = setTimeout(() => p.child.kill("SIGKILL"), graceMs);
    await p.exited;
    clearTimeout(timer);
  }
  live.delete(p);
}

export async function startCluster(opts: ClusterOptions = {}): Promise<Cluster> {
  const version = opts.version ?? process.env.WEFT_K8S_VERSION ?? DEFAULT_K8S_VERSION;
  let binDir = opts.binDir ?? findBinaries(version);
  if (!binDir && opts.build) binDir = buildBinaries(version);
  if (!binDir || !BINARIES.every((b) => existsSync(path.join(binDir!, b)))) {
    throw new Error(
      `Kubernetes ${version} binaries not found in ${opts.binDir ?? path.join(cacheDir(), version, "bin")}: run test/k8s/build.sh ${version} first (docs/k8s-test-env.md)`,
    );
  }
  const bin = (b: string) => path.join(binDir!, b);
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const deadline = Date.now() + timeoutMs;
  const serviceCidr = opts.serviceCidr ?? "10.0.0.0/24";
  const keep = opts.keep ?? Boolean(process.env.WEFT_K8S_KEEP);
  // A node: its network (a namespace, a veth pair) must exist before the apiserver binds to it.
  // Loaded only when asked for, so callers without a node never touch node.ts.
  const nodeMod = opts.node ? await import("./node.ts") : undefined;
  const nodeOpts = typeof opts.node === "object" ? opts.node : {};
  const dir = mkdtempSync(path.join(os.tmpdir(), "weft-k8s-"));
  const f = (name: string) => path.join(dir, name);
  let net: import("./node.ts").NodeNetwork | undefined;
  try {
    if (nodeMod) net = await nodeMod.prepareNode({ ...nodeOpts, dir, binDir, serviceCidr });
    makePki(dir, firstIp(serviceCidr), net ? [net.hostIp] : []);
    net?.makePki(); // the node's certificates, signed by the CA just made
  } catch (e) {
    await net?.teardown();
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const ca = readFileSync(f("ca.crt"), "utf8");
  const clientCert = readFileSync(f("admin.crt"), "utf8");
  const clientKey = readFileSync(f("admin.key"), "utf8");
  const tlsOpts = { ca, cert: clientCert, key: clientKey };
  installExitHook();

  const procs: Proc[] = [];
  const spawnTracked = (name: string, args: string[]) => {
    const p = startProc(name, bin(name), args, dir);
    procs.push(p);
    live.add(p);
    return p;
  };
  let node: import("./node.ts").Node | undefined;
  const stopAll = async () => {
    if (node) await node.stop();
    for (const p of [...procs].reverse()) await stopProc(p);
    await net?.teardown();
    if (!keep) rmSync(dir, { recursive: true, force: true });
  };

  try {
    // etcd: one member, client and peer on loopback, no fsync (a test database).
    const [etcdPort, peerPort, apiPort] = await freePorts(3);
    const etcdUrl = `http://127.0.0.1:${etcdPort}`;
    const peerUrl = `http://127.0.0.1:${peerPort}`;
    mkdirSync(f("etcd-data"), { mode: 0o700 });
    const etcd = spawnTracked("etcd", [
      "--name=default",
      `--data-dir=${f("etcd-data")}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=default=${peerUrl}`,
      "--initial-cluster-state=new",
      "--unsafe-no-fsync=true",
      "--log-level=warn",
    ]);
    await waitFor("etcd /health", etcd, deadline, async () => {
      const r = await fetch(`${etcdUrl}/health`);
      return r.ok && (await r.text()).includes('"health":"true"');
    });

    // kube-apiserver with the flags envtest uses.
    const apiIp = net?.hostIp ?? "127.0.0.1";
    const server = `https://${apiIp}:${apiPort}`;
    const apiserver = spawnTracked("kube-apiserver", [
      `--etcd-servers=${etcdUrl}`,
      `--advertise-address=${apiIp}`,
      `--bind-address=${apiIp}`,
      `--secure-port=${apiPort}`,
      `--cert-dir=${f("apiserver-certs")}`,
      `--tls-cert-file=${f("apiserver.crt")}`,
      `--tls-private-key-file=${f("apiserver.key")}`,
      `--client-ca-file=${f("ca.crt")}`,
      "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
      `--service-account-key-file=${f("sa.pub")}`,
      `--service-account-signing-key-file=${f("sa.key")}`,
      `--service-cluster-ip-range=${serviceCidr}`,
      "--allow-privileged=true",
      ...(net
        ? net.apiserverArgs
        : [
            "--authorization-mode=RBAC",
            // the default "lease" reconciler tries to publish 127.0.0.1 as the `kubernetes` Service's
            // endpoint every 10 s and is refused (loopback addresses are invalid in Endpoints)
            "--endpoint-reconciler-type=none",
          ]),
      ...(opts.apiserverArgs ?? []),
    ]);
    await waitFor("kube-apiserver /readyz", apiserver, deadline, async () => (await httpsGet(`${server}/readyz`, tlsOpts)).status === 200);

    const kubeconfig = f("kubeconfig");
    writeFileSync(kubeconfig, kubeconfigYaml(server, dir), { mode: 0o600 });

    if (opts.controllerManager ?? true) {
      const kcm = spawnTracked("kube-controller-manager", [
        `--kubeconfig=${kubeconfig}`,
        "--leader-elect=false",
        // no /healthz server: it would need the apiserver's requestheader CA for delegated
        // authentication, and readiness is checked through the API instead (below)
        "--secure-port=0",
        `--service-account-private-key-file=${f("sa.key")}`,
        `--root-ca-file=${f("ca.crt")}`,
        `--cluster-signing-cert-file=${f("ca.crt")}`,
        `--cluster-signing-key-file=${f("ca.key")}`,
        `--service-cluster-ip-range=${serviceCidr}`,
        "--cluster-name=weft-test",
        "--controllers=*",
      ]);
      // ready once the namespace controller's world exists: the default ServiceAccount
      const k = (args: string[]) => runKubectl(bin("kubectl"), kubeconfig, args);
      await waitFor("kube-controller-manager (the default ServiceAccount)", kcm, deadline, async () => {
        await k(["get", "serviceaccount", "default", "-n", "default", "-o", "name"]);
        return true;
      });
    }

    if (nodeMod && net) {
      node = await nodeMod.startNode(net, {
        server,
        kubeconfig,
        kubectl: (args, input) => runKubectl(bin("kubectl"), kubeconfig, args, input),
      });
    }

    const byName = Object.fromEntries(procs.map((p) => [p.name, p]));
    let stopped: Promise<void> | undefined;
    return {
      node,
      server,
      kubeconfig,
      ca,
      clientCert,
      clientKey,
      dir,
      binDir,
      version,
      etcdUrl,
      caCertFile: f("ca.crt"),
      caKeyFile: f("ca.key"),
      pids: Object.fromEntries(procs.map((p) => [p.name, p.child.pid ?? 0])),
      kubectl: (args, input) => runKubectl(bin("kubectl"), kubeconfig, args, input),
      rss: () => ({ ...Object.fromEntries(Object.entries(byName).map(([n, p]) => [n, rssKib(p.child.pid)])), ...node?.rss() }),
      stop: () => (stopped ??= stopAll()),
    };
  } catch (e) {
    const where = keep ? ` (logs kept in ${dir})` : "";
    await stopAll();
    throw e instanceof Error ? Object.assign(e, { message: e.message + where }) : e;
  }
}

/**
 * `kubectl wait --for=condition=Established` for `targets` (crd/NAME ..., or crd --all). kubectl
 * fails at once rather than waiting on a CRD the API server has not given any condition yet
 * (".status.conditions accessor error: <nil>"), as one just created can be: then it asks again.
 */
export async function waitEstablished(kubectl: (args: string[]) => Promise<string>, targets: string[], timeoutSeconds = 30): Promise<void> {
  const deadline = Date.now() + timeoutSeconds * 1000;
  for (;;) {
    try {
      await kubectl(["wait", "--for=condition=Established", `--timeout=${timeoutSeconds}s`, ...targets]);
      return;
    } catch (e) {
      if (!/status\.conditions accessor error/.test((e as Error).message) || Date.now() > deadline) throw e;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}

export function runKubectl(kubectl: string, kubeconfig: string, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      kubectl,
      [`--kubeconfig=${kubeconfig}`, ...args],
      { encoding: "utf8", timeout: 60_000, maxBuffer: 64 << 20 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`kubectl ${args.join(" ")}: ${stderr.trim() || err.message}`));
        else resolve(stdout);
      },
    );
    child.stdin?.end(input ?? "");
  });
}

export function rssKib(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

// ---- CLI -------------------------------------------------------------------------------

export const poll = async <T>(what: string, fn: () => Promise<T | undefined>, ms = 30_000): Promise<T> => {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await sleep(250);
  }
};

/** The proof used by `smoke` and cluster.test.ts: every part of the control plane does its job. */
export async function smoke(k8s: Cluster, say: (s: string) => void = () => {}): Promise<void> {
  const ns = await k8s.kubectl(["get", "ns", "-o", "name"]);
  say(`namespaces: ${ns.trim().split("\n").join(" ")}`);
  if (!ns.includes("namespace/kube-system")) throw new Error(`kube-system missing: ${ns}`);
  const v = JSON.parse(await k8s.kubectl(["version", "-o", "json"]));
  say(`kubectl ${v.clientVersion.gitVersion}, server ${v.serverVersion.gitVersion}`);

  await k8s.kubectl(["create", "namespace", "smoke"]);
  await k8s.kubectl(["-n", "smoke", "create", "deployment", "web", "--image=registry.k8s.io/pause:3.10", "--replicas=2"]);
  const rs = await poll("ReplicaSet of deployment/web", async () => {
    const out = (await k8s.kubectl(["-n", "smoke", "get", "rs", "-l", "app=web", "-o", "name"])).trim();
    return out || undefined;
  });
  say(`deployment controller made ${rs}`);
  const pods = await poll("2 Pods of deployment/web", async () => {
    const out = (await k8s.kubectl(["-n", "smoke", "get", "pods", "-l", "app=web", "-o", "name"])).trim().split("\n").filter(Boolean);
    return out.length === 2 ? out : undefined;
  });
  say(`replicaset controller made ${pods.join(" ")} (Pending: there are no nodes)`);
  await k8s.kubectl(["-n", "smoke", "create", "service", "clusterip", "web", "--tcp=80:8080"]);
  say(`service/web got ClusterIP ${(await k8s.kubectl(["-n", "smoke", "get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"])).trim()}`);
  const cm = await poll(
    "kube-root-ca.crt in namespace smoke",
    async () => (await k8s.kubectl(["-n", "smoke", "get", "configmap", "kube-root-ca.crt", "-o", "name"])).trim() || undefined,
  );
  say(`root-ca publisher made ${cm}`);
  const token = (await k8s.kubectl(["-n", "smoke", "create", "token", "default"])).trim();
  say(`kubectl create token: ${token.slice(0, 16)}... (${token.length} chars)`);

  await k8s.kubectl(["delete", "namespace", "smoke", "--wait=true", "--timeout=60s"]);
  const gone = await k8s.kubectl(["get", "ns", "smoke", "--ignore-not-found", "-o", "name"]);
  if (gone.trim()) throw new Error("namespace smoke still exists");
  say("namespace smoke deleted (the namespace controller emptied and finalized it)");
}

// Not a top-level await: node.ts imports this module, and a dynamic import of it (startCluster
// with `node`) would wait forever for this module's evaluation to finish.
if (import.meta.main ?? process.argv[1] === new URL(import.meta.url).pathname) void cli();

async function cli(): Promise<void> {
  const cmd = process.argv[2] ?? "up";
  const withNode = process.argv.slice(3).includes("--node");
  const say = (s: string) => process.stderr.write(`[k8s] ${s}\n`);
  if ((cmd !== "up" && cmd !== "smoke") || process.argv.slice(3).some((a) => a !== "--node")) {
    process.stderr.write(
      "usage: node test/k8s/cluster.ts up|smoke [--node]   (binaries from test/k8s/build.sh, and build-node.sh for --node)\n",
    );
    process.exit(2);
  }
  const t0 = Date.now();
  const k8s = await startCluster({ build: true, node: withNode ? { build: true } : undefined });
  if (k8s.node)
    say(
      `node ${k8s.node.name} Ready (${k8s.node.ip}); registry ${k8s.node.registry}; images ${k8s.node.images.busybox}, ${k8s.node.images.pause}`,
    );
  say(`Kubernetes ${k8s.version} ready in ${((Date.now() - t0) / 1000).toFixed(1)} s at ${k8s.server} (pids ${JSON.stringify(k8s.pids)})`);
  const shutdown = async (code: number) => {
    say("stopping...");
    await k8s.stop();
    say("stopped");
    process.exit(code);
  };
  process.on("SIGINT", () => void shutdown(130));
  process.on("SIGTERM", () => void shutdown(143));
  if (cmd === "smoke") {
    try {
      await smoke(k8s, say);
      const rss = k8s.rss();
      say(
        `RSS: ${Object.entries(rss)
          .map(([n, kib]) => `${n} ${(kib / 1024).toFixed(0)} MiB`)
          .join(", ")}`,
      );
      say("smoke test passed");
      await shutdown(0);
    } catch (e) {
      say(`smoke test FAILED: ${e instanceof Error ? e.message : e}`);
      await shutdown(1);
    }
  } else {
    process.stdout.write(`export KUBECONFIG=${k8s.kubeconfig}\nexport PATH=${k8s.binDir}:$PATH\n`);
    say(`logs in ${k8s.dir}; Ctrl-C stops everything`);
    await new Promise(() => {});
  }
}
