// A real single node for the test cluster (test/k8s/cluster.ts): containerd + runc run real
// pods, kubelet, kube-proxy (iptables), kube-scheduler and CoreDNS. Everything the node does to
// the machine is confined so that stop(), or the next start after a SIGKILLed run, can undo it:
//
//   - a network namespace `weft-k8s-node` joined to the host by a veth pair (host side
//     `wk8s-host` 172.30.255.1/30, node side `eth0` 172.30.255.2/30); the pods' bridge `cni0`
//     (10.244.0.0/24), kube-proxy's iptables rules and the pods' own namespaces all live behind it.
//     The host routes the pod CIDR and the Service CIDR to the node, so ClusterIPs work from the
//     host too. The apiserver binds 172.30.255.1 (not loopback), so pods and the `kubernetes`
//     Service reach it; deleting the namespace removes the veth, the routes and every rule.
//   - a private mount namespace (an "anchor" process) that containerd, the shims, kubelet,
//     kube-proxy and CoreDNS join: every mount they make (overlay rootfs, tmpfs volumes, pod
//     netns pins) dies with it; /run/containerd and /var/lib/cni are tmpfs there, /var/log/pods
//     and /var/log/containers are bind mounts of the temp dir.
//   - pods' cgroups under <this process's memory cgroup>/weft-k8s in every cgroup v1 hierarchy
//     (kubelet's cgroupRoot; cgroupfs driver): pods count against the session's memory cgroup.
//   - one node per machine: /run/weft-k8s-node.json names the owner; a stale one (its process
//     is dead) is cleaned up on the next start (kill what is in the netns, the cgroups and the old
//     temp dir's processes, delete the netns, rmdir the cgroups, remove the old temp dir).
//
// Use it through startCluster({ node: true }); images come from a registry the node starts
// (node.registry, pushable with skopeo --dest-tls-verify=false) and are named
// node.image("weft-test/busybox:1") = "registry.weft.test/weft-test/busybox:1".
//   node test/k8s/node.ts clean      # remove what a killed run left behind
// See docs/k8s-test-env.md ("A real node").
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, rmdirSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import process from "node:process";
import {
  cacheDir,
  DEFAULT_K8S_VERSION,
  firstIp,
  freePorts,
  installExitHook,
  kubeconfigYaml,
  live,
  rssKib,
  signClient,
  signLeaf,
  sleep,
  startProc,
  stopProc,
  tail,
  type Proc,
} from "./cluster.ts";

export const NODE_NAME = "weft-node";
export const NETNS = "weft-k8s-node";
const HOST_IF = "wk8s-host";
const HOST_IP = "172.30.255.1";
const NODE_IP = "172.30.255.2";
const POD_CIDR = "10.244.0.0/24";
const CGROUP_LEAF = "weft-k8s";
const STATE_FILE = "/run/weft-k8s-node.json";
/** The registry's name in image references; containerd's hosts.toml sends it to the node's registry. */
export const REGISTRY_ALIAS = "registry.weft.test";
const RUNC = process.env.WEFT_K8S_RUNC ?? "/usr/sbin/runc";
const CNI_BIN = "/usr/lib/cni";
const REGISTRY_BIN = "/usr/bin/docker-registry";
const here = import.meta.dirname ?? path.dirname(new URL(import.meta.url).pathname);
export const BUILD_NODE_SCRIPT = path.join(here, "build-node.sh");
const NODE_BINARIES = ["kubelet", "kube-scheduler", "kube-proxy", "containerd", "containerd-shim-runc-v2", "coredns"] as const;
const APT =
  "apt-get install -y runc containernetworking-plugins busybox-static umoci skopeo docker-registry iptables iproute2 util-linux conntrack";

export interface NodeOptions {
  /** How long to wait for the Node to be Ready (after the control plane is). Default 120 s. */
  timeoutMs?: number;
  /** Run test/k8s/build-node.sh when something is missing (slow on a cold cache). Default false. */
  build?: boolean;
}

export interface NodeNetwork {
  hostIp: string;
  nodeIp: string;
  /** kube-apiserver flags for a cluster with this node (authorization, kubelet client cert, endpoints). */
  apiserverArgs: string[];
  /** Make the node's certificates (needs the cluster's ca.crt/ca.key in its dir). */
  makePki(): void;
  /** Kill everything the node started, delete its namespaces and cgroups. Idempotent. */
  teardown(): Promise<void>;
  /** @internal */ ctx: Ctx;
}

export interface Node {
  name: string;
  /** The node's InternalIP (172.30.255.2); kubelet serves on :10250 there. */
  ip: string;
  /** The host end of the veth (172.30.255.1): the apiserver and the registry listen here. */
  hostIp: string;
  podCidr: string;
  /** ClusterIP of kube-system/kube-dns (CoreDNS), the pods' nameserver. */
  dnsIp: string;
  /** HOST:PORT of the node's registry (plain HTTP), for pushes: skopeo copy --dest-tls-verify=false ... docker://HOST:PORT/name:tag */
  registry: string;
  /** An image reference for a pod: image("weft-test/busybox:1") -> "registry.weft.test/weft-test/busybox:1". */
  image(name: string): string;
  /** The two images built by build-node.sh, already pushed. */
  images: { pause: string; busybox: string };
  /** kubelet's cgroupRoot; pod cgroups are <hierarchy>/<cgroupRoot>/kubepods/... */
  cgroupRoot: string;
  /** Run a command inside the node's network and mount namespaces (e.g. ["ip", "-o", "link"]); returns stdout. */
  exec(cmd: string[]): string;
  pids: Record<string, number>;
  rss(): Record<string, number>;
  stop(): Promise<void>;
}

interface Ctx {
  dir: string;
  binDir: string;
  serviceCidr: string;
  timeoutMs: number;
  procs: Proc[];
  anchor?: Proc;
  cgroupRoot: string;
  cgroupCreated: string[];
}

const sh = (cmd: string, args: string[], input?: string) =>
  execFileSync(cmd, args, { encoding: "utf8", stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"], input });
const trySh = (cmd: string, args: string[]) => {
  try {
    return sh(cmd, args);
  } catch {
    return undefined;
  }
};
const write = (file: string, text: string) => {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, text);
};

/** What is missing to run a node, with the command that fixes it; [] when nothing is. */
export function nodeMissing(binDir: string): string[] {
  const out: string[] = [];
  const bins = NODE_BINARIES.filter((b) => !existsSync(path.join(binDir, b)));
  if (bins.length || !existsSync(path.join(binDir, "..", "images", ".stamp"))) {
    out.push(`${bins.length ? bins.join(", ") : "the node images"} not in ${binDir}: run test/k8s/build-node.sh`);
  }
  const tools: Array<[string, string]> = [
    [RUNC, "runc"],
    [`${CNI_BIN}/bridge`, "containernetworking-plugins"],
    [REGISTRY_BIN, "docker-registry"],
  ];
  for (const [file, pkg] of tools) if (!existsSync(file)) out.push(`${file} missing: apt-get install -y ${pkg}`);
  for (const c of ["skopeo", "nsenter", "unshare", "ip", "iptables"])
    if (!trySh("sh", ["-c", `command -v ${c}`])) out.push(`${c} missing: ${APT}`);
  return out;
}

// ---- residue of a previous run --------------------------------------------------------------

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * kubelet's cgroupRoot: "<our memory cgroup>/weft-k8s" (e.g. /process_api/<id>/weft-k8s here),
 * so the pods stay inside the memory cgroup the machine accounts this session to. The cgroupfs
 * driver uses one path in every hierarchy, so it is created in all of them.
 */
function ownCgroupRoot(): string {
  let mem = "/";
  try {
    for (const l of readFileSync("/proc/self/cgroup", "utf8").split("\n")) {
      const [, ctl, p] = l.split(":");
      if (ctl?.split(",").includes("memory")) mem = p;
    }
  } catch {
    /* no cgroups? kubelet will say */
  }
  return path.posix.join(mem, CGROUP_LEAF);
}

/** mkdir cgroupRoot in every v1 hierarchy (kubelet refuses a missing one); cpuset levels inherit cpus/mems. */
function makeCgroupRoot(root: string): string[] {
  const created: string[] = [];
  for (const h of cgroupHierarchies()) {
    let d = h;
    for (const part of root.split("/").filter(Boolean)) {
      const parent = d;
      d = path.join(d, part);
      if (existsSync(d)) continue;
      mkdirSync(d);
      created.push(d);
      if (path.basename(h) === "cpuset") {
        for (const k of ["cpuset.cpus", "cpuset.mems"]) writeFileSync(path.join(d, k), readFileSync(path.join(parent, k), "utf8").trim());
      }
    }
  }
  return created;
}

/** Every pid in the node's cgroups, in all cgroup v1 hierarchies (pods' containers). */
function cgroupPids(root: string): number[] {
  const pids = new Set<number>();
  const walk = (d: string) => {
    let entries: string[];
    try {
      entries = readdirSync(d);
    } catch {
      return;
    }
    try {
      for (const l of readFileSync(path.join(d, "cgroup.procs"), "utf8").split("\n")) if (l) pids.add(Number(l));
    } catch {
      /* gone */
    }
    for (const e of entries) {
      const p = path.join(d, e);
      try {
        if (statSync(p).isDirectory()) walk(p);
      } catch {
        /* gone */
      }
    }
  };
  for (const h of cgroupHierarchies(true)) walk(path.join(h, root));
  return [...pids];
}

/**
 * The cgroup hierarchies under /sys/fs/cgroup: the v1 controllers, and (withUnified) the hybrid
 * layout's cgroup2 "unified" tree, where runc mirrors each container's cgroup too.
 */
function cgroupHierarchies(withUnified = false): string[] {
  try {
    return readdirSync("/sys/fs/cgroup")
      .filter((h) => withUnified || h !== "unified")
      .map((h) => path.join("/sys/fs/cgroup", h))
      .filter((h) => existsSync(path.join(h, "cgroup.procs")));
  } catch {
    return [];
  }
}

/** rmdir the node's cgroup trees, deepest first (kernel cgroup dirs hold only pseudo-files). */
function removeCgroups(root: string, created: string[] = []): void {
  const rm = (d: string) => {
    let entries: string[] = [];
    try {
      entries = readdirSync(d, { withFileTypes: true })
        .filter((e) => e.isDirectory())
        .map((e) => e.name);
    } catch {
      return;
    }
    for (const e of entries) rm(path.join(d, e));
    try {
      rmdirSync(d);
    } catch {
      /* still busy or gone */
    }
  };
  for (const h of cgroupHierarchies(true)) rm(path.join(h, root));
  // the parents makeCgroupRoot made (e.g. /sys/fs/cgroup/cpu/process_api/<id>), deepest first
  for (const d of [...created].sort((a, b) => b.length - a.length)) {
    try {
      rmdirSync(d);
    } catch {
      /* busy or gone */
    }
  }
}

function netnsPids(): number[] {
  const out = trySh("ip", ["netns", "pids", NETNS]) ?? "";
  return out.split("\n").filter(Boolean).map(Number);
}

/** What a run starts outside the node's netns and cgroups (control plane, registry), by program name. */
const OURS = new Set([
  "etcd",
  "kube-apiserver",
  "kube-controller-manager",
  "kube-scheduler",
  "docker-registry",
  "kubelet",
  "kube-proxy",
  "containerd",
  "coredns",
  "nsenter",
  "unshare",
  "sleep",
]);

/** Our processes whose command line mentions `dir` (a previous run's temp dir), not e.g. a `less` of its logs. */
function pidsMentioning(dir: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    try {
      const argv = readFileSync(`/proc/${e}/cmdline`, "utf8").split("\0");
      if (OURS.has(path.basename(argv[0])) && argv.some((a) => a.includes(dir))) out.push(Number(e));
    } catch {
      /* gone */
    }
  }
  return out;
}

/** SIGKILL everything the node (or a previous run's node) left, delete its netns and cgroups. */
export async function cleanNode(
  cgroupRoot: string | undefined,
  oldDir?: string,
  say: (s: string) => void = () => {},
  cgroupCreated: string[] = [],
  keepNetwork = false,
): Promise<void> {
  for (let round = 0; round < 50; round++) {
    const pids = [
      ...new Set([...netnsPids(), ...(cgroupRoot ? cgroupPids(cgroupRoot) : []), ...(oldDir ? pidsMentioning(oldDir) : [])]),
    ].filter((p) => p !== process.pid);
    if (pids.length === 0) break;
    if (round === 0) say(`killing ${pids.length} leftover node processes`);
    for (const p of pids) {
      try {
        process.kill(p, "SIGKILL");
      } catch {
        /* gone */
      }
    }
    await sleep(100);
  }
  if (cgroupRoot) removeCgroups(cgroupRoot, cgroupCreated);
  if (keepNetwork) return;
  if (
    trySh("ip", ["netns", "list"])
      ?.split("\n")
      .some((l) => l.split(" ")[0] === NETNS)
  ) {
    trySh("ip", ["netns", "del", NETNS]);
    say(`deleted network namespace ${NETNS}`);
  }
  trySh("ip", ["link", "del", HOST_IF]);
  if (oldDir && path.basename(oldDir).startsWith("weft-k8s-") && existsSync(oldDir)) {
    rmSync(oldDir, { recursive: true, force: true });
    say(`removed ${oldDir}`);
  }
}

interface State {
  pid: number;
  dir: string;
  cgroupRoot?: string;
  cgroupCreated?: string[];
}
function readState(): State | undefined {
  try {
    return JSON.parse(readFileSync(STATE_FILE, "utf8"));
  } catch {
    return undefined;
  }
}

// ---- start -------------------------------------------------------------------------------

/** Step 1 (before the control plane): claim the machine, clean up a dead run, make the network. */
export async function prepareNode(opts: NodeOptions & { dir: string; binDir: string | null; serviceCidr: string }): Promise<NodeNetwork> {
  if (process.getuid?.() !== 0) throw new Error("a test node needs root (network namespace, iptables, mounts, cgroups)");
  const binDir = opts.binDir ?? path.join(cacheDir(), process.env.WEFT_K8S_VERSION ?? DEFAULT_K8S_VERSION, "bin");
  let missing = nodeMissing(binDir);
  if (missing.length && opts.build && missing.every((m) => m.includes("build-node.sh"))) {
    execFileSync("bash", [BUILD_NODE_SCRIPT, path.basename(path.dirname(binDir))], { stdio: ["ignore", "ignore", "inherit"] });
    missing = nodeMissing(binDir);
  }
  if (missing.length) throw new Error(`cannot start a test node:\n  ${missing.join("\n  ")}\n(docs/k8s-test-env.md, "A real node")`);

  const prev = readState();
  if (prev && prev.pid !== process.pid && alive(prev.pid)) {
    throw new Error(
      `another test node is running (owner pid ${prev.pid}, dir ${prev.dir}): one node per machine. ` +
        `Stop it, or if it is stuck: kill ${prev.pid}; node test/k8s/node.ts clean`,
    );
  }
  if (prev && prev.pid === process.pid) throw new Error("this process already runs a test node: one node per machine");
  await cleanNode(prev?.cgroupRoot, prev?.dir, (s) => process.stderr.write(`[k8s/node] previous run: ${s}\n`), prev?.cgroupCreated);
  const cgroupRoot = ownCgroupRoot();
  writeFileSync(STATE_FILE, JSON.stringify({ pid: process.pid, dir: opts.dir, cgroupRoot }));

  const ctx: Ctx = {
    dir: opts.dir,
    binDir,
    serviceCidr: opts.serviceCidr,
    timeoutMs: opts.timeoutMs ?? 120_000,
    procs: [],
    cgroupRoot,
    cgroupCreated: [],
  };
  const net: NodeNetwork = {
    hostIp: HOST_IP,
    nodeIp: NODE_IP,
    ctx,
    apiserverArgs: [
      // kubelets are authorized by the Node authorizer (RBAC has no binding for system:nodes)
      "--authorization-mode=Node,RBAC",
      "--enable-admission-plugins=NodeRestriction",
      // logs/exec/port-forward: the apiserver calls the kubelet with this client certificate and
      // checks the kubelet's serving certificate against the cluster CA
      `--kubelet-client-certificate=${path.join(opts.dir, "apiserver-kubelet-client.crt")}`,
      `--kubelet-client-key=${path.join(opts.dir, "apiserver-kubelet-client.key")}`,
      `--kubelet-certificate-authority=${path.join(opts.dir, "ca.crt")}`,
      // the node's hostname (weft-node) resolves nowhere
      "--kubelet-preferred-address-types=InternalIP",
      // (no --endpoint-reconciler-type=none: the `kubernetes` Service gets 172.30.255.1 as its
      // endpoint, which is what pods reach through kube-proxy)
    ],
    makePki: () => {
      const d = opts.dir;
      signClient(d, "apiserver-kubelet-client", "weft-test-apiserver-kubelet-client", ["system:masters"]);
      signClient(d, "kubelet", `system:node:${NODE_NAME}`, ["system:nodes"]);
      signClient(d, "kube-scheduler", "system:kube-scheduler");
      signClient(d, "kube-proxy", "system:kube-proxy");
      signClient(d, "coredns", "weft-test-coredns");
      signLeaf(
        d,
        "kubelet-serving",
        `/CN=${NODE_NAME}`,
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n" +
          `subjectAltName=IP:${NODE_IP},DNS:${NODE_NAME}\n`,
      );
    },
    teardown: async () => {
      for (const p of [...ctx.procs].reverse()) if (p.exitCode === undefined) p.child.kill("SIGKILL");
      await cleanNode(cgroupRoot, undefined, undefined, ctx.cgroupCreated);
      for (const p of ctx.procs) await stopProc(p, 1000);
      const s = readState();
      if (s?.pid === process.pid) rmSync(STATE_FILE, { force: true });
    },
  };
  try {
    const ip = (...a: string[]) => sh("ip", a);
    ip("netns", "add", NETNS);
    ip("link", "add", HOST_IF, "type", "veth", "peer", "name", "eth0", "netns", NETNS);
    ip("addr", "add", `${HOST_IP}/30`, "dev", HOST_IF);
    ip("link", "set", HOST_IF, "up");
    ip("-n", NETNS, "link", "set", "lo", "up");
    ip("-n", NETNS, "addr", "add", `${NODE_IP}/30`, "dev", "eth0");
    ip("-n", NETNS, "link", "set", "eth0", "up");
    ip("-n", NETNS, "route", "add", "default", "via", HOST_IP);
    // the host reaches pods and ClusterIPs through the node (kube-proxy's rules are in there)
    ip("route", "add", POD_CIDR, "via", NODE_IP, "dev", HOST_IF);
    ip("route", "add", opts.serviceCidr, "via", NODE_IP, "dev", HOST_IF);
    // host -> ClusterIP -> apiserver on the host goes back out of the node's eth0: no ICMP
    // redirect for that (the host would believe it and route ClusterIPs to itself)
    sh("sysctl", ["-qw", `net.ipv4.conf.${HOST_IF}.accept_redirects=0`]);
    sh("ip", [
      "netns",
      "exec",
      NETNS,
      "sh",
      "-c",
      [
        "echo 1 > /proc/sys/net/ipv4/ip_forward",
        "echo 0 > /proc/sys/net/ipv4/conf/all/send_redirects",
        "echo 0 > /proc/sys/net/ipv4/conf/eth0/send_redirects",
        // pod -> ClusterIP -> pod on the same bridge: the reply is bridged, and must still pass
        // conntrack to be un-DNATed (br_netfilter is built into this kernel; per netns)
        "echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables",
      ].join("; "),
    ]);
  } catch (e) {
    await net.teardown();
    const err = e as { stderr?: string; message: string };
    throw new Error(`could not set up the node's network: ${err.stderr || err.message}`);
  }
  return net;
}

/** This process's hard RLIMIT_NOFILE (what kubelet may raise its soft limit to without CAP_SYS_RESOURCE). */
function hardNofile(): number {
  const out = trySh("sh", ["-c", "ulimit -Hn"])?.trim();
  return out && /^\d+$/.test(out) ? Number(out) : 1_000_000;
}

/** Step 2 (control plane is ready): registry, containerd, CoreDNS, kubelet, kube-proxy, scheduler. */
export async function startNode(
  net: NodeNetwork,
  cp: { server: string; kubeconfig: string; kubectl(args: string[], input?: string): Promise<string> },
): Promise<Node> {
  const { ctx } = net;
  const { dir, binDir } = ctx;
  const f = (...p: string[]) => path.join(dir, ...p);
  const bin = (b: string) => path.join(binDir, b);
  const deadline = Date.now() + ctx.timeoutMs;
  const dnsIp = firstIp(ctx.serviceCidr, 10);
  installExitHook();
  const track = (p: Proc) => {
    ctx.procs.push(p);
    live.add(p);
    return p;
  };
  const failIfExited = (p: Proc, what: string) => {
    if (p.exitCode !== undefined)
      throw new Error(`${p.name} exited (${p.exitCode}) while waiting for ${what}; last lines of ${p.log}:\n${tail(p.log)}`);
  };
  const waitUntil = async (what: string, p: Proc, check: () => Promise<boolean> | boolean) => {
    for (;;) {
      failIfExited(p, what);
      if (
        await Promise.resolve()
          .then(check)
          .catch(() => false)
      )
        return;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last lines of ${p.log}:\n${tail(p.log)}`);
      await sleep(200);
    }
  };

  // -- registry on the host end of the veth (reachable from the host and from the node) ----
  const [regPort] = await freePorts(1);
  const registry = `${HOST_IP}:${regPort}`;
  write(
    f("registry", "config.yml"),
    [
      "version: 0.1",
      "log:",
      "  level: error",
      "storage:",
      "  filesystem:",
      `    rootdirectory: ${JSON.stringify(f("registry", "storage"))}`,
      "http:",
      `  addr: ${JSON.stringify(registry)}`,
      "",
    ].join("\n"),
  );
  const reg = track(startProc("registry", REGISTRY_BIN, ["serve", f("registry", "config.yml")], dir));
  await waitUntil(`the registry on ${registry}`, reg, async () => (await fetch(`http://${registry}/v2/`)).ok);
  const layout = path.join(binDir, "..", "images", "oci");
  for (const name of ["pause", "busybox"]) {
    execFileSync(
      "skopeo",
      ["copy", "--quiet", "--dest-tls-verify=false", `oci:${layout}:${name}`, `docker://${registry}/weft-test/${name}:1`],
      { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, NO_PROXY: HOST_IP, no_proxy: HOST_IP } },
    );
  }
  const image = (name: string) => `${REGISTRY_ALIAS}/${name}`;
  const images = { pause: image("weft-test/pause:1"), busybox: image("weft-test/busybox:1") };

  // -- the anchor: a private mount namespace inside the node's network namespace -------------
  for (const d of ["/run/containerd", "/var/lib/cni", "/var/log/pods", "/var/log/containers"]) mkdirSync(d, { recursive: true });
  mkdirSync(f("logs", "pods"), { recursive: true });
  mkdirSync(f("logs", "containers"), { recursive: true });
  const anchorScript = [
    "set -e",
    "mount -t tmpfs -o mode=0711 weft-k8s-node /run/containerd",
    "mount -t tmpfs -o mode=0755 weft-k8s-node /var/lib/cni",
    `mount --bind ${f("logs", "pods")} /var/log/pods`,
    `mount --bind ${f("logs", "containers")} /var/log/containers`,
    "echo anchor-ready",
    "exec sleep infinity",
  ].join("\n");
  const anchor = track(
    startProc(
      "anchor",
      "nsenter",
      [`--net=/run/netns/${NETNS}`, "--", "unshare", "--mount", "--propagation", "private", "--", "sh", "-c", anchorScript],
      dir,
    ),
  );
  ctx.anchor = anchor;
  await waitUntil("the node's mount namespace", anchor, () => readFileSync(anchor.log, "utf8").includes("anchor-ready"));
  const inNode = (name: string, args: string[]) =>
    track(startProc(name, "nsenter", [`--target=${anchor.child.pid}`, "--mount", "--net", "--", bin(name), ...args], dir));

  // -- containerd ---------------------------------------------------------------------------
  const sock = f("containerd.sock");
  const certsD = f("containerd", "certs.d");
  for (const host of [REGISTRY_ALIAS, registry]) {
    write(
      path.join(certsD, host, "hosts.toml"),
      `server = "http://${registry}"\n\n[host."http://${registry}"]\n  capabilities = ["pull", "resolve"]\n`,
    );
  }
  write(
    f("cni", "net.d", "10-weft.conflist"),
    JSON.stringify(
      {
        cniVersion: "1.0.0",
        name: "weft-k8s",
        plugins: [
          {
            type: "bridge",
            bridge: "cni0",
            isGateway: true,
            ipMasq: false,
            hairpinMode: true,
            ipam: {
              type: "host-local",
              ranges: [[{ subnet: POD_CIDR, gateway: firstIp(POD_CIDR) }]],
              routes: [{ dst: "0.0.0.0/0" }],
              dataDir: f("cni", "ipam"),
            },
          },
          { type: "portmap", capabilities: { portMappings: true } },
        ],
      },
      null,
      2,
    ),
  );
  // config version 4 since containerd 2.3 (3 is still read, with a "migrated" warning): the
  // same CRI keys, but the sockets moved from [grpc]/[ttrpc] to server plugins
  const v4 = Number(/^v2\.(\d+)\./.exec(readFileSync(path.join(binDir, ".containerd-version"), "utf8"))?.[1] ?? 3) >= 3;
  const sockets = v4
    ? `[plugins."io.containerd.server.v1.grpc"]\n  address = "${sock}"\n[plugins."io.containerd.server.v1.ttrpc"]\n  address = "${sock}.ttrpc"\n`
    : `[grpc]\n  address = "${sock}"\n[ttrpc]\n  address = "${sock}.ttrpc"\n`;
  write(
    f("containerd", "config.toml"),
    `version = ${v4 ? 4 : 3}
root = "${f("containerd", "root")}"
state = "${f("containerd", "state")}"

imports = []

${sockets}
# nothing outside the temp dir and the node's tmpfs: no NRI socket in /run/nri, no /opt/containerd
[plugins."io.containerd.nri.v1.nri"]
  disable = true
[plugins."io.containerd.internal.v1.opt"]
  path = "${f("containerd", "opt")}"

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "${images.pause}"
  [plugins."io.containerd.cri.v1.images".registry]
    config_path = "${certsD}"

[plugins."io.containerd.cri.v1.runtime"]
  enable_selinux = false
  # kubelet asks for oom_score_adj -998 (sandboxes) and -997 (Guaranteed pods); lowering it
  # needs CAP_SYS_RESOURCE, which this machine does not give: runc init then dies with "failed
  # to update /proc/self/oom_score_adj: Permission denied". Clamp to containerd's own instead.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["${CNI_BIN}"]
    conf_dir = "${f("cni", "net.d")}"
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "${RUNC}"
        SystemdCgroup = false
`,
  );
  const containerd = inNode("containerd", ["--config", f("containerd", "config.toml")]);
  await waitUntil(
    "containerd's socket",
    containerd,
    () => existsSync(sock) && readFileSync(containerd.log, "utf8").includes("containerd successfully booted"),
  );

  // -- API objects the node needs: CoreDNS's RBAC, the kube-dns Service and its endpoint ------
  await cp.kubectl(["apply", "-f", "-"], nodeManifests(dnsIp));

  // -- CoreDNS (a process in the node's namespaces, not a pod: see docs) ----------------------
  write(f("coredns.kubeconfig"), kubeconfigYaml(cp.server, dir, "coredns"));
  write(
    f("Corefile"),
    `.:53 {
    bind ${NODE_IP}
    errors
    ready ${NODE_IP}:8181
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig ${f("coredns.kubeconfig")} weft-test
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }
}
`,
  );
  const coredns = inNode("coredns", ["-conf", f("Corefile")]);

  // -- kubelet ------------------------------------------------------------------------------
  write(f("kubelet.kubeconfig"), kubeconfigYaml(cp.server, dir, "kubelet"));
  write(f("resolv.conf"), `nameserver ${NODE_IP}\n`);
  write(f("kubelet-config.yaml"), kubeletConfig({ dir, sock, dnsIp, cgroupRoot: ctx.cgroupRoot, maxOpenFiles: hardNofile() }));
  ctx.cgroupCreated = makeCgroupRoot(ctx.cgroupRoot);
  writeFileSync(STATE_FILE, JSON.stringify({ ...readState(), cgroupCreated: ctx.cgroupCreated }));
  const kubelet = inNode("kubelet", [
    `--config=${f("kubelet-config.yaml")}`,
    `--kubeconfig=${f("kubelet.kubeconfig")}`,
    `--root-dir=${f("kubelet")}`,
    `--hostname-override=${NODE_NAME}`,
    `--node-ip=${NODE_IP}`,
    "--v=1",
  ]);

  // -- kube-proxy (iptables mode, in the node's netns) ----------------------------------------
  write(f("kube-proxy.kubeconfig"), kubeconfigYaml(cp.server, dir, "kube-proxy"));
  write(
    f("kube-proxy-config.yaml"),
    `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: ${f("kube-proxy.kubeconfig")}
hostnameOverride: ${NODE_NAME}
mode: iptables
clusterCIDR: ${POD_CIDR}
healthzBindAddress: ${NODE_IP}:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: [primary]
# lowering oom_score_adj (default -999) needs CAP_SYS_RESOURCE
oomScoreAdj: 0
conntrack:
  # nf_conntrack_max is not writable from a network namespace; leave it alone
  maxPerCore: 0
`,
  );
  const proxy = inNode("kube-proxy", [`--config=${f("kube-proxy-config.yaml")}`]);

  // -- kube-scheduler (on the host, it only talks to the API) ---------------------------------
  write(f("kube-scheduler.kubeconfig"), kubeconfigYaml(cp.server, dir, "kube-scheduler"));
  const scheduler = track(
    startProc(
      "kube-scheduler",
      bin("kube-scheduler"),
      [`--kubeconfig=${f("kube-scheduler.kubeconfig")}`, "--leader-elect=false", "--secure-port=0"],
      dir,
    ),
  );

  await waitUntil("CoreDNS /ready", coredns, async () => (await fetch(`http://${NODE_IP}:8181/ready`)).ok);
  await waitUntil("kube-proxy /healthz", proxy, async () => (await fetch(`http://${NODE_IP}:10256/healthz`)).ok);
  await waitUntil(`node ${NODE_NAME} Ready`, kubelet, async () => {
    failIfExited(containerd, "the node");
    failIfExited(scheduler, "the node");
    const out = await cp.kubectl(["get", "node", NODE_NAME, "-o", 'jsonpath={.status.conditions[?(@.type=="Ready")].status}']);
    return out.trim() === "True";
  });

  let stopped: Promise<void> | undefined;
  const byName = () => Object.fromEntries(ctx.procs.filter((p) => p !== anchor).map((p) => [p.name, p]));
  return {
    name: NODE_NAME,
    ip: NODE_IP,
    hostIp: HOST_IP,
    podCidr: POD_CIDR,
    dnsIp,
    registry,
    image,
    images,
    cgroupRoot: ctx.cgroupRoot,
    exec: (cmd) => sh("nsenter", [`--target=${anchor.child.pid}`, "--mount", "--net", "--", ...cmd]),
    pids: Object.fromEntries(Object.entries(byName()).map(([n, p]) => [n, p.child.pid ?? 0])),
    rss: () => Object.fromEntries(Object.entries(byName()).map(([n, p]) => [n, rssKib(p.child.pid)])),
    stop: () => (stopped ??= stopNode(ctx, [scheduler, proxy, kubelet, coredns])),
  };
}

/** kubelet, kube-proxy & co get SIGTERM; containers SIGKILL (no graceful pod deletion); then the namespaces go. */
async function stopNode(ctx: Ctx, first: Proc[]): Promise<void> {
  for (const p of first) await stopProc(p, 5000);
  // containers: SIGKILL whatever is in the pods' cgroups, so containerd finds them dead
  for (let i = 0; i < 30 && cgroupPids(ctx.cgroupRoot).length; i++) {
    for (const p of cgroupPids(ctx.cgroupRoot)) {
      try {
        process.kill(p, "SIGKILL");
      } catch {
        /* gone */
      }
    }
    await sleep(100);
  }
  for (const p of [...ctx.procs].reverse()) await stopProc(p, 5000);
  // shims, the anchor (its mount namespace goes with it), cgroups; not the network: the
  // apiserver listens on the veth's host address until it stops (net.teardown() removes it;
  // without that address the apiserver's shutdown hangs ~90 s on requests to itself)
  await cleanNode(ctx.cgroupRoot, undefined, undefined, ctx.cgroupCreated, true);
}

function nodeManifests(dnsIp: string): string {
  return `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "weft-test:coredns"}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "weft-test:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "weft-test:coredns"}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: weft-test-coredns}
---
# CoreDNS runs as a process on the node (not a pod), so the Service has no selector and one
# hand-made EndpointSlice pointing at the node's address
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {k8s-app: kube-dns, kubernetes.io/name: CoreDNS}
spec:
  clusterIP: ${dnsIp}
  ports:
  - {name: dns, port: 53, protocol: UDP, targetPort: 53}
  - {name: dns-tcp, port: 53, protocol: TCP, targetPort: 53}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kube-dns-node
  namespace: kube-system
  labels: {kubernetes.io/service-name: kube-dns, endpointslice.kubernetes.io/managed-by: weft-test}
addressType: IPv4
endpoints:
- addresses: ["${NODE_IP}"]
  conditions: {ready: true}
ports:
- {name: dns, port: 53, protocol: UDP}
- {name: dns-tcp, port: 53, protocol: TCP}
`;
}

function kubeletConfig(o: { dir: string; sock: string; dnsIp: string; cgroupRoot: string; maxOpenFiles: number }): string {
  const f = (n: string) => path.join(o.dir, n);
  return `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# this machine has cgroup v1 (hybrid); kubelet >= 1.35 refuses to start on v1 unless told
failCgroupV1: false
cgroupDriver: cgroupfs
# every pod cgroup under <cgroupRoot>/kubepods in each hierarchy: one tree to kill and remove
cgroupRoot: ${o.cgroupRoot}
cgroupsPerQOS: true
containerRuntimeEndpoint: unix://${o.sock}
address: ${NODE_IP}
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: ${f("kubelet-serving.crt")}
tlsPrivateKeyFile: ${f("kubelet-serving.key")}
rotateCertificates: false
serverTLSBootstrap: false
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: ${f("ca.crt")}}
authorization:
  mode: Webhook
clusterDomain: cluster.local
clusterDNS: [${o.dnsIp}]
resolvConf: ${f("resolv.conf")}
failSwapOn: false
# no CAP_SYS_RESOURCE here: kubelet cannot raise RLIMIT_NOFILE above the hard limit (default
# 1000000) nor lower its oom_score_adj (default -999); ask for what it already has
maxOpenFiles: ${o.maxOpenFiles}
oomScoreAdj: 0
# a test node on a shared machine: never evict, never garbage-collect images by disk usage
evictionHard: {memory.available: "0%", nodefs.available: "0%", nodefs.inodesFree: "0%", imagefs.available: "0%"}
imageGCHighThresholdPercent: 100
serializeImagePulls: false
# no static pods; faster status and config pickup for tests
syncFrequency: 10s
nodeStatusUpdateFrequency: 5s
`;
}

if (import.meta.main ?? process.argv[1] === new URL(import.meta.url).pathname) {
  const cmd = process.argv[2];
  if (cmd === "clean") {
    const s = readState();
    if (s && s.pid !== process.pid && alive(s.pid)) {
      process.stderr.write(`[k8s/node] the node's owner (pid ${s.pid}) is still running; stop it first\n`);
      process.exit(1);
    }
    await cleanNode(s?.cgroupRoot, s?.dir, (m) => process.stderr.write(`[k8s/node] ${m}\n`), s?.cgroupCreated);
    rmSync(STATE_FILE, { force: true });
    process.stderr.write("[k8s/node] clean\n");
  } else {
    process.stderr.write("usage: node test/k8s/node.ts clean   (start a node with: node test/k8s/cluster.ts up --node)\n");
    process.exit(2);
  }
}
