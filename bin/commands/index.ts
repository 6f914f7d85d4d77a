// The registry: every `weft` command and subcommand, each a module loaded only when it runs, so
// that `weft proxy` loads what a sidecar needs and nothing of the control plane or the filter
// compiler.
import type { Registry } from "../cli/command.ts";

export const usage = `usage: weft <command> [options]

commands:
  proxy --config FILE   run a sidecar from a proxy configuration file (docs/proxy-config.md)
  proxy --control-plane URL --namespace NS --pod NAME [--token-file F] [--ca-file F]
        [--admin-port P] [--outbound-port P] [--inbound-port P]
                        run a sidecar configured by the control plane (docs/control-plane.md)
  filter <command>      write, build, test and find WebAssembly filters ("weft filter help")
  inject -f FILE|-      add the sidecar to the pods and workloads in Kubernetes YAML (docs/injection.md)
  init --include-inbound-ports PORTS [--include-outbound-ports PORTS|*] [--exclude-outbound-ports PORTS]
       [--proxy-uid UID] [--inbound-port P] [--outbound-port P] [--dry-run] [--cleanup]
                        redirect the pod's traffic through the sidecar with iptables (docs/injection.md)
  install               print the manifests that install weft: weft install | kubectl apply -f -
  control               run the control plane (docs/control-plane.md); --local DIR without Kubernetes
  up [DIR]              run a whole mesh on this machine, the shop demo without DIR (docs/local-mode.md)
  status                every sidecar's configuration version and filters, and every WasmFilter's status
  dashboard             open the cluster's dashboard through kubectl port-forward (docs/dashboard.md)

"weft <command> --help" (or -h, or "weft help <command>") shows a command's usage. Exit codes:
0 done, 1 failed, 2 the command line was wrong (what was wrong, then the usage, on stderr).
SIGTERM or Ctrl-C stops a command that keeps running (proxy, control, up, dashboard) gracefully.

Run with Node.js >= 22.18 (node bin/weft.ts), Deno >= 2 (deno run -A bin/weft.ts) or Bun >= 1.2 (bun bin/weft.ts).
`;

export const commands: Registry["commands"] = {
  proxy: () => import("./proxy.ts"),
  control: () => import("./control.ts"),
  up: () => import("./up.ts"),
  install: () => import("./install.ts"),
  inject: () => import("./inject.ts"),
  init: () => import("./init.ts"),
  status: () => import("./status.ts"),
  dashboard: () => import("./dashboard.ts"),
  filter: () => import("./filter.ts"),
  "filter new": () => import("./filter/new.ts"),
  "filter build": () => import("./filter/build.ts"),
  "filter test": () => import("./filter/test.ts"),
  "filter push": () => import("./filter/push.ts"),
  "filter search": () => import("./filter/search.ts"),
  "filter add": () => import("./filter/add.ts"),
  "filter mirror": () => import("./filter/mirror.ts"),
};
