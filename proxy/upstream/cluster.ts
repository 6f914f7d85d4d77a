// A cluster: its endpoints, their pooled connections, load balancing, outlier ejection and
// circuit breaking. Clusters outlive configuration versions when their endpoints stay, so a
// reload keeps warm connections and health state.
import type { Cluster, Endpoint, RetryPolicy } from "../config/schema.ts";
import type { ClientTlsOptions, Conn, Runtime } from "../runtime/types.ts";
import type { Telemetry } from "../telemetry/types.ts";
import { createBalancer, type Balanced, type Balancer } from "./balancer.ts";
import { newOutlierState, recordOutcome, type Outcome, type OutlierState } from "./outlier.ts";
import { UpstreamHttp1 } from "./http1-client.ts";
import { Http2Upstream } from "./http2-client.ts";
import type { UpstreamExchange } from "./exchange.ts";
import { passthroughTarget, selfAddressProblem } from "./passthrough.ts";

export type FailureReason = "connect" | "tls" | "overflow" | "timeout" | "reset" | "protocol";

export class UpstreamFailure extends Error {
  readonly reason: FailureReason;
  constructor(reason: FailureReason, message: string) {
    super(message);
    this.name = "UpstreamFailure";
    this.reason = reason;
  }
}

export class UpstreamEndpoint implements Balanced {
  readonly key: string;
  readonly address: string;
  readonly port: number;
  weight: number;
  private requests = 0;
  connections = 0;
  readonly idle: UpstreamHttp1[] = [];
  readonly outlier: OutlierState = newOutlierState();
  /** The shared session when the cluster speaks HTTP/2. */
  h2: Http2Upstream | null = null;

  /** Requests in flight to this endpoint (least-request balancing reads it). */
  get active(): number {
    return this.requests;
  }

  /** A request (an attempt, a mirrored copy) starts using this endpoint; it calls requestEnded() once. */
  requestStarted(): void {
    this.requests++;
  }

  requestEnded(): void {
    this.requests--;
  }

  /** Closes what is not in use: idle pooled connections and the HTTP/2 session. */
  closeIdle(): void {
    for (const conn of this.idle.splice(0)) conn.conn.end();
    this.h2?.close();
  }

  constructor(endpoint: Endpoint) {
    this.address = endpoint.address;
    this.port = endpoint.port;
    this.weight = endpoint.weight;
    this.key = endpoint.address.includes(":") ? `[${endpoint.address}]:${endpoint.port}` : `${endpoint.address}:${endpoint.port}`;
  }
}

/** Lets a request give up its place in the queue for a connection. */
export interface Ticket {
  cancelled: boolean;
}

interface Waiter {
  ticket: Ticket;
  endpoint: UpstreamEndpoint;
  resolve: (conn: UpstreamHttp1) => void;
  reject: (error: Error) => void;
}

export type ClientTlsProvider = (cluster: Cluster) => ClientTlsOptions | undefined;

export class UpstreamCluster {
  config: Cluster;
  endpoints: UpstreamEndpoint[] = [];
  private requests = 0;
  private retries = 0;
  private connections = 0;
  private waiters: Waiter[] = [];
  private balancer: Balancer<UpstreamEndpoint>;
  private healthy: UpstreamEndpoint[] | null = null;
  private nextHealthCheck = 0;
  private readonly runtime: Runtime;
  private readonly tlsFor: ClientTlsProvider;
  private readonly telemetry: Telemetry;
  private closed = false;

  constructor(config: Cluster, runtime: Runtime, tlsFor: ClientTlsProvider, telemetry: Telemetry) {
    this.config = config;
    this.runtime = runtime;
    this.tlsFor = tlsFor;
    this.telemetry = telemetry;
    this.balancer = createBalancer(config.loadBalancer);
    this.setEndpoints(config.endpoints);
  }

  /** Requests in flight (admitted and not yet ended). */
  get activeRequests(): number {
    return this.requests;
  }

  /** Admits a request within the circuit breaker's maxRequests: its release (call it once, when the request ends), or null when the breaker is open. */
  admit(): (() => void) | null {
    if (this.requests >= this.config.circuitBreaker.maxRequests) return null;
    this.requests++;
    return () => {
      this.requests--;
    };
  }

  /**
   * Reserves a retry within `policy`'s budget (retries in flight at most a share of the active
   * requests, or a floor): its release, to call when the retry starts, or null when over budget.
   */
  reserveRetry(policy: RetryPolicy): (() => void) | null {
    if (this.retries >= Math.max(policy.minRetryConcurrency, (this.requests * policy.budgetPercent) / 100)) return null;
    this.retries++;
    return () => {
      this.retries--;
    };
  }

  /** Applies a new version of this cluster's configuration, keeping state that still fits. */
  update(config: Cluster): void {
    const lbChanged = JSON.stringify(config.loadBalancer) !== JSON.stringify(this.config.loadBalancer);
    this.config = config;
    if (lbChanged) this.balancer = createBalancer(config.loadBalancer);
    this.setEndpoints(config.endpoints);
  }

  private setEndpoints(endpoints: Endpoint[]): void {
    const old = new Map(this.endpoints.map((e) => [e.key, e]));
    this.endpoints = endpoints.map((config) => {
      const fresh = new UpstreamEndpoint(config);
      const kept = old.get(fresh.key);
      if (!kept) return fresh;
      old.delete(fresh.key);
      kept.weight = config.weight;
      return kept;
    });
    // Endpoints that left: close their idle connections; busy ones close when released.
    for (const gone of old.values()) gone.closeIdle();
    this.healthy = null;
  }

  /** Endpoints not ejected now; recomputed only when an ejection starts or ends. */
  private healthyEndpoints(now: number): UpstreamEndpoint[] {
    if (this.healthy && now < this.nextHealthCheck) return this.healthy;
    let next = Infinity;
    const healthy: UpstreamEndpoint[] = [];
    for (const e of this.endpoints) {
      if (e.outlier.ejectedUntil > now) next = Math.min(next, e.outlier.ejectedUntil);
      else healthy.push(e);
    }
    const changed = !this.healthy || healthy.length !== this.healthy.length || healthy.some((e, i) => e !== this.healthy![i]);
    // Keep the array's identity while the set is unchanged: hash rings are built per array.
    if (changed) this.healthy = healthy.length > 0 ? healthy : this.endpoints.slice();
    this.nextHealthCheck = next;
    return this.healthy!;
  }

  /** A passthrough cluster's endpoint for one request: its own authority (or passthroughTo), never pooled (it is not among `endpoints`). */
  passthroughEndpoint(authority: string): UpstreamEndpoint | string {
    const target = passthroughTarget(authority, this.config.passthroughTo);
    return typeof target === "string" ? target : new UpstreamEndpoint({ ...target, weight: 1, labels: {} });
  }

  pick(hashInput: string | undefined, exclude: UpstreamEndpoint | null): UpstreamEndpoint | undefined {
    return this.balancer.pick(this.healthyEndpoints(Date.now()), hashInput, exclude);
  }

  record(endpoint: UpstreamEndpoint, outcome: Outcome): void {
    const policy = this.config.outlierDetection;
    if (!policy) return;
    const now = Date.now();
    const ejected = this.endpoints.filter((e) => e.outlier.ejectedUntil > now).length;
    const ejection = recordOutcome(endpoint.outlier, outcome, policy, ejected, this.endpoints.length, now);
    if (ejection) {
      this.healthy = null;
      this.nextHealthCheck = 0;
      this.telemetry.outlierEjected(this.config.name, ejection);
    }
  }

  /** A connection to `endpoint`, reused when one is idle, within the circuit breaker. */
  acquire(endpoint: UpstreamEndpoint, ticket: Ticket): Promise<UpstreamExchange> {
    if (this.config.protocol === "http2") return this.http2Exchange(endpoint);
    while (endpoint.idle.length > 0) {
      const conn = endpoint.idle.pop()!;
      if (!conn.conn.closed && conn.reusable) return Promise.resolve(conn);
      this.forget(endpoint, conn);
    }
    const limits = this.config.circuitBreaker;
    if (this.connections < limits.maxConnections) return this.connect(endpoint);
    this.waiters = this.waiters.filter((w) => !w.ticket.cancelled);
    if (this.waiters.length >= limits.maxPendingRequests) {
      this.telemetry.upstreamError(this.config.name, "overflow");
      return Promise.reject(
        new UpstreamFailure(
          "overflow",
          `circuit breaker: cluster "${this.config.name}" has ${limits.maxConnections} connections (maxConnections) and ${this.waiters.length} pending requests (maxPendingRequests)`,
        ),
      );
    }
    // Someone else's idle connection is a slot we can take over.
    for (const other of this.endpoints) {
      const idle = other.idle.pop();
      if (idle) {
        this.forget(other, idle);
        idle.conn.end();
        return this.connect(endpoint);
      }
    }
    return new Promise((resolve, reject) => this.waiters.push({ ticket, endpoint, resolve, reject }));
  }

  private nextWaiter(endpoint?: UpstreamEndpoint): Waiter | undefined {
    if (this.waiters.length === 0) return undefined;
    this.waiters = this.waiters.filter((w) => !w.ticket.cancelled);
    const i = endpoint ? this.waiters.findIndex((w) => w.endpoint === endpoint) : 0;
    return i >= 0 ? this.waiters.splice(i, 1)[0] : undefined;
  }

  private async http2Exchange(endpoint: UpstreamEndpoint): Promise<UpstreamExchange> {
    endpoint.h2 ??= new Http2Upstream(endpoint.key, () => this.open(endpoint));
    try {
      return await endpoint.h2.exchange();
    } catch (e) {
      throw this.connectFailure(endpoint, e as Error);
    }
  }

  /** `halfOpen`: opaque TCP, which may stay open one way after the other ends (Conn.halfOpen). */
  private open(endpoint: UpstreamEndpoint, halfOpen = false): Promise<Conn> {
    return this.runtime.connect({
      address: endpoint.address,
      port: endpoint.port,
      timeoutMs: this.config.connectTimeoutMs,
      tls: this.tlsFor(this.config),
      halfOpen,
    });
  }

  private connectFailure(endpoint: UpstreamEndpoint, e: Error): UpstreamFailure {
    const message = e.message;
    const tls = /certificate|SPIFFE|identity|TLS|SSL|handshake|ALPN/i.test(message);
    this.telemetry.upstreamError(this.config.name, tls ? "tls" : "connect");
    return new UpstreamFailure(tls ? "tls" : "connect", `cannot connect to ${endpoint.key} in cluster "${this.config.name}": ${message}`);
  }

  private async connect(endpoint: UpstreamEndpoint): Promise<UpstreamHttp1> {
    this.connections++;
    endpoint.connections++;
    let conn;
    try {
      conn = await this.open(endpoint);
    } catch (e) {
      this.connections--;
      endpoint.connections--;
      this.wakeWaiter();
      throw this.connectFailure(endpoint, e as Error);
    }
    if (this.closed) {
      conn.destroy();
      throw new UpstreamFailure("connect", `cluster "${this.config.name}" was removed`);
    }
    // A name can resolve to this pod itself, which the literal check before connecting cannot see.
    const self = this.config.passthrough ? selfAddressProblem(conn.remoteAddress) : null;
    if (self) {
      conn.destroy();
      this.connections--;
      endpoint.connections--;
      this.wakeWaiter();
      throw new UpstreamFailure(
        "connect",
        `passthrough to ${endpoint.key} refused: it resolved to ${conn.remoteAddress}; ${self}, and a request sent there would come back to this proxy`,
      );
    }
    const upstream = new UpstreamHttp1(conn);
    upstream.onRelease = (c) => this.release(endpoint, c);
    upstream.onGone = () => this.forget(endpoint, upstream);
    return upstream;
  }

  /**
   * A connection of its own to `endpoint` for a TCP proxy, within maxConnections (overflow
   * otherwise); `release` frees its slot once it has closed.
   */
  async openTcp(endpoint: UpstreamEndpoint): Promise<{ conn: Conn; release: () => void }> {
    if (this.connections >= this.config.circuitBreaker.maxConnections) {
      this.telemetry.upstreamError(this.config.name, "overflow");
      throw new UpstreamFailure(
        "overflow",
        `cluster "${this.config.name}" has ${this.connections} connections open, its circuit breaker's maxConnections`,
      );
    }
    this.connections++;
    endpoint.connections++;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.connections--;
      endpoint.connections--;
      this.wakeWaiter();
    };
    try {
      return { conn: await this.open(endpoint, true), release };
    } catch (e) {
      release();
      throw this.connectFailure(endpoint, e as Error);
    }
  }

  release(endpoint: UpstreamEndpoint, conn: UpstreamHttp1): void {
    if (conn.reusable && !conn.conn.closed && !this.closed && this.endpoints.includes(endpoint)) {
      const waiter = this.nextWaiter(endpoint);
      if (waiter) {
        waiter.resolve(conn);
        return;
      }
      if (endpoint.idle.length < this.config.maxIdleConnectionsPerEndpoint) {
        conn.idleSince = Date.now();
        endpoint.idle.push(conn);
        return;
      }
    }
    this.forget(endpoint, conn);
    conn.conn.end();
  }

  /** A connection is gone (closed, or not worth keeping): free its slot. */
  forget(endpoint: UpstreamEndpoint, conn: UpstreamHttp1): void {
    const i = endpoint.idle.indexOf(conn);
    if (i >= 0) endpoint.idle.splice(i, 1);
    if (!conn.slotHeld) return;
    conn.slotHeld = false;
    this.connections--;
    endpoint.connections--;
    this.wakeWaiter();
  }

  private wakeWaiter(): void {
    const waiter = this.nextWaiter();
    if (!waiter) return;
    this.connect(waiter.endpoint).then(waiter.resolve, waiter.reject);
  }

  /** Closes idle connections that have been unused for longer than idleTimeoutMs. */
  sweepIdle(now: number): void {
    for (const e of this.endpoints) {
      for (const conn of e.idle.slice()) {
        if (now - conn.idleSince > this.config.idleTimeoutMs) {
          this.forget(e, conn);
          conn.conn.end();
        }
      }
    }
  }

  close(): void {
    this.closed = true;
    for (const e of this.endpoints) e.closeIdle();
    for (const w of this.waiters.splice(0)) w.reject(new UpstreamFailure("connect", `cluster "${this.config.name}" was removed`));
  }
}
