// The proxy's side of the configuration stream: it subscribes to the control plane, applies
// each version it is sent and acknowledges it, or rejects it and keeps the last good one.
// While the control plane is away the proxy keeps serving and reconnects with backoff.
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "../../shared/log.ts";
import { postJson, readEventStream, type ControlEndpoint } from "./http.ts";

export interface ConfigPush {
  version: string;
  config: unknown;
}

export interface ControlClientOptions {
  endpoint: ControlEndpoint;
  namespace: string;
  pod: string;
  log: Logger;
  /** Applies a pushed configuration; a rejection is reported to the control plane. */
  apply: (push: ConfigPush) => Promise<void>;
  /** The filters of what runs now that could not be loaded (their requests get the failStrategy), reported with each acknowledgement. */
  unavailable?: () => UnavailableFilter[];
  /** The filters quarantined now (their requests get the failStrategy until the back-off ends), reported with each acknowledgement. */
  quarantined?: () => QuarantinedFilter[];
}

/** A filter in an applied configuration that the proxy could not load, and why. */
export interface UnavailableFilter {
  filter: string;
  reason: string;
}

/** A filter quarantined after repeated failures (proxy/filters/quarantine.ts): why, for how long, until when. */
export interface QuarantinedFilter {
  filter: string;
  reason: string;
  backoffMs: number;
  /** When the back-off ends (RFC 3339, by this proxy's clock). */
  until: string;
}

const MIN_BACKOFF_MS = 250;
const MAX_BACKOFF_MS = 15_000;
const FIRST_REAPPLY_MS = 1_000;
const MAX_REAPPLY_MS = 30_000;

/**
 * A rejection that may pass by itself: a listener's port held for a moment by one of the pod's
 * own outgoing connections (an injected pod's inbound listeners sit in the ephemeral range).
 */
const mayPass = (e: unknown): boolean => ((e as Error).cause as { code?: string } | undefined)?.code === "EADDRINUSE";

export class ControlClient {
  private readonly options: ControlClientOptions;
  private readonly stopped = new AbortController();
  private loop: Promise<void> | null = null;
  /** The last version applied, or null before the first. */
  applied: string | null = null;
  /** The last version pushed: a rejected one that may pass is applied again until a newer one comes. */
  private latest: string | null = null;
  private reapply: ReturnType<typeof setTimeout> | null = null;
  /** Applications run one at a time, in the order they were asked for. */
  private applying: Promise<void> = Promise.resolve();

  constructor(options: ControlClientOptions) {
    this.options = options;
  }

  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.stopped.abort();
    if (this.reapply) clearTimeout(this.reapply);
    await this.loop;
  }

  // The version it runs tells a control plane that restarted what this proxy already has.
  private get query(): string {
    const version = this.applied === null ? "" : `&version=${encodeURIComponent(this.applied)}`;
    return `namespace=${encodeURIComponent(this.options.namespace)}&pod=${encodeURIComponent(this.options.pod)}${version}`;
  }

  private async run(): Promise<void> {
    const { endpoint, log } = this.options;
    let backoff = MIN_BACKOFF_MS;
    while (!this.stopped.signal.aborted) {
      try {
        log.info("connecting to the control plane", { controlPlane: endpoint.base });
        await readEventStream(endpoint, `/v1/proxies/config?${this.query}`, (e) => this.onEvent(e.event, e.data), this.stopped.signal);
        backoff = MIN_BACKOFF_MS;
        if (!this.stopped.signal.aborted)
          log.warn("the control plane closed the configuration stream; reconnecting", { controlPlane: endpoint.base });
      } catch (e) {
        log.warn("cannot reach the control plane; serving with the last configuration and retrying", {
          controlPlane: endpoint.base,
          error: (e as Error).message,
          retryInMs: backoff,
          version: this.applied,
        });
      }
      // Jittered, so that proxies do not come back all at once after a control plane restart.
      await sleep(backoff / 2 + Math.random() * backoff, undefined, { signal: this.stopped.signal }).catch(() => {});
      backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
    }
  }

  private async onEvent(event: string, data: string): Promise<void> {
    if (event !== "config") return;
    const push = JSON.parse(data) as ConfigPush;
    this.latest = push.version;
    await this.inTurn(() => this.applyPush(push, FIRST_REAPPLY_MS));
  }

  private inTurn(step: () => Promise<void>): Promise<void> {
    this.applying = this.applying.then(step);
    return this.applying;
  }

  private async applyPush(push: ConfigPush, reapplyMs: number): Promise<void> {
    const { log } = this.options;
    if (this.reapply) clearTimeout(this.reapply);
    this.reapply = null;
    let error: string | null = null;
    try {
      // After a reconnect the current version is sent again: nothing to apply.
      if (push.version !== this.applied) await this.options.apply(push);
      this.applied = push.version;
      log.info("configuration from the control plane applied", { version: push.version });
    } catch (e) {
      error = (e as Error).message;
      const again = mayPass(e) && !this.stopped.signal.aborted;
      log.error("configuration from the control plane rejected: keeping the last good one", {
        version: push.version,
        error,
        kept: this.applied,
        ...(again ? { retryInMs: reapplyMs } : {}),
      });
      if (again) {
        this.reapply = setTimeout(() => {
          void this.inTurn(async () => {
            if (this.latest === push.version) await this.applyPush(push, Math.min(reapplyMs * 2, MAX_REAPPLY_MS));
          });
        }, reapplyMs);
      }
    }
    await this.acknowledge(push.version, error);
  }

  /** Tells the control plane again what runs: a filter that could not be loaded was loaded, or a quarantine began or ended. */
  async reacknowledge(): Promise<void> {
    if (this.applied !== null) await this.acknowledge(this.applied, null);
  }

  private async acknowledge(version: string, error: string | null): Promise<void> {
    const unavailable = error === null ? (this.options.unavailable?.() ?? []) : [];
    const quarantined = error === null ? (this.options.quarantined?.() ?? []) : [];
    const ack = {
      namespace: this.options.namespace,
      pod: this.options.pod,
      version,
      accepted: error === null,
      ...(error === null ? {} : { error }),
      ...(unavailable.length > 0 ? { unavailable } : {}),
      ...(quarantined.length > 0 ? { quarantined } : {}),
    };
    await postJson(this.options.endpoint, "/v1/proxies/ack", ack).catch((e: Error) => {
      this.options.log.warn("cannot acknowledge a configuration; the control plane will see it on reconnect", {
        version,
        error: e.message,
      });
    });
  }
}
