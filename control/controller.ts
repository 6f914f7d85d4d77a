// The control plane in a cluster: informers fill the mesh model, WasmFilters are resolved,
// every connected proxy gets the configuration computed for its pod, and status says what is in
// force: WasmFilters (resolved, how many selected proxies run it), TrafficPolicies and
// AccessPolicies (accepted, targets found, in force) and HTTPRoutes (weft's status.parents).
import { CoreV1Api, type KubeConfig } from "@kubernetes/client-node";
import type { Logger } from "../shared/log.ts";
import type { ApiServer, FetchHandler } from "./api/server.ts";
import { authenticator } from "./api/authenticate.ts";
import { kubernetesTokenReviewer } from "./ca/token-review.ts";
import type { FilterDistribution } from "./distribution/filters.ts";
import type { Credentials } from "../shared/oci-registry.ts";
import type { MarketplaceRelease } from "./distribution/marketplace.ts";
import type { ProxySettings } from "./mesh/proxy-config.ts";
import type { MeshWorld } from "./mesh/world.ts";
import { wasmFilterStatus } from "./mesh/filter-status.ts";
import { accessPolicyStatus, trafficPolicyStatus } from "./mesh/policy-status.ts";
import { httpRouteParentConditions } from "./mesh/route-status.ts";
import { seenOf } from "./kubernetes/httproute.ts";
import type { PushHub } from "./push/hub.ts";
import { reportOf, type ProxyReportEntry } from "./push/report.ts";
import { startPlane } from "./plane.ts";
import { StatusWriter } from "./kubernetes/status.ts";
import { watchMesh, type MeshWatch } from "./kubernetes/watch.ts";
import { LeaderElection } from "./kubernetes/leader.ts";
import { CaBundlePublisher } from "./kubernetes/ca-bundle.ts";
import { latestPerPod, PEER_REPORT_POLL_MS, ProxyReportWriter, REPORT_HEARTBEAT_MS } from "./kubernetes/proxy-report.ts";
import { apiMessage } from "./kubernetes/errors.ts";

export interface ControllerOptions {
  kubeConfig: KubeConfig;
  log: Logger;
  address?: string;
  port?: number;
  tls?: { cert: string; key: string };
  settings?: Partial<ProxySettings>;
  insecureRegistries?: string[];
  maxModuleBytes?: number;
  /** Audiences a proxy's token must be for. */
  audiences?: string[];
  routes?: Record<string, FetchHandler>;
  marketplace?: (name: string, version: string) => Promise<MarketplaceRelease | null>;
  /** With several replicas: the Lease that picks the one that writes status. Without: this one writes. */
  leaderElection?: { namespace: string; identity: string; leaseSeconds?: number };
  /** The mesh's roots, published where sidecars and the API server read them (ca-bundle.ts). */
  caBundle?: string;
  /** Where this replica reports what its sidecars run, for weft status (proxy-report.ts). */
  report?: { namespace: string; replica: string };
}

export interface Controller {
  api: ApiServer;
  world: MeshWorld;
  hub: PushHub;
  distribution: FilterDistribution;
  /** Resolves when the informers have listed everything once. */
  synced: Promise<void>;
  /** Whether this replica writes status. */
  leading(): boolean;
  /** Every replica's sidecars as last read (own first), refreshed each heartbeat and status pass. */
  sidecars(): readonly ProxyReportEntry[];
  stop(): Promise<void>;
}

async function pullSecret(core: CoreV1Api, namespace: string, name: string): Promise<Credentials> {
  const secret = await core.readNamespacedSecret({ namespace, name }).catch((e: unknown) => {
    throw new Error(`cannot read pull secret ${namespace}/${name}: ${apiMessage(e)}`);
  });
  const json = secret.data?.[".dockerconfigjson"];
  if (!json)
    throw new Error(`pull secret ${namespace}/${name} has no .dockerconfigjson (make it with kubectl create secret docker-registry)`);
  const config = JSON.parse(Buffer.from(json, "base64").toString("utf8")) as {
    auths?: Record<string, { username?: string; password?: string; auth?: string }>;
  };
  // One registry per pull secret is what WasmFilters use; the first entry with credentials wins.
  for (const entry of Object.values(config.auths ?? {})) {
    if (entry.username && entry.password) return { username: entry.username, password: entry.password };
    if (entry.auth) {
      const [username, ...rest] = Buffer.from(entry.auth, "base64").toString("utf8").split(":");
      return { username: username!, password: rest.join(":") };
    }
  }
  throw new Error(`pull secret ${namespace}/${name} has no credentials in its auths`);
}

export async function startController(options: ControllerOptions): Promise<Controller> {
  const { kubeConfig, log } = options;
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const status = new StatusWriter(kubeConfig, log);
  const publisher = options.caBundle ? new CaBundlePublisher(kubeConfig, options.caBundle, log) : null;
  let publishing = Promise.resolve();
  let stopping = false;
  let synced = false;

  // Acknowledgements arrive one per proxy: status is written once per burst of them.
  let statusPending: ReturnType<typeof setTimeout> | null = null;
  const statusSoon = () => {
    if (stopping) return;
    statusPending ??= setTimeout(() => {
      statusPending = null;
      void writeStatus();
    }, 100);
  };

  const plane = await startPlane({
    log,
    ...(options.settings ? { settings: options.settings } : {}),
    resolver: {
      insecureRegistries: new Set(options.insecureRegistries ?? []),
      maxBytes: options.maxModuleBytes ?? 32 * 1024 * 1024,
      allowFiles: false,
      marketplace: options.marketplace ?? (async () => null),
    },
    credentials: (namespace, name) => pullSecret(core, namespace, name),
    authenticate: authenticator(kubernetesTokenReviewer({ kubeConfig, ...(options.audiences ? { audiences: options.audiences } : {}) })),
    changed: () => {
      if (publisher) publishing = publishing.then(() => publisher.sync(plane.world.namespaces));
      statusSoon();
    },
    acknowledged: statusSoon,
    synced: () => synced,
    ...(options.routes ? { routes: options.routes } : {}),
    ...(options.tls ? { tls: options.tls } : {}),
    ...(options.address ? { address: options.address } : {}),
    ...(options.port !== undefined ? { port: options.port } : {}),
  });
  const { world, hub, distribution } = plane;

  const election = options.leaderElection
    ? new LeaderElection({
        kubeConfig,
        log,
        ...options.leaderElection,
        changed: (leading) => {
          // A new leader writes everything once: what the last one wrote may be stale.
          if (leading) status.forgetAll();
          void writeStatus();
        },
      })
    : null;
  const leading = () => election === null || election.leading;

  const report = options.report ? new ProxyReportWriter(kubeConfig, options.report.namespace, options.report.replica, log) : null;
  let writing = Promise.resolve();
  let seen: ProxyReportEntry[] = [];
  const writeStatus = () => {
    writing = writing.then(async () => {
      // Every replica reports its own sidecars; only the leader writes resource status.
      const own = reportOf(hub.connected);
      if (report) await report.write(own);
      // Every replica's sidecars (from their reports), each once. Every replica reads them: its dashboard shows them.
      const sidecars = latestPerPod([...own, ...(report ? await report.others(leading()) : [])]);
      // A deleted pod's sidecar can linger in a killed replica's report until it goes stale: only
      // pods that exist count, so status and the dashboard never show a sidecar that is gone.
      seen = sidecars.filter((s) => world.pods.has(s.pod));
      if (!leading()) return;
      const now = new Date().toISOString();
      for (const f of world.wasmFilters.values()) await status.writeWasmFilter(f, wasmFilterStatus(world, distribution, f, seen, now));
      for (const p of world.trafficPolicies.values()) await status.writeTrafficPolicy(p, trafficPolicyStatus(world, p, now));
      for (const p of world.accessPolicies.values()) await status.writeAccessPolicy(p, accessPolicyStatus(world, p, now));
      for (const r of world.httpRoutes.values())
        await status.writeHttpRoute(r.namespace, r.name, httpRouteParentConditions(world, r), seenOf(r).generation, now);
    });
    return writing;
  };

  // The report is rewritten every heartbeat even when nothing changed: that is how readers tell a live replica from a killed one.
  const heartbeat = report ? setInterval(() => void writeStatus(), REPORT_HEARTBEAT_MS) : null;
  heartbeat?.unref();
  // The other replicas report their sidecars' acknowledgements as they come; every replica reads
  // them this often, so a sidecar on another replica shows within seconds, not at the next
  // heartbeat: in the leader's status (which must not say Updating for a minute about a sidecar
  // that runs it) and on any replica's dashboard. Only the leader writes status.
  const peers = report ? setInterval(() => void writeStatus(), PEER_REPORT_POLL_MS) : null;
  peers?.unref();

  const watch: MeshWatch = watchMesh(kubeConfig, world, log, plane.schedule);
  void watch.synced.then(() => {
    plane.flush();
    synced = true;
  });
  election?.start();

  return {
    api: plane.api,
    world,
    hub,
    distribution,
    synced: watch.synced,
    leading,
    sidecars: () => seen,
    async stop() {
      stopping = true;
      if (statusPending) clearTimeout(statusPending);
      if (heartbeat) clearInterval(heartbeat);
      if (peers) clearInterval(peers);
      await election?.stop();
      await watch.stop();
      await plane.stop();
      await writing;
      await publishing;
      await report?.remove();
    },
  };
}
