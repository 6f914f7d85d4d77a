// Tells the control plane when a filter enters or leaves quarantine (proxy/filters/quarantine.ts),
// so that the WasmFilter's status says what its requests get (control/mesh/filter-status.ts).
// A quarantine starts on a failure (the filter runtime's onQuarantine) but ends with its back-off,
// a time no event marks: a timer is kept for the earliest end. What is quarantined goes with every
// acknowledgement; a change between configurations is a re-acknowledgement, at most one a second,
// so a burst of trips (several filters, a back-off that keeps doubling) is one request, and
// nothing here runs per request.
import type { QuarantineStatus } from "../filters/quarantine.ts";
import type { QuarantinedFilter } from "./client.ts";

/** At most one re-acknowledgement this often. */
export const QUARANTINE_REPORT_INTERVAL_MS = 1_000;
// The end of a back-off is looked at a little after it: under traffic, the first call after it
// has failed again by then and the quarantine goes on (twice as long) without a report that it
// ended in between.
const END_MARGIN_MS = 100;

export interface QuarantineReporterOptions {
  /** The filters that run now, with the quarantine of each that has one (FilterRuntime.status). */
  filters: () => readonly { filter: string; quarantine?: QuarantineStatus }[];
  /** Acknowledges again what runs (ControlClient.reacknowledge), which asks `report()` for the list. */
  send: () => Promise<void>;
}

const keyOf = (list: readonly QuarantinedFilter[]) =>
  // A back-off's end to the second: the same quarantine read twice is the same key.
  JSON.stringify(list.map((q) => [q.filter, q.backoffMs, q.reason, Math.floor(Date.parse(q.until) / 1000)]));

export class QuarantineReporter {
  private readonly options: QuarantineReporterOptions;
  /** What the last acknowledgement said, and when (performance.now()). */
  private reported = keyOf([]);
  private reportedAt = Number.NEGATIVE_INFINITY;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private timerAt = Number.POSITIVE_INFINITY;
  private stopped = false;

  constructor(options: QuarantineReporterOptions) {
    this.options = options;
  }

  /** What is quarantined now, for an acknowledgement: remembered as what the control plane was told. */
  report(): QuarantinedFilter[] {
    const { quarantined, firstEndMs } = this.read();
    this.reported = keyOf(quarantined);
    this.reportedAt = performance.now();
    // A timer set for a change is replaced by one for the end of the first back-off.
    this.clear();
    this.watch(firstEndMs);
    return quarantined;
  }

  /** A filter was quarantined: the control plane is told within a second. */
  changed(): void {
    this.schedule(performance.now());
  }

  stop(): void {
    this.stopped = true;
    this.clear();
  }

  private schedule(at: number): void {
    if (this.stopped) return;
    const when = Math.max(at, this.reportedAt + QUARANTINE_REPORT_INTERVAL_MS);
    if (this.timer && this.timerAt <= when) return;
    this.clear();
    this.timerAt = when;
    this.timer = setTimeout(() => this.check(), Math.max(0, when - performance.now()));
    // A quarantine to report must not keep a stopping proxy alive.
    this.timer.unref?.();
  }

  private clear(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.timerAt = Number.POSITIVE_INFINITY;
  }

  private check(): void {
    this.timer = null;
    this.timerAt = Number.POSITIVE_INFINITY;
    const { quarantined, firstEndMs } = this.read();
    // Sending acknowledges, which calls report(): that sets the next timer.
    if (keyOf(quarantined) !== this.reported) void this.options.send();
    else this.watch(firstEndMs);
  }

  private watch(firstEndMs: number | null): void {
    if (firstEndMs !== null) this.schedule(performance.now() + firstEndMs + END_MARGIN_MS);
  }

  /** The quarantines now, as an acknowledgement carries them, and how long until the first ends. */
  private read(): { quarantined: QuarantinedFilter[]; firstEndMs: number | null } {
    const wall = Date.now();
    let firstEndMs: number | null = null;
    const quarantined = this.options.filters().flatMap(({ filter, quarantine: q }) => {
      if (!q) return [];
      firstEndMs = Math.min(firstEndMs ?? q.remainingMs, q.remainingMs);
      return [{ filter, reason: q.reason, backoffMs: q.backoffMs, until: new Date(wall + q.remainingMs).toISOString() }];
    });
    return { quarantined, firstEndMs };
  }
}
