// `weft dashboard`: opens the dashboard of the control plane in a cluster, which serves it on
// its pod's loopback only, through `kubectl port-forward`: whoever may port-forward to the
// control plane (RBAC: pods/portforward in its namespace) may look, and nobody else.
import { spawn } from "node:child_process";
import process from "node:process";
import { parseArgs } from "node:util";
import { CONTROL_NAME, DASHBOARD_PORT } from "../install/manifests.ts";
import { DASHBOARD_PATH } from "./app.ts";

const USAGE = `usage: weft dashboard [--namespace weft-system] [--port ${DASHBOARD_PORT}] [--kubeconfig FILE] [--context NAME]

Forwards 127.0.0.1:PORT to the control plane's dashboard with kubectl port-forward and prints its
address; Ctrl-C stops it. Needs kubectl, and RBAC that allows pods/portforward in the control
plane's namespace (docs/dashboard.md).
`;

export async function dashboardCommand(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { namespace: { type: "string" }, port: { type: "string" }, kubeconfig: { type: "string" }, context: { type: "string" }, help: { type: "boolean", short: "h" } },
    }));
  } catch (e) {
    process.stderr.write(`weft dashboard: ${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const port = Number(values.port ?? DASHBOARD_PORT);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    process.stderr.write(`weft dashboard: --port must be a port number (0: any free one), not "${values.port}"\n`);
    return 2;
  }
  const namespace = values.namespace ?? "weft-system";
  const args = [
    ...(values.kubeconfig ? ["--kubeconfig", values.kubeconfig] : []),
    ...(values.context ? ["--context", values.context] : []),
    "port-forward", "--namespace", namespace, "--address", "127.0.0.1", `deployment/${CONTROL_NAME}`, `${port === 0 ? "" : port}:${DASHBOARD_PORT}`,
  ];
  return new Promise((resolve) => {
    const child = spawn("kubectl", args, { stdio: ["ignore", "pipe", "pipe"] });
    let said = "";
    let open = false;
    const stop = () => child.kill("SIGTERM");
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
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
    child.once("error", (e: NodeJS.ErrnoException) => {
      process.stderr.write(e.code === "ENOENT" ? "weft dashboard: kubectl is not on PATH: install it (https://kubernetes.io/docs/tasks/tools/) or put it on PATH\n" : `weft dashboard: cannot run kubectl: ${e.message}\n`);
      resolve(1);
    });
    child.once("exit", (code, signal) => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      if (signal === "SIGTERM" && open) return resolve(0);
      if (!open) process.stderr.write(`weft dashboard: kubectl port-forward to ${namespace}/deployment/${CONTROL_NAME} stopped (exit ${code ?? signal}): is weft installed in ${namespace} (weft install | kubectl apply -f -), and may you port-forward there?\n`);
      resolve(code ?? 1);
    });
  });
}
