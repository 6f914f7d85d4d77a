// The sidecar's lifecycle: starts listeners and the admin API from a configuration,
// applies new configurations atomically (requests in flight finish on the version they
// started with), and drains gracefully.
import type { Cluster, Identity, Listener, ProxyConfig } from "../config/schema.ts";
import type { ClientTlsOptions, Conn, Runtime, Server, ServerTlsOptions, TlsRefusal } from "../runtime/types.ts";
import type { ProxyTelemetry } from "../telemetry/telemetry.ts";
import type { Logger } from "../../shared/log.ts";
import type { ForwardContext } from "../forwarder/context.ts";
import { forward } from "../forwarder/pipeline.ts";
import { Router } from "../routing/router.ts";
import { UpstreamCluster } from "../upstream/cluster.ts";
import { Http1Downstream } from "../http1/downstream.ts";
import { Http2Downstream } from "../http2/downstream.ts";
import type { ServerExchange } from "../http/exchange.ts";
import type { Buffer } from "node:buffer";
import { Deadlines } from "../http/deadlines.ts";
import { inboundContext } from "../inbound/context.ts";
import { outboundContext } from "../outbound/context.ts";
import { formatSpiffeId, verifyPeerIdentity } from "../identity/spiffe.ts";
import { startAdmin } from "../admin/server.ts";
import type { AppProbes } from "../admin/app-health.ts";
import { currentRuntime } from "../runtime/current.ts";
import { FilterRuntime } from "../filters/runtime.ts";
import type { ModuleFetcher } from "../filters/module.ts";
import { deliveredPort } from "../filters/request-port.ts";
import { compileAuthorization } from "../inbound/authorization.ts";
import { forwardTcp, type TcpRoute } from "../tcp/forward.ts";
import { detectConnection } from "../tcp/detect.ts";
import { peerOf } from "../identity/peer.ts";
import type { ConnectionInfo } from "../telemetry/types.ts";

/** What a stop may take beyond draining connections: telemetry's last flush, a control plane's stream. */
const STOP_GRACE_MS = 10_000;

/** A downstream connection of either protocol, as drain and shutdown see it. */
interface DownstreamConnection {
  drain(): void;
  destroy(): void;
}

/** A listener's new socket, not yet in force. */
interface Bound {
  config: Listener;
  server: Server;
  connections: Set<DownstreamConnection>;
}

interface ActiveListener {
  config: Listener;
  server: Server;
  /** Read at each new request, so a reload takes effect for the next request. */
  context: ForwardContext;
  /** An opaque TCP listener's route, read at each new connection; null for HTTP. */
  tcp: TcpRoute | null;
  connections: Set<DownstreamConnection>;
}

/**
 * Whether `listener` can keep `current`'s socket: the same address, port and direction, and TLS
 * on both or neither. A TLS server takes another mode (PERMISSIVE to STRICT, when an
 * AccessPolicy asks for it) in place (prepareTls), so the switch never needs the port rebound,
 * which a listener still holding it would refuse.
 */
function keepsSocket(current: ActiveListener, listener: Listener, tls: ServerTlsOptions | undefined): boolean {
  const a = current.config;
  return (
    a.address === listener.address &&
    a.port === listener.port &&
    a.direction === listener.direction &&
    (current.server.prepareTls !== undefined) === (tls !== undefined)
  );
}

/**
 * Names the listener in what binding it or checking its TLS threw, keeping the error's code
 * (proxy/control/client.ts applies a configuration again after an EADDRINUSE).
 */
function atListener(error: Error & { code?: string }, index: number, listener: Listener): Error {
  return Object.assign(new Error(`listeners[${index}] ("${listener.name}"): ${error.message}`, { cause: error }), { code: error.code });
}

/** A configuration refused because a listener could not be bound; the cause keeps its code. */
const notApplied = (config: ProxyConfig, cause: Error): Error =>
  new Error(`cannot apply configuration ${config.version}: ${cause.message}`, { cause });

export interface SidecarOptions {
  /** Where modules named only by digest come from (the control plane). */
  fetchFilter?: ModuleFetcher;
  /** Start not ready, for this reason, until `notReady` is cleared. */
  notReady?: string;
  /**
   * The control plane that configures this sidecar. Its admin port is then reachable from the
   * network (kubelet probes, metrics scrapes), so it takes no PUT /config, and shows its
   * configuration to loopback peers only (kubectl exec, kubectl port-forward).
   */
  managedBy?: string;
  /** The app's kubelet probes, answered on the admin port at /app-health/CONTAINER/KIND. */
  appProbes?: AppProbes;
}

export class Sidecar {
  config: ProxyConfig;
  private readonly runtime: Runtime;
  private readonly log: Logger;
  readonly telemetry: ProxyTelemetry;
  private readonly clusters = new Map<string, UpstreamCluster>();
  private readonly listeners = new Map<string, ActiveListener>();
  private readonly deadlines = new Deadlines();
  private admin: Server | null = null;
  private sweeper: ReturnType<typeof setInterval> | null = null;
  private applying: Promise<void> = Promise.resolve();
  readonly filters: FilterRuntime;
  draining = false;
  /** Why the sidecar is not ready yet (e.g. no configuration from the control plane), or null. */
  notReady: string | null = null;

  private constructor(config: ProxyConfig, runtime: Runtime, log: Logger, telemetry: ProxyTelemetry, options: SidecarOptions) {
    this.config = config;
    this.runtime = runtime;
    this.log = log;
    this.telemetry = telemetry;
    this.filters = new FilterRuntime(log, telemetry.registry, options.fetchFilter ?? null);
    this.notReady = options.notReady ?? null;
  }

  static async start(
    config: ProxyConfig,
    runtime: Runtime,
    log: Logger,
    telemetry: ProxyTelemetry,
    options: SidecarOptions = {},
  ): Promise<Sidecar> {
    const sidecar = new Sidecar(config, runtime, log, telemetry, options);
    try {
      await sidecar.install(config);
      sidecar.admin = await startAdmin(sidecar, runtime, config.admin, {
        managedBy: options.managedBy ?? null,
        appProbes: options.appProbes ?? {},
      });
    } catch (e) {
      await sidecar.stop();
      throw e;
    }
    sidecar.sweeper = setInterval(() => {
      const now = Date.now();
      for (const c of sidecar.clusters.values()) c.sweepIdle(now);
    }, 5000);
    sidecar.sweeper.unref?.();
    log.info("sidecar started", {
      version: config.version,
      runtime: runtime.name,
      listeners: [...sidecar.listeners.values()].map((l) => `${l.config.name}@${l.config.address}:${l.server.port}`),
      admin: sidecar.admin.port,
    });
    return sidecar;
  }

  /** The port a listener is bound to (useful when the configuration asked for port 0). */
  listenerPort(name: string): number {
    const l = this.listeners.get(name);
    if (!l) throw new Error(`no listener named "${name}"`);
    return l.server.port;
  }

  get adminPort(): number {
    return this.admin?.port ?? 0;
  }

  /** Applies a new configuration; concurrent calls are serialized. */
  apply(config: ProxyConfig): Promise<void> {
    const next = this.applying.then(() => this.install(config));
    this.applying = next.catch(() => {});
    return next;
  }

  private ownPrincipal(config: ProxyConfig): string {
    const n = config.node;
    return formatSpiffeId({ trustDomain: n.trustDomain, namespace: n.namespace, serviceAccount: n.serviceAccount });
  }

  private serverTls(listener: Listener, identity: Identity | undefined): ServerTlsOptions | undefined {
    if (listener.tls === "DISABLE") return undefined;
    const onRefused = (reason: TlsRefusal, detail: string) => {
      this.telemetry.tlsRefused(listener.name, reason);
      this.log.debug("connection refused at the TLS layer", { listener: listener.name, reason, detail });
    };
    const alpn = listener.http2 ? ["h2", "http/1.1"] : ["http/1.1"];
    // SIMPLE presents the listener's own certificates (a gateway's), the mesh modes the workload's identity.
    if (listener.tls === "SIMPLE") return { mode: "SIMPLE", certificates: listener.certificates ?? [], alpn, onRefused };
    return identity && { ...identity, mode: listener.tls, alpn, onRefused };
  }

  private clientTls = (cluster: Cluster): ClientTlsOptions | undefined => {
    const identity = this.config.identity;
    if (!cluster.tls || !identity) return undefined;
    // The same verifier for the same identities: TLS sessions are kept per verifier (node-tls.ts).
    const verifyPeer = verifyPeerIdentity(cluster.tls.identities);
    return { ...identity, servername: cluster.tls.sni, alpn: cluster.protocol === "http2" ? ["h2"] : ["http/1.1"], verifyPeer };
  };

  /**
   * Binds what must be bound first (a failure leaves the old configuration untouched), then
   * switches clusters, routes and certificates in one synchronous step.
   */
  private async install(config: ProxyConfig): Promise<void> {
    const h2 = config.clusters.find((c) => c.protocol === "http2");
    if (h2 && this.runtime.name === "bun") {
      // Found by experiment (docs/design/http2.md): upstreams reset Bun's sessions.
      throw new Error(
        `cluster "${h2.name}" speaks HTTP/2 to its upstream, which Bun ${currentRuntime().version} cannot do reliably ` +
          `(its node:http2 client sends frames upstreams reject under concurrent requests with bodies). Run this sidecar on Node.js or Deno, or set the cluster's protocol to http1.`,
      );
    }
    const fresh: Bound[] = [];
    // A kept listener's new certificates are checked and built here, and put in force with the rest.
    const tlsUpdates: (() => void)[] = [];
    // Listeners whose new socket needs the fixed port their old one holds (the address moved, or
    // TLS went on or off): bound last, once everything else is ready, by giving the old one up.
    const handovers: { index: number; listener: Listener; tls: ServerTlsOptions | undefined; old: ActiveListener }[] = [];
    try {
      for (const [i, l] of config.listeners.entries()) {
        const current = this.listeners.get(l.name);
        const tls = this.serverTls(l, config.identity);
        try {
          if (current && keepsSocket(current, l, tls)) {
            if (tls) tlsUpdates.push(current.server.prepareTls!(tls));
            continue;
          }
          if (current && current.config.port === l.port && l.port !== 0) {
            handovers.push({ index: i, listener: l, tls, old: current });
            continue;
          }
          fresh.push(await this.bind(l, tls));
        } catch (e) {
          throw atListener(e as Error & { code?: string }, i, l);
        }
      }
    } catch (e) {
      for (const f of fresh) await f.server.close();
      throw notApplied(config, e as Error);
    }
    let filters;
    try {
      filters = await this.filters.prepare(config.filters);
    } catch (e) {
      for (const f of fresh) await f.server.close();
      throw e;
    }
    const handedOver: ActiveListener[] = [];
    for (const h of handovers) {
      // close() stops accepting at once (the port is free) and resolves when its connections are
      // gone: they finish on the old configuration, drained when it retires.
      void h.old.server.close();
      try {
        fresh.push(await this.bind(h.listener, h.tls));
        handedOver.push(h.old);
      } catch (e) {
        for (const f of fresh) await f.server.close();
        // The old sockets back, so the configuration in force keeps every listener it had.
        for (const old of [...handedOver, h.old]) await this.rebind(old, e as Error);
        throw notApplied(config, atListener(e as Error & { code?: string }, h.index, h.listener));
      }
    }

    // From here on nothing awaits: requests see either the old or the new configuration.
    const previous = this.config;
    this.config = config;
    const names = new Set(config.clusters.map((c) => c.name));
    for (const c of config.clusters) {
      const existing = this.clusters.get(c.name);
      if (existing) existing.update(c);
      else this.clusters.set(c.name, new UpstreamCluster(c, this.runtime, this.clientTls, this.telemetry));
    }
    for (const [name, cluster] of this.clusters) {
      if (!names.has(name)) {
        cluster.close();
        this.clusters.delete(name);
      }
    }
    const principal = this.ownPrincipal(config);
    const retired: ActiveListener[] = [];
    this.filters.install(filters);
    for (const l of config.listeners) {
      const router = new Router(l.virtualHosts);
      const makeContext = l.direction === "Inbound" ? inboundContext : outboundContext;
      const bound = fresh.find((f) => f.config === l);
      const access = compileAuthorization(l.authorization);
      const tcp = l.tcp
        ? {
            listener: l.name,
            cluster: this.clusters.get(l.tcp.cluster),
            check: access,
            log: this.log,
            ...(l.tcp.detectHttpMs !== undefined ? { detectHttpMs: l.tcp.detectHttpMs } : {}),
          }
        : null;
      const context = makeContext({
        node: config.node,
        ownPrincipal: principal,
        router,
        clusters: this.clusters,
        telemetry: this.telemetry,
        filters: this.filters.chain,
        port: l.direction === "Inbound" ? deliveredPort(l, config.clusters) : null,
        ...(access ? { access } : {}),
        ...(l.noRouteReason ? { noRouteReason: l.noRouteReason } : {}),
      });
      if (bound) {
        const old = this.listeners.get(l.name);
        if (old) retired.push(old);
        this.listeners.set(l.name, { ...bound, context, tcp });
      } else {
        const active = this.listeners.get(l.name)!;
        active.config = l;
        active.context = context;
        active.tcp = tcp;
      }
    }
    for (const update of tlsUpdates) update();
    const wanted = new Set(config.listeners.map((l) => l.name));
    for (const [name, active] of this.listeners) {
      if (!wanted.has(name)) {
        retired.push(active);
        this.listeners.delete(name);
      }
    }
    this.telemetry.setNode(config.node);
    this.telemetry.setConfigVersion(config.version);
    this.telemetry.setAccessLog(config.accessLog);
    for (const old of retired) void this.retire(old);
    if (previous !== config) this.log.info("configuration applied", { version: config.version, previous: previous.version });
  }

  /** A new socket for `l`, its connections counted in `connections` (a set of their own by default). */
  private async bind(l: Listener, tls: ServerTlsOptions | undefined, connections = new Set<DownstreamConnection>()): Promise<Bound> {
    const server = await this.runtime.listen({ address: l.address, port: l.port, tls }, (conn) => this.accept(l, conn, connections));
    return { config: l, server, connections };
  }

  /** Opens a listener's socket again after a failed hand-over gave it up; says so if it cannot. */
  private async rebind(active: ActiveListener, why: Error): Promise<void> {
    const l = active.config;
    try {
      active.server = (await this.bind(l, this.serverTls(l, this.config.identity), active.connections)).server;
    } catch (e) {
      this.log.error("a listener's socket is closed: its new one could not open, nor its old one again", {
        listener: l.name,
        address: `${l.address}:${l.port}`,
        newSocket: why.message,
        oldSocket: (e as Error).message,
      });
    }
  }

  private accept(bound: Listener, conn: Conn, connections: Set<DownstreamConnection>): void {
    const direction = bound.direction === "Inbound" ? "inbound" : "outbound";
    const tcp = this.listeners.get(bound.name)?.tcp;
    if (!tcp) {
      this.telemetry.connectionOpened(direction);
      this.serveHttp(bound, conn, connections, null);
      return;
    }
    // Tracked until it is known to be HTTP (which tracks itself) or closes; drained like an HTTP
    // connection: left to finish until the drain timeout, then closed.
    const carried: DownstreamConnection = { drain: () => {}, destroy: () => conn.destroy() };
    connections.add(carried);
    const onClose = conn.onClose;
    const untrack = () => {
      connections.delete(carried);
      conn.onClose = onClose;
    };
    // An opaque connection is counted in istio_tcp_* with its peer (inbound) or Service
    // (outbound), once it is known to be one: at once, or when detection has found it is not HTTP.
    let opaque: ConnectionInfo | null = null;
    const carry = (replay?: { first: Buffer; ended: boolean }) => {
      const info: ConnectionInfo =
        direction === "inbound"
          ? { peer: peerOf(conn.tls), mtls: conn.tls?.peerCertificate != null }
          : {
              service: tcp.cluster?.config.service ?? "",
              serviceNamespace: tcp.cluster?.config.namespace ?? "",
              mtls: !!tcp.cluster?.config.tls,
            };
      opaque = info;
      void forwardTcp(conn, tcp, this.telemetry.connectionOpened(direction, info), replay);
    };
    conn.onClose = (error) => {
      untrack();
      if (opaque) this.telemetry.connectionClosed(direction, opaque);
      onClose(error);
    };
    if (tcp.detectHttpMs === undefined) {
      carry();
      return;
    }
    // Open after the client's end while undecided: it may be a TCP client's last word.
    conn.halfOpen = true;
    void detectConnection(conn, tcp.detectHttpMs).then(({ protocol, ended, take }) => {
      if (conn.closed) return;
      if (protocol === "tcp") {
        carry({ first: take(), ended });
        return;
      }
      conn.halfOpen = false;
      untrack();
      this.telemetry.connectionOpened(direction);
      this.serveHttp(bound, conn, connections, take());
    });
  }

  /** Serves a connection as HTTP/1.1 (or HTTP/2 by ALPN or preface); `first`: bytes already read from it. */
  private serveHttp(bound: Listener, conn: Conn, connections: Set<DownstreamConnection>, first: Buffer | null): void {
    const name = bound.name;
    const direction = bound.direction === "Inbound" ? "inbound" : "outbound";
    const limits = this.config.limits;
    const onExchange = (exchange: ServerExchange) => {
      const current = this.listeners.get(name);
      if (!current) {
        exchange.reset();
        return;
      }
      forward(exchange, current.context);
    };
    let closed = false;
    const onClosed = () => {
      if (closed) return;
      closed = true;
      connections.delete(tracked);
      this.telemetry.connectionClosed(direction);
    };
    const toHttp2 = (leftover: Buffer | null) => {
      connections.delete(tracked);
      tracked = new Http2Downstream(conn, leftover, {
        maxConcurrentStreams: limits.maxConcurrentStreams,
        maxHeaderListSize: limits.maxRequestHeadBytes,
        maxHeaderCount: limits.maxHeaderCount,
        maxBodyBytes: limits.maxRequestBodyBytes,
        onExchange,
        onClose: onClosed,
      });
      connections.add(tracked);
      if (this.draining) tracked.drain();
    };
    let tracked: DownstreamConnection;
    if (conn.tls?.alpn === "h2") {
      toHttp2(first);
      return;
    }
    tracked = new Http1Downstream(conn, {
      maxHeadBytes: limits.maxRequestHeadBytes,
      maxHeaderCount: limits.maxHeaderCount,
      maxBodyBytes: limits.maxRequestBodyBytes,
      headerTimeoutMs: limits.headerTimeoutMs,
      idleTimeoutMs: limits.idleTimeoutMs,
      bodyIdleTimeoutMs: limits.bodyIdleTimeoutMs,
      deadlines: this.deadlines,
      onExchange,
      onProtocolError: (c, error) =>
        this.log.warn("downstream protocol error", { listener: name, peer: `${c.remoteAddress}:${c.remotePort}`, error: error.message }),
      onHttp2Preface: (this.listeners.get(name)?.config ?? bound).http2 ? toHttp2 : undefined,
    });
    connections.add(tracked);
    const onClose = conn.onClose;
    conn.onClose = (error) => {
      onClosed();
      onClose(error);
    };
    if (this.draining) tracked.drain();
    if (first) {
      conn.onData(first);
      conn.resume();
    }
  }

  /** Stops accepting on an old listener and lets its connections finish. */
  private async retire(old: ActiveListener): Promise<void> {
    const closed = old.server.close();
    for (const c of old.connections) c.drain();
    await closed;
  }

  /**
   * How long stopping this sidecar may take: the drain, then what closes after it (telemetry's
   * last flush, a control plane's stream). The runner exits without a stop that outlives it.
   */
  get stopDeadlineMs(): number {
    return this.config.limits.drainTimeoutMs + STOP_GRACE_MS;
  }

  /** Graceful shutdown: stop accepting, finish in-flight requests, then close. */
  async drain(timeoutMs = this.config.limits.drainTimeoutMs): Promise<void> {
    this.draining = true;
    this.log.info("draining", { timeoutMs });
    const all = [...this.listeners.values()];
    // Stop accepting now; close() itself resolves only when the connections are gone.
    const closed = Promise.all(all.map((l) => l.server.close()));
    for (const l of all) for (const c of l.connections) c.drain();
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && all.some((l) => l.connections.size > 0)) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const left = all.reduce((n, l) => n + l.connections.size, 0);
    if (left > 0) this.log.warn("drain timeout: closing remaining connections", { connections: left });
    for (const l of all) for (const c of l.connections) c.destroy();
    await closed;
    await this.stop();
  }

  async stop(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
    // close() resolves once the listener's connections are gone, so destroy them meanwhile.
    const closing = [...this.listeners.values()].map((l) => {
      const closed = l.server.close();
      for (const c of l.connections) c.destroy();
      return closed;
    });
    await Promise.all(closing);
    this.listeners.clear();
    for (const c of this.clusters.values()) c.close();
    this.clusters.clear();
    this.deadlines.close();
    await this.admin?.close();
    this.admin = null;
    await this.telemetry.close();
  }
}
