// W3C trace context (https://www.w3.org/TR/trace-context/) and the proxy's spans.
//
// Every request gets a trace context: the incoming `traceparent` when it is valid, a new one
// otherwise. The proxy forwards a child `traceparent` (same trace id, the proxy's span id) and
// passes `tracestate` through. Spans go through @opentelemetry/api: when no tracer provider is
// registered (and no OTLP endpoint is configured), no span object is created at all and the
// cost is parsing one header and drawing 8 random bytes from a pool.
import { trace, ProxyTracerProvider, SpanKind, SpanStatusCode, ROOT_CONTEXT } from "@opentelemetry/api";
import type { Span, Tracer, TracerProvider, Attributes } from "@opentelemetry/api";
import type { Direction, RequestRecord, RequestTrace } from "./types.ts";

// ---------------------------------------------------------------------------------------------
// Ids

const HEX: string[] = [];
for (let i = 0; i < 256; i++) HEX.push(i.toString(16).padStart(2, "0"));

const POOL_SIZE = 4096;
let pool = new Uint8Array(POOL_SIZE);
let poolPos = POOL_SIZE;

function refill(): void {
  pool = crypto.getRandomValues(new Uint8Array(POOL_SIZE));
  poolPos = 0;
}

/** `bytes` random bytes as lower-case hex, never all zero (W3C forbids all-zero ids). */
export function randomHex(bytes: 8 | 16): string {
  for (;;) {
    if (poolPos + bytes > POOL_SIZE) refill();
    const p = pool;
    let i = poolPos;
    const end = i + bytes;
    poolPos = end;
    let s = "";
    let any = 0;
    for (; i < end; i++) {
      const b = p[i]!;
      any |= b;
      s += HEX[b];
    }
    if (any !== 0) return s;
  }
}

export const newTraceId = (): string => randomHex(16);
export const newSpanId = (): string => randomHex(8);

// ---------------------------------------------------------------------------------------------
// traceparent

export interface TraceParent {
  version: string;
  traceId: string;
  parentId: string;
  /** Two hex digits; bit 0x01 is "sampled". */
  flags: string;
  sampled: boolean;
}

/** 0-9 a-f (lower case only, as the spec requires). */
function isLowerHex(s: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return false;
  }
  return true;
}

function isZero(s: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (s.charCodeAt(i) !== 48) return false;
  return true;
}

/**
 * Parses a `traceparent` header value. Returns undefined when it is invalid: wrong length or
 * separators, non-lower-case-hex, version "ff", version 00 with trailing data, all-zero trace
 * or parent id. Future versions (> 00) are accepted when their first four fields parse, as the
 * spec asks, and are treated as version 00.
 */
export function parseTraceparent(header: string | undefined): TraceParent | undefined {
  if (header === undefined) return undefined;
  let h = header;
  if (h.length !== 55) {
    h = h.trim();
    if (h.length < 55) return undefined;
  }
  if (h.charCodeAt(2) !== 45 || h.charCodeAt(35) !== 45 || h.charCodeAt(52) !== 45) return undefined;
  if (!isLowerHex(h, 0, 2) || !isLowerHex(h, 3, 35) || !isLowerHex(h, 36, 52) || !isLowerHex(h, 53, 55)) return undefined;
  const version = h.slice(0, 2);
  if (version === "ff") return undefined;
  if (h.length > 55 && (version === "00" || h.charCodeAt(55) !== 45)) return undefined;
  if (isZero(h, 3, 35) || isZero(h, 36, 52)) return undefined;
  const flags = h.slice(53, 55);
  return {
    version,
    traceId: h.slice(3, 35),
    parentId: h.slice(36, 52),
    flags,
    sampled: (parseInt(flags, 16) & 1) === 1,
  };
}

export function formatTraceparent(traceId: string, spanId: string, sampled: boolean): string {
  return "00-" + traceId + "-" + spanId + (sampled ? "-01" : "-00");
}

/** The trace id of a traceparent header value, or "" when it is not valid. */
export function traceIdOf(traceparent: string): string {
  const p = parseTraceparent(traceparent);
  return p === undefined ? "" : p.traceId;
}

// ---------------------------------------------------------------------------------------------
// Sampling for traces the proxy starts (no valid incoming traceparent)

export type RootSampler = () => boolean;

/**
 * From OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG. The proxy always follows the caller's
 * decision when a valid traceparent arrives (parent-based); this decides new traces only.
 * Default: sample every new trace (OpenTelemetry's parentbased_always_on).
 */
export function rootSamplerFromEnv(env: Record<string, string | undefined>): RootSampler {
  const name = (env.OTEL_TRACES_SAMPLER ?? "").trim().toLowerCase();
  if (name === "always_off" || name === "parentbased_always_off") return () => false;
  if (name === "traceidratio" || name === "parentbased_traceidratio") {
    const arg = Number(env.OTEL_TRACES_SAMPLER_ARG ?? "1");
    const ratio = Number.isFinite(arg) ? Math.min(1, Math.max(0, arg)) : 1;
    if (ratio >= 1) return () => true;
    if (ratio <= 0) return () => false;
    return () => Math.random() < ratio;
  }
  return () => true;
}

// ---------------------------------------------------------------------------------------------
// The proxy's tracer

class Trace implements RequestTrace {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  sampled: boolean;
  traceparent: string;
  tracestate: string;
  /** The recording span, when a tracer provider is active and sampled this request. */
  span: Span | undefined;
  constructor(traceId: string, spanId: string, parentSpanId: string, sampled: boolean, tracestate: string, span: Span | undefined) {
    this.traceId = traceId;
    this.spanId = spanId;
    this.parentSpanId = parentSpanId;
    this.sampled = sampled;
    this.traceparent = formatTraceparent(traceId, spanId, sampled);
    this.tracestate = tracestate;
    this.span = span;
  }
}

export interface ProxyTracerOptions {
  /**
   * Where spans go. Default: the global provider registered with @opentelemetry/api (none:
   * no spans). createTelemetry passes its OTLP provider here when an endpoint is configured.
   */
  tracerProvider?: TracerProvider;
  rootSampler?: RootSampler;
  version?: string;
}

const RECHECK_EVERY = 1024;

export class ProxyTracer {
  #explicit: TracerProvider | undefined;
  #tracer: Tracer | undefined;
  #countdown = 0;
  #rootSampler: RootSampler;
  #version: string;

  constructor(options: ProxyTracerOptions = {}) {
    this.#explicit = options.tracerProvider;
    this.#rootSampler = options.rootSampler ?? (() => true);
    this.#version = options.version ?? "0";
    if (this.#explicit) this.#tracer = this.#explicit.getTracer("weft", this.#version);
  }

  /** The active tracer, or undefined when no provider is registered (re-checked periodically). */
  #activeTracer(): Tracer | undefined {
    if (this.#tracer !== undefined) return this.#tracer;
    if (--this.#countdown > 0) return undefined;
    this.#countdown = RECHECK_EVERY;
    const provider = trace.getTracerProvider();
    if (provider instanceof ProxyTracerProvider) {
      // Without a registered delegate this is undefined; with one, its tracer.
      this.#tracer = provider.getDelegateTracer("weft", this.#version);
    } else {
      this.#tracer = provider.getTracer("weft", this.#version);
    }
    return this.#tracer;
  }

  start(direction: Direction, traceparent: string | undefined, tracestate: string | undefined, startTime?: number): RequestTrace {
    const parent = parseTraceparent(traceparent);
    const tracer = this.#activeTracer();
    if (tracer === undefined) {
      if (parent === undefined) return new Trace(newTraceId(), newSpanId(), "", this.#rootSampler(), "", undefined);
      return new Trace(parent.traceId, newSpanId(), parent.parentId, parent.sampled, tracestate ?? "", undefined);
    }
    return this.#startSpan(tracer, direction, parent, parent === undefined ? "" : (tracestate ?? ""), startTime);
  }

  #startSpan(
    tracer: Tracer,
    direction: Direction,
    parent: TraceParent | undefined,
    tracestate: string,
    startTime: number | undefined,
  ): RequestTrace {
    let ctx = ROOT_CONTEXT;
    let traceId: string;
    let sampled: boolean;
    if (parent !== undefined) {
      traceId = parent.traceId;
      sampled = parent.sampled;
      ctx = trace.setSpanContext(ROOT_CONTEXT, {
        traceId,
        spanId: parent.parentId,
        traceFlags: sampled ? 1 : 0,
        isRemote: true,
        traceState: tracestate === "" ? undefined : new PassThroughTraceState(tracestate),
      });
    } else {
      traceId = newTraceId();
      sampled = this.#rootSampler();
      // The proxy's root sampling decision is final: no span for a sampled-out new trace.
      if (!sampled) return new Trace(traceId, newSpanId(), "", false, "", undefined);
    }
    const span = tracer.startSpan("HTTP", { kind: direction === "inbound" ? SpanKind.SERVER : SpanKind.CLIENT, startTime }, ctx);
    const sc = span.spanContext();
    const parentSpanId = parent === undefined ? "" : parent.parentId;
    if (span.isRecording()) {
      return new Trace(sc.traceId, sc.spanId, parentSpanId, (sc.traceFlags & 1) === 1, tracestate, span);
    }
    // Sampled out: forward the tracer's span context when it continued our trace, else our own.
    if (sc.traceId === traceId && sc.spanId !== parentSpanId) {
      return new Trace(traceId, sc.spanId, parentSpanId, (sc.traceFlags & 1) === 1, tracestate, undefined);
    }
    return new Trace(traceId, newSpanId(), parentSpanId, sampled, tracestate, undefined);
  }

  /** Ends the request's span, if one is recording, with attributes taken from the record. */
  end(record: RequestRecord): void {
    const t = record.trace;
    if (t === undefined || !(t instanceof Trace) || t.span === undefined) return;
    const span = t.span;
    t.span = undefined;
    span.updateName(record.route !== "" ? record.method + " " + record.route : record.method);
    span.setAttributes(spanAttributes(record));
    const status = record.status;
    const isError = status === 0 || status >= 500 || (record.direction === "outbound" && status >= 400) || record.responseFlag !== "";
    if (isError) span.setStatus({ code: SpanStatusCode.ERROR, message: record.responseFlag });
    span.end(record.startTime + record.durationMs);
  }
}

function splitAuthority(authority: string): [string, number | undefined] {
  if (authority.startsWith("[")) {
    const close = authority.indexOf("]");
    const port = authority.slice(close + 2);
    return [authority.slice(1, close), port ? Number(port) : undefined];
  }
  const colon = authority.lastIndexOf(":");
  if (colon < 0) return [authority, undefined];
  const port = Number(authority.slice(colon + 1));
  return [authority.slice(0, colon), Number.isInteger(port) ? port : undefined];
}

function spanAttributes(r: RequestRecord): Attributes {
  const q = r.path.indexOf("?");
  const [host, port] = splitAuthority(r.authority);
  const a: Attributes = {
    "http.request.method": r.method,
    "url.path": q < 0 ? r.path : r.path.slice(0, q),
    "server.address": host,
    "network.protocol.name": "http",
    "network.protocol.version": r.protocol === "HTTP/2" ? "2" : r.protocol === "HTTP/1.0" ? "1.0" : "1.1",
    "weft.direction": r.direction,
    "http.request.body.size": r.requestBytes,
    "http.response.body.size": r.responseBytes,
  };
  if (q >= 0) a["url.query"] = r.path.slice(q + 1);
  if (port !== undefined) a["server.port"] = port;
  if (r.status > 0) a["http.response.status_code"] = r.status;
  if (r.userAgent !== "") a["user_agent.original"] = r.userAgent;
  if (r.requestId !== "") a["weft.request_id"] = r.requestId;
  if (r.route !== "") a["weft.route"] = r.route;
  if (r.responseFlag !== "") a["weft.response_flags"] = r.responseFlag;
  if (r.destination.cluster !== "") a["weft.upstream.cluster"] = r.destination.cluster;
  if (r.upstreamAddress !== "") a["weft.upstream.address"] = r.upstreamAddress;
  if (r.attempts > 1) a["weft.attempts"] = r.attempts;
  if (r.source.principal !== "") a["weft.source.principal"] = r.source.principal;
  if (r.grpcStatus !== undefined) a["rpc.grpc.status_code"] = r.grpcStatus;
  return a;
}

/** A TraceState that carries the incoming header verbatim (the proxy does not edit it). */
class PassThroughTraceState {
  #raw: string;
  constructor(raw: string) {
    this.#raw = raw;
  }
  set(key: string, value: string): PassThroughTraceState {
    return new PassThroughTraceState(`${key}=${value}` + (this.#raw ? "," + this.#raw : ""));
  }
  unset(key: string): PassThroughTraceState {
    return new PassThroughTraceState(
      this.#raw
        .split(",")
        .filter((e) => e.trim().split("=")[0] !== key)
        .join(","),
    );
  }
  get(key: string): string | undefined {
    for (const e of this.#raw.split(",")) {
      const i = e.indexOf("=");
      if (i > 0 && e.slice(0, i).trim() === key) return e.slice(i + 1).trim();
    }
    return undefined;
  }
  serialize(): string {
    return this.#raw;
  }
}
