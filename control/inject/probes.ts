// The app containers' kubelet probes, pointed at the sidecar (proxy/admin/app-health.ts says
// why): each httpGet or tcpSocket probe of an app port becomes an httpGet of the sidecar's admin
// port at /app-health/CONTAINER/KIND, and the original goes to the sidecar in WEFT_APP_PROBES.
// Probes with a `host` (not this pod), exec and grpc probes are left as they are.
import type { V1Container, V1Probe } from "@kubernetes/client-node";
import { APP_HEALTH_PREFIX, PROBE_KINDS, type AppProbe, type AppProbes } from "../../proxy/admin/app-health.ts";

export interface ProbeRewrite {
  /** JSON Patch adds that replace probes (an add of an existing member replaces it). */
  replaced: { path: string; value: V1Probe }[];
  /** What the sidecar checks, by CONTAINER/KIND. */
  probes: AppProbes;
}

/** A probe's port as a number: itself, or the container port of that name; null when the pod names none. */
function portOf(port: number | string | undefined, container: V1Container): number | null {
  if (typeof port === "number") return port;
  if (port === undefined) return null;
  if (/^\d+$/.test(port)) return Number(port);
  return container.ports?.find((p) => p.name === port)?.containerPort ?? null;
}

function sidecarCheck(probe: V1Probe, container: V1Container): AppProbe | null {
  const timeoutSeconds = probe.timeoutSeconds ?? 1;
  if (probe.httpGet && !probe.httpGet.host) {
    const port = portOf(probe.httpGet.port as number | string, container);
    if (port === null) return null;
    const scheme = probe.httpGet.scheme === "HTTPS" ? "HTTPS" : "HTTP";
    const headers = (probe.httpGet.httpHeaders ?? []).map((h) => ({ name: h.name, value: h.value }));
    return { kind: "http", port, path: probe.httpGet.path || "/", scheme, headers, timeoutSeconds };
  }
  if (probe.tcpSocket && !probe.tcpSocket.host) {
    const port = portOf(probe.tcpSocket.port as number | string, container);
    return port === null ? null : { kind: "tcp", port, timeoutSeconds };
  }
  return null;
}

export function rewriteProbes(containers: readonly V1Container[], adminPort: number): ProbeRewrite {
  const rewrite: ProbeRewrite = { replaced: [], probes: {} };
  containers.forEach((container, index) => {
    for (const [field, kind] of Object.entries(PROBE_KINDS) as [keyof typeof PROBE_KINDS, string][]) {
      const probe = container[field];
      const check = probe ? sidecarCheck(probe, container) : null;
      if (!probe || !check) continue;
      rewrite.probes[`${container.name}/${kind}`] = check;
      const { httpGet: _http, tcpSocket: _tcp, ...timing } = probe;
      rewrite.replaced.push({
        path: `/spec/containers/${index}/${field}`,
        value: { ...timing, httpGet: { path: `${APP_HEALTH_PREFIX}/${container.name}/${kind}`, port: adminPort, scheme: "HTTP" } },
      });
    }
  });
  return rewrite;
}
