// `weft init`: the pod's traffic redirection through the sidecar, as the injected weft-init
// container runs it.
import { lazy } from "../cli/command.ts";
import type { Option, Values } from "../cli/options.ts";
import { cidrs, flag, port, ports } from "../cli/options.ts";
import { DEFAULT_OUTBOUND_PORTS } from "../../control/init/rules.ts";

export const usage = `usage: weft init --include-inbound-ports PORTS [options]
       weft init --cleanup

Redirects the pod's TCP traffic through the weft proxy with iptables rules in the nat table
(chains WEFT_*), for IPv4 and IPv6. Needs root with NET_ADMIN in the pod's network namespace.
Running it again replaces weft's rules. See docs/injection.md, "Traffic redirection".

  --include-inbound-ports PORTS|*    the app's ports ("8080,9090"; "" for none; * for every port
                                     up to 32767): TCP coming in to port P goes to the sidecar's
                                     listener on P + 32768
  --exclude-inbound-ports PORTS      ports never captured inbound (the proxy's admin port, say)
  --include-outbound-ports PORTS|*   destination ports whose outgoing TCP goes to the outbound
                                     port (default ${DEFAULT_OUTBOUND_PORTS.join(",")}; * for every port)
  --exclude-outbound-ports PORTS     destination ports never redirected outbound
  --service-cidr CIDRS               the cluster's IPv4 Service ranges ("10.96.0.0/12"): TCP to
                                     any other port P up to 32767 of a Service address goes to
                                     the sidecar on that address, port P + 32768 (needs ip)
  --proxy-uid UID                    the proxy's user, never redirected (default 1337)
  --inbound-port PORT                the proxy's inbound listener (default 15006)
  --outbound-port PORT               the proxy's outbound listener (default 15001)
  --dry-run                          print the iptables-restore input and change nothing
  --cleanup                          remove weft's rules and chains
`;

const uid: Option<number> & { default: number } = {
  type: "string",
  default: 1337,
  parse: (t, name) => {
    if (!/^\d+$/.test(t) || Number(t) >= 2 ** 32 - 1) throw new Error(`${name}: "${t}" is not a user ID (a number, like 1337)`);
    return Number(t);
  },
};

/** A port list, or "*" for every port. */
const portsOrAll = <D extends number[] | undefined>(defaultPorts: D): Option<number[] | "*"> & { default: D } => ({
  type: "string",
  default: defaultPorts,
  parse: (t, name) => (t.trim() === "*" ? "*" : ports().parse(t, name)),
});

export const options = {
  "proxy-uid": uid,
  "inbound-port": port({ min: 1, default: 15006 }),
  "outbound-port": port({ min: 1, default: 15001 }),
  "include-inbound-ports": portsOrAll(undefined),
  "exclude-inbound-ports": ports({ default: [] }),
  "include-outbound-ports": portsOrAll(DEFAULT_OUTBOUND_PORTS),
  "exclude-outbound-ports": ports({ default: [] }),
  "service-cidr": cidrs(),
  "dry-run": flag(),
  cleanup: flag(),
};

export const run = lazy<Values<typeof options>>(async () => (await import("../../control/init/cli.ts")).init);
