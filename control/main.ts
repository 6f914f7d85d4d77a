// `weft control`: the control plane, in a cluster (in-cluster credentials) or from outside
// one (--kubeconfig / $KUBECONFIG).
import { readFile } from "node:fs/promises";
import { hostname } from "node:os";
import process from "node:process";
import { parseArgs } from "node:util";
import { KubeConfig } from "@kubernetes/client-node";
import { createLogger } from "../proxy/log.ts";
import { startController } from "./controller.ts";

const USAGE = `usage: weft control [--kubeconfig FILE] [--namespace weft-system] [--address 0.0.0.0] [--port 15012]
                    [--tls-cert FILE --tls-key FILE | --plain-http] [--insecure-registries HOST:PORT,...]
                    [--no-leader-election]

Runs the control plane (docs/control-plane.md). Without --kubeconfig it uses $KUBECONFIG,
~/.kube/config, or the pod's in-cluster credentials.
`;

export async function controlCommand(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        kubeconfig: { type: "string" },
        namespace: { type: "string" },
        address: { type: "string" },
        port: { type: "string" },
        "tls-cert": { type: "string" },
        "tls-key": { type: "string" },
        "plain-http": { type: "boolean" },
        "insecure-registries": { type: "string" },
        "no-leader-election": { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (e) {
    process.stderr.write(`weft control: ${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const port = Number(values.port ?? 15012);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    process.stderr.write(`weft control: --port must be a port number, not "${values.port}"\n`);
    return 2;
  }
  const certFile = values["tls-cert"];
  const keyFile = values["tls-key"];
  if (!values["plain-http"] && (!certFile || !keyFile)) {
    // Until the control plane issues its own serving certificate from the mesh CA.
    process.stderr.write("weft control: give --tls-cert and --tls-key (the serving certificate sidecars and the API server check), or --plain-http for a local test\n");
    return 2;
  }
  const kubeConfig = new KubeConfig();
  try {
    if (values.kubeconfig) kubeConfig.loadFromFile(values.kubeconfig);
    else kubeConfig.loadFromDefault();
  } catch (e) {
    process.stderr.write(`weft control: cannot load Kubernetes credentials: ${(e as Error).message}\n`);
    return 2;
  }
  const log = createLogger({ component: "control" });
  const namespace = values.namespace ?? process.env.POD_NAMESPACE ?? "weft-system";
  const controller = await startController({
    kubeConfig,
    log,
    address: values.address ?? "0.0.0.0",
    port,
    ...(certFile && keyFile ? { tls: { cert: await readFile(certFile, "utf8"), key: await readFile(keyFile, "utf8") } } : {}),
    insecureRegistries: (values["insecure-registries"] ?? "").split(",").filter(Boolean),
    ...(values["no-leader-election"] ? {} : { leaderElection: { namespace, identity: `${hostname()}-${process.pid}` } }),
  });
  await controller.synced;
  const shutdown = async (signal: string) => {
    log.info("stopping", { signal });
    await controller.stop();
    process.exit(0);
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
  return -1;
}
