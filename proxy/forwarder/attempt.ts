// One try of a request at one endpoint. It owns what the try holds: its place in the queue
// for a connection (it is the ticket), its per-try timer, its connection or stream, and its
// count in the endpoint's requests in flight; stop() gives all of them back, once.
import type { Buffer } from "node:buffer";
import type { ResponseHead } from "../http/message-head.ts";
import { UpstreamFailure, type Ticket, type UpstreamCluster, type UpstreamEndpoint } from "../upstream/cluster.ts";
import type { ResponseHandler, UpstreamExchange } from "../upstream/exchange.ts";
import type { Clock, Timer } from "./clock.ts";
import type { AttemptFailure } from "./retry.ts";

/** What an attempt reports to the request's attempts (stages/attempts.ts). */
export interface AttemptOwner {
  connected(attempt: Attempt, upstream: UpstreamExchange): void;
  /** The cluster's connection queue is full (maxPendingRequests). */
  overflowed(attempt: Attempt, message: string): void;
  /**
   * A kept-alive connection the server had just closed failed before answering: nobody's fault,
   * so the owner sends the request again on another connection if it safely can (true).
   */
  resent(attempt: Attempt): boolean;
  failed(attempt: Attempt, failure: AttemptFailure | null, message: string): void;
  responseHead(attempt: Attempt, head: ResponseHead): void;
  responseData(attempt: Attempt, chunk: Buffer): void;
  responseEnd(attempt: Attempt, trailers: string[] | null): void;
}

export class Attempt implements Ticket, ResponseHandler {
  readonly endpoint: UpstreamEndpoint;
  /** Ticket: set when the attempt no longer wants a connection. */
  cancelled = false;
  upstream: UpstreamExchange | null = null;
  private readonly owner: AttemptOwner;
  private readonly cluster: UpstreamCluster;
  private readonly clock: Clock;
  private timer: Timer | null = null;

  constructor(owner: AttemptOwner, cluster: UpstreamCluster, endpoint: UpstreamEndpoint, clock: Clock) {
    this.owner = owner;
    this.cluster = cluster;
    this.endpoint = endpoint;
    this.clock = clock;
  }

  /** Claims the endpoint, arms the per-try timeout (0: none) and asks the cluster for a connection. */
  start(perTryTimeoutMs: number): void {
    const endpoint = this.endpoint;
    endpoint.requestStarted();
    if (perTryTimeoutMs > 0) {
      this.timer = this.clock.setTimeout(() => {
        this.timer = null;
        this.owner.failed(
          this,
          { kind: "timeout" },
          `no response from ${endpoint.key} within the per-try timeout of ${perTryTimeoutMs} ms`,
        );
      }, perTryTimeoutMs);
    }
    this.cluster.acquire(endpoint, this).then(
      (upstream) => {
        if (this.cancelled) {
          upstream.release();
          return;
        }
        this.upstream = upstream;
        this.owner.connected(this, upstream);
      },
      (error: Error) => {
        if (this.cancelled) return;
        if (error instanceof UpstreamFailure && error.reason === "overflow") {
          this.owner.overflowed(this, error.message);
          return;
        }
        this.cluster.record(endpoint, "connect-failure");
        this.owner.failed(this, { kind: "connect" }, error.message);
      },
    );
  }

  /** The upstream answered: the per-try timeout no longer applies. */
  answered(): void {
    if (this.timer) {
      this.clock.clearTimeout(this.timer);
      this.timer = null;
    }
  }

  /** Gives back what the attempt holds; a connection still in use is aborted, not reused. */
  stop(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    this.answered();
    this.upstream?.abort();
    this.upstream = null;
    this.endpoint.requestEnded();
  }

  /** Ends after the response completed: its connection went back to the pool already. */
  complete(): void {
    this.upstream = null;
    this.stop();
  }

  // ResponseHandler: the upstream's events, while this attempt is the current one.
  head(head: ResponseHead): void {
    if (!this.cancelled) this.owner.responseHead(this, head);
  }

  data(chunk: Buffer): void {
    if (!this.cancelled) this.owner.responseData(this, chunk);
  }

  end(trailers: string[] | null): void {
    if (!this.cancelled) this.owner.responseEnd(this, trailers);
  }

  error(error: Error, beforeResponse: boolean): void {
    if (this.cancelled) return;
    const upstream = this.upstream!;
    // It failed: there is nothing left to abort or reuse.
    this.upstream = null;
    const endpoint = this.endpoint;
    if (beforeResponse && upstream.reused && this.owner.resent(this)) return;
    // With TLS 1.3 a server refuses our certificate only after the client considers the
    // handshake done: a new mTLS connection dying before any answer failed to connect.
    if (beforeResponse && !upstream.reused && upstream.tls) {
      this.cluster.record(endpoint, "connect-failure");
      this.owner.failed(
        this,
        { kind: "connect" },
        `${endpoint.key} closed a new mTLS connection before answering (was our certificate refused?): ${error.message}`,
      );
      return;
    }
    if (beforeResponse) this.cluster.record(endpoint, "5xx");
    this.owner.failed(this, beforeResponse ? { kind: "reset" } : null, `${endpoint.key}: ${error.message}`);
  }
}
