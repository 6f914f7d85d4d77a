// What the request path reports, once per request and per connection. Metrics, the
// access log and tracing all consume these records; the request path knows none of them.

export type Direction = "inbound" | "outbound";

/**
 * Why a request did not get an upstream answer, in Envoy's response-flag vocabulary so
 * that operators can grep for familiar codes.
 */
export type ResponseFlag =
  | "" // an upstream answered
  | "NR" // no route matched
  | "UH" // no healthy endpoint
  | "UF" // upstream connection failure
  | "UC" // upstream connection closed or reset mid-request
  | "UT" // upstream request timeout
  | "UO" // overflow: circuit breaker open
  | "URX" // retries exhausted
  | "FI" // fault injection abort
  | "RBAC" // refused by an access policy
  | "DC" // downstream closed before the response finished
  | "DPE"; // downstream protocol error

export interface PeerInfo {
  /** SPIFFE ID, or "" for a plaintext or unauthenticated peer. */
  principal: string;
  workload: string;
  namespace: string;
}

export interface DestinationInfo {
  service: string;
  namespace: string;
  workload: string;
  principal: string;
  cluster: string;
}

export interface RequestRecord {
  direction: Direction;
  startTime: number; // ms since epoch
  durationMs: number;
  method: string;
  authority: string;
  path: string;
  protocol: "HTTP/1.1" | "HTTP/1.0" | "HTTP/2";
  status: number; // 0 when no response was sent
  requestBytes: number;
  responseBytes: number;
  requestId: string;
  traceparent: string;
  userAgent: string;
  route: string;
  source: PeerInfo;
  destination: DestinationInfo;
  upstreamAddress: string;
  attempts: number;
  responseFlag: ResponseFlag;
  mtls: boolean;
  // Added by telemetry (all optional, so existing producers still type-check):
  /** The request was gRPC (content-type application/grpc*): request_protocol="grpc". */
  grpc?: boolean;
  /** grpc-status from the response trailers (or trailers-only headers), when there was one. */
  grpcStatus?: number;
  /** What startTrace() returned for this request; request() ends its span. */
  trace?: RequestTrace;
}

/**
 * The trace context of one request through the proxy, from Telemetry.startTrace(). The proxy
 * forwards `traceparent` (and `tracestate` when not "") upstream in place of the incoming ones.
 */
export interface RequestTrace {
  readonly traceId: string;
  /** The proxy's own span: the parent id in the forwarded traceparent. */
  readonly spanId: string;
  /** The incoming span id, or "" when the proxy started the trace. */
  readonly parentSpanId: string;
  readonly sampled: boolean;
  /** The header value to forward upstream: same trace id, the proxy's span id. */
  readonly traceparent: string;
  /** The incoming tracestate, passed through; "" when none or when the trace was restarted. */
  readonly tracestate: string;
}

/** Optional details of a connection, for the istio_tcp_* labels. */
export interface ConnectionInfo {
  /** The remote peer (downstream on inbound, upstream on outbound). */
  peer?: PeerInfo;
  mtls?: boolean;
  /** Outbound: the destination service name and namespace, when known. */
  service?: string;
  serviceNamespace?: string;
}

/** Counts an opaque TCP connection's bytes, as Istio's istio_tcp_received_bytes_total and istio_tcp_sent_bytes_total do. */
export interface ConnectionMeter {
  /** Bytes from the client (downstream) to the server. */
  received(bytes: number): void;
  /** Bytes from the server back to the client. */
  sent(bytes: number): void;
}

export interface Telemetry {
  /**
   * Called when a request's head has been parsed, before it is forwarded: validates the
   * incoming traceparent (or starts a trace), starts the proxy's span when a tracer provider
   * is registered, and returns the traceparent to forward upstream. Pass the result as
   * `record.trace` to request().
   */
  startTrace(direction: Direction, traceparent: string | undefined, tracestate: string | undefined, startTime?: number): RequestTrace;
  request(record: RequestRecord): void;
  /** Counts a connection in; the meter counts its bytes where it is carried as opaque TCP. */
  connectionOpened(direction: Direction, info?: ConnectionInfo): ConnectionMeter;
  connectionClosed(direction: Direction, info?: ConnectionInfo): void;
  upstreamError(cluster: string, reason: "connect" | "reset" | "timeout" | "tls" | "protocol" | "overflow"): void;
  /** An endpoint ejected by outlier detection (passive health checking). */
  outlierEjected(cluster: string, reason: string): void;
  /** A downstream connection refused at the TLS layer, before any request (see TlsRefusal). */
  tlsRefused(listener: string, reason: string): void;
}
