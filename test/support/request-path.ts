// Fakes for the request path's unit tests (proxy/forwarder/stages/*.test.ts): an exchange that
// records what was sent, a clock that moves only when told, a cluster whose connections the
// test answers by hand, and a transaction wired to them. Real configuration objects come from
// the real schema (parseConfig), so a stage sees routes as the sidecar does.
import { Buffer } from "node:buffer";
import type { Filter } from "../../proxy/filters/filter.ts";
import type { FilterMessage, FilterPhaseName, LocalReply } from "../../proxy/filters/message.ts";
import { FilterChain } from "../../proxy/filters/chain.ts";
import type { BodySink, ServerExchange } from "../../proxy/http/exchange.ts";
import type { Cluster } from "../../proxy/config/schema.ts";
import { parseConfig } from "../../proxy/config/validate.ts";
import type { ResponseHead } from "../../proxy/http/message-head.ts";
import { Router } from "../../proxy/routing/router.ts";
import type { Clock, Timer } from "../../proxy/forwarder/clock.ts";
import type { ForwardContext } from "../../proxy/forwarder/context.ts";
import { type Stage, Transaction } from "../../proxy/forwarder/transaction.ts";
import type { RequestRecord, Telemetry } from "../../proxy/telemetry/types.ts";
import type { Ticket, UpstreamCluster, UpstreamEndpoint } from "../../proxy/upstream/cluster.ts";
import type { ResponseHandler, UpstreamExchange, UpstreamRequestHead } from "../../proxy/upstream/exchange.ts";
import { simpleConfig } from "./proxy.ts";

/** Timers fire only in advance(), in the order they are due. */
export class FakeClock implements Clock {
  time = 1_000_000;
  private timers: { at: number; callback: () => void; id: number }[] = [];
  private ids = 0;

  now(): number {
    return this.time;
  }

  setTimeout(callback: () => void, ms: number): Timer {
    const id = ++this.ids;
    this.timers.push({ at: this.time + ms, callback, id });
    return id as unknown as Timer;
  }

  clearTimeout(timer: Timer): void {
    this.timers = this.timers.filter((t) => t.id !== (timer as unknown as number));
  }

  get pending(): number {
    return this.timers.length;
  }

  advance(ms: number): void {
    const until = this.time + ms;
    for (;;) {
      const due = this.timers.filter((t) => t.at <= until).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.timers = this.timers.filter((t) => t !== due);
      this.time = due.at;
      due.callback();
    }
    this.time = until;
  }
}

/** Random numbers from a list, in turn (the last one repeats). */
export function randomFrom(values: number[]): () => number {
  let i = 0;
  return () => values[Math.min(i++, values.length - 1)]!;
}

export interface SentHead {
  status: number;
  reason: string;
  headers: string[];
  contentLength: number;
  hasBody: boolean;
}

/** A downstream exchange that records the response; the test plays the request body. */
export class FakeExchange implements ServerExchange {
  method = "GET";
  target = "/";
  authority = "shop.test";
  headers: string[] = ["host", "shop.test"];
  protocol: ServerExchange["protocol"] = "HTTP/1.1";
  upgrade = "";
  connectionTokens: string[] = [];
  expectContinue = false;
  requestContentLength = 0;
  hasRequestBody = false;
  peerAddress = "10.0.0.7";
  peerTls = null;
  startTime = 1_000_000;
  requestBytes = 0;
  responseBytes = 0;
  onResponseDrain: () => void = () => {};
  onAbort: () => void = () => {};
  headSent = false;
  sent: SentHead | null = null;
  interim: number[] = [];
  body: Buffer[] = [];
  ended = false;
  trailers: string[] | null = null;
  wasReset = false;
  paused = false;
  /** What sendData returns: false plays a full downstream. */
  accepts = true;
  private sink: BodySink | null = null;

  constructor(
    init: Partial<Pick<FakeExchange, "method" | "target" | "authority" | "headers" | "hasRequestBody" | "requestContentLength">> = {},
  ) {
    Object.assign(this, init);
  }

  readRequestBody(sink: BodySink): void {
    this.sink = sink;
  }
  /** The client sends `chunks`, then ends the body. */
  sendBody(chunks: string[], end = true): void {
    for (const c of chunks) this.sink!.data(Buffer.from(c));
    if (end) this.sink!.end(null);
  }
  get reading(): boolean {
    return this.sink !== null;
  }
  pauseRequestBody(): void {
    this.paused = true;
  }
  resumeRequestBody(): void {
    this.paused = false;
  }
  sendInterim(status: number): void {
    this.interim.push(status);
  }
  sendHead(status: number, reason: string, headers: string[], contentLength: number, hasBody: boolean): void {
    this.headSent = true;
    this.sent = { status, reason, headers, contentLength, hasBody };
  }
  sendData(chunk: Buffer): boolean {
    this.body.push(chunk);
    return this.accepts;
  }
  sendEnd(trailers: string[] | null): void {
    this.ended = true;
    this.trailers = trailers;
  }
  reset(): void {
    this.wasReset = true;
  }
  takeTunnel(): null {
    return null;
  }
  get text(): string {
    return Buffer.concat(this.body).toString();
  }
  header(name: string): string | undefined {
    const h = this.sent?.headers ?? [];
    for (let i = 0; i < h.length; i += 2) if (h[i]!.toLowerCase() === name) return h[i + 1];
    return undefined;
  }
}

/** Telemetry that keeps what it is told. */
export class RecordingTelemetry {
  records: RequestRecord[] = [];
  errors: string[] = [];
  startTrace() {
    return {
      traceId: "0af7651916cd43dd8448eb211c80319c",
      spanId: "b7ad6b7169203331",
      traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
      tracestate: "",
    };
  }
  request(record: RequestRecord): void {
    this.records.push(record);
  }
  upstreamError(cluster: string, reason: string): void {
    this.errors.push(`${cluster}:${reason}`);
  }
  get last(): RequestRecord {
    const r = this.records.at(-1);
    if (!r) throw new Error("no request was recorded (the transaction has not finished)");
    return r;
  }
}

/** A connection the test answers: it records what the attempt sent and plays the upstream's side. */
export class FakeUpstream implements UpstreamExchange {
  reused = false;
  tls = false;
  onDrain: () => void = () => {};
  head: UpstreamRequestHead | null = null;
  handler: ResponseHandler | null = null;
  body: Buffer[] = [];
  bodyEnded = false;
  aborted = false;
  released = false;
  pausedResponse = false;
  start(head: UpstreamRequestHead, handler: ResponseHandler): void {
    this.head = head;
    this.handler = handler;
  }
  flushHead(): void {}
  writeBody(chunk: Buffer): boolean {
    this.body.push(chunk);
    return true;
  }
  endBody(): void {
    this.bodyEnded = true;
  }
  pauseResponse(): void {
    this.pausedResponse = true;
  }
  resumeResponse(): void {
    this.pausedResponse = false;
  }
  abort(): void {
    this.aborted = true;
  }
  release(): void {
    this.released = true;
  }
  takeTunnel(): null {
    return null;
  }
  /** The upstream answers `status` with `body`. */
  respond(status: number, body = "", headers: string[] = []): void {
    const head: ResponseHead = {
      status,
      reason: "",
      minor: 1,
      headers: [...headers, "content-length", String(body.length)],
      contentLength: body.length,
      chunked: false,
      close: false,
      upgrade: "",
      connectionTokens: [],
    };
    this.handler!.head(head);
    if (body) this.handler!.data(Buffer.from(body));
    this.handler!.end(null);
  }
}

/**
 * A cluster whose endpoints are named ("a", "b", ...) and whose connections are FakeUpstreams
 * handed out by the test: acquire() waits until give() answers it (or fail() refuses it).
 */
export class FakeCluster {
  readonly config: Cluster;
  readonly endpoints: UpstreamEndpoint[];
  readonly outcomes: string[] = [];
  readonly waiting: { endpoint: UpstreamEndpoint; ticket: Ticket; resolve: (u: UpstreamExchange) => void; reject: (e: Error) => void }[] =
    [];
  inFlight = 0;
  retries = 0;
  retryBudget = Infinity;

  constructor(config: Cluster, names: string[]) {
    this.config = config;
    this.endpoints = names.map((key) => {
      let active = 0;
      return {
        key,
        get active() {
          return active;
        },
        requestStarted: () => active++,
        requestEnded: () => active--,
      } as unknown as UpstreamEndpoint;
    });
  }

  get activeRequests(): number {
    return this.inFlight;
  }
  admit(): (() => void) | null {
    if (this.inFlight >= this.config.circuitBreaker.maxRequests) return null;
    this.inFlight++;
    return () => this.inFlight--;
  }
  reserveRetry(): (() => void) | null {
    if (this.retries >= this.retryBudget) return null;
    this.retries++;
    return () => this.retries--;
  }
  pick(_hash: string | undefined, exclude: UpstreamEndpoint | null): UpstreamEndpoint | undefined {
    return this.endpoints.find((e) => e !== exclude) ?? this.endpoints[0];
  }
  record(endpoint: UpstreamEndpoint, outcome: string): void {
    this.outcomes.push(`${endpoint.key}:${outcome}`);
  }
  acquire(endpoint: UpstreamEndpoint, ticket: Ticket): Promise<UpstreamExchange> {
    return new Promise((resolve, reject) => this.waiting.push({ endpoint, ticket, resolve, reject }));
  }
  /** Answers the oldest acquire() with a new connection; resolves once the attempt has it. */
  async give(upstream = new FakeUpstream()): Promise<FakeUpstream> {
    const w = this.waiting.shift();
    if (!w) throw new Error("no attempt is waiting for a connection");
    w.resolve(upstream);
    await Promise.resolve();
    return upstream;
  }
  async fail(error: Error): Promise<void> {
    const w = this.waiting.shift();
    if (!w) throw new Error("no attempt is waiting for a connection");
    w.reject(error);
    await Promise.resolve();
    await Promise.resolve();
  }
}

export interface Harness {
  tx: Transaction;
  exchange: FakeExchange;
  clock: FakeClock;
  telemetry: RecordingTelemetry;
  cluster: FakeCluster;
  /** Whether the stages under test passed the request on. */
  readonly passed: boolean;
}

export interface HarnessOptions {
  /** Fields of the route (timeoutMs, retry, fault, responseHeaders, ...), as in a proxy configuration. */
  route?: Record<string, unknown>;
  /** Fields of the cluster "app" (circuitBreaker, ...). */
  cluster?: Record<string, unknown>;
  endpoints?: string[];
  exchange?: FakeExchange;
  filters?: Filter[];
  refuse?: (exchange: ServerExchange) => string | null;
  random?: number[];
}

/** A transaction that runs `stages`, then marks the request as passed on. */
export function harness(stages: Stage[], options: HarnessOptions = {}): Harness {
  const input = simpleConfig([8080], {}, options.route ?? {});
  (input.clusters as Record<string, unknown>[])[0] = { ...(input.clusters as Record<string, unknown>[])[0], ...options.cluster };
  const config = parseConfig(input);
  const cluster = new FakeCluster(config.clusters[0]!, options.endpoints ?? ["a", "b"]);
  const telemetry = new RecordingTelemetry();
  const exchange = options.exchange ?? new FakeExchange();
  const clock = new FakeClock();
  const ctx: ForwardContext = {
    direction: "outbound",
    router: new Router(config.listeners[0]!.virtualHosts),
    clusters: new Map([["app", cluster as unknown as UpstreamCluster]]),
    telemetry: telemetry as unknown as Telemetry,
    filters: new FilterChain(options.filters ?? []),
    port: 80,
    describe: () => ({
      source: { principal: "spiffe://cluster.local/ns/test/sa/client", workload: "client", namespace: "test" },
      destination: { service: "", namespace: "", workload: "", principal: "", cluster: "app" },
    }),
    decorate: () => {},
    decorateResponse: () => "",
    ...(options.refuse ? { refuse: options.refuse } : {}),
  };
  let passed = false;
  const tx = new Transaction(exchange, ctx, [...stages, () => (passed = true)], clock, randomFrom(options.random ?? [0.5]));
  return {
    tx,
    exchange,
    clock,
    telemetry,
    cluster,
    get passed() {
      return passed;
    },
  };
}

/** A filter whose phases are plain functions: one may change the message, or return a local reply. */
export function fakeFilter(
  id: string,
  phases: Partial<Record<FilterPhaseName, (message: FilterMessage) => LocalReply | null | void>>,
  bodyBytes = 1024,
): Filter {
  return {
    id,
    config: { match: [], priority: 0, limits: { bodyBytes } },
    handles: (phase: FilterPhaseName) => phase in phases,
    run: (phase: FilterPhaseName, message: FilterMessage) => ({ reply: phases[phase]?.(message) ?? null }),
  } as unknown as Filter;
}

export const localReply = (status: number, body = ""): LocalReply => ({ status, headers: [], body: new TextEncoder().encode(body) });
