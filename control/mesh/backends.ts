// Whether an HTTPRoute backendRef names a Service port that exists. One answer for the
// configuration (an unresolved backend's share of requests gets 500: proxy-config.ts) and for
// the route's status (ResolvedRefs=False, BackendNotFound: route-status.ts), so they agree.
import { keyOf, type MeshWorld, type RouteBackend, type ServiceInfo, type ServicePort } from "./world.ts";

export type ResolvedBackend = { service: ServiceInfo; port: ServicePort; problem?: undefined } | { problem: string };

export function resolveBackend(world: MeshWorld, b: RouteBackend): ResolvedBackend {
  if (b.kind !== undefined) return { problem: `backendRef ${b.name} is a ${b.kind}; weft sends only to Services` };
  const service = world.services.get(keyOf(b.namespace, b.name));
  if (!service) return { problem: `Service ${b.namespace}/${b.name} does not exist` };
  const port = service.ports.find((p) => p.port === b.port);
  if (!port)
    return {
      problem: `Service ${b.namespace}/${b.name} has no port ${b.port} (it has ${service.ports.map((p) => p.port).join(", ") || "none"})`,
    };
  return { service, port };
}
