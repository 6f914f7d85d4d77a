// A small OpenTelemetry tracer provider that exports spans as OTLP/HTTP JSON to
// `${OTEL_EXPORTER_OTLP_ENDPOINT}/v1/traces`. It implements the @opentelemetry/api
// TracerProvider interface, so the proxy records spans through the API exactly as it would
// with the SDK, but without the SDK's dependency tree (it runs unchanged on Node, Deno, Bun).
//
// Batching follows the SDK's BatchSpanProcessor defaults: a queue of at most 2048 spans
// (further spans are dropped and counted), export every 5 s or as soon as 512 spans wait.
import { trace, SpanKind, SpanStatusCode, ROOT_CONTEXT, isSpanContextValid } from "@opentelemetry/api";
import type {
  Attributes,
  AttributeValue,
  Context,
  Exception,
  Link,
  Span,
  SpanContext,
  SpanOptions,
  SpanStatus,
  TimeInput,
  Tracer,
  TracerProvider,
} from "@opentelemetry/api";
import { newSpanId, newTraceId } from "./tracing.ts";

export interface OtlpOptions {
  /** Base URL, as OTEL_EXPORTER_OTLP_ENDPOINT: spans go to `${endpoint}/v1/traces`. */
  endpoint?: string;
  /** Full URL, as OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (wins over endpoint). */
  tracesEndpoint?: string;
  headers?: Record<string, string>;
  resource: Attributes;
  scheduleDelayMs?: number;
  maxQueueSize?: number;
  maxExportBatchSize?: number;
  exportTimeoutMs?: number;
  /** Called when an export fails (default: one line on stderr, at most once a minute). */
  onError?: (error: Error) => void;
}

interface FinishedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  traceState: string;
  name: string;
  kind: SpanKind;
  startMs: number;
  endMs: number;
  attributes: Attributes;
  events: { name: string; timeMs: number; attributes: Attributes | undefined }[];
  links: Link[];
  status: SpanStatus;
}

function toMs(t: TimeInput | undefined): number {
  if (t === undefined) return performance.timeOrigin + performance.now();
  if (typeof t === "number") {
    // A performance.now() value (relative) or epoch milliseconds.
    return t < 1e12 ? performance.timeOrigin + t : t;
  }
  if (t instanceof Date) return t.getTime();
  return t[0] * 1000 + t[1] / 1e6; // HrTime
}

class OtlpSpan implements Span {
  #ctx: SpanContext;
  #provider: OtlpTracerProvider;
  #data: FinishedSpan;
  #ended = false;

  constructor(provider: OtlpTracerProvider, ctx: SpanContext, parentSpanId: string, name: string, options: SpanOptions) {
    this.#provider = provider;
    this.#ctx = ctx;
    this.#data = {
      traceId: ctx.traceId,
      spanId: ctx.spanId,
      parentSpanId,
      traceState: ctx.traceState?.serialize() ?? "",
      name,
      kind: options.kind ?? SpanKind.INTERNAL,
      startMs: toMs(options.startTime),
      endMs: 0,
      attributes: { ...options.attributes },
      events: [],
      links: options.links ? [...options.links] : [],
      status: { code: SpanStatusCode.UNSET },
    };
  }
  spanContext(): SpanContext {
    return this.#ctx;
  }
  setAttribute(key: string, value: AttributeValue): this {
    if (!this.#ended) this.#data.attributes[key] = value;
    return this;
  }
  setAttributes(attributes: Attributes): this {
    if (!this.#ended) Object.assign(this.#data.attributes, attributes);
    return this;
  }
  addEvent(name: string, attributesOrStartTime?: Attributes | TimeInput, startTime?: TimeInput): this {
    if (this.#ended) return this;
    let attributes: Attributes | undefined;
    if (typeof attributesOrStartTime === "object" && !(attributesOrStartTime instanceof Date) && !Array.isArray(attributesOrStartTime)) {
      attributes = attributesOrStartTime;
    } else {
      startTime = attributesOrStartTime as TimeInput | undefined;
    }
    this.#data.events.push({ name, timeMs: toMs(startTime), attributes });
    return this;
  }
  addLink(link: Link): this {
    if (!this.#ended) this.#data.links.push(link);
    return this;
  }
  addLinks(links: Link[]): this {
    if (!this.#ended) this.#data.links.push(...links);
    return this;
  }
  setStatus(status: SpanStatus): this {
    if (!this.#ended) this.#data.status = status;
    return this;
  }
  updateName(name: string): this {
    if (!this.#ended) this.#data.name = name;
    return this;
  }
  end(endTime?: TimeInput): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#data.endMs = toMs(endTime);
    this.#provider.enqueue(this.#data);
  }
  isRecording(): boolean {
    return !this.#ended;
  }
  recordException(exception: Exception, time?: TimeInput): void {
    const attributes: Attributes = {};
    if (typeof exception === "string") attributes["exception.message"] = exception;
    else {
      if (exception.name) attributes["exception.type"] = exception.name;
      if (exception.message) attributes["exception.message"] = exception.message;
      if (exception.stack) attributes["exception.stacktrace"] = exception.stack;
    }
    this.addEvent("exception", attributes, time);
  }
}

class OtlpTracer implements Tracer {
  #provider: OtlpTracerProvider;
  constructor(provider: OtlpTracerProvider) {
    this.#provider = provider;
  }
  startSpan(name: string, options: SpanOptions = {}, ctx?: Context): Span {
    const parent = options.root ? undefined : trace.getSpanContext(ctx ?? ROOT_CONTEXT);
    const valid = parent !== undefined && isSpanContextValid(parent);
    // Parent-based sampling; new traces are sampled (the proxy decides before calling us).
    if (valid && (parent.traceFlags & 1) === 0) {
      return trace.wrapSpanContext({ traceId: parent.traceId, spanId: newSpanId(), traceFlags: 0, traceState: parent.traceState });
    }
    const sc: SpanContext = {
      traceId: valid ? parent.traceId : newTraceId(),
      spanId: newSpanId(),
      traceFlags: 1,
      traceState: valid ? parent.traceState : undefined,
    };
    return new OtlpSpan(this.#provider, sc, valid ? parent.spanId : "", name, options);
  }
  startActiveSpan<F extends (span: Span) => unknown>(name: string, ...args: unknown[]): ReturnType<F> {
    const fn = args[args.length - 1] as F;
    const options = (args.length >= 2 ? args[0] : {}) as SpanOptions;
    const ctx = (args.length >= 3 ? args[1] : undefined) as Context | undefined;
    const span = this.startSpan(name, options, ctx);
    return fn(span) as ReturnType<F>;
  }
}

export class OtlpTracerProvider implements TracerProvider {
  readonly url: string;
  #headers: Record<string, string>;
  #resource: Attributes;
  #queue: FinishedSpan[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #inflight = new Set<Promise<void>>();
  #scheduleDelayMs: number;
  #maxQueueSize: number;
  #maxBatch: number;
  #timeoutMs: number;
  #onError: (error: Error) => void;
  #tracer: OtlpTracer;
  #closed = false;
  dropped = 0;
  exported = 0;

  constructor(options: OtlpOptions) {
    const base = (options.endpoint ?? "").replace(/\/+$/, "");
    this.url = options.tracesEndpoint || `${base}/v1/traces`;
    this.#headers = { "content-type": "application/json", ...options.headers };
    this.#resource = options.resource;
    this.#scheduleDelayMs = options.scheduleDelayMs ?? 5000;
    this.#maxQueueSize = options.maxQueueSize ?? 2048;
    this.#maxBatch = options.maxExportBatchSize ?? 512;
    this.#timeoutMs = options.exportTimeoutMs ?? 10000;
    let last = 0;
    this.#onError =
      options.onError ??
      ((e) => {
        const now = Date.now();
        if (now - last < 60000) return;
        last = now;
        console.error(`weft: OTLP export to ${this.url} failed: ${e.message}`);
      });
    this.#tracer = new OtlpTracer(this);
  }

  getTracer(): Tracer {
    return this.#tracer;
  }

  /** Who the spans come from, for the exports from now on (the proxy learns its identity after it starts). */
  setResource(resource: Attributes): void {
    this.#resource = resource;
  }

  enqueue(span: FinishedSpan): void {
    if (this.#closed || this.#queue.length >= this.#maxQueueSize) {
      this.dropped++;
      return;
    }
    this.#queue.push(span);
    if (this.#queue.length >= this.#maxBatch) this.#exportNow();
    else if (this.#timer === undefined) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.#exportNow();
      }, this.#scheduleDelayMs);
      (this.#timer as { unref?: () => void }).unref?.();
    }
  }

  #exportNow(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, this.#maxBatch);
      const p = this.#send(batch).finally(() => this.#inflight.delete(p));
      this.#inflight.add(p);
    }
  }

  async #send(batch: FinishedSpan[]): Promise<void> {
    try {
      const res = await fetch(this.url, {
        method: "POST",
        headers: this.#headers,
        body: encodeOtlpJson(this.#resource, batch),
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
      await res.arrayBuffer().catch(() => undefined);
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      this.exported += batch.length;
    } catch (e) {
      this.dropped += batch.length;
      this.#onError(e instanceof Error ? e : new Error(String(e)));
    }
  }

  /** Exports everything queued and waits for in-flight exports. */
  async forceFlush(): Promise<void> {
    this.#exportNow();
    while (this.#inflight.size > 0) await Promise.all([...this.#inflight]);
  }

  async shutdown(): Promise<void> {
    await this.forceFlush();
    this.#closed = true;
  }
}

// ---------------------------------------------------------------------------------------------
// OTLP JSON encoding (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding):
// ids as hex strings, enums as integers, 64-bit integers as decimal strings.

function nanos(ms: number): string {
  let whole = Math.floor(ms);
  let frac = Math.round((ms - whole) * 1e6);
  if (frac >= 1e6) {
    whole += 1;
    frac -= 1e6;
  }
  return whole === 0 ? String(frac) : String(whole) + String(frac).padStart(6, "0");
}

const q = JSON.stringify;

function valueJson(v: AttributeValue): string {
  switch (typeof v) {
    case "string":
      return '{"stringValue":' + q(v) + "}";
    case "boolean":
      return '{"boolValue":' + v + "}";
    case "number":
      return Number.isInteger(v)
        ? '{"intValue":"' + v + '"}'
        : Number.isFinite(v)
          ? '{"doubleValue":' + v + "}"
          : '{"stringValue":"' + v + '"}';
  }
  if (Array.isArray(v)) {
    const parts: string[] = [];
    for (const x of v) if (x !== null && x !== undefined) parts.push(valueJson(x as AttributeValue));
    return '{"arrayValue":{"values":[' + parts.join(",") + "]}}";
  }
  return '{"stringValue":' + q(String(v)) + "}";
}

function attributesJson(a: Attributes | undefined): string {
  let s = "[";
  if (a !== undefined) {
    for (const key in a) {
      const v = a[key];
      if (v === undefined || v === null) continue;
      if (s.length > 1) s += ",";
      s += '{"key":' + q(key) + ',"value":' + valueJson(v) + "}";
    }
  }
  return s + "]";
}

function spanJson(s: FinishedSpan): string {
  let j =
    '{"traceId":"' +
    s.traceId +
    '","spanId":"' +
    s.spanId +
    (s.parentSpanId ? '","parentSpanId":"' + s.parentSpanId : "") +
    '","name":' +
    q(s.name) +
    ',"kind":' +
    (s.kind + 1) + // api SpanKind INTERNAL=0.. → OTLP SPAN_KIND_INTERNAL=1..
    ',"startTimeUnixNano":"' +
    nanos(s.startMs) +
    '","endTimeUnixNano":"' +
    nanos(s.endMs) +
    '","attributes":' +
    attributesJson(s.attributes);
  if (s.traceState) j += ',"traceState":' + q(s.traceState);
  if (s.events.length > 0) {
    j +=
      ',"events":[' +
      s.events
        .map((e) => '{"name":' + q(e.name) + ',"timeUnixNano":"' + nanos(e.timeMs) + '","attributes":' + attributesJson(e.attributes) + "}")
        .join(",") +
      "]";
  }
  if (s.links.length > 0) {
    j +=
      ',"links":[' +
      s.links
        .map(
          (l) =>
            '{"traceId":"' + l.context.traceId + '","spanId":"' + l.context.spanId + '","attributes":' + attributesJson(l.attributes) + "}",
        )
        .join(",") +
      "]";
  }
  const st = s.status;
  j +=
    st.code === SpanStatusCode.UNSET
      ? ',"status":{}'
      : ',"status":{"code":' + st.code + (st.message ? ',"message":' + q(st.message) : "") + "}";
  return j + "}";
}

/** An OTLP/JSON ExportTraceServiceRequest. */
export function encodeOtlpJson(resource: Attributes, spans: FinishedSpan[]): string {
  return (
    '{"resourceSpans":[{"resource":{"attributes":' +
    attributesJson(resource) +
    '},"scopeSpans":[{"scope":{"name":"weft"},"spans":[' +
    spans.map(spanJson).join(",") +
    "]}]}]}"
  );
}

/** OTEL_EXPORTER_OTLP_HEADERS / OTEL_RESOURCE_ATTRIBUTES syntax: `k=v,k2=v2`, values percent-encoded. */
export function parseKeyValueList(s: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!s) return out;
  for (const part of s.split(",")) {
    const i = part.indexOf("=");
    if (i <= 0) continue;
    const key = part.slice(0, i).trim();
    let value = part.slice(i + 1).trim();
    try {
      value = decodeURIComponent(value);
    } catch {
      // keep it as written
    }
    if (key) out[key] = value;
  }
  return out;
}
