// One proxy's configuration, computed from the mesh: an outbound listener that routes by
// Host to every Service (mTLS to pods that have a sidecar, with the SPIFFE IDs they must
// present), following the HTTPRoutes attached to a Service where there are any, then to the
// hosts outside the mesh that ExternalName Services declare, and to any other host as the
// outbound traffic setting says; an inbound listener in front of the pod's app, TrafficPolicies
// on the clusters and routes of the Services they target, and the WasmFilters that select the pod.
import type { ProxyConfigInput } from "../../proxy/config/schema.ts";
import type { FilterLimits } from "../../proxy/config/filters.ts";
import { formatSpiffeId } from "../../proxy/identity/spiffe.ts";
import type { TrafficPolicy } from "../resources/traffic-policy.ts";
import { accessPoliciesInForce } from "./access-in-force.ts";
import { resolveBackend } from "./backends.ts";
import { externalCluster, externalDomains, externalPorts, isExternal } from "./external-services.ts";
import { REGISTRY_ONLY_REASON, type OutboundTraffic } from "./outbound-traffic.ts";
import { olderByMetadata, trafficPolicyFor } from "./precedence.ts";
import {
  capturesPort,
  capturesServicePort,
  keyOf,
  servicesOf,
  targets,
  type MeshWorld,
  type PodInfo,
  type RouteRule,
  type ServiceCapture,
  type ServiceInfo,
  type ServicePort,
} from "./world.ts";
import { capturedListenerPort } from "../init/rules.ts";
import { inIpv4Cidr } from "../../shared/ipv4.ts";
import { DETECT_HTTP_MS, portProtocol, type PortProtocol } from "./port-protocol.ts";

export interface ProxySettings {
  trustDomain: string;
  clusterDomain: string;
  outboundPort: number;
  inboundPort: number;
  /** Where sidecars bind their inbound listeners: every address in a pod; loopback in local mode. */
  listenAddress: string;
  /** What an app's request for a host outside the mesh that no ExternalName Service declares gets (docs/egress.md). */
  outboundTraffic: OutboundTraffic;
}

export const DEFAULT_SETTINGS: ProxySettings = {
  trustDomain: "cluster.local",
  clusterDomain: "cluster.local",
  outboundPort: 15001,
  inboundPort: 15006,
  listenAddress: "0.0.0.0",
  outboundTraffic: "ALLOW_ANY",
};

/**
 * The retries of a route no TrafficPolicy sets them for, as Istio's default: two more attempts, on
 * another endpoint, when the connection fails or resets, or the upstream answers 502, 503 or 504.
 * A rollout needs them: a terminating pod's sidecar answers 503 once its app is gone, before
 * every client has seen the endpoint leave. Non-idempotent requests (POST, PATCH) are never
 * retried unless a TrafficPolicy says so. A TrafficPolicy's retry (attempts: 0 for none) wins.
 */
export const DEFAULT_RETRY = { attempts: 2, retryOn: ["connect-failure", "reset", "gateway-error"] } as const satisfies RetryInput;

/** Where the outbound listener binds, in a pod and in local mode alike. */
const OUTBOUND_ADDRESS = "127.0.0.1";

/** Istio's name for the cluster of hosts outside the mesh, so dashboards built for Istio's metrics show it. */
export const PASSTHROUGH_CLUSTER = "PassthroughCluster";

/** What a WasmFilter puts in force: the module and the config it runs with, or why nothing can run (its failStrategy then applies). */
export type FilterInForce = { sha256: string; config: Record<string, unknown>; limits: FilterLimits } | { unavailable: string };
/** Every WasmFilter the distribution knows, by namespace/name. */
export type ResolvedFilters = ReadonlyMap<string, FilterInForce>;

type ClusterInput = ProxyConfigInput["clusters"][number];
type RetryInput = NonNullable<ProxyConfigInput["listeners"][number]["virtualHosts"][number]["routes"][number]["retry"]>;
type ListenerInput = ProxyConfigInput["listeners"][number];
type VirtualHostInput = ListenerInput["virtualHosts"][number];
type FilterInput = NonNullable<ProxyConfigInput["filters"]>[number];

const serviceFqdn = (s: ServiceInfo, settings: ProxySettings) => `${s.name}.${s.namespace}.svc.${settings.clusterDomain}`;

/** Istio's name for a Service port's cluster; "*" for an ExternalName Service that declares no port, which registers every port. */
export const outboundClusterName = (s: ServiceInfo, port: ServicePort | null, settings: ProxySettings) =>
  `outbound|${port?.port ?? "*"}||${serviceFqdn(s, settings)}`;

// Where several target one Service, the oldest wins (precedence.ts; docs/resources.md), and the others report Conflicted.
const policyFor = (world: MeshWorld, s: ServiceInfo): TrafficPolicy | undefined => trafficPolicyFor(world, s.namespace, s.name);

function outboundCluster(world: MeshWorld, s: ServiceInfo, port: ServicePort, settings: ProxySettings): ClusterInput {
  const endpoints: ClusterInput["endpoints"] = [];
  const identities = new Set<string>();
  let allInMesh = true;
  for (const slice of world.endpointSlices.values()) {
    if (slice.namespace !== s.namespace || slice.service !== s.name) continue;
    const slicePort = slice.ports.find((p) => p.name === port.name)?.port;
    // The slice has the resolved number (a named targetPort may differ per pod); without one, the Service's.
    const target = slicePort ?? (typeof port.targetPort === "number" ? port.targetPort : port.port);
    for (const e of slice.endpoints) {
      endpoints.push({ address: e.address, port: target });
      const pod = e.pod ? world.pods.get(keyOf(e.pod.namespace, e.pod.name)) : undefined;
      if (pod?.inMesh && capturesPort(pod.capture, target))
        identities.add(formatSpiffeId({ trustDomain: settings.trustDomain, namespace: pod.namespace, serviceAccount: pod.serviceAccount }));
      else allInMesh = false;
    }
  }
  endpoints.sort((a, b) => a.address.localeCompare(b.address) || a.port - b.port);
  const policy = policyFor(world, s);
  return {
    name: outboundClusterName(s, port, settings),
    service: serviceFqdn(s, settings),
    namespace: s.namespace,
    workload: s.name,
    protocol: port.appProtocol === "kubernetes.io/h2c" || port.appProtocol === "grpc" ? "http2" : "http1",
    endpoints,
    // mTLS only where every endpoint has a sidecar that captures the port, to terminate it.
    ...(endpoints.length > 0 && allInMesh ? { tls: { identities: [...identities].sort() } } : {}),
    ...(policy
      ? {
          circuitBreaker: policy.spec.circuitBreaker,
          loadBalancer: policy.spec.loadBalancer,
          ...(policy.spec.outlierDetection ? { outlierDetection: policy.spec.outlierDetection } : {}),
        }
      : {}),
  };
}

/** The names a pod's app can call a Service by. */
function namesOf(s: ServiceInfo, pod: PodInfo, settings: ProxySettings): string[] {
  const names = [`${s.name}.${s.namespace}`, `${s.name}.${s.namespace}.svc`, serviceFqdn(s, settings)];
  if (s.namespace === pod.namespace) names.unshift(s.name);
  if (s.clusterIP && s.clusterIP !== "None") names.push(s.clusterIP);
  return names;
}

/** A mesh Service port's domains; port 80's also without a port, which the router matches on any port too. */
function domainsOf(s: ServiceInfo, port: ServicePort, pod: PodInfo, settings: ProxySettings): string[] {
  const names = namesOf(s, pod, settings);
  const withPort = names.map((n) => `${n}:${port.port}`);
  return port.port === 80 ? [...names, ...withPort] : withPort;
}

type RouteInput = VirtualHostInput["routes"][number];

// Gateway API's precedence: an exact path, then the longest prefix, then a method, then more
// header matches, then more query parameter matches; ties keep the order of routes (by
// namespace/name) and of their rules.
function specificity(r: RouteInput): number[] {
  const path = r.match?.path;
  const exact = path?.type === "Exact" ? 1 : 0;
  const prefix = path?.type === "PathPrefix" ? path.value.length : path ? 0 : 1;
  return [exact, prefix, r.match?.method ? 1 : 0, r.match?.headers?.length ?? 0, r.match?.queryParams?.length ?? 0];
}

function byPrecedence(a: RouteInput, b: RouteInput): number {
  const x = specificity(a);
  const y = specificity(b);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return y[i]! - x[i]!;
  return 0;
}

/** Invalid backends' clusters by name: shared by every route that names the same missing backend. */
type InvalidClusters = Map<string, ClusterInput>;

/** The cluster a backend that cannot be resolved is sent to: no endpoints, and `invalid` makes the proxy answer 500 with the problem. */
function invalidCluster(
  name: string,
  problem: string,
  invalid: InvalidClusters,
  labels: { service: string; namespace: string; workload: string },
): string {
  if (!invalid.has(name)) invalid.set(name, { name, ...labels, endpoints: [], invalid: problem });
  return name;
}

const NO_BACKEND_CLUSTER = "invalid|no-backend";

/** A rule all of whose requests get 500 saying `problem`, from the invalid cluster `name`. */
const failingRule = (name: string, problem: string, invalid: InvalidClusters): RouteInput["backends"] => [
  { cluster: invalidCluster(name, problem, invalid, { service: "", namespace: "", workload: "" }), weight: 1 },
];

/**
 * A rule's backends as the proxy's weighted split. A backendRef that names no Service (or no
 * such port) keeps its weight and goes to an invalid cluster, so its share of requests gets
 * 500 and the others are served, as the Gateway API asks; a rule with no backend to send to
 * (no backendRefs, or every weight 0) answers 500 for all of its requests.
 */
function ruleBackends(world: MeshWorld, rule: RouteRule, settings: ProxySettings, invalid: InvalidClusters): RouteInput["backends"] {
  const backends = rule.backends.map((b) => {
    const resolved = resolveBackend(world, b);
    if (resolved.problem === undefined)
      return {
        cluster: outboundClusterName(resolved.service, resolved.port, settings),
        weight: b.weight,
        ...(b.requestHeaders ? { requestHeaders: b.requestHeaders } : {}),
        ...(b.responseHeaders ? { responseHeaders: b.responseHeaders } : {}),
      };
    const name = `invalid|${b.port}||${b.name}.${b.namespace}.svc.${settings.clusterDomain}`;
    const labels = { service: `${b.name}.${b.namespace}.svc.${settings.clusterDomain}`, namespace: b.namespace, workload: b.name };
    return { cluster: invalidCluster(name, `HTTPRoute backend ${resolved.problem}`, invalid, labels), weight: b.weight };
  });
  if (backends.some((b) => b.weight > 0)) return backends;
  return failingRule(NO_BACKEND_CLUSTER, "the HTTPRoute rule has no backend to send to (no backendRefs, or every weight is 0)", invalid);
}

/**
 * Where a rule's requests go: its redirect (Gateway API ignores a redirecting rule's
 * backendRefs), a 500 naming what weft does not do when the rule asks for it (a filter is never
 * skipped), or its backends.
 */
function ruleTarget(
  world: MeshWorld,
  rule: RouteRule,
  settings: ProxySettings,
  invalid: InvalidClusters,
): Pick<RouteInput, "backends" | "redirect"> {
  if (rule.unsupported) {
    const name = `invalid|unsupported|${rule.unsupported.join(",")}`;
    return { backends: failingRule(name, `the HTTPRoute rule asks for what weft does not do: ${rule.unsupported.join(", ")}`, invalid) };
  }
  if (rule.redirect) return { backends: [], redirect: rule.redirect };
  return { backends: ruleBackends(world, rule, settings, invalid) };
}

/** A RequestMirror as the route's mirror; none when its backend does not resolve (the route's status says so: copies are all it loses). */
function mirrorOf(world: MeshWorld, mirror: NonNullable<RouteRule["mirror"]>, settings: ProxySettings): RouteInput["mirror"] {
  const resolved = resolveBackend(world, mirror.backend);
  if (resolved.problem !== undefined) return undefined;
  return { cluster: outboundClusterName(resolved.service, resolved.port, settings), percent: mirror.percent };
}

/** The routes of the HTTPRoutes attached to this Service port (null: any port, only parentRefs without one), or null when none is. */
function attachedRoutes(
  world: MeshWorld,
  s: ServiceInfo,
  port: ServicePort | null,
  clientNamespace: string,
  settings: ProxySettings,
  policy: TrafficPolicy | undefined,
  invalid: InvalidClusters,
): RouteInput[] | null {
  const attached = [...world.httpRoutes.values()]
    .filter((r) =>
      r.parents.some((p) => p.namespace === s.namespace && p.name === s.name && (p.port === undefined || p.port === port?.port)),
    )
    // Gateway API: where rules of two routes tie on precedence, the older route's win.
    .sort((a, b) => olderByMetadata({ ...a, creationTimestamp: a.createdAt }, { ...b, creationTimestamp: b.createdAt }));
  // GAMMA: a route in the Service's namespace (a producer route) is for every client; one in
  // another namespace (a consumer route) only for that namespace's clients, in place of the
  // producer's.
  const consumer = attached.filter((r) => r.namespace === clientNamespace && r.namespace !== s.namespace);
  const routes = consumer.length > 0 ? consumer : attached.filter((r) => r.namespace === s.namespace);
  if (routes.length === 0) return null;
  const out: RouteInput[] = [];
  for (const route of routes) {
    route.rules.forEach((rule, index) => {
      const target = ruleTarget(world, rule, settings, invalid);
      const mirror = rule.mirror && !target.redirect ? mirrorOf(world, rule.mirror, settings) : undefined;
      const timeoutMs = rule.timeoutMs ?? policy?.spec.timeoutMs;
      for (const match of rule.matches) {
        out.push({
          name: `${route.namespace}/${route.name}/${index}`,
          match,
          ...target,
          ...(timeoutMs !== undefined ? { timeoutMs } : {}),
          retry: policy?.spec.retry ?? DEFAULT_RETRY,
          ...(rule.requestHeaders ? { requestHeaders: rule.requestHeaders } : {}),
          ...(rule.responseHeaders ? { responseHeaders: rule.responseHeaders } : {}),
          ...(rule.rewrite && !target.redirect ? { rewrite: rule.rewrite } : {}),
          ...(mirror ? { mirror } : {}),
        });
      }
    });
  }
  return out.sort(byPrecedence);
}

/** A Service port's virtual host (any port: null), reached by `domains`. */
function outboundVirtualHost(
  world: MeshWorld,
  s: ServiceInfo,
  port: ServicePort | null,
  domains: string[],
  client: PodInfo,
  settings: ProxySettings,
  invalid: InvalidClusters,
): VirtualHostInput {
  const policy = policyFor(world, s);
  return {
    name: `${s.name}.${s.namespace}:${port?.port ?? "*"}`,
    domains,
    routes: attachedRoutes(world, s, port, client.namespace, settings, policy, invalid) ?? [
      {
        name: "default",
        backends: [{ cluster: outboundClusterName(s, port, settings) }],
        ...(policy ? { timeoutMs: policy.spec.timeoutMs } : {}),
        retry: policy?.spec.retry ?? DEFAULT_RETRY,
      },
    ],
  };
}

function filtersFor(world: MeshWorld, pod: PodInfo, resolved: ResolvedFilters): FilterInput[] {
  const out: FilterInput[] = [];
  for (const f of world.wasmFilters.values()) {
    if (!targets(world, f.metadata.namespace, f.spec, pod)) continue;
    // Not known to the distribution yet (it syncs once a burst of changes is over): nothing in force, never left out.
    const inForce = resolved.get(keyOf(f.metadata.namespace, f.metadata.name)) ?? {
      unavailable: "the control plane is still resolving its url",
    };
    const s = f.spec;
    out.push({
      name: f.metadata.name,
      namespace: f.metadata.namespace,
      ...("unavailable" in inForce
        ? { unavailable: inForce.unavailable }
        : { module: { sha256: inForce.sha256 }, config: inForce.config, limits: inForce.limits }),
      ...(s.phase ? { phase: s.phase } : {}),
      priority: s.priority,
      failStrategy: s.failStrategy,
      match: s.match,
      ...("unavailable" in inForce ? { limits: s.limits } : {}),
      logLevel: s.logLevel,
    });
  }
  return out.sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`));
}

/** A listener's virtual hosts and TCP cluster for what its port carries. */
function carrying(protocol: PortProtocol, virtualHosts: VirtualHostInput[], cluster: string): Pick<ListenerInput, "virtualHosts" | "tcp"> {
  if (protocol === "http") return { virtualHosts };
  if (protocol === "tcp") return { virtualHosts: [], tcp: { cluster } };
  return { virtualHosts, tcp: { cluster, detectHttpMs: DETECT_HTTP_MS } };
}

/**
 * One outbound listener per Service port the pod's weft-init sends to the sidecar: on the
 * Service's address, port + 32768, where the app's connection to ClusterIP:P arrives. It carries
 * what the port says (port-protocol.ts): opaque TCP to the Service's endpoints (mTLS to those with
 * a sidecar), HTTP routed by Host as on the outbound port, or either, detected.
 */
function serviceListeners(
  capture: ServiceCapture,
  services: ServiceInfo[],
  virtualHosts: VirtualHostInput[],
  settings: ProxySettings,
): ListenerInput[] {
  const listeners: ListenerInput[] = [];
  for (const s of services) {
    // A Service address outside the pod's ranges is not made local there: nothing could bind it.
    if (isExternal(s) || !capture.cidrs.some((cidr) => inIpv4Cidr(s.clusterIP, cidr))) continue;
    for (const port of s.ports.filter((p) => capturesServicePort(capture, p.port))) {
      listeners.push({
        name: `outbound|${s.clusterIP}:${port.port}`,
        direction: "Outbound",
        address: s.clusterIP,
        port: capturedListenerPort(port.port),
        ...carrying(portProtocol(port), virtualHosts, outboundClusterName(s, port, settings)),
      });
    }
  }
  return listeners;
}

/** The AccessPolicies selecting the pod, as its inbound listener enforces them; STRICT mTLS if any asks for it. */
function accessFor(
  world: MeshWorld,
  pod: PodInfo,
): { authorization?: NonNullable<ProxyConfigInput["listeners"][number]["authorization"]>; strict: boolean } {
  // As enforced: a policy naming a missing Service keeps its last good version (access-in-force.ts).
  const selecting = accessPoliciesInForce(world).filter((p) => p.selects(pod));
  if (selecting.length === 0) return { strict: false };
  return {
    authorization: {
      policies: selecting.map((p) => ({ name: p.key, action: p.spec.action, rules: p.spec.rules })),
      defaultDeny: selecting.some((p) => p.spec.defaultDeny),
    },
    strict: selecting.some((p) => p.spec.mtls === "STRICT"),
  };
}

/**
 * The ports the pod's app serves, as far as the mesh knows: where its Services' endpoints send
 * (the EndpointSlices' resolved ports, and each selecting Service's target port) and the ports
 * its containers declare; each with the protocol the Service ports that send there say (where
 * they disagree, opaque TCP, which carries HTTP too, then HTTP).
 */
function servedPorts(world: MeshWorld, pod: PodInfo): { port: number; protocol: PortProtocol }[] {
  const rank: PortProtocol[] = ["detect", "http", "tcp"];
  const ports = new Map<number, PortProtocol>(pod.containerPorts.map((c) => [c.port, "detect"]));
  const serve = (port: number, p: ServicePort | undefined) => {
    const said = p ? portProtocol(p) : "detect";
    const known = ports.get(port) ?? "detect";
    ports.set(port, rank.indexOf(said) > rank.indexOf(known) ? said : known);
  };
  for (const slice of world.endpointSlices.values()) {
    if (slice.namespace !== pod.namespace) continue;
    if (!slice.endpoints.some((e) => e.pod?.name === pod.name && e.pod.namespace === pod.namespace)) continue;
    const service = world.services.get(keyOf(slice.namespace, slice.service));
    for (const p of slice.ports)
      serve(
        p.port,
        service?.ports.find((sp) => sp.name === p.name),
      );
  }
  for (const s of servicesOf(world, pod)) {
    for (const p of s.ports) {
      const target = targetPortOn(pod, p);
      if (target !== undefined) serve(target, p);
    }
  }
  return [...ports].map(([port, protocol]) => ({ port, protocol })).sort((a, b) => a.port - b.port);
}

/** The app port inbound traffic goes to: the first port a Service of the pod targets, else the pod's first container port. */
function appPort(world: MeshWorld, pod: PodInfo): number | null {
  if (pod.app) return pod.app.port;
  for (const s of servicesOf(world, pod)) {
    for (const p of s.ports) {
      const target = targetPortOn(pod, p);
      if (target !== undefined) return target;
    }
  }
  return pod.containerPorts[0]?.port ?? null;
}

/** The port a Service port sends to on `pod`: its number, or the pod's container port of that name; undefined for a name it lacks. */
function targetPortOn(pod: PodInfo, p: ServicePort): number | undefined {
  return typeof p.targetPort === "number" ? p.targetPort : pod.containerPorts.find((c) => c.name === p.targetPort)?.port;
}

export function computeProxyConfig(
  world: MeshWorld,
  pod: PodInfo,
  resolved: ResolvedFilters,
  settings: ProxySettings = DEFAULT_SETTINGS,
): ProxyConfigInput {
  const services = [...world.services.values()].sort((a, b) => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name));
  const clusters: ClusterInput[] = [];
  const virtualHosts: VirtualHostInput[] = [];
  const invalid: InvalidClusters = new Map();
  for (const s of services) {
    if (isExternal(s)) continue;
    for (const port of s.ports) {
      clusters.push(outboundCluster(world, s, port, settings));
      virtualHosts.push(outboundVirtualHost(world, s, port, domainsOf(s, port, pod, settings), pod, settings, invalid));
    }
  }
  // An externalName that is also a Service's own name stays that Service's; where two
  // ExternalName Services declare one host on one port, the first by namespace/name has it.
  const external = services
    .filter(isExternal)
    .flatMap((s) => externalPorts(s).map((port) => ({ s, port, own: externalDomains(namesOf(s, pod, settings), port) })));
  const taken = new Set([...virtualHosts.flatMap((vh) => vh.domains), ...external.flatMap((e) => e.own)]);
  for (const { s, port, own } of external) {
    const host = externalDomains([s.externalName], port).filter((d) => !taken.has(d));
    for (const d of host) taken.add(d);
    clusters.push(externalCluster(outboundClusterName(s, port, settings), s, port, serviceFqdn(s, settings)));
    virtualHosts.push(outboundVirtualHost(world, s, port, [...own, ...host], pod, settings, invalid));
  }
  clusters.push(...[...invalid.values()].sort((a, b) => (a.name < b.name ? -1 : 1)));
  // Last: "*" matches only hosts no Service's virtual host names.
  if (settings.outboundTraffic === "ALLOW_ANY") {
    clusters.push({ name: PASSTHROUGH_CLUSTER, passthrough: true, endpoints: [] });
    virtualHosts.push({
      name: PASSTHROUGH_CLUSTER,
      domains: ["*"],
      routes: [{ name: PASSTHROUGH_CLUSTER, backends: [{ cluster: PASSTHROUGH_CLUSTER }] }],
    });
  }
  const own = servicesOf(world, pod)[0];
  const refused = settings.outboundTraffic === "REGISTRY_ONLY" ? { noRouteReason: REGISTRY_ONLY_REASON } : {};
  const listeners: ProxyConfigInput["listeners"] = [
    // Loopback only: the app's redirected connections arrive on 127.0.0.1 (REDIRECT maps locally
    // made ones there), and this listener speaks with the pod's identity, so a caller from the
    // network must never reach it (weft-init leaves the proxy's own ports unredirected).
    { name: "outbound", direction: "Outbound", address: OUTBOUND_ADDRESS, port: settings.outboundPort, virtualHosts, ...refused },
  ];
  const access = accessFor(world, pod);
  const inbound = (
    name: string,
    address: string,
    port: number,
    app: { address: string; port: number },
    protocol: PortProtocol = "http",
  ): ProxyConfigInput["listeners"][number] => {
    const cluster = `inbound|${app.port}||`;
    clusters.push({
      name: cluster,
      service: own ? serviceFqdn(own, settings) : "",
      namespace: pod.namespace,
      workload: pod.workload,
      endpoints: [app],
    });
    return {
      name,
      direction: "Inbound",
      address,
      port,
      // Peers with a sidecar come over mTLS; plaintext callers are still served (as Istio's
      // default) unless an AccessPolicy asks for STRICT.
      tls: access.strict ? "STRICT" : "PERMISSIVE",
      ...(access.authorization ? { authorization: access.authorization } : {}),
      ...carrying(protocol, [{ name: "inbound", domains: ["*"], routes: [{ name: "app", backends: [{ cluster }] }] }], cluster),
    };
  };
  if (pod.capture) {
    // weft-init keeps each captured port in the port it delivers to (P + 32768): one listener per
    // port the app serves, each to that port. A captured port with no listener is refused. Where
    // Services are captured too, their listeners hold ClusterIP:P + 32768, so these take the pod's
    // own IP rather than every address; until the pod has one, they wait (refused meanwhile).
    const address = pod.serviceCapture ? pod.ip : settings.listenAddress;
    if (address !== "") {
      for (const { port, protocol } of servedPorts(world, pod).filter((p) => capturesPort(pod.capture, p.port)))
        listeners.push(inbound(`inbound|${port}`, address, capturedListenerPort(port), { address: "127.0.0.1", port }, protocol));
    }
  } else {
    const app = appPort(world, pod);
    if (app !== null)
      listeners.push(
        inbound("inbound", settings.listenAddress, settings.inboundPort, { address: pod.app?.address ?? "127.0.0.1", port: app }),
      );
  }
  if (pod.serviceCapture) listeners.push(...serviceListeners(pod.serviceCapture, services, virtualHosts, settings));
  return {
    // No pod name in it (the sidecar adds its own node id): replicas of a workload get the
    // same configuration, computed and encoded once (but for a pod capturing Services, whose
    // inbound listeners name its IP).
    node: {
      workload: pod.workload,
      namespace: pod.namespace,
      serviceAccount: pod.serviceAccount,
      trustDomain: settings.trustDomain,
      service: own ? serviceFqdn(own, settings) : "",
    },
    listeners,
    clusters,
    filters: filtersFor(world, pod, resolved),
  };
}
