// Kubernetes objects as the mesh model needs them (control/mesh/world.ts).
import type { V1EndpointSlice, V1Pod, V1Service } from "@kubernetes/client-node";
import type { EndpointSliceInfo, InboundCapture, PodInfo, ServiceCapture, ServiceInfo } from "../mesh/world.ts";
import { DEFAULT_OUTBOUND_PORTS, portsServiceCaptureKeeps } from "../init/rules.ts";
import { externalHost } from "../mesh/external-services.ts";
import { INIT_CONTAINER } from "../inject/patch.ts";

/** The annotation the injector writes on a pod it gave a sidecar (control/inject). */
export const INJECTED_ANNOTATION = "weft.dev/status";

export function serviceInfo(s: V1Service): ServiceInfo {
  // The API server refuses an ExternalName Service without a valid host; local mode says so (local/directory.ts).
  const externalName = s.spec?.type === "ExternalName" ? externalHost(s.spec.externalName) : null;
  return {
    namespace: s.metadata?.namespace ?? "default",
    name: s.metadata?.name ?? "",
    clusterIP: s.spec?.clusterIP ?? "",
    ports: (s.spec?.ports ?? [])
      .filter((p) => (p.protocol ?? "TCP") === "TCP")
      .map((p) => ({
        name: p.name ?? "",
        port: p.port,
        targetPort:
          p.targetPort === undefined
            ? p.port
            : typeof p.targetPort === "number" || /^\d+$/.test(String(p.targetPort))
              ? Number(p.targetPort)
              : String(p.targetPort),
        ...(p.appProtocol ? { appProtocol: p.appProtocol } : {}),
      })),
    // Kubernetes gives an ExternalName Service no endpoints, whatever selector it has.
    selector: externalName ? {} : (s.spec?.selector ?? {}),
    ...(externalName ? { externalName } : {}),
  };
}

export function endpointSliceInfo(e: V1EndpointSlice): EndpointSliceInfo | null {
  const service = e.metadata?.labels?.["kubernetes.io/service-name"];
  if (!service || (e.addressType !== "IPv4" && e.addressType !== "IPv6")) return null;
  return {
    namespace: e.metadata?.namespace ?? "default",
    name: e.metadata?.name ?? "",
    service,
    ports: (e.ports ?? [])
      .filter((p) => (p.protocol ?? "TCP") === "TCP" && p.port !== undefined)
      .map((p) => ({ name: p.name ?? "", port: p.port! })),
    // Serving but terminating endpoints are left out, as kube-proxy does for new connections.
    endpoints: (e.endpoints ?? [])
      .filter((ep) => ep.conditions?.ready !== false)
      .flatMap((ep) =>
        ep.addresses.slice(0, 1).map((address) => ({
          address,
          ...(ep.targetRef?.kind === "Pod" && ep.targetRef.name
            ? { pod: { namespace: ep.targetRef.namespace ?? e.metadata?.namespace ?? "default", name: ep.targetRef.name } }
            : {}),
        })),
      ),
  };
}

/**
 * The workload a pod belongs to, as Istio names it: the Deployment of a ReplicaSet's pod (the
 * ReplicaSet's name less its pod-template-hash), else the controller that owns it, else the pod.
 */
export function workloadOf(p: V1Pod): string {
  const owners = p.metadata?.ownerReferences ?? [];
  const owner = owners.find((o) => o.controller) ?? owners[0];
  if (!owner) return p.metadata?.name ?? "";
  const hash = p.metadata?.labels?.["pod-template-hash"];
  if (owner.kind === "ReplicaSet" && hash && owner.name.endsWith(`-${hash}`)) return owner.name.slice(0, -(hash.length + 1));
  return owner.name;
}

/**
 * What an injected pod's weft-init captures, read from the init container's own arguments;
 * undefined for a pod without weft-init or without the flag.
 */
export function inboundCapture(p: V1Pod): InboundCapture | undefined {
  const args = initArgs(p);
  const included = flagValue(args, "--include-inbound-ports");
  if (included === undefined) return undefined;
  return {
    ports: included.trim() === "*" ? "*" : portList(included),
    excluded: portList(flagValue(args, "--exclude-inbound-ports") ?? ""),
  };
}

/** Which Service ports an injected pod's weft-init sends to the sidecar (its --service-cidr); undefined for none. */
export function serviceCapture(p: V1Pod): ServiceCapture | undefined {
  const args = initArgs(p);
  const cidrs = (flagValue(args, "--service-cidr") ?? "").split(",").filter((c) => c.trim() !== "");
  if (cidrs.length === 0) return undefined;
  const outbound = flagValue(args, "--include-outbound-ports");
  // weft init refuses --service-cidr with --include-outbound-ports '*', so a list is all there is.
  const redirected = outbound === undefined ? DEFAULT_OUTBOUND_PORTS : portList(outbound);
  return { cidrs, kept: portsServiceCaptureKeeps(redirected, portList(flagValue(args, "--exclude-outbound-ports") ?? "")) };
}

const initArgs = (p: V1Pod): string[] => p.spec?.initContainers?.find((c) => c.name === INIT_CONTAINER)?.args ?? [];

/** The value of `--name VALUE` or `--name=VALUE` in a command line. */
function flagValue(args: string[], name: string): string | undefined {
  const at = args.findIndex((a) => a === name || a.startsWith(`${name}=`));
  if (at < 0) return undefined;
  return args[at] === name ? (args[at + 1] ?? "") : args[at]!.slice(name.length + 1);
}

const portList = (value: string) =>
  value
    .split(",")
    .filter((x) => x.trim() !== "")
    .map(Number)
    .filter((n) => Number.isInteger(n));

export function podInfo(p: V1Pod): PodInfo {
  const app = (p.spec?.containers ?? []).filter((c) => c.name !== "weft-proxy");
  const capture = inboundCapture(p);
  const services = serviceCapture(p);
  return {
    namespace: p.metadata?.namespace ?? "default",
    name: p.metadata?.name ?? "",
    labels: p.metadata?.labels ?? {},
    workload: workloadOf(p),
    serviceAccount: p.spec?.serviceAccountName ?? "default",
    ip: p.status?.podIP ?? "",
    inMesh: p.metadata?.annotations?.[INJECTED_ANNOTATION] !== undefined,
    ...(capture ? { capture } : {}),
    ...(services ? { serviceCapture: services } : {}),
    containerPorts: app.flatMap((c) =>
      (c.ports ?? [])
        .filter((port) => (port.protocol ?? "TCP") === "TCP")
        .map((port) => ({ ...(port.name ? { name: port.name } : {}), port: port.containerPort })),
    ),
  };
}
