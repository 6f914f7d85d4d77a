// `weft control`: the control plane, in a cluster (in-cluster credentials) or from outside
// one (--kubeconfig / $KUBECONFIG).
import { hostname } from "node:os";
import process from "node:process";
import { parseArgs } from "node:util";
import { createLogger } from "../proxy/log.ts";
import { startController } from "./controller.ts";
import { loadKubeConfig } from "./kubernetes/kubeconfig.ts";
import { openAuthority } from "./ca/authority.ts";
import { ENROLLMENT_PATH, enrollmentHandler } from "./ca/enrollment.ts";
import { kubernetesSecretStore } from "./ca/secret-store.ts";
import { kubernetesTokenReviewer } from "./ca/token-review.ts";
import { WEBHOOK_PATH } from "./inject/manifest.ts";
import { injectionWebhook } from "./inject/webhook.ts";
import { CONTROL_NAME } from "./install/manifests.ts";

const USAGE = `usage: weft control [--kubeconfig FILE] [--namespace weft-system] [--address 0.0.0.0] [--port 15012]
                    [--serving-hosts NAME|IP,...] [--plain-http] [--trust-domain cluster.local]
                    [--insecure-registries HOST:PORT,...] [--no-leader-election]

Runs the control plane (docs/control-plane.md): the configuration API for sidecars, the
CA that signs their certificates (docs/certificates.md) and the injection webhook
(docs/injection.md). Its HTTPS certificate comes from its own CA, for the weft-control
Service's names, 127.0.0.1 and --serving-hosts. Without --kubeconfig it uses
$KUBECONFIG, ~/.kube/config, or the pod's in-cluster credentials.
`;

const YEAR_MS = 365 * 24 * 3600 * 1000;
const IP = /^(\d{1,3}(\.\d{1,3}){3}|[0-9a-f:]*:[0-9a-f:]*)$/i;

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
        "serving-hosts": { type: "string" },
        "plain-http": { type: "boolean" },
        "trust-domain": { type: "string" },
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
  const kubeConfig = loadKubeConfig(values.kubeconfig);
  if (typeof kubeConfig === "string") {
    process.stderr.write(`weft control: ${kubeConfig}\n`);
    return 2;
  }
  const log = createLogger({ component: "control" });
  const namespace = values.namespace ?? process.env.POD_NAMESPACE ?? "weft-system";
  const trustDomain = values["trust-domain"] ?? "cluster.local";
  const identity = `${hostname()}-${process.pid}`;
  const authority = await openAuthority({ store: kubernetesSecretStore({ kubeConfig, namespace }), log });
  const extra = (values["serving-hosts"] ?? "").split(",").filter(Boolean);
  if (process.env.POD_IP) extra.push(process.env.POD_IP);
  const service = `${CONTROL_NAME}.${namespace}`;
  const serving = values["plain-http"]
    ? null
    : await authority.issueServing([CONTROL_NAME, service, `${service}.svc`, `${service}.svc.cluster.local`, ...extra.filter((h) => !IP.test(h))], ["127.0.0.1", ...extra.filter((h) => IP.test(h))], YEAR_MS);
  const controller = await startController({
    kubeConfig,
    log,
    address: values.address ?? "0.0.0.0",
    port,
    ...(serving ? { tls: { cert: serving.certificateChain, key: serving.privateKey } } : {}),
    settings: { trustDomain },
    insecureRegistries: (values["insecure-registries"] ?? "").split(",").filter(Boolean),
    caBundle: authority.trustBundle(),
    routes: {
      [ENROLLMENT_PATH]: enrollmentHandler({ authority, reviewToken: kubernetesTokenReviewer({ kubeConfig }), trustDomain, log }),
      [WEBHOOK_PATH]: injectionWebhook({ log }),
    },
    report: { namespace, replica: identity },
    ...(values["no-leader-election"] ? {} : { leaderElection: { namespace, identity } }),
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
