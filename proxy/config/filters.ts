// The WebAssembly filters a proxy runs, as the proxy's configuration names them. The pieces a
// user writes in a WasmFilter (phase, match, limits, failStrategy, ...) are exported one by
// one so that the WasmFilter resource can reuse them unchanged.
import * as v from "valibot";

const method = v.pipe(v.string(), v.regex(/^[A-Z]+$/, "must be an upper-case HTTP method"));
const port = v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(65535));
export const Sha256 = v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/, "must be a sha256 digest: 64 lower-case hex digits"));
const kubernetesName = v.pipe(
  v.string(),
  v.regex(/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/, "must be a Kubernetes object name (lower case letters, digits, '-' and '.')"),
);

/** Where in the chain a filter runs; unset means just before routing, after the three phases. */
export const FilterPhase = v.picklist(["Authn", "Authz", "Stats"]);
export const FailStrategy = v.picklist(["FailClose", "FailOpen", "FailReload"]);
export const FilterLogLevel = v.picklist(["trace", "debug", "info", "warn", "error"]);

/** One way of attaching a filter to requests; a filter with no match entries sees every request. */
export const FilterMatch = v.object({
  direction: v.optional(
    v.pipe(
      v.picklist(["Inbound", "Outbound"]),
      v.description("Inbound: requests to the selected workloads; Outbound: requests they make. Unset: both."),
    ),
  ),
  // The port the request was for, not the sidecar's listener port (15001/15006), which is the
  // same for every request and which a user never writes.
  ports: v.optional(
    v.pipe(
      v.array(port),
      v.description(
        "Ports the request was for, never the sidecar's own (15001, 15006, app port + 32768). Inbound: the workload's port the sidecar delivers it to (e.g. the containerPort 8080), however the caller named the pod. Outbound: the port of the Service or host called, from the Host header (80 when it names none). Any one matches; none: any port.",
      ),
    ),
    [],
  ),
  pathPrefixes: v.optional(
    v.pipe(
      v.array(v.pipe(v.string(), v.startsWith("/"))),
      v.description(
        "Path prefixes, each starting with /, compared character by character (/api matches /api, /api/x and /apix). Any one matches; none: any path.",
      ),
    ),
    [],
  ),
  methods: v.optional(v.pipe(v.array(method), v.description("HTTP methods in upper case. Any one matches; none: any method.")), []),
});

export const FilterLimits = v.object({
  memoryMiB: v.optional(
    v.pipe(
      v.number(),
      v.integer(),
      v.minValue(1),
      v.maxValue(4096),
      v.description("Ceiling of one filter instance's linear memory, in MiB (1-4096). A filter that needs more gets its failStrategy."),
    ),
    16,
  ),
  callTimeoutMs: v.optional(
    v.pipe(
      v.number(),
      v.minValue(0.1),
      v.maxValue(10000),
      v.description(
        "Deadline of one call into the filter (one phase of one request), in milliseconds (0.1-10000); a filter still running then gets its failStrategy.",
      ),
    ),
    5,
  ),
  bodyBytes: v.optional(
    v.pipe(
      v.number(),
      v.integer(),
      v.minValue(0),
      v.maxValue(64 * 1024 * 1024),
      v.description("Largest body buffered for the filter's body phase, in bytes (at most 64 MiB)."),
    ),
    65536,
  ),
});

export const FilterConfig = v.object({
  name: kubernetesName,
  namespace: v.optional(kubernetesName, "default"),
  /**
   * The module, loaded only if its digest is `sha256`: a local file, or without `path` fetched
   * by digest from the control plane that sent the configuration.
   */
  module: v.optional(v.object({ path: v.optional(v.pipe(v.string(), v.minLength(1))), sha256: Sha256 })),
  /**
   * Instead of a module: why the control plane has nothing it can put in force for this filter
   * (a config its schema refuses, a module that never resolved). The requests it is attached to
   * get its failStrategy, as for a module that cannot load: FailClose refuses them, so a filter
   * that cannot be applied never leaves them unchecked.
   */
  unavailable: v.optional(v.pipe(v.string(), v.minLength(1))),
  phase: v.optional(FilterPhase),
  /** Higher runs first within a phase. */
  priority: v.optional(v.pipe(v.number(), v.integer()), 0),
  config: v.optional(v.unknown(), {}),
  failStrategy: v.optional(FailStrategy, "FailClose"),
  match: v.optional(v.array(FilterMatch), []),
  limits: v.optional(FilterLimits, {}),
  logLevel: v.optional(FilterLogLevel, "info"),
});

export type FilterConfig = v.InferOutput<typeof FilterConfig>;
export type FilterMatch = v.InferOutput<typeof FilterMatch>;
export type FilterLimits = v.InferOutput<typeof FilterLimits>;
export type FilterPhase = v.InferOutput<typeof FilterPhase>;
export type FailStrategy = v.InferOutput<typeof FailStrategy>;
export type FilterLogLevel = v.InferOutput<typeof FilterLogLevel>;
