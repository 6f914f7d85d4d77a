// Where a passthrough cluster sends a request: to the host and port the app itself named in
// Host or :authority (docs/egress.md). The proxy runs as the user whose traffic is never
// redirected, so one place is refused: this pod itself. A request for 127.0.0.1:15001, or the
// pod's own IP, would reach the proxy's own listener again and loop until connections run out;
// and the pod's loopback is the app's, not a host outside the mesh.
import { isIP } from "node:net";
import { networkInterfaces } from "node:os";
import { isLoopbackIp, plainIp } from "../http/loopback.ts";

const DEFAULT_PORT = 80;
// The pod's addresses do not change while it runs; re-read now and then all the same.
const OWN_ADDRESSES_TTL_MS = 10_000;
let ownAddresses: { at: number; set: Set<string> } | null = null;

function own(): Set<string> {
  const now = Date.now();
  if (!ownAddresses || now - ownAddresses.at > OWN_ADDRESSES_TTL_MS) {
    const set = new Set<string>();
    for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) set.add(a.address.toLowerCase());
    ownAddresses = { at: now, set };
  }
  return ownAddresses.set;
}

/** Why `address` (an IP, or a name for literal checks) is this pod itself, or null. */
export function selfAddressProblem(address: string): string | null {
  const a = plainIp(address);
  if (a === "localhost" || a.endsWith(".localhost")) return "it names this pod's loopback";
  // 0.0.0.0/8 and :: (unspecified) reach this host too.
  if (isLoopbackIp(a) || (isIP(a) === 4 && a.startsWith("0.")) || a === "::") return "it is this pod's loopback";
  if (own().has(a)) return "it is this pod's own address";
  return null;
}

/**
 * The endpoint a request for `authority` goes to, or why it is refused. With `to` (a cluster's
 * passthroughTo), its host instead of the authority's, and its port when it has one.
 */
export function passthroughTarget(authority: string, to?: { host: string; port?: number }): { address: string; port: number } | string {
  let url: URL;
  try {
    url = new URL(`http://${authority}`);
  } catch {
    return `passthrough to "${authority}" refused: it is not a host[:port]`;
  }
  const address = to?.host ?? url.hostname.replace(/^\[(.*)\]$/, "$1");
  const port = to?.port ?? (url.port ? Number(url.port) : DEFAULT_PORT);
  const problem = selfAddressProblem(address);
  if (problem) {
    const target = to ? `${address}:${port}` : url.host || authority;
    return `passthrough to ${target} refused: ${problem}, and a request sent there would come back to this proxy`;
  }
  return { address, port };
}
