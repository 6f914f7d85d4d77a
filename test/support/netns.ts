// A pod and a peer as two network namespaces made for a test, joined by a veth pair whose ends
// never exist in the root namespace (so this machine's own interfaces and iptables are never
// touched), with echo servers in them and curl to reach them. Used by weft init's suite and the
// egress suites. Needs root, iproute2 (ip netns), iptables, setpriv and curl.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import path from "node:path";
import process from "node:process";

export const ROOT = path.resolve(import.meta.dirname, "..", "..");
export const NODE = path.join(ROOT, "node_modules", ".bin", "node");

export interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
  missing: boolean;
}

export function run(command: string, args: string[], timeoutMs = 15_000): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(command, args, { cwd: ROOT, timeout: timeoutMs }, (error, stdout, stderr) => {
      const e = error as (NodeJS.ErrnoException & { code?: unknown }) | null;
      resolve({ code: e ? (typeof e.code === "number" ? e.code : null) : 0, stdout, stderr, missing: e?.code === "ENOENT" });
    });
  });
}

export async function must(command: string, ...args: string[]): Promise<string> {
  const r = await run(command, args);
  if (r.code !== 0) throw new Error(`${command} ${args.join(" ")} failed (exit ${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}

/** The argv prefix that runs a command as `uid` (nothing: as root). */
export const asUser = (uid: number | undefined) =>
  uid === undefined ? [] : ["setpriv", `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups"];

/** Fails with what is missing and how to get it: a suite that cannot run must not pass. */
export async function preflight(suite: string): Promise<void> {
  const tools: [string, string[], string][] = [
    ["ip", ["-V"], "iproute2"],
    ["iptables-save", ["--version"], "iptables"],
    ["ip6tables-save", ["--version"], "iptables"],
    ["setpriv", ["--version"], "util-linux"],
    ["curl", ["--version"], "curl"],
  ];
  const missing = [];
  for (const [tool, args, pkg] of tools) if ((await run(tool, args)).missing) missing.push(`${tool} (Debian package ${pkg})`);
  if (missing.length > 0)
    throw new Error(`${suite} needs ${missing.join(", ")}: apt-get install -y iptables iproute2 util-linux curl (.ci/run installs them)`);
  if (process.getuid?.() !== 0)
    throw new Error(`${suite} makes network namespaces and iptables rules: run it as root (in a container or VM)`);
}

export interface Reply {
  by: string;
  host: string;
  /** The X-Forwarded-For the server got (absent when none): a weft proxy adds one. */
  forwardedFor?: string;
}

/** What curl got: the reply's JSON, the status and body of a non-JSON answer, or curl's error. */
export type Got = Reply | { status: number; body: string } | string;

// Each listener ("name:port", or "name:address:port" for one IPv4 address) answers with its
// name, the Host it was sent and any X-Forwarded-For; without an address it listens on :: for IPv4 and IPv6.
const SERVER = `
const http = require("node:http");
const listeners = process.argv.slice(1).map((a) => a.split(":"));
let left = listeners.length;
for (const [name, ...at] of listeners) {
  const port = Number(at.pop());
  http.createServer((req, res) => res.end(JSON.stringify({ by: name, host: req.headers.host, forwardedFor: req.headers["x-forwarded-for"] })))
    .listen(port, at[0] ?? "::", () => { if (--left === 0) console.log("ready"); });
}`;

// Listens on 127.0.0.1:PORT and joins each connection to the Unix socket SOCKET.
const TO_SOCKET = `
const net = require("node:net");
const [port, socket] = process.argv.slice(1);
net.createServer((c) => {
  const u = net.connect(socket);
  c.pipe(u).pipe(c);
  c.on("error", () => u.destroy());
  u.on("error", () => c.destroy());
}).listen(Number(port), "127.0.0.1", () => console.log("ready"));`;

/** Joins two sockets both ways; either one failing ends both. */
function join(a: Socket, b: Socket): void {
  a.pipe(b).pipe(a);
  a.on("error", () => b.destroy());
  b.on("error", () => a.destroy());
}

/** Two namespaces, "pod" and "peer", on one /24 and one /64, each end with its own address. */
export class PodPair {
  readonly pod: string;
  readonly peer: string;
  readonly podIp: string;
  readonly peerIp: string;
  readonly podIp6: string;
  readonly peerIp6: string;
  readonly #children: ChildProcess[] = [];
  readonly #servers: Server[] = [];

  /** `subnet` is the second octet of 10.X.0.0/24 (and of fdX::/64): one per suite, so suites never share addresses. */
  constructor(name: string, subnet: number) {
    this.pod = `weft-${name}-pod-${process.pid}`;
    this.peer = `weft-${name}-peer-${process.pid}`;
    this.podIp = `10.${subnet}.0.2`;
    this.peerIp = `10.${subnet}.0.1`;
    this.podIp6 = `fd${subnet}::2`;
    this.peerIp6 = `fd${subnet}::1`;
  }

  async setUp(): Promise<void> {
    for (const ns of [this.pod, this.peer]) {
      const r = await run("ip", ["netns", "add", ns]);
      if (r.code !== 0)
        throw new Error(
          `cannot make a network namespace (ip netns add ${ns}): ${r.stderr.trim()}: the suite needs root with CAP_SYS_ADMIN and CAP_NET_ADMIN`,
        );
    }
    // Made in the pod's namespace with its other end in the peer's: it never exists in the root namespace.
    await must("ip", "-n", this.pod, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", this.peer);
    for (const [ns, ip, ip6] of [
      [this.pod, this.podIp, this.podIp6],
      [this.peer, this.peerIp, this.peerIp6],
    ]) {
      await must("ip", "-n", ns, "addr", "add", `${ip}/24`, "dev", "eth0");
      await must("ip", "-n", ns, "-6", "addr", "add", `${ip6}/64`, "dev", "eth0", "nodad");
      await must("ip", "-n", ns, "link", "set", "eth0", "up");
      await must("ip", "-n", ns, "link", "set", "lo", "up");
    }
  }

  /** Starts `argv` in `ns` as `uid`, resolved once it prints `ready` (on stdout or stderr). */
  spawn(ns: string, uid: number | undefined, argv: string[], ready: string | RegExp, what: string): Promise<ChildProcess> {
    const child = spawn("ip", ["netns", "exec", ns, ...asUser(uid), ...argv], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    this.#children.push(child);
    return new Promise((resolve, reject) => {
      let output = "";
      const timer = setTimeout(() => reject(new Error(`${what} in ${ns} did not start in 20 s: ${output}`)), 20_000);
      const take = (d: Buffer) => {
        output += d.toString();
        if (typeof ready === "string" ? output.includes(ready) : ready.test(output)) {
          clearTimeout(timer);
          resolve(child);
        }
      };
      child.stdout!.on("data", take);
      child.stderr!.on("data", take);
      child.on("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`${what} in ${ns} exited with ${code}: ${output}`));
      });
    });
  }

  /** `weft init ARGS` (this checkout's CLI) inside the pod's namespace, as an init container runs it (never outside it: that would change this machine's rules). */
  init(...args: string[]): Promise<Ran> {
    return run("ip", ["netns", "exec", this.pod, NODE, "bin/weft.ts", "init", ...args]);
  }

  /** Echo servers `name:port` (or `name:address:port`) in `ns`, as `uid`. */
  async startServer(ns: string, uid: number | undefined, listeners: string[]): Promise<void> {
    await this.spawn(ns, uid, [NODE, "-e", SERVER, ...listeners], "ready", listeners.join(" "));
  }

  /**
   * Makes 127.0.0.1:`port` in `ns` reach 127.0.0.1:`target` in this process's namespace (a
   * control plane, say) through the Unix socket `socket`, a file, which every network namespace
   * sees: no link into the root namespace is needed.
   */
  async forward(ns: string, port: number, target: number, socket: string): Promise<void> {
    const server = createServer((c) => join(c, createConnection(target, "127.0.0.1")));
    this.#servers.push(server);
    await new Promise<void>((resolve, reject) => server.once("error", reject).listen(socket, resolve));
    await this.spawn(ns, undefined, [NODE, "-e", TO_SOCKET, String(port), socket], "ready", `a forwarder from ${ns}'s port ${port}`);
  }

  /** An HTTP GET with curl from a namespace, as a user. */
  async get(ns: string, url: string, opts: { uid?: number; host?: string } = {}): Promise<Got> {
    const r = await run("ip", [
      "netns",
      "exec",
      ns,
      ...asUser(opts.uid),
      "curl",
      "-sS",
      "-g",
      "--noproxy",
      "*",
      "--max-time",
      "5",
      "-w",
      "\n%{http_code}",
      ...(opts.host ? ["-H", `Host: ${opts.host}`] : []),
      url,
    ]);
    if (r.code !== 0) return `curl failed (exit ${r.code}): ${r.stderr.trim()}`;
    const cut = r.stdout.lastIndexOf("\n");
    const [body, status] = [r.stdout.slice(0, cut), Number(r.stdout.slice(cut + 1))];
    try {
      if (status === 200) return JSON.parse(body) as Reply;
    } catch {
      // not one of the echo servers: the status and body say what answered
    }
    return { status, body };
  }

  async tearDown(): Promise<void> {
    await Promise.all(
      this.#children.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            child.once("exit", () => resolve());
            child.kill("SIGKILL");
          }),
      ),
    );
    for (const server of this.#servers) server.close();
    // Deleting a namespace deletes its end of the veth pair, and with it the other end.
    for (const ns of [this.pod, this.peer]) await run("ip", ["netns", "del", ns]);
  }
}
