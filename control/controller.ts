// The control plane in a cluster: informers fill the mesh model, WasmFilters are resolved,
// every connected proxy gets the configuration computed for its pod, and WasmFilter status
// says what is resolved and how many selected proxies run it.
import { CoreV1Api, type KubeConfig } from "@kubernetes/client-node";
import type { Logger } from "../proxy/log.ts";
import { ApiError, startApiServer, type ApiServer, type Caller, type FetchHandler } from "./api/server.ts";
import { kubernetesTokenReviewer, type TokenReviewer } from "./ca/token-review.ts";
import { FilterDistribution } from "./distribution/filters.ts";
import type { Credentials } from "./distribution/registry.ts";
import { FilterResolver } from "./distribution/resolve.ts";
import { computeProxyConfig, DEFAULT_SETTINGS, type ProxySettings } from "./mesh/proxy-config.ts";
import { emptyWorld, keyOf, targets, type MeshWorld } from "./mesh/world.ts";
import { PushHub, type Computed, type ProxyKey } from "./push/hub.ts";
import { conditionsFrom, StatusWriter } from "./kubernetes/status.ts";
import { watchMesh, type MeshWatch } from "./kubernetes/watch.ts";
import { LeaderElection } from "./kubernetes/leader.ts";
import { CaBundlePublisher } from "./kubernetes/ca-bundle.ts";
import { ProxyReportWriter, reportOf, type ProxyReportEntry } from "./kubernetes/proxy-report.ts";
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
  marketplace?: (name: string, version: string) => Promise<string | null>;
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
  stop(): Promise<void>;
}

const SERVICE_ACCOUNT_USER = /^system:serviceaccount:([^:]+):([^:]+)$/;
const REVIEW_CACHE_MS = 60_000;

/** Token reviews cached for a minute, so acknowledgements do not each cost an API call. */
function authenticator(review: TokenReviewer): (token: string) => Promise<Caller> {
  const cache = new Map<string, { at: number; caller: Promise<Caller> }>();
  return (token) => {
    const now = Date.now();
    const hit = cache.get(token);
    if (hit && now - hit.at < REVIEW_CACHE_MS) return hit.caller;
    const caller = review(token).then((r) => {
      if (!r.authenticated) throw new ApiError(401, r.message);
      const sa = SERVICE_ACCOUNT_USER.exec(r.username);
      if (!sa) throw new ApiError(403, `the token is for ${r.username}, not a ServiceAccount: proxies authenticate with their pod's ServiceAccount token`);
      return { namespace: sa[1]!, serviceAccount: sa[2]! };
    });
    caller.catch(() => cache.delete(token));
    if (cache.size > 10_000) cache.clear();
    cache.set(token, { at: now, caller });
    return caller;
  };
}

async function pullSecret(core: CoreV1Api, namespace: string, name: string): Promise<Credentials> {
  const secret = await core.readNamespacedSecret({ namespace, name }).catch((e: unknown) => {
    throw new Error(`cannot read pull secret ${namespace}/${name}: ${apiMessage(e)}`);
  });
  const json = secret.data?.[".dockerconfigjson"];
  if (!json) throw new Error(`pull secret ${namespace}/${name} has no .dockerconfigjson (make it with kubectl create secret docker-registry)`);
  const config = JSON.parse(Buffer.from(json, "base64").toString("utf8")) as { auths?: Record<string, { username?: string; password?: string; auth?: string }> };
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
  const settings: ProxySettings = { ...DEFAULT_SETTINGS, ...options.settings };
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const world = emptyWorld();
  const status = new StatusWriter(kubeConfig, log);

  const publisher = options.caBundle ? new CaBundlePublisher(kubeConfig, options.caBundle, log) : null;
  let publishing = Promise.resolve();
  let stopping = false;
  let pending: ReturnType<typeof setTimeout> | null = null;
  // Configurations by what they depend on in a pod; emptied whenever the mesh changes.
  let shapes = new Map<string, Computed>();
  // Changes come in bursts (an informer's initial list, a rollout): compute once per burst.
  const schedule = () => {
    if (stopping) return;
    pending ??= setTimeout(() => {
      pending = null;
      shapes = new Map();
      if (publisher) publishing = publishing.then(() => publisher.sync(world.namespaces));
      distribution.sync(world.wasmFilters.values());
      hub.refresh();
      statusSoon();
    }, 20);
  };

  const distribution = new FilterDistribution({
    resolver: new FilterResolver({
      insecureRegistries: new Set(options.insecureRegistries ?? []),
      maxBytes: options.maxModuleBytes ?? 32 * 1024 * 1024,
      allowFiles: false,
      marketplace: options.marketplace ?? (async () => null),
    }),
    log,
    credentials: (namespace, name) => pullSecret(core, namespace, name),
    changed: schedule,
  });

  const compute = (proxy: ProxyKey): Computed | string => {
    const pod = world.pods.get(keyOf(proxy.namespace, proxy.pod));
    if (!pod) return `pod ${proxy.namespace}/${proxy.pod} is not known to the control plane`;
    // Everything of the pod the computation reads; the replicas of a workload share it.
    const shape = JSON.stringify([pod.namespace, pod.serviceAccount, pod.labels, pod.containerPorts]);
    let computed = shapes.get(shape);
    if (!computed) {
      const config = computeProxyConfig(world, pod, distribution.resolved(), settings);
      computed = { config, filters: (config.filters ?? []).map((f) => keyOf(f.namespace ?? "default", f.name)) };
      shapes.set(shape, computed);
    }
    return computed;
  };
  // Acknowledgements arrive one per proxy: status is written once per burst of them.
  let statusPending: ReturnType<typeof setTimeout> | null = null;
  const statusSoon = () => {
    if (stopping) return;
    statusPending ??= setTimeout(() => {
      statusPending = null;
      void writeStatus();
    }, 100);
  };
  const hub = new PushHub({ log, compute, acknowledged: statusSoon });

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
  const writeStatus = () => {
    writing = writing.then(async () => {
      // Every replica reports its own sidecars; only the leader writes resource status.
      const own = reportOf(hub.connected);
      if (report) await report.write(own);
      if (!leading()) return;
      const now = new Date().toISOString();
      // Every replica's sidecars (from their reports), this replica's own first: a sidecar
      // that moved between replicas counts once.
      const sidecars = new Map<string, ProxyReportEntry>();
      for (const entry of [...own, ...(report ? await report.others() : [])]) if (!sidecars.has(entry.pod)) sidecars.set(entry.pod, entry);
      for (const f of world.wasmFilters.values()) {
        const key = keyOf(f.metadata.namespace, f.metadata.name);
        const state = distribution.state(f.metadata.namespace, f.metadata.name);
        const generation = (f.metadata as { generation?: number }).generation ?? 0;
        let selected = 0;
        let running = 0;
        for (const s of sidecars.values()) {
          const pod = world.pods.get(s.pod);
          if (!pod || !targets(world, f.metadata.namespace, f.spec, pod)) continue;
          selected++;
          if (s.running !== null && s.running === s.sent && s.filters.includes(key)) running++;
        }
        const sha256 = state?.sha256 ?? undefined;
        await status.writeWasmFilter(f, {
          conditions: conditionsFrom(
            [
              state ? { type: "Accepted", ...state.accepted } : { type: "Accepted", ok: null, reason: "Pending", message: "not checked yet" },
              state?.resolved ? { type: "Resolved", ...state.resolved } : { type: "Resolved", ok: null, reason: "Pending", message: "resolving the url" },
              {
                type: "Ready",
                ok: selected > 0 && running === selected && sha256 !== undefined,
                reason: selected === 0 ? "NoProxiesSelected" : running === selected ? "Running" : "Updating",
                message: `${running} of ${selected} selected proxies run ${sha256 ? `sha256:${sha256}` : "no module yet"}`,
              },
            ],
            f.status?.conditions,
            generation,
            now,
          ),
          ...(sha256 ? { sha256 } : {}),
          ready: `${running}/${selected}`,
        });
      }
    });
    return writing;
  };

  const api = await startApiServer({
    log,
    hub,
    authenticate: authenticator(kubernetesTokenReviewer({ kubeConfig, ...(options.audiences ? { audiences: options.audiences } : {}) })),
    podServiceAccount: (namespace, pod) => world.pods.get(keyOf(namespace, pod))?.serviceAccount ?? null,
    module: (sha256) => distribution.module(sha256),
    ...(options.routes ? { routes: options.routes } : {}),
    ...(options.tls ? { tls: options.tls } : {}),
    ...(options.address ? { address: options.address } : {}),
    ...(options.port !== undefined ? { port: options.port } : {}),
  });
  const watch: MeshWatch = watchMesh(kubeConfig, world, log, schedule);
  election?.start();

  return {
    api,
    world,
    hub,
    distribution,
    synced: watch.synced,
    leading,
    async stop() {
      stopping = true;
      if (pending) clearTimeout(pending);
      if (statusPending) clearTimeout(statusPending);
      await election?.stop();
      await watch.stop();
      await api.close();
      await writing;
      await publishing;
      await report?.remove();
    },
  };
}
