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
import { parseInjectSettings } from "./inject/settings.ts";
import { DEFAULT_SETTINGS, isOutboundTraffic, OUTBOUND_TRAFFIC } from "./mesh/proxy-config.ts";
import { API_PORT, CONTROL_NAME, DASHBOARD_PORT } from "./install/manifests.ts";
import { dashboard } from "./dashboard/app.ts";
import { clusterDashboardSource } from "./dashboard/cluster-source.ts";
import { selectRuntime } from "../proxy/runtime/select.ts";
import { MARKETPLACE_DIR, readMarketplace } from "../sdk/cli/marketplace.ts";
import { shippedMarketplace } from "./distribution/marketplace.ts";

const USAGE = `usage: weft control [--kubeconfig FILE] [--namespace weft-system] [--address 0.0.0.0] [--port 15012]
                    [--serving-hosts NAME|IP,...] [--plain-http] [--trust-domain cluster.local]
                    [--insecure-registries HOST:PORT,...] [--no-leader-election] [--image IMAGE]
                    [--outbound-traffic passthrough|refuse] [--dashboard-port 15014] [--marketplace DIR]
       weft control --local DIR [--port 15012] [--base-port 16000] [--trust-domain cluster.local]

Runs the control plane (docs/control-plane.md): the configuration API for sidecars, the
CA that signs their certificates (docs/certificates.md) and the injection webhook
(docs/injection.md). Its HTTPS certificate comes from its own CA, for the weft-control
Service's names, 127.0.0.1 and --serving-hosts. Without --kubeconfig it uses
$KUBECONFIG, ~/.kube/config, or the pod's in-cluster credentials. --image is the Node image
the injector gives pods (docs/images.md; default ghcr.io/weft-dev/weft:<version>).
--outbound-traffic is what apps' requests for hosts outside the mesh get (docs/egress.md).
The dashboard is served on 127.0.0.1:--dashboard-port only (0: not at all); weft dashboard
reaches it with kubectl port-forward (docs/dashboard.md).
--marketplace is the folder marketplace://NAME@VERSION filters come from: its index.json and
the modules NAME/VERSION.wasm served without any registry (default: the one shipped with weft,
/opt/plugins in the image; a release it has no module of is pulled from its OCI artifact).

With --local DIR it runs without Kubernetes (docs/local-mode.md): the resources are the YAML
files in DIR, watched for changes; it serves plain HTTP on 127.0.0.1 and keeps its CA in
DIR/.weft. weft up runs it together with the workloads and their sidecars.
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
        image: { type: "string" },
        "outbound-traffic": { type: "string" },
        "dashboard-port": { type: "string" },
        marketplace: { type: "string" },
        local: { type: "string" },
        "base-port": { type: "string" },
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
  if (values.local !== undefined) return localControl(values.local, port, values);
  // A --marketplace folder without an index is a typo: say so now, not in every marketplace filter's status.
  if (values.marketplace !== undefined) {
    const problem = await readMarketplace(values.marketplace).then(() => null, (e: Error) => e.message);
    if (problem) {
      process.stderr.write(`weft control: --marketplace ${values.marketplace}: ${problem}\n`);
      return 2;
    }
  }
  const kubeConfig = loadKubeConfig(values.kubeconfig);
  if (typeof kubeConfig === "string") {
    process.stderr.write(`weft control: ${kubeConfig}\n`);
    return 2;
  }
  const log = createLogger({ component: "control" });
  const namespace = values.namespace ?? process.env.POD_NAMESPACE ?? "weft-system";
  const trustDomain = values["trust-domain"] ?? "cluster.local";
  // The injected sidecars talk to this control plane, under its trust domain, with its image.
  const injection = parseInjectSettings({ image: values.image, trustDomain, controlPlane: `https://${CONTROL_NAME}.${namespace}.svc:${API_PORT}` });
  const outboundTraffic = values["outbound-traffic"] ?? DEFAULT_SETTINGS.outboundTraffic;
  if (!isOutboundTraffic(outboundTraffic)) {
    process.stderr.write(`weft control: --outbound-traffic must be ${OUTBOUND_TRAFFIC.join(" or ")}, not "${outboundTraffic}"\n`);
    return 2;
  }
  const dashboardPort = Number(values["dashboard-port"] ?? DASHBOARD_PORT);
  if (!Number.isInteger(dashboardPort) || dashboardPort < 0 || dashboardPort > 65535) {
    process.stderr.write(`weft control: --dashboard-port must be a port number (0: no dashboard), not "${values["dashboard-port"]}"\n`);
    return 2;
  }
  if (!injection.ok) {
    process.stderr.write(`weft control: ${injection.problems.join("; ")}\n`);
    return 2;
  }
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
    settings: { trustDomain, outboundTraffic },
    insecureRegistries: (values["insecure-registries"] ?? "").split(",").filter(Boolean),
    // marketplace://NAME@VERSION is the module the image ships (no registry needed), else the release's OCI artifact.
    marketplace: shippedMarketplace(values.marketplace ?? MARKETPLACE_DIR),
    caBundle: authority.trustBundle(),
    routes: {
      [ENROLLMENT_PATH]: enrollmentHandler({ authority, reviewToken: kubernetesTokenReviewer({ kubeConfig }), trustDomain, log }),
      [WEBHOOK_PATH]: injectionWebhook({ log, settings: injection.value }),
    },
    report: { namespace, replica: identity },
    ...(values["no-leader-election"] ? {} : { leaderElection: { namespace, identity } }),
  });
  await controller.synced;
  // On the pod's loopback only: kubectl port-forward reaches it, so Kubernetes RBAC
  // (pods/portforward) decides who sees the mesh's topology, not whoever reaches the pod.
  const board = dashboardPort > 0 ? dashboard(clusterDashboardSource(controller, injection.value.ports.admin)) : null;
  const boardServer = board ? await selectRuntime().serveHttp({ address: "127.0.0.1", port: dashboardPort }, (request) => board.fetch(request)) : null;
  if (boardServer) log.info("dashboard on this pod's loopback: weft dashboard opens it", { address: `127.0.0.1:${dashboardPort}` });
  const shutdown = async (signal: string) => {
    log.info("stopping", { signal });
    board?.stop();
    await boardServer?.close();
    await controller.stop();
    process.exit(0);
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
  return -1;
}

async function localControl(dir: string, port: number, values: { "base-port"?: string; "trust-domain"?: string; "insecure-registries"?: string }): Promise<number> {
  const basePort = Number(values["base-port"] ?? 16000);
  if (!Number.isInteger(basePort) || basePort < 1 || basePort > 65535) {
    process.stderr.write(`weft control: --base-port must be a port number, not "${values["base-port"]}"\n`);
    return 2;
  }
  const { startLocalControl } = await import("./local/control.ts");
  const log = createLogger({ component: "control" });
  const control = await startLocalControl({
    dir,
    log,
    port,
    basePort,
    ...(values["trust-domain"] ? { trustDomain: values["trust-domain"] } : {}),
    insecureRegistries: (values["insecure-registries"] ?? "").split(",").filter(Boolean),
  });
  log.info("local control plane ready", { url: control.url, dir, workloads: control.mesh.instances().map((i) => ({ pod: `${i.namespace}/${i.pod}`, ports: i.ports })) });
  const shutdown = async (signal: string) => {
    log.info("stopping", { signal });
    await control.stop();
    process.exit(0);
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
  return -1;
}
