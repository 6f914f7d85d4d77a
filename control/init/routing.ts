// The pod's routing for Service capture (rules.ts, --service-cidr), as `ip` commands: a pure
// function of the Service ranges (cli.ts runs them).
//
// The sidecar must listen on a Service's own address (ClusterIP:P + 32768) to know which Service
// a connection is for, and a socket can bind only a local address. So the ranges become local
// routes in the `local` table. Then every connection to them would stay in the pod; only the
// app's connections to Service ports should (rules.ts marks them). So the `local` table's rule
// moves from priority 0 to LOCAL_PRIORITY, behind two rules: marked packets look up `local`
// (delivered to the sidecar), and any other packet for a Service range looks up `main` (it
// leaves the pod for kube-proxy as before: the proxy's own connections, ports weft leaves alone).
import { MAX_SERVICE_CIDRS, SERVICE_MARK } from "./rules.ts";

/** One `ip` command: its arguments, and whether its failure is expected (deleting what is not there). */
export interface IpCommand {
  args: string[];
  mayFail?: true;
}

const MARKED_PRIORITY = "5";
const UNMARKED_PRIORITY = "6";
const LOCAL_PRIORITY = "10";
/** The routing protocol weft's routes carry, so cleanup finds them without knowing the ranges. */
const ROUTE_PROTOCOL = "87";

/** The commands that make `cidrs` local for marked packets only; running them again changes nothing. */
export function serviceRouting(cidrs: string[]): IpCommand[] {
  return [
    ...removeOwnRules(),
    ip("rule", "add", "pref", MARKED_PRIORITY, "fwmark", SERVICE_MARK, "lookup", "local"),
    ...cidrs.map((cidr) => ip("rule", "add", "pref", UNMARKED_PRIORITY, "to", cidr, "lookup", "main")),
    // Added before the one at 0 goes, so local delivery never stops; deleted first so it is not doubled.
    { ...ip("rule", "del", "pref", LOCAL_PRIORITY, "lookup", "local"), mayFail: true },
    ip("rule", "add", "pref", LOCAL_PRIORITY, "lookup", "local"),
    { ...ip("rule", "del", "pref", "0", "lookup", "local"), mayFail: true },
    ...cidrs.map((cidr) => ip("route", "replace", "local", cidr, "dev", "lo", "table", "local", "proto", ROUTE_PROTOCOL)),
  ];
}

/** The commands that restore the pod's routing as it was; harmless when weft changed nothing. */
export function cleanupRouting(): IpCommand[] {
  return [
    { ...ip("rule", "add", "pref", "0", "lookup", "local"), mayFail: true },
    { ...ip("rule", "del", "pref", LOCAL_PRIORITY, "lookup", "local"), mayFail: true },
    ...removeOwnRules(),
    ip("route", "flush", "table", "local", "proto", ROUTE_PROTOCOL),
  ];
}

// A rule per range at UNMARKED_PRIORITY: deleting by priority, one command per rule.
const removeOwnRules = (): IpCommand[] => [
  { ...ip("rule", "del", "pref", MARKED_PRIORITY), mayFail: true },
  ...Array.from({ length: MAX_SERVICE_CIDRS }, () => ({ ...ip("rule", "del", "pref", UNMARKED_PRIORITY), mayFail: true as const })),
];

const ip = (...args: string[]): IpCommand => ({ args: ["-4", ...args] });
