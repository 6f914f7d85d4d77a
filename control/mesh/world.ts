// What the control plane knows about the mesh, in the shape the configuration computation
// needs and nothing more: Services, their ready endpoints, pods, and weft's resources. It is
// filled from the Kubernetes API (control/kubernetes) or, in local mode, from files; the
// computation (proxy-config.ts) does not know which.
import { MAX_CAPTURED_PORT } from "../init/rules.ts";
import type { HeaderModifier, RedirectInput, RewriteInput, RouteMatch } from "../../proxy/config/schema.ts";
import type { AccessPolicy } from "../resources/access-policy.ts";
import type { TrafficPolicy } from "../resources/traffic-policy.ts";
import type { WasmFilter } from "../resources/wasm-filter.ts";

export interface ServicePort {
  name: string;
  port: number;
  /** A number, or the name of a container port. */
  targetPort: number | string;
  appProtocol?: string;
}

export interface ServiceInfo {
  namespace: string;
  name: string;
  clusterIP: string;
  ports: ServicePort[];
  /** Pods behind it; empty: a Service without a selector (endpoints managed by hand). */
  selector: Record<string, string>;
  /** A Service of type ExternalName: the host outside the mesh it declares (external-services.ts). */
  externalName?: string;
}

export interface EndpointInfo {
  address: string;
  /** The pod behind the address, when the EndpointSlice names one. */
  pod?: { namespace: string; name: string };
}

/** One EndpointSlice's ready endpoints, by port name. */
export interface EndpointSliceInfo {
  namespace: string;
  name: string;
  service: string;
  ports: { name: string; port: number }[];
  endpoints: EndpointInfo[];
}

export interface PodInfo {
  namespace: string;
  name: string;
  labels: Record<string, string>;
  /**
   * The workload the pod belongs to, as Istio's metrics name it (source_workload,
   * destination_workload): its Deployment (or StatefulSet, DaemonSet, Job...), its LocalWorkload
   * in local mode, the pod itself when nothing owns it.
   */
  workload: string;
  serviceAccount: string;
  ip: string;
  /** Has a weft sidecar (the injector's status annotation): peers talk to it over mTLS. */
  inMesh: boolean;
  /** The app's container ports, in the order the pod lists them. */
  containerPorts: { name?: string; port: number }[];
  /**
   * The inbound ports the pod's weft-init captures (its flags: the injector wrote them, and they
   * hold for the pod's whole life). Each captured port P arrives at the sidecar on P + 32768
   * (control/init/rules.ts), where the sidecar needs a listener for it. Absent: no weft-init
   * flags to read (local mode, or a pod redirected by hand), where one inbound listener serves
   * the app and every port counts as captured. Traffic to a port not captured reaches the app
   * directly, in plaintext, so peers must not send it mTLS.
   */
  capture?: InboundCapture;
  /**
   * The Service ports whose TCP the pod's weft-init sends to the sidecar (its --service-cidr):
   * the app's connection to port P of a Service's address arrives at that address, P + 32768,
   * where the sidecar needs a listener for that Service port. Absent: only the outbound
   * listener's ports (80, 8080) reach the sidecar.
   */
  serviceCapture?: ServiceCapture;
  /**
   * Where the sidecar reaches the app when not on the pod's loopback at the Service's target port
   * (local mode: processes share one host).
   */
  app?: { address: string; port: number };
}

/** weft-init's --include-inbound-ports ("*": every port up to MAX_CAPTURED_PORT) less its --exclude-inbound-ports. */
export interface InboundCapture {
  ports: number[] | "*";
  excluded: number[];
}

/** weft-init's --service-cidr, and the ports it leaves to the outbound listener or to the app. */
export interface ServiceCapture {
  cidrs: string[];
  /** --include-outbound-ports and --exclude-outbound-ports: never sent to a Service listener. */
  kept: number[];
}

/** Whether the app's TCP to a Service's `port` arrives at the sidecar's listener for that Service port. */
export const capturesServicePort = (c: ServiceCapture, port: number): boolean => port <= MAX_CAPTURED_PORT && !c.kept.includes(port);

/** Whether incoming TCP to `port` goes through the sidecar of a pod that captures so (absent: every port). */
export function capturesPort(c: InboundCapture | undefined, port: number): boolean {
  if (!c) return true;
  if (c.excluded.includes(port)) return false;
  return c.ports === "*" ? port <= MAX_CAPTURED_PORT : c.ports.includes(port);
}

/** A backend of an HTTPRoute rule: a Service port, by weight. */
export interface RouteBackend {
  namespace: string;
  name: string;
  port: number;
  weight: number;
  /** "group/Kind" of a backendRef that is not a Service: weft cannot send to it. */
  kind?: string;
  /** The backendRef's own header modifiers, applied after the rule's to its share of requests. */
  requestHeaders?: HeaderModifier;
  responseHeaders?: HeaderModifier;
}

/** One rule of an HTTPRoute, in the proxy's own terms where they coincide (Gateway API's). */
export interface RouteRule {
  matches: RouteMatch[];
  backends: RouteBackend[];
  requestHeaders?: HeaderModifier;
  responseHeaders?: HeaderModifier;
  /** RequestRedirect: the rule answers with it and its backends are not used. */
  redirect?: RedirectInput;
  /** URLRewrite: the Host and path its requests go on with. */
  rewrite?: RewriteInput;
  /** RequestMirror: a copy of this share of its requests goes to the backend, whose answer is ignored. */
  mirror?: { backend: RouteBackend; percent: number };
  /** What the rule asks that weft does not do (filters, per-backend filters): its requests get 500 instead. */
  unsupported?: string[];
  timeoutMs?: number;
}

/** An HTTPRoute attached to Services (GAMMA): it replaces their default route for mesh clients. */
export interface HttpRouteInfo {
  namespace: string;
  name: string;
  /** metadata.creationTimestamp (RFC 3339): an older route's rules win ties (Gateway API). Absent in local mode. */
  createdAt?: string;
  /** The Services it is attached to, with the port when the parentRef names one. */
  parents: { namespace: string; name: string; port?: number }[];
  rules: RouteRule[];
}

/** A keyed collection per kind; keys are "namespace/name". */
export interface MeshWorld {
  /** Namespace name -> its labels. */
  namespaces: Map<string, Record<string, string>>;
  services: Map<string, ServiceInfo>;
  endpointSlices: Map<string, EndpointSliceInfo>;
  pods: Map<string, PodInfo>;
  httpRoutes: Map<string, HttpRouteInfo>;
  wasmFilters: Map<string, WasmFilter>;
  trafficPolicies: Map<string, TrafficPolicy>;
  accessPolicies: Map<string, AccessPolicy>;
}

export const keyOf = (namespace: string, name: string) => `${namespace}/${name}`;

export function emptyWorld(): MeshWorld {
  return {
    namespaces: new Map(),
    services: new Map(),
    endpointSlices: new Map(),
    pods: new Map(),
    httpRoutes: new Map(),
    wasmFilters: new Map(),
    trafficPolicies: new Map(),
    accessPolicies: new Map(),
  };
}

export function labelsMatch(selector: Record<string, string>, labels: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(selector)) if (labels[k] !== v) return false;
  return true;
}

/** The Services in the pod's namespace whose selector picks the pod. */
export function servicesOf(world: MeshWorld, pod: PodInfo): ServiceInfo[] {
  const found: ServiceInfo[] = [];
  for (const s of world.services.values()) {
    if (s.namespace === pod.namespace && Object.keys(s.selector).length > 0 && labelsMatch(s.selector, pod.labels)) found.push(s);
  }
  return found.sort((a, b) => a.name.localeCompare(b.name));
}

/** Whether a resource's selector / targetRefs / neither picks the pod (targets.ts). */
export function targets(
  world: MeshWorld,
  namespace: string,
  spec: { selector?: { matchLabels: Record<string, string> }; targetRefs?: { name: string }[] },
  pod: PodInfo,
): boolean {
  if (namespace !== pod.namespace) return false;
  if (spec.selector) return labelsMatch(spec.selector.matchLabels, pod.labels);
  if (spec.targetRefs) {
    const mine = new Set(servicesOf(world, pod).map((s) => s.name));
    return spec.targetRefs.some((ref) => mine.has(ref.name));
  }
  return true;
}
