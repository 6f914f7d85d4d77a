// Stage 6, the last: the request upstream. It builds the upstream request, mirrors it when the
// route says so, and makes attempts (attempt.ts) at endpoints the load balancer picks, trying
// again within the route's retry policy, until one answers. The answer goes back through the
// response sinks of the stages before it.
import type { Buffer } from "node:buffer";
import type { RetryPolicy, Route } from "../../config/schema.ts";
import { forwardableHeaders, headerValue } from "../../http/headers.ts";
import type { ResponseHead } from "../../http/message-head.ts";
import type { UpstreamCluster, UpstreamEndpoint } from "../../upstream/cluster.ts";
import type { UpstreamExchange, UpstreamRequestHead } from "../../upstream/exchange.ts";
import { Attempt, type AttemptOwner } from "../attempt.ts";
import { mirror } from "../mirror.ts";
import { RequestBody } from "../request-body.ts";
import { responseOut } from "../response.ts";
import { backoffMs, isIdempotent, retriable, type AttemptFailure } from "../retry.ts";
import type { Transaction } from "../transaction.ts";
import { tunnel } from "../tunnel.ts";
import { upstreamRequest } from "../upstream-request.ts";

export function attempts(tx: Transaction): void {
  new Attempts(tx, tx.route!.config, tx.cluster!).start();
}

class Attempts implements AttemptOwner {
  private readonly tx: Transaction;
  private readonly route: Route;
  private readonly cluster: UpstreamCluster;
  private readonly head: UpstreamRequestHead;
  private readonly body: RequestBody;
  private readonly retry: RetryPolicy | undefined;
  private current: Attempt | null = null;
  /** The endpoint of the attempt before, which a retry avoids. */
  private previous: UpstreamEndpoint | null = null;

  constructor(tx: Transaction, route: Route, cluster: UpstreamCluster) {
    this.tx = tx;
    this.route = route;
    this.cluster = cluster;
    this.retry = route.retry;
    this.head = upstreamRequest(tx, route);
    const keep = (!!this.retry && this.retry.attempts > 0) || !!route.mirror;
    this.body = new RequestBody(tx.exchange, keep, this.retry?.bufferBytes ?? 65536, tx.readBody);
  }

  start(): void {
    const tx = this.tx;
    tx.onEnd(() => this.stopCurrent());
    const shadow = this.route.mirror;
    if (shadow && tx.random() * 100 < shadow.percent) {
      // A copy goes with the whole body, so it leaves once the body has arrived.
      const send = () => {
        const target = tx.ctx.clusters.get(shadow.cluster);
        // A body too large to keep is not mirrored rather than mirrored truncated.
        if (target && this.body.replayable) mirror(target, this.head, this.body.copy(), this.body.trailers);
      };
      if (this.body.ended) send();
      else this.body.onEnded = send;
    }
    this.attempt();
  }

  private attempt(): void {
    const tx = this.tx;
    if (tx.done) return;
    const cluster = this.cluster;
    const lb = cluster.config.loadBalancer;
    const hashInput = lb.policy === "ConsistentHash" ? headerValue(tx.request.headers, lb.header.toLowerCase()) : undefined;
    const endpoint = cluster.config.passthrough
      ? cluster.passthroughEndpoint(tx.request.authority)
      : cluster.pick(hashInput, tx.attempts > 0 ? this.previous : null);
    if (typeof endpoint === "string") {
      tx.reply(403, endpoint, "NR");
      return;
    }
    if (!endpoint) {
      tx.reply(503, `no endpoints for cluster "${cluster.config.name}"`, "UH");
      return;
    }
    tx.attempts++;
    tx.upstreamAddress = endpoint.key;
    this.previous = endpoint;
    const attempt = new Attempt(this, cluster, endpoint, tx.clock);
    this.current = attempt;
    attempt.start(this.retry?.perTryTimeoutMs ?? 0);
  }

  private stopCurrent(): void {
    this.current?.stop();
    this.current = null;
    this.body.detach();
  }

  connected(attempt: Attempt, upstream: UpstreamExchange): void {
    upstream.start(this.head, attempt);
    if (this.tx.exchange.expectContinue) upstream.flushHead();
    this.body.sendTo(upstream, this.head.hasBody);
  }

  overflowed(_attempt: Attempt, message: string): void {
    this.stopCurrent();
    this.tx.reply(503, message, "UO");
  }

  resent(_attempt: Attempt): boolean {
    if (!isIdempotent(this.tx.exchange.method) || !this.body.replayable || this.tx.responseStarted) return false;
    this.stopCurrent();
    // Not a new attempt: the connection was stale, the endpoint did nothing wrong.
    this.tx.attempts--;
    this.attempt();
    return true;
  }

  failed(_attempt: Attempt, failure: AttemptFailure | null, message: string): void {
    const tx = this.tx;
    if (tx.done) return;
    this.stopCurrent();
    const clusterName = this.cluster.config.name;
    if (failure?.kind === "timeout") tx.ctx.telemetry.upstreamError(clusterName, "timeout");
    if (failure?.kind === "reset") tx.ctx.telemetry.upstreamError(clusterName, "reset");
    if (this.retried(failure)) return;
    const retried = tx.attempts > 1;
    const flag = retried ? "URX" : failure?.kind === "timeout" ? "UT" : failure?.kind === "connect" ? "UF" : "UC";
    const status = failure?.kind === "timeout" ? 504 : failure?.kind === "connect" ? 503 : 502;
    tx.fail(status, `${message}${retried ? ` (after ${tx.attempts} attempts)` : ""}`, tx.responseStarted ? "UC" : flag);
  }

  /** Schedules another attempt after a back-off when the retry policy allows one for `failure` (true). */
  private retried(failure: AttemptFailure | null): boolean {
    const policy = this.retry;
    const tx = this.tx;
    if (!policy || !failure || tx.responseStarted || tx.done) return false;
    if (tx.attempts > policy.attempts || !this.body.replayable) return false;
    if (!isIdempotent(tx.exchange.method) && !policy.retryNonIdempotent) return false;
    if (!retriable(policy, failure)) return false;
    const release = this.cluster.reserveRetry(policy);
    if (!release) return false;
    tx.clock.setTimeout(
      () => {
        release();
        this.attempt();
      },
      backoffMs(policy, tx.attempts, tx.random),
    );
    return true;
  }

  responseHead(attempt: Attempt, head: ResponseHead): void {
    const tx = this.tx;
    const ex = tx.exchange;
    if (head.status < 200 && head.status !== 101) {
      if (head.status === 100 || head.status === 103)
        ex.sendInterim(head.status, forwardableHeaders(head.headers, head.connectionTokens, false));
      return;
    }
    attempt.answered();
    if (head.status === 101 && !ex.upgrade) {
      // Nothing was asked to switch: the client gets a 502, not a connection that just closes.
      this.failed(attempt, null, `${attempt.endpoint.key} switched protocols without an upgrade request`);
      return;
    }
    const failed = head.status >= 500;
    this.cluster.record(attempt.endpoint, failed ? "5xx" : "success");
    if (failed && this.retried({ kind: "status", status: head.status })) {
      this.stopCurrent();
      return;
    }
    tx.responseStarted = true;
    const out = responseOut(head, ex.method);
    tx.answeredBy = tx.ctx.decorateResponse(out.headers, ex, tx.cluster);
    if (head.status === 101) {
      tx.response.head(out);
      if (tx.done) return;
      const up = attempt.upstream?.takeTunnel() ?? null;
      attempt.upstream = null;
      this.stopCurrent();
      const down = ex.takeTunnel();
      if (down && up) tunnel(down, up);
      else up?.conn.destroy();
      tx.finish("");
      return;
    }
    const upstream = attempt.upstream!;
    ex.onResponseDrain = () => upstream.resumeResponse();
    tx.response.head(out);
  }

  responseData(attempt: Attempt, chunk: Buffer): void {
    if (!this.tx.response.data(chunk)) attempt.upstream?.pauseResponse();
  }

  responseEnd(attempt: Attempt, trailers: string[] | null): void {
    if (!this.tx.responseStarted) return;
    attempt.complete();
    this.current = null;
    this.body.detach();
    this.tx.response.end(trailers);
  }
}
