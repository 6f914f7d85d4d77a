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

export class ControlClient {
  private readonly options: ControlClientOptions;
  private readonly stopped = new AbortController();
  private loop: Promise<void> | null = null;
  /** The last version applied, or null before the first. */
  applied: string | null = null;

  constructor(options: ControlClientOptions) {
    this.options = options;
  }

  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.stopped.abort();
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
    const { log } = this.options;
    let error: string | null = null;
    try {
      // After a reconnect the current version is sent again: nothing to apply.
      if (push.version !== this.applied) await this.options.apply(push);
      this.applied = push.version;
      log.info("configuration from the control plane applied", { version: push.version });
    } catch (e) {
      error = (e as Error).message;
      log.error("configuration from the control plane rejected: keeping the last good one", {
        version: push.version,
        error,
        kept: this.applied,
      });
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
