// Keeps the mesh model in step with the API server: one informer (list, then watch) per kind
// the configuration depends on. An informer that loses its watch is restarted after a pause,
// and the model keeps what it had meanwhile, so proxies keep their configuration.
import {
  CoreV1Api,
  CustomObjectsApi,
  DiscoveryV1Api,
  makeInformer,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
} from "@kubernetes/client-node";
import type { Logger } from "../../shared/log.ts";
import { parseAccessPolicy } from "../resources/access-policy.ts";
import { GROUP, VERSION } from "../resources/meta.ts";
import type { Parsed } from "../resources/parse.ts";
import { parseTrafficPolicy } from "../resources/traffic-policy.ts";
import { parseWasmFilter } from "../resources/wasm-filter.ts";
import { keyOf, type MeshWorld } from "../mesh/world.ts";
import { endpointSliceInfo, podInfo, serviceInfo } from "./convert.ts";
import { httpRouteInfo } from "./httproute.ts";
import { apiMessage, apiStatus } from "./errors.ts";

const RESTART_MS = 3000;

interface Watched<T extends KubernetesObject, V> {
  kind: string;
  path: string;
  list: () => Promise<KubernetesListObject<T>>;
  /** The model's entry for an object, or null to leave it out. */
  convert: (o: T) => V | null;
  map: Map<string, V>;
  /** A kind whose CRD may not be installed: waited for in the background, not for `synced`. */
  optional?: boolean;
  /** The key in `map`; default namespace/name. */
  keyOf?: (o: T) => string;
}

export interface MeshWatch {
  /** Resolves once every kind has been listed once. */
  synced: Promise<void>;
  stop(): Promise<void>;
}

function parsed<T>(log: Logger, kind: string, result: Parsed<T>, key: string): T | null {
  if (result.ok) return result.value;
  // The API server's schema should have refused it; a version skew could let one through.
  log.warn(`ignoring an invalid ${kind}`, { resource: key, problems: result.problems });
  return null;
}

export function watchMesh(kc: KubeConfig, world: MeshWorld, log: Logger, changed: () => void): MeshWatch {
  const core = kc.makeApiClient(CoreV1Api);
  const discovery = kc.makeApiClient(DiscoveryV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const customList = (group: string, version: string, plural: string) => () =>
    custom.listClusterCustomObject({ group, version, plural }) as Promise<KubernetesListObject<KubernetesObject>>;
  const weft = (plural: string) => customList(GROUP, VERSION, plural);
  const key = (o: KubernetesObject) => keyOf(o.metadata?.namespace ?? "default", o.metadata?.name ?? "");

  const kinds: Watched<KubernetesObject, unknown>[] = [
    {
      kind: "Namespace",
      path: "/api/v1/namespaces",
      list: () => core.listNamespace(),
      convert: (o) => o.metadata?.labels ?? {},
      map: world.namespaces,
      keyOf: (o) => o.metadata?.name ?? "",
    },
    {
      kind: "Service",
      path: "/api/v1/services",
      list: () => core.listServiceForAllNamespaces(),
      convert: (o) => serviceInfo(o),
      map: world.services,
    },
    {
      kind: "EndpointSlice",
      path: "/apis/discovery.k8s.io/v1/endpointslices",
      list: () => discovery.listEndpointSliceForAllNamespaces(),
      convert: (o) => endpointSliceInfo(o as never),
      map: world.endpointSlices,
    },
    { kind: "Pod", path: "/api/v1/pods", list: () => core.listPodForAllNamespaces(), convert: (o) => podInfo(o), map: world.pods },
    {
      kind: "HTTPRoute",
      path: "/apis/gateway.networking.k8s.io/v1/httproutes",
      list: customList("gateway.networking.k8s.io", "v1", "httproutes"),
      convert: (o) => httpRouteInfo(o as never),
      map: world.httpRoutes,
      optional: true,
    },
    {
      kind: "WasmFilter",
      path: `/apis/${GROUP}/${VERSION}/wasmfilters`,
      list: weft("wasmfilters"),
      convert: (o) => parsed(log, "WasmFilter", parseWasmFilter(o), key(o)),
      map: world.wasmFilters,
    },
    {
      kind: "TrafficPolicy",
      path: `/apis/${GROUP}/${VERSION}/trafficpolicies`,
      list: weft("trafficpolicies"),
      convert: (o) => parsed(log, "TrafficPolicy", parseTrafficPolicy(o), key(o)),
      map: world.trafficPolicies,
    },
    {
      kind: "AccessPolicy",
      path: `/apis/${GROUP}/${VERSION}/accesspolicies`,
      list: weft("accesspolicies"),
      convert: (o) => parsed(log, "AccessPolicy", parseAccessPolicy(o), key(o)),
      map: world.accessPolicies,
    },
  ] as Watched<KubernetesObject, unknown>[];

  let stopped = false;
  // Retries wait on timers that stop() cancels, so a stopped watch holds nothing open.
  const waits = new Map<ReturnType<typeof setTimeout>, () => void>();
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        waits.delete(timer);
        resolve();
      }, ms);
      waits.set(timer, resolve);
    });
  const informers = kinds.map((w) => {
    const informer = makeInformer(kc, w.path, w.list);
    const keyFor = w.keyOf ?? key;
    const put = (o: KubernetesObject) => {
      const value = w.convert(o);
      if (value === null) w.map.delete(keyFor(o));
      else w.map.set(keyFor(o), value);
      changed();
    };
    informer.on("add", put);
    informer.on("update", put);
    informer.on("delete", (o) => {
      w.map.delete(keyFor(o));
      changed();
    });
    let saidMissing = false;
    informer.on("error", (err: unknown) => {
      if (stopped) return;
      const missing = apiStatus(err) === 404;
      if (w.optional && missing) {
        if (!saidMissing) log.info(`the ${w.kind} CRD is not installed; ${w.kind}s are ignored until it is`);
        saidMissing = true;
      } else {
        log.warn(`lost the ${w.kind} watch; restarting it`, { error: apiMessage(err), retryInMs: RESTART_MS });
      }
      void pause(w.optional && missing ? 10 * RESTART_MS : RESTART_MS).then(() => {
        if (!stopped) informer.start().catch(() => {});
      });
    });
    return { w, informer };
  });

  const startInformer = async (w: Watched<KubernetesObject, unknown>, informer: { start(): Promise<void> }) => {
    let said = false;
    for (;;) {
      try {
        // start() resolves once the first list is in the cache.
        await informer.start();
        if (said) log.info(`${w.kind}s are watched now`);
        return;
      } catch (e) {
        if (stopped) return;
        const missing = apiStatus(e) === 404;
        if (w.optional && missing) {
          if (!said) log.info(`the ${w.kind} CRD is not installed; ${w.kind}s are ignored until it is`);
          said = true;
        } else {
          log.warn(`cannot list ${w.kind}s yet; retrying`, { error: apiMessage(e), retryInMs: RESTART_MS });
        }
        await pause(w.optional && missing ? 10 * RESTART_MS : RESTART_MS);
      }
    }
  };
  for (const { w, informer } of informers) if (w.optional) void startInformer(w, informer);
  const synced = (async () => {
    for (const { w, informer } of informers) if (!w.optional) await startInformer(w, informer);
    log.info("mesh resources synced", Object.fromEntries(kinds.map((w) => [w.kind, w.map.size])));
  })();

  return {
    synced,
    async stop() {
      stopped = true;
      for (const [timer, resolve] of waits) {
        clearTimeout(timer);
        resolve();
      }
      waits.clear();
      await Promise.all(informers.map(({ informer }) => informer.stop()));
    },
  };
}
