// What the control plane is in a cluster and in local mode alike: the mesh model, the filter
// distribution, the configuration computed per workload shape and pushed to connected proxies,
// and the API they connect to. The sources differ (Kubernetes informers, or a directory of
// YAML); they fill `world` and call `schedule()`.
import type { Logger } from "../shared/log.ts";
import { startApiServer, type ApiServer, type Caller, type FetchHandler } from "./api/server.ts";
import { FilterDistribution } from "./distribution/filters.ts";
import type { Credentials } from "../shared/oci-registry.ts";
import { FilterResolver, type ResolveOptions } from "./distribution/resolve.ts";
import { computeProxyConfig, DEFAULT_SETTINGS, type ProxySettings } from "./mesh/proxy-config.ts";
import { emptyWorld, keyOf, type MeshWorld } from "./mesh/world.ts";
import { PushHub, type Computed, type ProxyKey } from "./push/hub.ts";

export interface PlaneOptions {
  log: Logger;
  settings?: Partial<ProxySettings>;
  resolver: ResolveOptions;
  /** Registry credentials from a pull secret in a filter's namespace. */
  credentials: (namespace: string, secret: string) => Promise<Credentials>;
  /** Who holds a proxy's token; throws an ApiError (401/403) when no one acceptable does. */
  authenticate: (token: string) => Promise<Caller>;
  /** After every burst of changes has been pushed (status, published bundles). */
  changed?: () => void;
  /** When an acknowledgement changes what proxies run. */
  acknowledged?: () => void;
  /** Whether the source has read every resource once; proxies wait (503) until it has. */
  synced: () => boolean;
  routes?: Record<string, FetchHandler>;
  tls?: { cert: string; key: string };
  address?: string;
  port?: number;
}

export interface Plane {
  api: ApiServer;
  world: MeshWorld;
  hub: PushHub;
  distribution: FilterDistribution;
  settings: ProxySettings;
  /** Call after changing `world`: recomputes and pushes once per burst of changes. */
  schedule(): void;
  /** Applies what is scheduled now: before proxies are let in, so the first one gets every filter. */
  flush(): void;
  stop(): Promise<void>;
}

export async function startPlane(options: PlaneOptions): Promise<Plane> {
  const { log } = options;
  const settings: ProxySettings = { ...DEFAULT_SETTINGS, ...options.settings };
  const world = emptyWorld();
  let stopping = false;
  let pending: ReturnType<typeof setTimeout> | null = null;
  // Configurations by what they depend on in a pod; emptied whenever the mesh changes.
  let shapes = new Map<string, Computed>();
  // Changes come in bursts (an informer's initial list, a rollout): compute once per burst.
  const flush = () => {
    if (pending) clearTimeout(pending);
    pending = null;
    if (stopping) return;
    shapes = new Map();
    distribution.sync(world.wasmFilters.values());
    hub.refresh();
    options.changed?.();
  };
  const schedule = () => {
    if (stopping) return;
    pending ??= setTimeout(flush, 20);
  };

  const distribution = new FilterDistribution({
    resolver: new FilterResolver(options.resolver),
    log,
    credentials: options.credentials,
    changed: schedule,
  });

  const compute = (proxy: ProxyKey): Computed | string => {
    const pod = world.pods.get(keyOf(proxy.namespace, proxy.pod));
    if (!pod) return `pod ${proxy.namespace}/${proxy.pod} is not known to the control plane`;
    // Everything of the pod the computation reads; the replicas of a workload share it, but for
    // a pod that captures Services, whose inbound listeners are on its own IP (proxy-config.ts).
    const shape = JSON.stringify([
      pod.namespace,
      pod.serviceAccount,
      pod.labels,
      pod.containerPorts,
      pod.app,
      pod.capture,
      pod.workload,
      pod.serviceCapture,
      pod.serviceCapture ? pod.ip : "",
    ]);
    let computed = shapes.get(shape);
    if (!computed) {
      const config = computeProxyConfig(world, pod, distribution.resolved(), settings);
      computed = { config, filters: (config.filters ?? []).map((f) => keyOf(f.namespace ?? "default", f.name)) };
      shapes.set(shape, computed);
    }
    return computed;
  };
  /** Whether a pod of the caller's ServiceAccount is configured with the module. */
  const runsModule = (caller: Caller, sha256: string) => {
    for (const pod of world.pods.values()) {
      if (pod.namespace !== caller.namespace || pod.serviceAccount !== caller.serviceAccount) continue;
      const computed = compute({ namespace: pod.namespace, pod: pod.name });
      if (typeof computed === "string") continue;
      const config = computed.config as ReturnType<typeof computeProxyConfig>;
      if (config.filters?.some((f) => f.module?.sha256 === sha256)) return true;
    }
    return false;
  };
  const hub = new PushHub({ log, compute, acknowledged: () => options.acknowledged?.() });

  const api = await startApiServer({
    log,
    hub,
    authenticate: options.authenticate,
    synced: options.synced,
    podServiceAccount: (namespace, pod) => world.pods.get(keyOf(namespace, pod))?.serviceAccount ?? null,
    module: (sha256, caller) => (runsModule(caller, sha256) ? distribution.module(sha256) : undefined),
    ...(options.routes ? { routes: options.routes } : {}),
    ...(options.tls ? { tls: options.tls } : {}),
    ...(options.address ? { address: options.address } : {}),
    ...(options.port !== undefined ? { port: options.port } : {}),
  });

  return {
    api,
    world,
    hub,
    distribution,
    settings,
    schedule,
    flush,
    async stop() {
      stopping = true;
      if (pending) clearTimeout(pending);
      distribution.stop();
      await api.close();
    },
  };
}
