// One request and its response as it passes the stages (pipeline.ts): what the stages learnt
// about it (route, cluster, attempts), where its response goes, what to release when it ends,
// and the one access-log record it makes. Errors become responses here and nowhere else.
import { randomUUID } from "node:crypto";
import type { Buffer } from "node:buffer";
import type { BackendRef } from "../config/schema.ts";
import type { LocalReply, RequestMessage } from "../filters/message.ts";
import type { ServerExchange } from "../http/exchange.ts";
import { headerValue } from "../http/headers.ts";
import type { CompiledRoute } from "../routing/router.ts";
import type { RequestTrace, ResponseFlag } from "../telemetry/types.ts";
import type { UpstreamCluster } from "../upstream/cluster.ts";
import type { Clock, Random } from "./clock.ts";
import type { ForwardContext } from "./context.ts";
import { errorResponse, filterResponse, type LocalResponse, sendLocal } from "./local-reply.ts";
import type { ResponseOut, ResponseSink } from "./response.ts";

/** One step of the request path: it calls tx.next() to pass the request on (now or later), or ends the transaction. */
export type Stage = (tx: Transaction) => void;

/**
 * Where a local reply passes before it goes out: the response phases of the filters whose
 * request phases ran (stages/filter-response.ts), set by the filters stage.
 */
export interface LocalReplyPath {
  /**
   * The reply as those filters leave it. `madeAt` is the chain position of the filter that made
   * it (only the filters before it see it); omitted for the proxy's own replies, which every
   * filter that has not yet seen a response sees.
   */
  pass(reply: LocalResponse, madeAt?: number): LocalResponse;
}

/** A request body a stage has already read whole (filters' body phase). */
export interface ReadBody {
  body: Buffer;
  trailers: string[] | null;
}

export class Transaction implements ResponseSink {
  readonly exchange: ServerExchange;
  readonly ctx: ForwardContext;
  readonly clock: Clock;
  readonly random: Random;
  readonly requestId: string;
  /** The request as routed and sent: the downstream's, or the filters' changed copy. */
  request: RequestMessage;
  /** Set by the filters' body phase, which read the body whole. */
  readBody: ReadBody | null = null;
  route: CompiledRoute | null = null;
  cluster: UpstreamCluster | null = null;
  /** The route's backend the request goes to (its header modifiers apply after the route's). */
  backend: BackendRef | null = null;
  trace: RequestTrace | undefined = undefined;
  /** The endpoint of the last attempt. */
  upstreamAddress = "";
  /** The workload the upstream's response named (a mesh peer's sidecar says who answered), or "". */
  answeredBy = "";
  attempts = 0;
  /** An upstream's final head was accepted: no retry and no new attempt from here on. */
  responseStarted = false;
  /** The status sent downstream. */
  status = 0;
  done = false;
  /** Where the response goes: this transaction (the downstream), wrapped by the stages that see responses. */
  response: ResponseSink = this;
  /** Where local replies pass on their way out; null until the filters stage sets it (none before the filters). */
  localReplies: LocalReplyPath | null = null;
  private readonly stages: readonly Stage[];
  private stage = -1;
  private cleanups: (() => void)[] | null = null;

  constructor(exchange: ServerExchange, ctx: ForwardContext, stages: readonly Stage[], clock: Clock, random: Random) {
    this.exchange = exchange;
    this.ctx = ctx;
    this.stages = stages;
    this.clock = clock;
    this.random = random;
    this.requestId = headerValue(exchange.headers, "x-request-id") || randomUUID();
    this.request = {
      method: exchange.method,
      path: exchange.target,
      authority: exchange.authority,
      scheme: exchange.peerTls ? "https" : "http",
      headers: exchange.headers,
    };
    exchange.onAbort = () => this.finish("DC");
  }

  /** Passes the request to the next stage. */
  next(): void {
    if (this.done) return;
    const stage = this.stages[++this.stage];
    if (stage) stage(this);
  }

  /** Runs `cleanup` when the transaction ends, however it ends; cleanups run last-registered first. */
  onEnd(cleanup: () => void): void {
    (this.cleanups ??= []).push(cleanup);
  }

  /** Ends with an error response (or a reset once a head has gone out). */
  reply(status: number, message: string, flag: ResponseFlag): void {
    if (this.done) return;
    this.answer(errorResponse(this.exchange, status, message, ["x-request-id", this.requestId]), undefined, flag);
  }

  /** Ends after a failure: an error response before the upstream's head was accepted, a reset after it. */
  fail(status: number, message: string, flag: ResponseFlag): void {
    if (this.done) return;
    if (this.responseStarted) {
      this.exchange.reset();
      this.finish(flag);
      return;
    }
    this.reply(status, message, flag);
  }

  /** Ends with a filter's local reply; `madeAt` is the chain position of the filter that made it. */
  replyWith(reply: LocalReply, madeAt?: number): void {
    if (this.done) return;
    this.answer(filterResponse(reply, this.requestId), madeAt, "");
  }

  /** Sends a local reply, through the response phases it passes (docs/filter-abi.md#local-replies-and-response-phases). */
  private answer(reply: LocalResponse, madeAt: number | undefined, flag: ResponseFlag): void {
    const out = this.localReplies && !this.exchange.headSent ? this.localReplies.pass(reply, madeAt) : reply;
    if (this.done) return;
    this.status = out.recorded;
    sendLocal(this.exchange, out);
    this.finish(flag);
  }

  // The downstream end of the response sinks.
  head(out: ResponseOut): void {
    this.status = out.status;
    this.exchange.sendHead(out.status, out.reason, out.headers, out.contentLength, out.hasBody);
  }

  data(chunk: Buffer): boolean {
    return this.exchange.sendData(chunk);
  }

  end(trailers: string[] | null): void {
    this.exchange.sendEnd(trailers);
    this.finish("");
  }

  /** Releases what the stages hold and records the request, once. */
  finish(flag: ResponseFlag): void {
    if (this.done) return;
    this.done = true;
    const cleanups = this.cleanups;
    if (cleanups) for (let i = cleanups.length - 1; i >= 0; i--) cleanups[i]!();
    const ex = this.exchange;
    const cluster = this.cluster;
    const { source, destination } = this.ctx.describe(ex, cluster, this.answeredBy);
    this.ctx.telemetry.request({
      direction: this.ctx.direction,
      startTime: ex.startTime,
      durationMs: this.clock.now() - ex.startTime,
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
      upstreamAddress: this.upstreamAddress,
      attempts: this.attempts,
      responseFlag: flag,
      // A client certificate, not TLS alone: a SIMPLE listener's clients present none.
      mtls: ex.peerTls?.peerCertificate != null || !!cluster?.config.tls,
    });
  }
}
