// The proxy's own API: the one object that `weft proxy --config FILE` reads and that the
// control plane pushes. Every type the proxy uses for configuration derives from here.
// Names follow Gateway API's HTTPRoute and Envoy where a user would look for them.
import * as v from "valibot";
import { Authorization } from "./authorization.ts";
import { FilterConfig } from "./filters.ts";

const port = v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(65535));
const positiveMs = v.pipe(v.number(), v.minValue(0));
const atLeast = (min: number) => v.pipe(v.number(), v.integer(), v.minValue(min));
// What kubectl explain shows for the fields a TrafficPolicy shares with this schema.
const described = <TSchema extends v.GenericSchema>(schema: TSchema, description: string) => v.pipe(schema, v.description(description));
const percent = v.pipe(v.number(), v.minValue(0), v.maxValue(100));
const headerName = v.pipe(v.string(), v.regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, "must be an HTTP header name (RFC 9110 token)"));
// What an HTTP/1.1 head carries as one byte per character (RFC 9110 field-value, with obs-text):
// a control character makes the next hop refuse the request, and a character past U+00FF is cut
// to its low byte on the wire, so "\u010d\u010a" would end the field line and start another.
const headerValue = v.pipe(
  v.string(),
  v.regex(
    /^[\t\x20-\x7e\x80-\xff]*$/,
    "must be visible ASCII, space, tab or a character from U+0080 to U+00FF: no control characters, nothing past U+00FF (percent-encode it)",
  ),
);
const regexSource = v.pipe(
  v.string(),
  v.check((s) => {
    try {
      new RegExp(s);
      return true;
    } catch {
      return false;
    }
  }, "must be a valid regular expression"),
);

export const PathMatch = v.variant("type", [
  v.object({ type: v.literal("Exact"), value: v.pipe(v.string(), v.startsWith("/")) }),
  v.object({ type: v.literal("PathPrefix"), value: v.pipe(v.string(), v.startsWith("/")) }),
  v.object({ type: v.literal("RegularExpression"), value: regexSource }),
]);

export const HeaderMatch = v.object({
  name: headerName,
  type: v.optional(v.picklist(["Exact", "RegularExpression"]), "Exact"),
  value: v.string(),
});

// Gateway API's query parameter match: the first value of the (case-sensitive) name, decoded.
export const QueryParamMatch = v.object({
  name: v.pipe(v.string(), v.minLength(1, "must name a query parameter")),
  type: v.optional(v.picklist(["Exact", "RegularExpression"]), "Exact"),
  value: v.string(),
});

export const RouteMatch = v.object({
  path: v.optional(PathMatch),
  headers: v.optional(v.array(HeaderMatch), []),
  queryParams: v.optional(v.array(QueryParamMatch), []),
  method: v.optional(v.pipe(v.string(), v.regex(/^[A-Z]+$/, "must be an upper-case HTTP method"))),
});

export const HeaderModifier = v.object({
  set: v.optional(v.array(v.object({ name: headerName, value: headerValue })), []),
  add: v.optional(v.array(v.object({ name: headerName, value: headerValue })), []),
  remove: v.optional(v.array(headerName), []),
});

export const BackendRef = v.object({
  cluster: v.string(),
  weight: v.optional(atLeast(0), 1),
  // Applied after the route's, to requests sent to this backend and their responses (Gateway
  // API's filters on a backendRef).
  requestHeaders: v.optional(HeaderModifier),
  responseHeaders: v.optional(HeaderModifier),
});

export const RetryOn = v.picklist(["connect-failure", "reset", "5xx", "gateway-error", "retriable-status-codes"]);

export const RetryPolicy = v.object({
  attempts: described(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(10)), "Retries after the first try (0-10)."),
  perTryTimeoutMs: v.optional(
    described(positiveMs, "How long each try may take, in milliseconds; unset: only the request's timeoutMs limits it."),
  ),
  retryOn: v.optional(
    described(
      v.array(RetryOn),
      "Which failures are retried: connect-failure, reset (the connection broke before a response), 5xx, gateway-error (502, 503, 504), retriable-status-codes (those in retriableStatusCodes).",
    ),
    ["connect-failure", "reset", "gateway-error"],
  ),
  retriableStatusCodes: v.optional(
    described(v.array(v.pipe(v.number(), v.integer())), "HTTP status codes retried when retryOn has retriable-status-codes."),
    [],
  ),
  backoffBaseMs: v.optional(
    described(positiveMs, "Backoff before a retry, in milliseconds: a random wait up to this, doubling with each further retry."),
    25,
  ),
  backoffMaxMs: v.optional(described(positiveMs, "Ceiling of the backoff between tries, in milliseconds."), 250),
  // Retries in flight may be at most this percentage of the cluster's active requests, or
  // minRetryConcurrency, whichever is larger (Envoy's retry budget), so retries cannot
  // multiply load on a struggling service.
  budgetPercent: v.optional(
    described(
      percent,
      "Retry budget: retries in flight may be at most this percent (0-100) of the requests in flight to the Service, or minRetryConcurrency, whichever is larger.",
    ),
    20,
  ),
  minRetryConcurrency: v.optional(described(atLeast(0), "Retries always allowed in flight at once, whatever budgetPercent says."), 3),
  // Non-idempotent methods (POST, PATCH) are retried only when the user says so.
  retryNonIdempotent: v.optional(
    described(
      v.boolean(),
      "Also retry methods that are not idempotent (POST, PATCH, ...); false: only GET, HEAD, OPTIONS, TRACE, PUT and DELETE are retried.",
    ),
    false,
  ),
  // A request body larger than this is streamed and then cannot be retried.
  bufferBytes: v.optional(
    described(atLeast(0), "Largest request body kept for a retry, in bytes; a request with a larger body is not retried."),
    65536,
  ),
});

export const FaultPolicy = v.object({
  delay: v.optional(v.object({ percent, ms: positiveMs })),
  abort: v.optional(v.object({ percent, status: v.pipe(v.number(), v.integer(), v.minValue(200), v.maxValue(599)) })),
});

export const MirrorPolicy = v.object({ cluster: v.string(), percent: v.optional(percent, 100) });

const hostname = v.pipe(v.string(), v.regex(/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/, "must be a host name, without a port or scheme"));

// Gateway API's path modifier (redirects and rewrites; routing/path-modifier.ts).
export const PathModifier = v.variant("type", [
  v.object({ type: v.literal("ReplaceFullPath"), value: v.pipe(v.string(), v.startsWith("/")) }),
  // the part of the path the route's PathPrefix matched is replaced by value
  v.object({ type: v.literal("ReplacePrefixMatch"), value: v.pipe(v.string(), v.startsWith("/")) }),
]);

// Gateway API's RequestRedirect: the route answers with this redirect and sends nothing on
// (routing/redirect.ts builds the Location). Unset parts are the request's.
export const Redirect = v.object({
  scheme: v.optional(v.picklist(["http", "https"])),
  hostname: v.optional(hostname),
  port: v.optional(v.pipe(port, v.minValue(1))),
  path: v.optional(PathModifier),
  statusCode: v.optional(v.picklist([301, 302, 303, 307, 308]), 302),
});

// Gateway API's URLRewrite: the request goes to the backends with this Host and path (the
// query kept).
export const Rewrite = v.object({
  hostname: v.optional(hostname),
  path: v.optional(PathModifier),
});

export const Route = v.object({
  name: v.optional(v.string(), ""),
  match: v.optional(RouteMatch, {}),
  // At least one, unless the route redirects (validate.ts).
  backends: v.optional(v.array(BackendRef), []),
  redirect: v.optional(Redirect),
  rewrite: v.optional(Rewrite),
  timeoutMs: v.optional(positiveMs, 15000),
  retry: v.optional(RetryPolicy),
  requestHeaders: v.optional(HeaderModifier),
  responseHeaders: v.optional(HeaderModifier),
  fault: v.optional(FaultPolicy),
  mirror: v.optional(MirrorPolicy),
});

export const VirtualHost = v.object({
  name: v.string(),
  // Host names this virtual host answers for, with or without ":port"; "*" matches any host
  // and "*.example.com" any subdomain.
  domains: v.pipe(v.array(v.string()), v.minLength(1)),
  routes: v.array(Route),
});

export const TlsMode = described(
  v.picklist(["DISABLE", "PERMISSIVE", "STRICT", "SIMPLE"]),
  "DISABLE: plaintext; PERMISSIVE: mesh mTLS or plaintext on one port; STRICT: mesh mTLS only (a client certificate from the mesh CA); SIMPLE: one-way TLS with the listener's own certificates, no client certificate asked, no plaintext.",
);

// A name a client sends as SNI (RFC 6066: a DNS name, no trailing dot) or "*." and a suffix, as
// in a certificate: the wildcard stands for one label. Any case; they match case-insensitively.
const sniHostname = v.pipe(
  v.string(),
  v.maxLength(253, "must be at most 253 characters (a DNS name)"),
  v.regex(
    /^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/,
    'must be a DNS name ("api.example.com") or a wildcard for one label ("*.example.com"): labels of letters, digits and "-", at most 63 characters each, no port, scheme or trailing dot',
  ),
);

// A certificate a SIMPLE listener presents: what a Kubernetes TLS Secret holds (tls.crt, tls.key).
export const ListenerCertificate = v.object({
  hostnames: v.optional(
    described(
      v.array(sniHostname),
      "The SNI names this certificate is presented for: exact names, or *.example.com for any one label under example.com. Empty: the default, for clients that send no SNI or a name no certificate lists.",
    ),
    [],
  ),
  certificateChain: described(v.string(), "PEM: the certificate first, then the intermediates that lead to the clients' root."),
  privateKey: described(v.string(), "PEM: the certificate's private key (PKCS#8, or EC/RSA PRIVATE KEY)."),
});

export const Listener = v.object({
  name: v.string(),
  direction: v.picklist(["Inbound", "Outbound"]),
  address: v.optional(v.string(), "0.0.0.0"),
  port,
  // Inbound: whether peers must present a mesh certificate (STRICT), may (PERMISSIVE) or not.
  // SIMPLE: TLS with the listener's own certificates (a gateway's), for clients outside the mesh.
  tls: v.optional(TlsMode, "DISABLE"),
  // With SIMPLE, and only then (validate.ts): chosen by the client's SNI, an exact hostname first,
  // then a wildcard, else the first certificate without hostnames, else the first certificate.
  certificates: v.optional(
    described(
      v.array(ListenerCertificate),
      "With tls SIMPLE: the certificates the listener presents, chosen by the client's SNI: a certificate listing the name, then one listing *. and its parent, else the first without hostnames, else the first.",
    ),
  ),
  // Also accept HTTP/2: with prior knowledge (h2c) in plaintext, by ALPN "h2" over TLS.
  http2: v.optional(v.boolean(), true),
  virtualHosts: v.array(VirtualHost),
  // TCP: each connection's bytes go as they are to one endpoint of this cluster, after the
  // AccessPolicies judge the peer's identity. Without virtual hosts, every connection; with them
  // and detectHttpMs, a connection whose first bytes are not an HTTP request, or that sends
  // nothing for detectHttpMs (a server-first protocol); HTTP ones go to the virtual hosts.
  tcp: v.optional(v.object({ cluster: v.string(), detectHttpMs: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1))) })),
  // Said in the 404 when no virtual host matches: the control plane explains its outbound traffic policy.
  noRouteReason: v.optional(v.string()),
  // Inbound: which peers may call the workload (AccessPolicy); checked before any filter runs.
  authorization: v.optional(Authorization),
});

export const Endpoint = v.object({
  address: v.string(),
  port,
  weight: v.optional(atLeast(1), 1),
  labels: v.optional(v.record(v.string(), v.string()), {}),
});

const lbPolicy = <const TPolicy extends "RoundRobin" | "LeastRequest" | "ConsistentHash">(policy: TPolicy) =>
  described(
    v.literal(policy),
    "RoundRobin: each endpoint in turn; LeastRequest: the one of two random endpoints with fewer requests in flight; ConsistentHash: by the value of a request header, so equal values go to the same endpoint.",
  );

export const LoadBalancer = v.variant("policy", [
  v.object({ policy: lbPolicy("RoundRobin") }),
  v.object({ policy: lbPolicy("LeastRequest") }),
  v.object({
    policy: lbPolicy("ConsistentHash"),
    header: described(headerName, "With ConsistentHash: the request header whose value picks the endpoint, e.g. x-user-id."),
  }),
]);

export const OutlierDetection = v.object({
  consecutive5xx: v.optional(described(atLeast(0), "Eject an endpoint after this many 5xx responses in a row (0: never for 5xx)."), 5),
  consecutiveConnectFailures: v.optional(
    described(atLeast(0), "Eject an endpoint after this many failed connection attempts in a row (0: never for these)."),
    3,
  ),
  baseEjectionMs: v.optional(
    described(positiveMs, "How long an ejection lasts, in milliseconds, times the number of times the endpoint has been ejected."),
    30000,
  ),
  maxEjectionMs: v.optional(described(positiveMs, "Longest ejection, in milliseconds."), 300000),
  maxEjectionPercent: v.optional(described(percent, "At most this percent (0-100) of the Service's endpoints are ejected at once."), 50),
});

export const CircuitBreaker = v.object({
  maxConnections: v.optional(described(atLeast(1), "Most connections open to the Service's endpoints at once."), 1024),
  maxPendingRequests: v.optional(described(atLeast(0), "Most requests waiting for a connection; more fail at once with 503."), 1024),
  maxRequests: v.optional(described(atLeast(1), "Most requests in flight to the Service at once; more fail at once with 503."), 1024),
});

export const UpstreamTls = v.object({
  // The SPIFFE IDs the server may present; the host name is not checked, the identity is.
  identities: v.pipe(v.array(v.pipe(v.string(), v.startsWith("spiffe://"))), v.minLength(1)),
  sni: v.optional(v.string()),
});

export const Cluster = v.object({
  name: v.string(),
  // Labels for metrics: the destination as Istio's standard metrics name it.
  service: v.optional(v.string(), ""),
  namespace: v.optional(v.string(), ""),
  workload: v.optional(v.string(), ""),
  protocol: v.optional(v.picklist(["http1", "http2"]), "http1"),
  endpoints: v.array(Endpoint),
  // The endpoint is the request's own authority (host[:port], port 80 by default): hosts outside
  // the mesh, reached as the app asked (Istio's PassthroughCluster). Its connections are not pooled.
  passthrough: v.optional(v.boolean(), false),
  // With passthrough: this host instead of the authority's, at `port` or else the authority's
  // port, the Host header unchanged (a Kubernetes ExternalName Service: docs/egress.md).
  passthroughTo: v.optional(
    v.object({
      host: v.pipe(
        v.string(),
        v.regex(/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/, "must be a host name or IPv4 address, without a port or scheme"),
      ),
      port: v.optional(v.pipe(port, v.minValue(1))),
    }),
  ),
  loadBalancer: v.optional(LoadBalancer, { policy: "RoundRobin" }),
  connectTimeoutMs: v.optional(positiveMs, 5000),
  idleTimeoutMs: v.optional(positiveMs, 60000),
  maxIdleConnectionsPerEndpoint: v.optional(atLeast(0), 64),
  circuitBreaker: v.optional(CircuitBreaker, {}),
  outlierDetection: v.optional(OutlierDetection),
  tls: v.optional(UpstreamTls),
  // A backend the control plane could not resolve (an HTTPRoute backendRef naming a Service that
  // does not exist): requests routed here get 500 with this reason and no connection is made, so
  // only this backend's share of a split fails, as the Gateway API asks. Its endpoints are never used.
  invalid: v.optional(v.pipe(v.string(), v.minLength(1))),
});

export const Identity = v.object({
  // PEM text; the control plane pushes these, a static file may name files instead.
  certificateChain: v.string(),
  privateKey: v.string(),
  trustBundle: v.string(),
});

export const Limits = v.object({
  maxRequestHeadBytes: v.optional(atLeast(256), 65536),
  maxHeaderCount: v.optional(atLeast(1), 100),
  // 0: no limit. Bodies are streamed, so their size costs no memory; a limit is policy.
  maxRequestBodyBytes: v.optional(atLeast(0), 0),
  maxConcurrentStreams: v.optional(atLeast(1), 256),
  headerTimeoutMs: v.optional(positiveMs, 10000),
  idleTimeoutMs: v.optional(positiveMs, 300000),
  // A request body that stops arriving for this long is refused (408), as nginx's client_body_timeout; 0 = none.
  bodyIdleTimeoutMs: v.optional(positiveMs, 60000),
  drainTimeoutMs: v.optional(positiveMs, 20000),
});

export const NodeInfo = v.object({
  id: v.optional(v.string(), "weft-proxy"),
  workload: v.optional(v.string(), "unknown"),
  namespace: v.optional(v.string(), "default"),
  serviceAccount: v.optional(v.string(), "default"),
  trustDomain: v.optional(v.string(), "cluster.local"),
  service: v.optional(v.string(), ""),
});

export const ProxyConfig = v.object({
  version: v.optional(v.string(), "0"),
  node: v.optional(NodeInfo, {}),
  admin: v.optional(v.object({ address: v.optional(v.string(), "127.0.0.1"), port: v.optional(port, 15000) }), {}),
  listeners: v.array(Listener),
  clusters: v.array(Cluster),
  identity: v.optional(Identity),
  limits: v.optional(Limits, {}),
  /** WebAssembly filters, in any order: the chain is ordered by phase, priority, then namespace/name. */
  filters: v.optional(v.array(FilterConfig), []),
  accessLog: v.optional(v.picklist(["stdout", "off"]), "stdout"),
});

export type ProxyConfig = v.InferOutput<typeof ProxyConfig>;
export type ProxyConfigInput = v.InferInput<typeof ProxyConfig>;
export type Listener = v.InferOutput<typeof Listener>;
export type VirtualHost = v.InferOutput<typeof VirtualHost>;
export type Route = v.InferOutput<typeof Route>;
export type RouteMatch = v.InferOutput<typeof RouteMatch>;
export type BackendRef = v.InferOutput<typeof BackendRef>;
export type PathMatch = v.InferOutput<typeof PathMatch>;
export type Redirect = v.InferOutput<typeof Redirect>;
export type RedirectInput = v.InferInput<typeof Redirect>;
export type PathModifier = v.InferOutput<typeof PathModifier>;
export type RewriteInput = v.InferInput<typeof Rewrite>;
export type HeaderModifier = v.InferOutput<typeof HeaderModifier>;
export type RetryPolicy = v.InferOutput<typeof RetryPolicy>;
export type Cluster = v.InferOutput<typeof Cluster>;
export type Endpoint = v.InferOutput<typeof Endpoint>;
export type LoadBalancer = v.InferOutput<typeof LoadBalancer>;
export type OutlierDetection = v.InferOutput<typeof OutlierDetection>;
export type Identity = v.InferOutput<typeof Identity>;
export type ListenerCertificate = v.InferOutput<typeof ListenerCertificate>;
export type Limits = v.InferOutput<typeof Limits>;
export type NodeInfo = v.InferOutput<typeof NodeInfo>;
