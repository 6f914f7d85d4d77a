// The connected proxies and what each has been sent and has acknowledged. A configuration is
// sent when what the mesh computes for a proxy differs from what it last got; its version is
// the digest of its content, so an unchanged configuration is never sent twice and a proxy
// that reconnects with the current version gets nothing to apply.
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import type { QuarantinedFilter } from "../../proxy/control/client.ts";
import type { Logger } from "../../shared/log.ts";

export interface ProxyKey {
  namespace: string;
  pod: string;
}

export interface Computed {
  config: unknown;
  /** "namespace/name" of the WasmFilters in it. */
  filters: readonly string[];
}

export interface ProxySession extends ProxyKey {
  /** Writes one encoded server-sent event (see `serverEvent`); false when the stream is gone. */
  send(frame: Uint8Array): boolean;
  sent: { version: string; filters: readonly string[] } | null;
  acked: { version: string; filters: readonly string[] } | null;
  /** Filters of the acknowledged version the proxy could not load ("namespace/name" and why). */
  unavailable: readonly { filter: string; reason: string }[];
  /** Filters of the acknowledged version the proxy has quarantined after repeated failures: their failStrategy answers until the back-off ends. */
  quarantined: readonly QuarantinedFilter[];
  rejected: { version: string; error: string } | null;
  connectedAt: number;
}

/** A proxy's session as it connects: nothing sent, acknowledged or reported yet. */
export function newProxySession(namespace: string, pod: string, send: ProxySession["send"]): ProxySession {
  return { namespace, pod, send, sent: null, acked: null, rejected: null, unavailable: [], quarantined: [], connectedAt: Date.now() };
}

/** What an acknowledgement says of the filters of the version it accepts. */
export interface AckedFilters {
  unavailable?: readonly { filter: string; reason: string }[];
  quarantined?: readonly QuarantinedFilter[];
}

export interface HubOptions {
  log: Logger;
  /** This proxy's configuration now, or an error message when it cannot be computed (e.g. an unknown pod). */
  compute: (proxy: ProxyKey) => Computed | string;
  /** Called when an acknowledgement changes what proxies run. */
  acknowledged: () => void;
}

export const versionOf = (config: unknown) => createHash("sha256").update(JSON.stringify(config)).digest("hex").slice(0, 16);

/** One server-sent event, encoded once and written as is to every stream that gets it. */
export const serverEvent = (event: string, data: string) => Buffer.from(`event: ${event}\ndata: ${data}\n\n`);

/**
 * The filters of a configuration that a proxy runs: a filter it said it could not load is in
 * its configuration but runs nowhere, until it acknowledges again without it.
 */
function runningOf(filters: readonly string[], s: ProxySession): readonly string[] {
  if (s.unavailable.length === 0) return filters;
  const missing = new Set(s.unavailable.map((u) => u.filter));
  return filters.filter((f) => !missing.has(f));
}

export class PushHub {
  private readonly options: HubOptions;
  private readonly sessions = new Set<ProxySession>();
  /** The filters of each proxy's acknowledged configuration, with those it could not load: a re-acknowledgement recounts from them. */
  private readonly configured = new WeakMap<ProxySession, readonly string[]>();

  constructor(options: HubOptions) {
    this.options = options;
  }

  get connected(): readonly ProxySession[] {
    return [...this.sessions];
  }

  /** A proxy opened its stream; `running` is the version it says it already runs. */
  connect(session: ProxySession, running: string | null): void {
    this.sessions.add(session);
    if (running) {
      // What it runs is what it was acknowledged for before a control plane restart; the
      // filter list is filled in when the same version is computed again below.
      session.sent = { version: running, filters: [] };
      session.acked = { version: running, filters: [] };
    }
    this.push(session);
    if (running) this.options.acknowledged();
  }

  disconnect(session: ProxySession): void {
    this.sessions.delete(session);
    this.options.acknowledged();
  }

  /** Recomputes every connected proxy and sends what changed. */
  refresh(): void {
    for (const s of this.sessions) this.push(s);
  }

  ack(proxy: ProxyKey, version: string, accepted: boolean, error: string | undefined, filters: AckedFilters = {}): boolean {
    let found = false;
    for (const s of this.sessions) {
      if (s.namespace !== proxy.namespace || s.pod !== proxy.pod) continue;
      found = true;
      if (accepted) {
        s.unavailable = filters.unavailable ?? [];
        s.quarantined = filters.quarantined ?? [];
        if (s.sent?.version === version) {
          this.configured.set(s, s.sent.filters);
          s.acked = { version, filters: runningOf(s.sent.filters, s) };
          s.rejected = null;
        } else if (s.acked?.version === version) {
          // The version it runs again (a filter loaded, a quarantine began or ended) while a newer
          // one is being applied or was rejected: that one stays as it is.
          s.acked = { version, filters: runningOf(this.configured.get(s) ?? [], s) };
        } else {
          s.acked = { version, filters: [] };
          s.rejected = null;
        }
      } else {
        s.rejected = { version, error: error ?? "no reason given" };
        this.options.log.warn("a proxy rejected its configuration; it keeps the last good one", {
          proxy: `${s.namespace}/${s.pod}`,
          version,
          error,
        });
      }
    }
    if (found) this.options.acknowledged();
    return found;
  }

  // One encoding per computed configuration, shared by every proxy that gets the same one.
  private readonly encoded = new WeakMap<Computed, { version: string; frame: Uint8Array }>();

  private encode(computed: Computed): { version: string; frame: Uint8Array } {
    let e = this.encoded.get(computed);
    if (!e) {
      const version = versionOf(computed.config);
      e = { version, frame: serverEvent("config", JSON.stringify({ version, config: computed.config })) };
      this.encoded.set(computed, e);
    }
    return e;
  }

  private push(s: ProxySession): void {
    const computed = this.options.compute(s);
    if (typeof computed === "string") {
      s.send(serverEvent("problem", JSON.stringify({ error: computed })));
      return;
    }
    const { version, frame } = this.encode(computed);
    if (s.sent?.version === version) {
      // Same content: after a restart this fills in the filters of what the proxy runs.
      s.sent = { version, filters: computed.filters };
      if (s.acked?.version === version) {
        this.configured.set(s, computed.filters);
        s.acked = { version, filters: runningOf(computed.filters, s) };
      }
      return;
    }
    if (!s.send(frame)) {
      this.sessions.delete(s);
      return;
    }
    s.sent = { version, filters: computed.filters };
  }
}
