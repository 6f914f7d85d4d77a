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
  direction: v.optional(v.picklist(["Inbound", "Outbound"])),
  /** Ports of the listener that accepted the request. */
  ports: v.optional(v.array(port), []),
  pathPrefixes: v.optional(v.array(v.pipe(v.string(), v.startsWith("/"))), []),
  methods: v.optional(v.array(method), []),
});

export const FilterLimits = v.object({
  /** Ceiling of the filter's linear memory. */
  memoryMiB: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(4096)), 16),
  /** Deadline of one phase call; a filter still running then gets its failStrategy. */
  callTimeoutMs: v.optional(v.pipe(v.number(), v.minValue(0.1), v.maxValue(10000)), 5),
  /** Largest body buffered for a filter's body phase. */
  bodyBytes: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(64 * 1024 * 1024)), 65536),
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
