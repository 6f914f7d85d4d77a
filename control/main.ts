// `weft control` (its command line: bin/commands/control.ts): the control plane, in a cluster
// (in-cluster credentials) or from outside one (--kubeconfig / $KUBECONFIG), or with --local
// from a folder of YAML, without Kubernetes.
import { hostname } from "node:os";
import process from "node:process";
import { createLogger } from "../shared/log.ts";
import { startController } from "./controller.ts";
import { loadKubeConfig } from "./kubernetes/kubeconfig.ts";
import { openAuthority } from "./ca/authority.ts";
import { ENROLLMENT_PATH, enrollmentHandler } from "./ca/enrollment.ts";
import { kubernetesSecretStore } from "./ca/secret-store.ts";
import { kubernetesTokenReviewer } from "./ca/token-review.ts";
import { WEBHOOK_PATH } from "./inject/manifest.ts";
import { injectionWebhook } from "./inject/webhook.ts";
import { parseInjectSettings } from "./inject/settings.ts";
import { DEFAULT_SETTINGS } from "./mesh/proxy-config.ts";
import { parseOutboundTraffic, type OutboundTraffic } from "./mesh/outbound-traffic.ts";
import { API_PORT, CONTROL_NAME } from "./install/names.ts";
import { dashboard } from "./dashboard/app.ts";
import { clusterDashboardSource } from "./dashboard/cluster-source.ts";
import { selectRuntime } from "../proxy/runtime/select.ts";
import { MARKETPLACE_DIR, readMarketplace } from "../sdk/cli/marketplace.ts";
import { shippedMarketplace } from "./distribution/marketplace.ts";
import { readServiceCidrs } from "./kubernetes/service-cidrs.ts";
import type { KubeConfig } from "@kubernetes/client-node";
import type { Logger } from "../shared/log.ts";
import { UsageError, type Running } from "../shared/command.ts";

const YEAR_MS = 365 * 24 * 3600 * 1000;
const IP = /^(\d{1,3}(\.\d{1,3}){3}|[0-9a-f:]*:[0-9a-f:]*)$/i;

/** What `weft control`'s flags give (bin/commands/control.ts declares them, and checks at compile time that they fit this). */
export interface ControlValues {
  kubeconfig?: string;
  namespace: string;
  address: string;
  port: number;
  "serving-hosts": string[];
  "service-cidr": string[];
  "plain-http": boolean;
  "trust-domain"?: string;
  "insecure-registries": string[];
  "no-leader-election": boolean;
  image?: string;
  "outbound-traffic"?: string;
  "dashboard-port": number;
  marketplace?: string;
  "otlp-endpoint"?: string;
  local?: string;
  "base-port"?: number;
}

/** The control plane, as `weft control` (bin/commands/control.ts) asks: in a cluster, or with `local` from a folder. */
export async function startControl(values: ControlValues): Promise<Running> {
  const outboundTraffic = parseOutboundTraffic(values["outbound-traffic"] ?? DEFAULT_SETTINGS.outboundTraffic, "--outbound-traffic");
  if (values.local !== undefined) return startLocal(values.local, values, outboundTraffic);
  // A --marketplace folder without an index is a typo: say so now, not in every marketplace filter's status.
  if (values.marketplace !== undefined) {
    const problem = await readMarketplace(values.marketplace).then(
      () => null,
      (e: Error) => e.message,
    );
    if (problem) throw new UsageError(`--marketplace ${values.marketplace}: ${problem}`);
  }
  const kubeConfig = loadKubeConfig(values.kubeconfig);
  if (typeof kubeConfig === "string") throw new UsageError(kubeConfig);
  const log = createLogger({ component: "control" });
  const { namespace, port } = values;
  const trustDomain = values["trust-domain"] ?? "cluster.local";
  // The injected sidecars talk to this control plane, under its trust domain, with its image.
  const injection = parseInjectSettings({
    image: values.image,
    trustDomain,
    otlpEndpoint: values["otlp-endpoint"],
    controlPlane: `https://${CONTROL_NAME}.${namespace}.svc:${API_PORT}`,
    serviceCidrs: await serviceCidrs(values["service-cidr"], kubeConfig, log),
  });
  if (!injection.ok) throw new UsageError(...injection.problems);
  const dashboardPort = values["dashboard-port"];
  const identity = `${hostname()}-${process.pid}`;
  const authority = await openAuthority({ store: kubernetesSecretStore({ kubeConfig, namespace }), log });
  const extra = [...values["serving-hosts"]];
  if (process.env.POD_IP) extra.push(process.env.POD_IP);
  const service = `${CONTROL_NAME}.${namespace}`;
  const serving = values["plain-http"]
    ? null
    : await authority.issueServing(
        [CONTROL_NAME, service, `${service}.svc`, `${service}.svc.cluster.local`, ...extra.filter((h) => !IP.test(h))],
        ["127.0.0.1", ...extra.filter((h) => IP.test(h))],
        YEAR_MS,
      );
  const controller = await startController({
    kubeConfig,
    log,
    address: values.address,
    port,
    ...(serving ? { tls: { cert: serving.certificateChain, key: serving.privateKey } } : {}),
    settings: { trustDomain, outboundTraffic },
    insecureRegistries: values["insecure-registries"],
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
  const boardServer = board
    ? await selectRuntime().serveHttp({ address: "127.0.0.1", port: dashboardPort }, (request) => board.fetch(request))
    : null;
  if (boardServer) log.info("dashboard on this pod's loopback: weft dashboard opens it", { address: `127.0.0.1:${dashboardPort}` });
  return {
    async stop(signal) {
      log.info("stopping", { signal });
      board?.stop();
      await boardServer?.close();
      await controller.stop();
    },
  };
}

/**
 * The Service ranges the injector gives weft-init: --service-cidr where given, else the
 * cluster's ServiceCIDRs; none (only ports 80 and 8080 captured outbound) when neither says.
 */
async function serviceCidrs(given: string[], kubeConfig: KubeConfig, log: Logger): Promise<string[]> {
  if (given.length > 0) return given;
  const read = await readServiceCidrs(kubeConfig);
  if ("problem" in read) {
    log.warn("injected pods' TCP to Services will not go through their sidecars: only ports 80 and 8080 will", {
      reason: read.problem,
      fix: "give the cluster's Service range: weft control --service-cidr 10.96.0.0/12",
    });
    return [];
  }
  log.info("injected pods' TCP to Services goes through their sidecars", { serviceCidrs: read.cidrs });
  return read.cidrs;
}

async function startLocal(dir: string, values: ControlValues, outboundTraffic: OutboundTraffic): Promise<Running> {
  const { startLocalControl } = await import("./local/control.ts");
  const log = createLogger({ component: "control" });
  const control = await startLocalControl({
    dir,
    log,
    port: values.port,
    basePort: values["base-port"],
    ...(values["trust-domain"] ? { trustDomain: values["trust-domain"] } : {}),
    insecureRegistries: values["insecure-registries"],
    outboundTraffic,
  });
  log.info("local control plane ready", {
    url: control.url,
    dir,
    workloads: control.mesh.instances().map((i) => ({ pod: `${i.namespace}/${i.pod}`, ports: i.ports })),
  });
  return {
    async stop(signal) {
      log.info("stopping", { signal });
      await control.stop();
    },
  };
}
