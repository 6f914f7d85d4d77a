// The pod annotations the injector reads (docs/injection.md shows each with an example), checked
// by one schema, so that a bad value is refused with the annotation, the value and what is
// allowed, never silently ignored.
import * as v from "valibot";
import type { Parsed } from "../resources/parse.ts";
import { Quantity } from "./quantity.ts";
import { RUNTIMES } from "./settings.ts";

export const INJECT = "weft.dev/inject";
/** The namespace label values that turn injection on: Istio's "enabled", and the "true" pods use. */
export const NAMESPACE_INJECT_VALUES = ["enabled", "true"];
export const EXCLUDE_INBOUND_PORTS = "weft.dev/exclude-inbound-ports";
export const EXCLUDE_OUTBOUND_PORTS = "weft.dev/exclude-outbound-ports";
export const PROXY_CPU = "weft.dev/proxy-cpu";
export const PROXY_MEMORY = "weft.dev/proxy-memory";
export const PROXY_MEMORY_LIMIT = "weft.dev/proxy-memory-limit";
export const RUNTIME = "weft.dev/runtime";
/** Written by the injector: what it injected. A pod that has it is never injected again. */
export const STATUS = "weft.dev/status";
/**
 * Written by the injector, unless the pod has its own: where Prometheus scrapes the sidecar's
 * metrics, the annotations the community's kubernetes-pods scrape job (and Istio's) relabels on.
 */
export const PROMETHEUS_SCRAPE = "prometheus.io/scrape";
export const PROMETHEUS_PORT = "prometheus.io/port";
export const PROMETHEUS_PATH = "prometheus.io/path";

export const ANNOTATIONS = [
  INJECT,
  EXCLUDE_INBOUND_PORTS,
  EXCLUDE_OUTBOUND_PORTS,
  PROXY_CPU,
  PROXY_MEMORY,
  PROXY_MEMORY_LIMIT,
  RUNTIME,
  STATUS,
  PROMETHEUS_SCRAPE,
  PROMETHEUS_PORT,
  PROMETHEUS_PATH,
] as const;

const quoted = (values: readonly string[]) => values.map((x) => `"${x}"`).join(", ");

const Ports = v.pipe(
  v.string(),
  v.regex(/^\s*(\d+\s*(,\s*\d+\s*)*)?$/, 'must be a comma-separated list of port numbers, like "8081,9090"'),
  v.transform((s) =>
    s
      .split(",")
      .map((p) => p.trim())
      .filter(Boolean)
      .map(Number),
  ),
  v.check((ports) => ports.every((p) => p >= 1 && p <= 65535), "must list ports between 1 and 65535"),
);

const PodAnnotations = v.looseObject({
  [INJECT]: v.optional(v.picklist(["true", "false"], `must be ${quoted(["true", "false"])}`)),
  [EXCLUDE_INBOUND_PORTS]: v.optional(Ports),
  [EXCLUDE_OUTBOUND_PORTS]: v.optional(Ports),
  [PROXY_CPU]: v.optional(Quantity("100m")),
  [PROXY_MEMORY]: v.optional(Quantity("128Mi")),
  [PROXY_MEMORY_LIMIT]: v.optional(Quantity("512Mi")),
  [RUNTIME]: v.optional(v.picklist(RUNTIMES, `must be one of ${quoted(RUNTIMES)}`)),
});

export type PodAnnotations = v.InferOutput<typeof PodAnnotations>;

/**
 * The weft annotations of a pod, checked; a problem reads `pod annotation
 * weft.dev/runtime="python": must be one of "node", "deno", "bun"`.
 */
export function readAnnotations(annotations: Record<string, string>): Parsed<PodAnnotations> {
  const result = v.safeParse(PodAnnotations, annotations);
  if (result.success) return { ok: true, value: result.output };
  return {
    ok: false,
    problems: result.issues.map((issue) => {
      const key = String(issue.path?.[0]?.key);
      return `pod annotation ${key}=${JSON.stringify(annotations[key])}: ${issue.message}`;
    }),
  };
}
