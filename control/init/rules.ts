// The pod's traffic redirection as iptables rules: a pure function from `weft init`'s options to
// the `iptables-restore --noflush` input that installs them in the pod's nat and mangle tables
// (cli.ts runs it). One input is one atomic transaction, so a pod never runs with half the rules.
//
// Node has no SO_ORIGINAL_DST, so the proxy cannot ask where a redirected connection was going.
// Inbound, the rules keep that in the port: a connection to app port P (1-32767) is sent to P +
// 32768 (DNAT with a shifted port range, the address unchanged), where the sidecar listens for P
// alone and forwards to the app on 127.0.0.1:P. A port the sidecar does not serve is refused by
// the kernel, so no captured port reaches the app past the sidecar. Outbound, the listener on
// 15001 routes by Host (or :authority), so only the ports that carry the mesh's HTTP (default 80
// and 8080) go there. With the cluster's Service range (--service-cidr), the app's TCP to any
// other port P of a Service address keeps its address and arrives at P + 32768 too: a mark here
// makes it local (routing.ts), and the sidecar listens on ClusterIP:P + 32768 for each Service
// port, so it knows the Service from where the connection arrived. Connections anywhere else
// (the internet, DNS) keep working untouched. docs/injection.md, "Traffic redirection", explains
// the choice and shows the rules.

import { isIpv4Cidr } from "../../shared/ipv4.ts";

export interface InitOptions {
  /** The proxy's user: its own connections are never redirected. */
  proxyUid: number;
  /** The proxy's inbound and outbound listener ports. */
  inboundPort: number;
  outboundPort: number;
  /** The app's ports whose incoming TCP goes to the sidecar; "*" is every port but the excluded ones. */
  inboundPorts: number[] | "*";
  /** Ports never captured inbound (taken out of `inboundPorts`): the proxy's admin port, say. */
  excludeInboundPorts: number[];
  /** Destination ports whose outgoing TCP goes to the outbound listener; "*" is every port. */
  outboundPorts: number[] | "*";
  /** Destination ports never redirected outbound (taken out of `outboundPorts`). */
  excludeOutboundPorts: number[];
  /**
   * The cluster's IPv4 Service ranges: the app's TCP to ports 1-32767 of these addresses, but
   * `outboundPorts` and `excludeOutboundPorts`, goes to the sidecar on port + 32768. Empty: none.
   */
  serviceCidrs: string[];
}

export type Family = "IPv4" | "IPv6";

export const DEFAULT_OUTBOUND_PORTS = [80, 8080];

/** The highest app port the shift can carry: P + INBOUND_SHIFT must still be a port. */
export const MAX_CAPTURED_PORT = 32767;
const INBOUND_SHIFT = MAX_CAPTURED_PORT + 1;

/** Where a connection to captured app port `port` arrives: the port of the sidecar's listener for it. */
export const capturedListenerPort = (port: number): number => port + INBOUND_SHIFT;

/** The most Service ranges --service-cidr takes (a cluster has one or two). */
export const MAX_SERVICE_CIDRS = 8;

/** The packet mark of the app's connections to a Service, which routing.ts makes local, as iptables and ip spell it. */
export const SERVICE_MARK = "0x539";

// Per table, in the order iptables-save lists them, so the input reads like the saved rules.
export const CHAINS = {
  nat: ["WEFT_INBOUND", "WEFT_IN_REDIRECT", "WEFT_OUTPUT", "WEFT_REDIRECT"],
  mangle: ["WEFT_SERVICES"],
} as const;
type Table = keyof typeof CHAINS;
const TABLES = Object.keys(CHAINS) as Table[];

/** What makes the options unusable together, one sentence each naming the flag; empty when fine. */
export function optionProblems(o: InitOptions): string[] {
  const problems: string[] = [];
  if (o.proxyUid === 0) {
    problems.push("--proxy-uid: 0 would let every root process of the app bypass the proxy: run the proxy as its own user (default 1337)");
  }
  if (o.inboundPort === o.outboundPort) {
    problems.push(`--inbound-port and --outbound-port are both ${o.inboundPort}: the proxy's two listeners need two ports`);
  }
  if (o.serviceCidrs.length > 0 && o.outboundPorts === "*") {
    problems.push(
      "--service-cidr and --include-outbound-ports '*' do not go together: every port already goes to the outbound listener; drop one",
    );
  }
  if (o.serviceCidrs.length > MAX_SERVICE_CIDRS)
    problems.push(`--service-cidr: ${o.serviceCidrs.length} ranges, more than the ${MAX_SERVICE_CIDRS} weft captures: merge them`);
  for (const cidr of o.serviceCidrs.filter((c) => !isIpv4Cidr(c)))
    problems.push(`--service-cidr: "${cidr}" is not an IPv4 range like 10.96.0.0/12 (IPv6 Service ranges are not captured yet)`);
  if (o.inboundPorts === "*") return problems;
  for (const [port, listener] of [
    [o.inboundPort, "inbound"],
    [o.outboundPort, "outbound"],
  ] as const) {
    if (o.inboundPorts.includes(port)) {
      problems.push(
        `--include-inbound-ports: ${port} is the proxy's ${listener} port, and redirecting it would loop: list only the app's ports`,
      );
    }
  }
  const high = o.inboundPorts.filter((p) => p > MAX_CAPTURED_PORT);
  if (high.length > 0) {
    problems.push(
      `--include-inbound-ports: ${high.join(",")} ${high.length === 1 ? "is" : "are"} above ${MAX_CAPTURED_PORT}, the highest port weft can capture ` +
        `(the sidecar listens for app port P on P + ${INBOUND_SHIFT}): move the app to a lower port, or leave it out of the mesh`,
    );
  }
  return problems;
}

/** The rules, in iptables-save's own spelling (so a saved table can be compared line by line). */
export function natRules(o: InitOptions, family: Family): string[] {
  const loopback = family === "IPv4" ? "127.0.0.1/32" : "::1/128";
  const uid = `-m owner --uid-owner ${o.proxyUid}`;
  const dport = (port: number) => `-p tcp -m tcp --dport ${port}`;
  const excluded = new Set(o.excludeOutboundPorts);
  const notInbound = new Set([...o.excludeInboundPorts, o.inboundPort, o.outboundPort]);
  const inbound =
    o.inboundPorts === "*"
      ? [
          ...[...notInbound].sort((a, b) => a - b).map((p) => `-A WEFT_INBOUND ${dport(p)} -j RETURN`),
          `-A WEFT_INBOUND -p tcp -m tcp --dport 1:${MAX_CAPTURED_PORT} -j WEFT_IN_REDIRECT`,
          // A port the shift cannot carry is refused rather than left open: nothing listens on the
          // inbound port in this mode. This also keeps the sidecar's shifted listeners out of reach.
          `-A WEFT_INBOUND -p tcp -j REDIRECT --to-ports ${o.inboundPort}`,
        ]
      : [...new Set(o.inboundPorts)]
          .filter((p) => !notInbound.has(p))
          .sort((a, b) => a - b)
          .map((p) => `-A WEFT_INBOUND ${dport(p)} -j WEFT_IN_REDIRECT`);
  const outbound =
    o.outboundPorts === "*"
      ? [...[...excluded].sort((a, b) => a - b).map((p) => `-A WEFT_OUTPUT ${dport(p)} -j RETURN`), "-A WEFT_OUTPUT -j WEFT_REDIRECT"]
      : [...new Set(o.outboundPorts)]
          .filter((p) => !excluded.has(p))
          .sort((a, b) => a - b)
          .map((p) => `-A WEFT_OUTPUT ${dport(p)} -j WEFT_REDIRECT`);
  return [
    "-A PREROUTING -p tcp -j WEFT_INBOUND",
    "-A OUTPUT -p tcp -j WEFT_OUTPUT",
    ...inbound,
    // The address stays; port P becomes P + INBOUND_SHIFT (DNAT's shifted port range: the offset
    // from base port 1 into the range that starts at 1 + INBOUND_SHIFT).
    `-A WEFT_IN_REDIRECT -p tcp -j DNAT --to-destination :${1 + INBOUND_SHIFT}-65535/1`,
    // The proxy reaching its own pod's IP (a Service whose endpoint is this pod) goes over lo and
    // skips PREROUTING: send it through the inbound listener like any other caller's. The proxy
    // reaches the app on 127.0.0.1, which this leaves alone.
    `-A WEFT_OUTPUT ! -d ${loopback} -o lo ${uid} -j WEFT_INBOUND`,
    // The app's connection to a Service port, marked in mangle (which already made it local):
    // the same shift, the Service address kept.
    ...(family === "IPv4" && o.serviceCidrs.length > 0 ? [`-A WEFT_OUTPUT -m mark --mark ${SERVICE_MARK} -j WEFT_IN_REDIRECT`] : []),
    // The app talking to itself, on 127.0.0.1 or its pod IP.
    "-A WEFT_OUTPUT -o lo -j RETURN",
    `-A WEFT_OUTPUT ${uid} -j RETURN`,
    ...outbound,
    `-A WEFT_REDIRECT -p tcp -j REDIRECT --to-ports ${o.outboundPort}`,
  ];
}

/**
 * The destination ports Service capture leaves alone, sorted: the outbound listener's (HTTP by
 * Host) and the excluded ones. The control plane reads the same from weft-init's flags
 * (kubernetes/convert.ts), so the sidecar has listeners for exactly the ports marked here.
 */
export function portsServiceCaptureKeeps(outboundPorts: number[], excludeOutboundPorts: number[]): number[] {
  return [...new Set([...outboundPorts, ...excludeOutboundPorts])].sort((a, b) => a - b);
}

/**
 * The mangle rules: the app's TCP to a Service port gets SERVICE_MARK, so routing.ts's rule
 * delivers it locally, to the sidecar. The proxy's own connections, and the ports the outbound
 * listener or the app keeps, are not marked and leave the pod as they are.
 */
export function mangleRules(o: InitOptions, family: Family): string[] {
  if (family === "IPv6" || o.serviceCidrs.length === 0 || o.outboundPorts === "*") return [];
  const kept = portsServiceCaptureKeeps(o.outboundPorts, o.excludeOutboundPorts);
  return [
    "-A OUTPUT -p tcp -j WEFT_SERVICES",
    `-A WEFT_SERVICES -m owner --uid-owner ${o.proxyUid} -j RETURN`,
    ...kept.map((p) => `-A WEFT_SERVICES -p tcp -m tcp --dport ${p} -j RETURN`),
    ...o.serviceCidrs.map(
      (cidr) => `-A WEFT_SERVICES -d ${cidr} -p tcp -m tcp --dport 1:${MAX_CAPTURED_PORT} -j MARK --set-xmark ${SERVICE_MARK}/0xffffffff`,
    ),
  ];
}

/**
 * The iptables-restore --noflush input that installs the rules, replacing weft's earlier ones.
 * `current` is the pod's `iptables-save` ("" for a pod without weft's rules).
 */
export function installInput(o: InitOptions, family: Family, current: string): string {
  const rules: Record<Table, string[]> = { nat: natRules(o, family), mangle: mangleRules(o, family) };
  return TABLES.map((t) => table(t, [...ownChains(t), ...removeJumps(current, t), ...rules[t]])).join("");
}

/** The iptables-restore --noflush input that removes every weft rule and chain; harmless when there are none. */
export function cleanupInput(current: string): string {
  return TABLES.map((t) => table(t, [...ownChains(t), ...removeJumps(current, t), ...CHAINS[t].map((c) => `-X ${c}`)])).join("");
}

const table = (name: Table, lines: string[]) => [`*${name}`, ...lines, "COMMIT", ""].join("\n");

// With --noflush, declaring a chain creates it, or empties it if it exists: either way it holds
// only what follows.
const ownChains = (t: Table) => CHAINS[t].map((c) => `:${c} - [0:0]`);

const jump = (t: Table) => new RegExp(`^-A (PREROUTING|OUTPUT) .*-[jg] (${CHAINS[t].join("|")})(\\s|$)`);

/** -D for each jump from a built-in chain into weft's chains in one table of a saved ruleset. */
function removeJumps(current: string, t: Table): string[] {
  let inTable = false;
  const deletes: string[] = [];
  const isJump = jump(t);
  for (const line of current.split("\n").map((l) => l.trim())) {
    if (line.startsWith("*")) inTable = line === `*${t}`;
    if (inTable && isJump.test(line)) deletes.push(`-D ${line.slice(3)}`);
  }
  return deletes;
}
