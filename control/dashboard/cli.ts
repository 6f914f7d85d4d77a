// `weft dashboard` (its command line: bin/commands/dashboard.ts): opens the dashboard of the
// control plane in a cluster, which serves it on its pod's loopback only, through `kubectl
// port-forward`: whoever may port-forward to the control plane (RBAC: pods/portforward in its
// namespace) may look, and nobody else.
import { spawn } from "node:child_process";
import process from "node:process";
import type { Running } from "../../shared/command.ts";
import { CONTROL_NAME, DASHBOARD_PORT } from "../install/names.ts";
import { DASHBOARD_PATH } from "./app.ts";

/** What `weft dashboard`'s flags give (bin/commands/dashboard.ts declares them, and checks at compile time that they fit this). */
export interface DashboardValues {
  namespace: string;
  port: number;
  kubeconfig?: string;
  context?: string;
}

/** Runs kubectl port-forward until stopped (exit 0) or until kubectl ends (its exit code). */
export function forwardDashboard(values: DashboardValues): Running {
  const { namespace, port } = values;
  const args = [
    ...(values.kubeconfig ? ["--kubeconfig", values.kubeconfig] : []),
    ...(values.context ? ["--context", values.context] : []),
    "port-forward",
    "--namespace",
    namespace,
    "--address",
    "127.0.0.1",
    `deployment/${CONTROL_NAME}`,
    `${port === 0 ? "" : port}:${DASHBOARD_PORT}`,
  ];
  const child = spawn("kubectl", args, { stdio: ["ignore", "pipe", "pipe"] });
  let said = "";
  let open = false;
  child.stdout.on("data", (chunk: Buffer) => {
    said += chunk.toString();
    // "Forwarding from 127.0.0.1:15014 -> 15014": the local port is known once kubectl listens.
    const local = /Forwarding from 127\.0\.0\.1:(\d+)/.exec(said);
    if (local && !open) {
      open = true;
      process.stdout.write(`dashboard  http://127.0.0.1:${local[1]}${DASHBOARD_PATH}/   (Ctrl-C stops it)\n`);
    }
  });
  child.stderr.on("data", (chunk: Buffer) => process.stderr.write(chunk));
  const ended = new Promise<number>((resolve) => {
    child.once("error", (e: NodeJS.ErrnoException) => {
      process.stderr.write(
        e.code === "ENOENT"
          ? "weft dashboard: kubectl is not on PATH: install it (https://kubernetes.io/docs/tasks/tools/) or put it on PATH\n"
          : `weft dashboard: cannot run kubectl: ${e.message}\n`,
      );
      resolve(1);
    });
    child.once("exit", (code, signal) => {
      if (signal === "SIGTERM" && open) return resolve(0);
      if (!open)
        process.stderr.write(
          `weft dashboard: kubectl port-forward to ${namespace}/deployment/${CONTROL_NAME} stopped (exit ${code ?? signal}): is weft installed in ${namespace} (weft install | kubectl apply -f -), and may you port-forward there?\n`,
        );
      resolve(code ?? 1);
    });
  });
  return {
    async stop() {
      child.kill("SIGTERM");
    },
    ended,
  };
}
