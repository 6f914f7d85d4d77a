// `weft dashboard`: the cluster's dashboard on this machine, through kubectl port-forward.
import { lazy } from "../cli/command.ts";
import { path, port, text, type Values } from "../cli/options.ts";
import { DASHBOARD_PORT } from "../../control/install/names.ts";

export const usage = `usage: weft dashboard [--namespace weft-system] [--port ${DASHBOARD_PORT}] [--kubeconfig FILE] [--context NAME]

Forwards 127.0.0.1:PORT (0: any free port) to the control plane's dashboard with kubectl
port-forward and prints its address; Ctrl-C stops it. Needs kubectl, and RBAC that allows
pods/portforward in the control plane's namespace (docs/dashboard.md).
`;

export const options = {
  namespace: text({ default: "weft-system" }),
  port: port({ default: DASHBOARD_PORT }),
  kubeconfig: path(),
  context: text(),
};

export const run = lazy<Values<typeof options>>(async () => (await import("../../control/dashboard/cli.ts")).forwardDashboard);
