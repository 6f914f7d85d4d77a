// Forwards one exchange: route, fault injection, backend and endpoint choice, attempts
// with retries and timeouts, streaming both ways with back-pressure, mirroring, and one
// telemetry record at the end. Shared by the inbound and outbound listeners.
import { Buffer } from "node:buffer";
import { randomUUID } from "node:crypto";
import type { ServerExchange } from "../http/exchange.ts";
import type { Authorization } from "../config/authorization.ts";
import type { NodeInfo, Route } from "../config/schema.ts";
import type { Router, CompiledRoute } from "../routing/router.ts";
import { pickBackend } from "../routing/router.ts";
import {
  applyHeaderModifier,
  diagnosticHeaderValue,
  dropUnderscoredNames,
  forwardableHeaders,
  removeHeader,
  setHeader,
} from "../http/headers.ts";
import { headerValue, type ResponseHead } from "../http1/head.ts";
import type { UpstreamCluster, UpstreamEndpoint } from "../upstream/cluster.ts";
import { UpstreamFailure, type Ticket } from "../upstream/cluster.ts";
import type { UpstreamExchange, UpstreamRequestHead } from "../upstream/exchange.ts";
import type { DestinationInfo, Direction, PeerInfo, RequestTrace, ResponseFlag, Telemetry } from "../telemetry/types.ts";
import { backoffMs, isIdempotent, retriable, withinBudget, type AttemptFailure } from "./retry.ts";
import { tunnel } from "./tunnel.ts";
import { mirror } from "./mirror.ts";
import type { FilterChain } from "../filters/chain.ts";
import { anyHandles, runPhase } from "../filters/chain.ts";
import { authorityPort } from "../filters/request-port.ts";
import type { Filter } from "../filters/filter.ts";
import type { FilterMessage, LocalReply, RequestMessage } from "../filters/message.ts";

/** What a listener's context is built from, whatever its direction. */
export interface ContextInputs {
  readonly node: NodeInfo;
  /** This proxy's own SPIFFE ID. */
  readonly ownPrincipal: string;
  readonly router: Router;
  readonly clusters: ReadonlyMap<string, UpstreamCluster>;
  readonly telemetry: Telemetry;
  readonly filters: FilterChain;
  /**
   * For filters attached by port (match.ports): the port every request on this listener is
   * delivered to (inbound: the app's), or null to take the port of each request's authority.
   */
  readonly port: number | null;
  /** The listener's access policies (inbound only). */
  readonly authorization?: Authorization;
  /** Why no route matched, said in the 404 (the listener's noRouteReason). */
  readonly noRouteReason?: string;
}

/** What the listener (inbound or outbound) contributes to each request. */
export interface ForwardContext {
  readonly direction: Direction;
  readonly router: Router;
  readonly clusters: ReadonlyMap<string, UpstreamCluster>;
  readonly telemetry: Telemetry;
  readonly filters: FilterChain;
  /** As ContextInputs.port. */
  readonly port: number | null;
  /** Who sent the request and who it is for, for metrics and logs. */
  describe(exchange: ServerExchange, cluster: UpstreamCluster | null): { source: PeerInfo; destination: DestinationInfo };
  /** Direction-specific request headers (client-certificate details, spoofing protection). */
  decorate(headers: string[], exchange: ServerExchange): void;
  /** Why the request is refused before anything else runs (access policies), or null. */
  refuse?(exchange: ServerExchange): string | null;
  /** Why no route matched, said in the 404. */
  readonly noRouteReason?: string;
}

// HTTP status of a local reply → gRPC status, as gRPC's HTTP mapping prescribes.
function grpcStatusOf(status: number): number {
  if (status === 400) return 13; // INTERNAL
  if (status === 401) return 16; // UNAUTHENTICATED
  if (status === 403) return 7; // PERMISSION_DENIED
  if (status === 404) return 12; // UNIMPLEMENTED
  if (status === 429 || status === 502 || status === 503 || status === 504) return 14; // UNAVAILABLE
  return 2; // UNKNOWN
}

export function localReply(exchange: ServerExchange, status: number, message: string, extraHeaders: string[] = []): void {
  if (exchange.headSent) {
    exchange.reset();
    return;
  }
  const contentType = headerValue(exchange.headers, "content-type") ?? "";
  if (exchange.protocol === "HTTP/2" && contentType.startsWith("application/grpc")) {
    // gRPC clients read errors from grpc-status: answer "trailers-only".
    const headers = [
      "content-type",
      "application/grpc",
      "grpc-status",
      String(grpcStatusOf(status)),
      "grpc-message",
      encodeURIComponent(message),
      "x-weft-error",
      diagnosticHeaderValue(message),
      ...extraHeaders,
    ];
    exchange.sendHead(200, "", headers, 0, false);
    exchange.sendEnd(null);
    return;
  }
  const body = Buffer.from(`${message}\n`);
  exchange.sendHead(
    status,
    "",
    ["content-type", "text/plain; charset=utf-8", "x-weft-error", diagnosticHeaderValue(message), ...extraHeaders],
    body.length,
    exchange.method !== "HEAD",
  );
  if (exchange.method !== "HEAD") exchange.sendData(body);
  exchange.sendEnd(null);
}

function pathOf(target: string): string {
  const q = target.indexOf("?");
  return q === -1 ? target : target.slice(0, q);
}

export function forward(exchange: ServerExchange, ctx: ForwardContext): void {
  new Forwarding(exchange, ctx).start();
}

const NO_FILTERS: readonly Filter[] = [];

function concat(chunks: Buffer[], length: number): Buffer {
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, length);
}

/** Collects a body for a filter's body phase, up to `limit` bytes. */
class BodyBuffer {
  readonly limit: number;
  private chunks: Buffer[] = [];
  length = 0;
  constructor(limit: number) {
    this.limit = limit;
  }
  /** false once the body is over the limit. */
  add(chunk: Buffer): boolean {
    this.chunks.push(chunk);
    this.length += chunk.length;
    return this.length <= this.limit;
  }
  take(): Buffer {
    const body = concat(this.chunks, this.length);
    this.chunks = [];
    return body;
  }
}

function bodyLimit(filters: readonly Filter[], phase: "on_request_body" | "on_response_body"): number {
  let limit = Infinity;
  for (const f of filters) if (f.handles(phase)) limit = Math.min(limit, f.config.limits.bodyBytes);
  return limit;
}

class Forwarding {
  private readonly exchange: ServerExchange;
  private readonly ctx: ForwardContext;
  private route: CompiledRoute | null = null;
  private cluster: UpstreamCluster | null = null;
  private endpoint: UpstreamEndpoint | null = null;
  private upstream: UpstreamExchange | null = null;
  private upstreamRequest: UpstreamRequestHead | null = null;
  private mirrorPending = false;
  private requestId = "";
  private trace: RequestTrace | undefined;
  private attempts = 0;
  private done = false;
  private responseStarted = false;
  private status = 0;
  private flag: ResponseFlag = "";
  private routeTimer: ReturnType<typeof setTimeout> | null = null;
  private tryTimer: ReturnType<typeof setTimeout> | null = null;
  // Request body: chunks kept for the next attempt (all of them while replayable).
  private chunks: Buffer[] = [];
  private sent = 0;
  private buffered = 0;
  private replayable = true;
  private bodyEnded = false;
  private trailers: string[] | null = null;
  private keepForReplay = false;
  private bufferLimit = 0;
  private ticket: Ticket | null = null;
  private attemptActive = false;
  /** The request as routed and sent: the downstream's, or the filters' changed copy. */
  private head: RequestMessage;
  private filters: readonly Filter[] = NO_FILTERS;
  private message: FilterMessage | null = null;
  /** Set when a body phase replaced the request body: sent with this length, not streamed. */
  private bufferedBodyLength = -1;
  private responseBody: BodyBuffer | null = null;
  private pendingHead: { status: number; reason: string; headers: string[] } | null = null;

  constructor(exchange: ServerExchange, ctx: ForwardContext) {
    this.exchange = exchange;
    this.ctx = ctx;
    this.head = {
      method: exchange.method,
      path: exchange.target,
      authority: exchange.authority,
      scheme: exchange.peerTls ? "https" : "http",
      headers: exchange.headers,
    };
  }

  start(): void {
    const ex = this.exchange;
    ex.onAbort = () => this.abortedByDownstream();
    this.requestId = headerValue(ex.headers, "x-request-id") || randomUUID();
    // Before the filters: a refused caller costs no filter call and counts in no rate limit.
    const refused = this.ctx.refuse?.(ex);
    if (refused) {
      this.reply(403, refused, "RBAC");
      return;
    }
    const chain = this.ctx.filters;
    if (chain.filters.length > 0) {
      this.filters = chain.select({
        direction: this.ctx.direction === "inbound" ? "Inbound" : "Outbound",
        port: this.ctx.port ?? authorityPort(ex.authority),
        method: ex.method,
        path: pathOf(ex.target),
      });
    }
    if (this.filters.length > 0) {
      this.runRequestFilters();
      return;
    }
    this.proceed(false);
  }

  /** Request phases of the attached filters; they may change the request before it is routed. */
  private runRequestFilters(): void {
    const ex = this.exchange;
    this.head = { ...this.head, headers: ex.headers.slice() };
    const message: FilterMessage = (this.message = {
      phase: "on_request_headers",
      request: this.head,
      response: null,
      body: null,
      attributes: {
        direction: this.ctx.direction,
        sourceAddress: ex.peerAddress,
        sourcePrincipal: this.ctx.describe(ex, null).source.principal,
        requestId: this.requestId,
      },
      reply: null,
    });
    const reply = runPhase(this.filters, "on_request_headers", message);
    if (reply) {
      this.filterReply(reply);
      return;
    }
    if (!anyHandles(this.filters, "on_request_body")) {
      this.proceed(false);
      return;
    }
    const buffer = new BodyBuffer(bodyLimit(this.filters, "on_request_body"));
    ex.readRequestBody({
      data: (chunk) => {
        if (this.done || buffer.add(chunk)) return;
        this.reply(
          413,
          `the request body is larger than ${buffer.limit} bytes, the body buffer of the filters attached to this request (limits.bodyBytes)`,
          "",
        );
      },
      end: (trailers) => {
        if (this.done) return;
        message.body = buffer.take();
        const bodyReply = runPhase(this.filters, "on_request_body", message);
        if (bodyReply) {
          this.filterReply(bodyReply);
          return;
        }
        const body = Buffer.from(message.body.buffer, message.body.byteOffset, message.body.byteLength);
        message.body = null;
        this.chunks = body.length > 0 ? [body] : [];
        this.buffered = body.length;
        this.bufferedBodyLength = body.length;
        this.bodyEnded = true;
        this.trailers = trailers;
        this.proceed(true);
      },
    });
  }

  /** Routing and everything after it; `bodyRead` when a body phase has already read the body. */
  private proceed(bodyRead: boolean): void {
    const ex = this.exchange;
    const head = this.head;
    const route = this.ctx.router.match({ authority: head.authority, method: head.method, path: pathOf(head.path), headers: head.headers });
    if (!route) {
      this.reply(
        404,
        `no route for host "${head.authority}" and path "${pathOf(head.path)}"${this.ctx.noRouteReason ? `: ${this.ctx.noRouteReason}` : ""}`,
        "NR",
      );
      return;
    }
    this.route = route;
    const config = route.config;
    const clusterName = pickBackend(route);
    const cluster = this.ctx.clusters.get(clusterName);
    if (!cluster) {
      this.reply(500, `route "${route.name}" names unknown cluster "${clusterName}"`, "NR");
      return;
    }
    this.cluster = cluster;
    if (cluster.config.invalid !== undefined) {
      this.reply(500, `route "${route.name}" sends this share of its requests to an invalid backend: ${cluster.config.invalid}`, "NR");
      return;
    }
    const retry = config.retry;
    this.keepForReplay = !!(retry && retry.attempts > 0) || !!config.mirror;
    this.bufferLimit = retry?.bufferBytes ?? 65536;
    if (!bodyRead) ex.readRequestBody({ data: (chunk) => this.requestData(chunk), end: (trailers) => this.requestEnd(trailers) });
    if (config.timeoutMs > 0) this.routeTimer = setTimeout(() => this.timedOut(), config.timeoutMs);

    const fault = config.fault;
    if (fault?.abort && Math.random() * 100 < fault.abort.percent) {
      this.reply(fault.abort.status, `fault injected by route "${route.name}"`, "FI");
      return;
    }
    if (cluster.activeRequests >= cluster.config.circuitBreaker.maxRequests) {
      this.ctx.telemetry.upstreamError(cluster.config.name, "overflow");
      this.reply(
        503,
        `circuit breaker: cluster "${cluster.config.name}" has ${cluster.activeRequests} requests in flight (maxRequests)`,
        "UO",
      );
      return;
    }
    cluster.activeRequests++;
    this.upstreamRequest = this.buildRequest(config);
    this.mirrorPending = !!config.mirror && Math.random() * 100 < config.mirror.percent;
    if (this.mirrorPending && (!ex.hasRequestBody || bodyRead)) this.sendMirror();
    if (fault?.delay && Math.random() * 100 < fault.delay.percent) {
      setTimeout(() => this.attempt(), fault.delay.ms);
      return;
    }
    this.attempt();
  }

  private buildRequest(config: Route): UpstreamRequestHead {
    const ex = this.exchange;
    const head = this.head;
    const headers = forwardableHeaders(head.headers, ex.connectionTokens, ex.upgrade !== "");
    dropUnderscoredNames(headers);
    if (ex.upgrade) headers.push("connection", "upgrade");
    if (!headerValue(headers, "x-request-id")) headers.push("x-request-id", this.requestId);
    const forwardedFor = headerValue(headers, "x-forwarded-for");
    removeHeader(headers, "x-forwarded-for");
    headers.push("x-forwarded-for", forwardedFor ? `${forwardedFor}, ${ex.peerAddress}` : ex.peerAddress);
    if (!headerValue(headers, "x-forwarded-proto")) headers.push("x-forwarded-proto", ex.peerTls ? "https" : "http");
    // The upstream's parent span is this proxy's span: same trace, new span id.
    const trace = this.ctx.telemetry.startTrace(
      this.ctx.direction,
      headerValue(headers, "traceparent"),
      headerValue(headers, "tracestate"),
      ex.startTime,
    );
    this.trace = trace;
    setHeader(headers, "traceparent", trace.traceparent);
    if (trace.tracestate) setHeader(headers, "tracestate", trace.tracestate);
    else removeHeader(headers, "tracestate");
    this.ctx.decorate(headers, ex);
    if (config.requestHeaders) applyHeaderModifier(headers, config.requestHeaders);
    // Framing and Host come last and from what this proxy read and routed by, never from a
    // header as the client, a filter or a route's modifier wrote it: a body of known length
    // gets exactly that Content-Length, any other is chunked, a body a filter has read is
    // sent whole with its (possibly new) length, and there is one Host.
    const buffered = this.bufferedBodyLength >= 0;
    const chunked = !buffered && ex.hasRequestBody && ex.requestContentLength === -1;
    const sentLength = headerValue(head.headers, "content-length") !== undefined;
    removeHeader(headers, "content-length");
    removeHeader(headers, "transfer-encoding");
    if (chunked) headers.push("transfer-encoding", "chunked");
    else if (buffered) headers.push("content-length", String(this.bufferedBodyLength));
    else if (ex.hasRequestBody) headers.push("content-length", String(ex.requestContentLength));
    else if (sentLength) headers.push("content-length", "0");
    removeHeader(headers, "host");
    headers.unshift("host", head.authority);
    return {
      method: head.method,
      target: head.path,
      authority: head.authority,
      headers,
      chunked,
      hasBody: buffered ? this.bufferedBodyLength > 0 : ex.hasRequestBody,
    };
  }

  // ---- request body ----

  private requestData(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    if (this.upstream) {
      this.sent++;
      if (!this.upstream.writeBody(chunk)) this.pauseRequestUntilDrain(this.upstream);
    }
    this.trimBody();
  }

  private requestEnd(trailers: string[] | null): void {
    this.bodyEnded = true;
    this.trailers = trailers;
    if (this.upstream) this.upstream.endBody(trailers);
    if (this.mirrorPending) this.sendMirror();
  }

  private sendMirror(): void {
    this.mirrorPending = false;
    const target = this.ctx.clusters.get(this.route!.config.mirror!.cluster);
    // A body too large to keep is not mirrored rather than mirrored truncated.
    if (!target || !this.replayable) return;
    mirror(target, this.upstreamRequest!, this.chunks.slice(), this.trailers);
  }

  /**
   * Keeps the whole body while it may be replayed (retries, mirroring) and fits the buffer;
   * otherwise drops what was sent, after which the request cannot be attempted again.
   */
  private trimBody(): void {
    if (this.keepForReplay && this.buffered <= this.bufferLimit) return;
    if (this.sent > 0) {
      this.replayable = false;
      this.chunks.splice(0, this.sent);
      this.sent = 0;
    }
  }

  private pauseRequestUntilDrain(upstream: UpstreamExchange): void {
    this.exchange.pauseRequestBody();
    upstream.onDrain = () => {
      upstream.onDrain = () => {};
      this.exchange.resumeRequestBody();
    };
  }

  // ---- attempts ----

  private attempt(): void {
    if (this.done) return;
    const cluster = this.cluster!;
    const lb = cluster.config.loadBalancer;
    const hashInput = lb.policy === "ConsistentHash" ? headerValue(this.head.headers, lb.header.toLowerCase()) : undefined;
    const endpoint = cluster.config.passthrough
      ? cluster.passthroughEndpoint(this.head.authority)
      : cluster.pick(hashInput, this.attempts > 0 ? this.endpoint : null);
    if (typeof endpoint === "string") {
      this.reply(403, endpoint, "NR");
      return;
    }
    if (!endpoint) {
      this.reply(503, `no endpoints for cluster "${cluster.config.name}"`, "UH");
      return;
    }
    this.attempts++;
    this.endpoint = endpoint;
    this.attemptActive = true;
    endpoint.active++;
    const perTry = this.route!.config.retry?.perTryTimeoutMs;
    if (perTry) {
      this.tryTimer = setTimeout(() => {
        this.tryTimer = null;
        this.attemptFailed({ kind: "timeout" }, `no response from ${endpoint.key} within the per-try timeout of ${perTry} ms`);
      }, perTry);
    }
    const ticket: Ticket = { cancelled: false };
    this.ticket = ticket;
    cluster.acquire(endpoint, ticket).then(
      (upstream) => {
        if (ticket.cancelled || this.done) {
          upstream.release();
          return;
        }
        this.ticket = null;
        this.send(endpoint, upstream);
      },
      (error: Error) => {
        if (ticket.cancelled || this.done) return;
        this.ticket = null;
        if (error instanceof UpstreamFailure && error.reason === "overflow") {
          this.endAttempt();
          this.reply(503, error.message, "UO");
          return;
        }
        cluster.record(endpoint, "connect-failure");
        this.attemptFailed({ kind: "connect" }, error.message);
      },
    );
  }

  private send(endpoint: UpstreamEndpoint, upstream: UpstreamExchange): void {
    const ex = this.exchange;
    const reused = upstream.reused;
    this.upstream = upstream;
    upstream.onDrain = () => {};
    upstream.start(this.upstreamRequest!, {
      head: (head) => this.responseHead(endpoint, upstream, head),
      data: (chunk) => this.responseData(upstream, chunk),
      end: (trailers) => this.responseEnd(upstream, trailers),
      error: (error, beforeResponse) => {
        if (this.upstream !== upstream || this.done) return;
        this.upstream = null;
        // A reused keep-alive connection that the server had just closed is not the
        // endpoint's fault, and is safe to send again when nothing came back.
        if (beforeResponse && reused && isIdempotent(ex.method) && this.replayable && !this.responseStarted) {
          this.endAttempt();
          this.attempts--;
          this.attempt();
          return;
        }
        // With TLS 1.3 a server refuses our certificate only after the client considers the
        // handshake done: a new mTLS connection dying before any answer failed to connect.
        if (beforeResponse && !reused && upstream.tls) {
          this.cluster!.record(endpoint, "connect-failure");
          this.ctx.telemetry.upstreamError(this.cluster!.config.name, "tls");
          this.attemptFailed(
            { kind: "connect" },
            `${endpoint.key} closed a new mTLS connection before answering (was our certificate refused?): ${error.message}`,
          );
          return;
        }
        if (beforeResponse) this.cluster!.record(endpoint, "5xx");
        this.attemptFailed(beforeResponse ? { kind: "reset" } : null, `${endpoint.key}: ${error.message}`);
      },
    });
    if (ex.expectContinue) upstream.flushHead();
    this.sent = 0;
    for (const chunk of this.chunks) {
      this.sent++;
      if (!upstream.writeBody(chunk)) this.pauseRequestUntilDrain(upstream);
    }
    if (this.bodyEnded && this.upstreamRequest!.hasBody) upstream.endBody(this.trailers);
    this.trimBody();
  }

  /** Ends the current attempt's claims: its queue ticket, connection and in-flight count. */
  private endAttempt(): void {
    this.clearTryTimer();
    if (this.ticket) {
      this.ticket.cancelled = true;
      this.ticket = null;
    }
    if (this.upstream) {
      this.upstream.abort();
      this.upstream = null;
    }
    if (this.attemptActive) {
      this.attemptActive = false;
      this.endpoint!.active--;
    }
  }

  private canRetry(failure: AttemptFailure | null): boolean {
    const policy = this.route?.config.retry;
    if (!policy || !failure || this.responseStarted || this.done) return false;
    if (this.attempts > policy.attempts) return false;
    if (!this.replayable) return false;
    if (!isIdempotent(this.exchange.method) && !policy.retryNonIdempotent) return false;
    if (!retriable(policy, failure)) return false;
    const cluster = this.cluster!;
    return withinBudget(policy, cluster.retriesActive, cluster.activeRequests);
  }

  private attemptFailed(failure: AttemptFailure | null, message: string): void {
    if (this.done) return;
    this.endAttempt();
    const clusterName = this.cluster!.config.name;
    if (failure?.kind === "timeout") this.ctx.telemetry.upstreamError(clusterName, "timeout");
    if (failure?.kind === "reset") this.ctx.telemetry.upstreamError(clusterName, "reset");
    if (this.canRetry(failure)) {
      this.scheduleRetry();
      return;
    }
    if (this.responseStarted) {
      this.exchange.reset();
      this.finish("UC");
      return;
    }
    const retried = this.attempts > 1;
    const flag: ResponseFlag = retried ? "URX" : failure?.kind === "timeout" ? "UT" : failure?.kind === "connect" ? "UF" : "UC";
    const status = failure?.kind === "timeout" ? 504 : failure?.kind === "connect" ? 503 : 502;
    this.reply(status, `${message}${retried ? ` (after ${this.attempts} attempts)` : ""}`, flag);
  }

  private scheduleRetry(): void {
    const cluster = this.cluster!;
    const policy = this.route!.config.retry!;
    cluster.retriesActive++;
    setTimeout(
      () => {
        cluster.retriesActive--;
        this.attempt();
      },
      backoffMs(policy, this.attempts),
    );
  }

  // ---- response ----

  private responseHead(endpoint: UpstreamEndpoint, upstream: UpstreamExchange, head: ResponseHead): void {
    if (this.upstream !== upstream || this.done) return;
    const ex = this.exchange;
    if (head.status < 200 && head.status !== 101) {
      if (head.status === 100 || head.status === 103)
        ex.sendInterim(head.status, forwardableHeaders(head.headers, head.connectionTokens, false));
      return;
    }
    this.clearTryTimer();
    if (head.status === 101 && !ex.upgrade) {
      // Nothing was asked to switch: the client gets a 502, not a connection that just closes.
      this.attemptFailed(null, `${endpoint.key} switched protocols without an upgrade request`);
      return;
    }
    if (head.status >= 500 && this.canRetry({ kind: "status", status: head.status })) {
      this.cluster!.record(endpoint, "5xx");
      this.endAttempt();
      this.scheduleRetry();
      return;
    }
    this.cluster!.record(endpoint, head.status >= 500 ? "5xx" : "success");
    this.status = head.status;
    this.responseStarted = true;
    const headers = forwardableHeaders(head.headers, head.connectionTokens, head.status === 101);
    removeHeader(headers, "content-length");
    const responseHeaders = this.route!.config.responseHeaders;
    if (responseHeaders) applyHeaderModifier(headers, responseHeaders);
    let status = head.status;
    if (this.message && head.status !== 101) {
      const message = this.message;
      message.response = { status, headers };
      const reply = runPhase(this.filters, "on_response_headers", message);
      if (reply) {
        this.endAttempt();
        this.filterReply(reply);
        return;
      }
      status = this.status = message.response.status;
      if (anyHandles(this.filters, "on_response_body") && !head.bodyless) {
        // The head waits for the body: a body phase may change both.
        this.pendingHead = { status, reason: status === head.status ? head.reason : "", headers };
        this.responseBody = new BodyBuffer(bodyLimit(this.filters, "on_response_body"));
        return;
      }
    }
    if (head.status === 101) {
      ex.sendHead(101, head.reason, headers, -1, false);
      const up = upstream.takeTunnel();
      this.upstream = null;
      this.endAttempt();
      const down = ex.takeTunnel();
      if (down && up) tunnel(down, up);
      else up?.conn.destroy();
      this.finish("");
      return;
    }
    const noBody = ex.method === "HEAD" || head.status === 204 || head.status === 304;
    ex.onResponseDrain = () => upstream.resumeResponse();
    if (head.bodyless && !noBody) {
      // An HTTP/2 answer that ended with its headers (gRPC's trailers-only): no body at all.
      ex.sendHead(status, head.reason, headers, 0, false);
      return;
    }
    const contentLength = head.chunked ? -1 : head.contentLength;
    ex.sendHead(status, status === head.status ? head.reason : "", headers, noBody && ex.method !== "HEAD" ? -1 : contentLength, !noBody);
  }

  private responseData(upstream: UpstreamExchange, chunk: Buffer): void {
    if (this.upstream !== upstream || this.done) return;
    const buffer = this.responseBody;
    if (buffer) {
      if (!buffer.add(chunk)) {
        this.endAttempt();
        this.reply(
          502,
          `the response body is larger than ${buffer.limit} bytes, the body buffer of the filters attached to this request (limits.bodyBytes)`,
          "",
        );
      }
      return;
    }
    if (!this.exchange.sendData(chunk)) upstream.pauseResponse();
  }

  private responseEnd(upstream: UpstreamExchange, trailers: string[] | null): void {
    if (this.upstream !== upstream || this.done || !this.responseStarted) return;
    // The connection went back to its pool already; only the in-flight count remains.
    this.upstream = null;
    this.endAttempt();
    if (this.responseBody) {
      this.sendFilteredResponse(this.responseBody.take(), trailers);
      return;
    }
    this.exchange.sendEnd(trailers);
    this.finish("");
  }

  /** The response after the filters' body phase, which has seen the whole body. */
  private sendFilteredResponse(body: Buffer, trailers: string[] | null): void {
    const message = this.message!;
    const pending = this.pendingHead!;
    message.response = { status: pending.status, headers: pending.headers };
    message.body = body;
    const reply = runPhase(this.filters, "on_response_body", message);
    if (reply) {
      this.filterReply(reply);
      return;
    }
    const ex = this.exchange;
    const { status, headers } = message.response;
    const out = Buffer.from(message.body.buffer, message.body.byteOffset, message.body.byteLength);
    this.status = status;
    const hasBody = ex.method !== "HEAD" && status !== 204 && status !== 304;
    ex.sendHead(status, status === pending.status ? pending.reason : "", headers, out.length, hasBody);
    if (hasBody && out.length > 0) ex.sendData(out);
    ex.sendEnd(trailers);
    this.finish("");
  }

  // ---- endings ----

  private timedOut(): void {
    this.routeTimer = null;
    if (this.done) return;
    const timeout = this.route!.config.timeoutMs;
    this.endAttempt();
    this.ctx.telemetry.upstreamError(this.cluster?.config.name ?? "", "timeout");
    if (this.responseStarted) {
      this.exchange.reset();
      this.finish("UT");
    } else {
      this.reply(504, `upstream did not answer within the route timeout of ${timeout} ms`, "UT");
    }
  }

  private abortedByDownstream(): void {
    if (this.done) return;
    this.endAttempt();
    this.finish("DC");
  }

  /** A local reply a filter asked for (or its failStrategy answered with). */
  private filterReply(reply: LocalReply): void {
    const ex = this.exchange;
    this.status = reply.status;
    if (ex.headSent) {
      ex.reset();
      this.finish("");
      return;
    }
    const headers = reply.headers.slice();
    if (reply.body.length > 0 && !headerValue(headers, "content-type")) headers.push("content-type", "text/plain; charset=utf-8");
    if (!headerValue(headers, "x-request-id")) headers.push("x-request-id", this.requestId);
    const hasBody = ex.method !== "HEAD" && reply.status !== 204 && reply.status !== 304;
    ex.sendHead(reply.status, "", headers, hasBody || ex.method === "HEAD" ? reply.body.length : 0, hasBody);
    if (hasBody && reply.body.length > 0) ex.sendData(Buffer.from(reply.body.buffer, reply.body.byteOffset, reply.body.byteLength));
    ex.sendEnd(null);
    this.finish("");
  }

  private reply(status: number, message: string, flag: ResponseFlag): void {
    this.status = status;
    localReply(this.exchange, status, message, this.requestId ? ["x-request-id", this.requestId] : []);
    this.finish(flag);
  }

  private clearTryTimer(): void {
    if (this.tryTimer) {
      clearTimeout(this.tryTimer);
      this.tryTimer = null;
    }
  }

  private finish(flag: ResponseFlag): void {
    if (this.done) return;
    this.done = true;
    this.flag = flag;
    this.endAttempt();
    if (this.routeTimer) clearTimeout(this.routeTimer);
    const cluster = this.cluster;
    if (cluster && this.upstreamRequest) cluster.activeRequests--;
    const ex = this.exchange;
    const { source, destination } = this.ctx.describe(ex, cluster);
    this.ctx.telemetry.request({
      direction: this.ctx.direction,
      startTime: ex.startTime,
      durationMs: Date.now() - ex.startTime,
      method: ex.method,
      authority: ex.authority,
      path: ex.target,
      protocol: ex.protocol,
      status: this.status,
      requestBytes: ex.requestBytes,
      responseBytes: ex.responseBytes,
      requestId: this.requestId,
      traceparent: this.trace?.traceparent ?? headerValue(ex.headers, "traceparent") ?? "",
      trace: this.trace,
      userAgent: headerValue(ex.headers, "user-agent") ?? "",
      route: this.route?.name ?? "",
      source,
      destination,
      upstreamAddress: this.endpoint?.key ?? "",
      attempts: this.attempts,
      responseFlag: this.flag,
      mtls: ex.peerTls !== null || !!cluster?.config.tls,
    });
  }
}
