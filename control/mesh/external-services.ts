// Services of type ExternalName: how a user declares a host outside the mesh (docs/egress.md),
// with a kind Kubernetes already has. Such a Service registers its externalName with the mesh, on
// the Service's ports, or on any port when it declares none (as Kubernetes, whose ExternalName is
// a DNS CNAME, ignores ports). Under REGISTRY_ONLY these are the only outside hosts sidecars let
// through. The Service's own names (payments-api.shop, ...svc.cluster.local) are aliases of the
// host, as the cluster's DNS makes them: a request for them goes to the externalName, keeping the
// Host the app gave, as it would through DNS.
import type { ProxyConfigInput } from "../../proxy/config/schema.ts";
import type { ServiceInfo, ServicePort } from "./world.ts";

type ClusterInput = ProxyConfigInput["clusters"][number];

export type ExternalService = ServiceInfo & { externalName: string };

export const isExternal = (s: ServiceInfo): s is ExternalService => s.externalName !== undefined;

// Kubernetes' rule for spec.externalName: a DNS-1123 subdomain, a trailing dot allowed.
const DNS_SUBDOMAIN = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** A Service's spec.externalName as the host requests go to, or null when it is not a host name. */
export function externalHost(value: unknown): string | null {
  if (typeof value !== "string") return null;
  const host = value.toLowerCase().replace(/\.$/, "");
  return DNS_SUBDOMAIN.test(host) ? host : null;
}

/** The ports an ExternalName Service registers its host on: its own, or null for any port when it declares none. */
export const externalPorts = (s: ExternalService): (ServicePort | null)[] => (s.ports.length > 0 ? s.ports : [null]);

/**
 * Virtual host domains for names of an ExternalName Service (its own, or its externalName) on
 * one port: "name:80" is also what an authority without a port matches. Never the bare name for
 * one port, which the router would match on every port: a port the Service does not declare is
 * refused under REGISTRY_ONLY, and passed through to that port under ALLOW_ANY. On any port
 * (null), only the bare name, which matches them all.
 */
export const externalDomains = (names: string[], port: ServicePort | null): string[] =>
  port === null ? names : names.map((n) => `${n}:${port.port}`);

/**
 * The cluster requests for the Service, by any of its names or by its externalName, go to: a
 * passthrough to the externalName at the Service's port, or at the request's own port when the
 * Service declares none. Passthrough keeps the proxy's refusal of the pod itself, so an
 * externalName that resolves to the pod cannot loop back into the sidecar.
 */
export function externalCluster(name: string, s: ExternalService, port: ServicePort | null, service: string): ClusterInput {
  return {
    name,
    service,
    namespace: s.namespace,
    workload: s.name,
    passthrough: true,
    passthroughTo: { host: s.externalName, ...(port ? { port: port.port } : {}) },
    endpoints: [],
  };
}
