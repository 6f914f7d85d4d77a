// `weft proxy`: the sidecar, from a configuration file or from the control plane. The injected
// sidecar gives its settings in the environment rather than as flags.
import process from "node:process";
import { UsageError, type Running } from "../../shared/command.ts";
import { path, port, text, type Values } from "../cli/options.ts";

export const usage = `usage: weft proxy --config FILE
       weft proxy --control-plane URL --namespace NS --pod NAME [--token-file FILE] [--ca-file FILE]
                  [--admin-address 0.0.0.0] [--admin-port 15000] [--outbound-port P] [--inbound-port P]

Runs a sidecar. With --config (-c), from a proxy configuration file (docs/proxy-config.md), read
again when it changes or on SIGHUP. With --control-plane, configured by the control plane
(docs/control-plane.md), with a certificate for the pod's ServiceAccount (--token-file, default
/var/run/secrets/weft/token); --ca-file is the control plane's CA bundle when it speaks https;
--outbound-port and --inbound-port move those listeners off the ports the control plane gives.
SIGTERM or Ctrl-C drains the sidecar, then it exits 0.

The injected sidecar's environment stands for flags it is not given: WEFT_CONTROL_PLANE,
POD_NAMESPACE, POD_NAME, WEFT_TOKEN_FILE, WEFT_CA_FILE, WEFT_ADMIN_ADDRESS, WEFT_ADMIN_PORT,
WEFT_OUTBOUND_PORT and WEFT_INBOUND_PORT; WEFT_FILTER_CACHE is where filters are kept and
WEFT_APP_PROBES holds the app's kubelet probes (docs/injection.md).
`;

export const options = {
  config: path({ short: "c" }),
  "control-plane": text({ env: "WEFT_CONTROL_PLANE" }),
  namespace: text({ env: "POD_NAMESPACE" }),
  pod: text({ env: "POD_NAME" }),
  "token-file": path({ env: "WEFT_TOKEN_FILE", default: "/var/run/secrets/weft/token" }),
  "ca-file": path({ env: "WEFT_CA_FILE" }),
  "admin-address": text({ env: "WEFT_ADMIN_ADDRESS", default: "0.0.0.0" }),
  "admin-port": port({ env: "WEFT_ADMIN_PORT", default: 15000 }),
  "outbound-port": port({ env: "WEFT_OUTBOUND_PORT" }),
  "inbound-port": port({ env: "WEFT_INBOUND_PORT" }),
};

export async function run(o: Values<typeof options>): Promise<Running> {
  if (o.config !== undefined) {
    const { startProxy } = await import("../../proxy/main.ts");
    return startProxy(o.config);
  }
  const controlPlane = o["control-plane"];
  if (!controlPlane)
    throw new UsageError(
      "give --config FILE (a JSON proxy configuration, docs/proxy-config.md) or --control-plane URL (docs/control-plane.md)",
    );
  if (!o.namespace || !o.pod)
    throw new UsageError("with --control-plane, give --namespace and --pod (or POD_NAMESPACE and POD_NAME, as the injected sidecar has)");
  const { APP_PROBES_ENV, parseAppProbes } = await import("../../proxy/admin/app-health.ts");
  const appProbes = parseAppProbes(process.env[APP_PROBES_ENV] ?? "{}");
  if (typeof appProbes === "string") throw new UsageError(appProbes);
  const bind: Record<string, { port: number }> = {};
  if (o["outbound-port"] !== undefined) bind.outbound = { port: o["outbound-port"] };
  if (o["inbound-port"] !== undefined) bind.inbound = { port: o["inbound-port"] };
  const { startManagedProxy } = await import("../../proxy/control/managed.ts");
  return startManagedProxy({
    controlPlane,
    namespace: o.namespace,
    pod: o.pod,
    tokenFile: o["token-file"],
    ...(process.env.WEFT_FILTER_CACHE ? { filterCacheDir: process.env.WEFT_FILTER_CACHE } : {}),
    ...(o["ca-file"] ? { caFile: o["ca-file"] } : {}),
    adminAddress: o["admin-address"],
    adminPort: o["admin-port"],
    bind,
    appProbes,
  });
}
