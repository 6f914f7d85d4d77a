// A filter's instance in service and its spare. Building an instance (instantiation, and the
// module's start function) takes up to ~17 ms on Bun for a large module: a request that finds
// none builds one on its path, so the pool builds the replacement of a dropped instance ahead of
// need, in a timer, once the failed call's request has gone on without waiting for it. From the
// first loss on, the filter has shown it can lose one, so the pool keeps a spare beside the
// instance in service (one more instance's memory, only for filters that have lost one):
// FailReload's second call and the call after the next failure take it. A FailReload filter,
// whose every failure takes a fresh instance, keeps a spare from the start, so that its first
// failure does not build one on the request path either. Any other filter that never loses its
// instance has no spare.
import type { Logger } from "../../shared/log.ts";
import type { FilterInstance } from "./instance.ts";

export class InstancePool {
  private readonly build: () => FilterInstance;
  private readonly log: Logger;
  /** Whether building is pointless now (a quarantine): the first call after it builds instead. */
  private readonly held: () => boolean;
  private instance: FilterInstance | null = null;
  private spare: FilterInstance | null = null;
  private pending: ReturnType<typeof setTimeout> | null = null;
  private lost = false;
  /** A spare failed to build: it was logged, and the next is scheduled once a call has built one. */
  private spareFailed = false;
  private retired = false;

  constructor(build: () => FilterInstance, log: Logger, held: () => boolean, spareFromStart = false) {
    this.build = build;
    this.log = log;
    this.held = held;
    this.lost = spareFromStart;
  }

  /** The instance for a call: the one in service, else the spare, else one built now (its FilterFault is the call's). */
  get(): FilterInstance {
    if (this.instance) return this.instance;
    if (this.spare) {
      this.instance = this.spare;
      this.spare = null;
    } else {
      this.instance = this.build();
      this.spareFailed = false;
    }
    if (this.lost) this.schedule();
    return this.instance;
  }

  /** Drops the instance in service after a failure that may have left its memory half-updated. */
  drop(): void {
    this.instance = null;
    this.lost = true;
    this.schedule();
  }

  /** The filter left the configuration: no spare is built for it any more (calls in flight still get an instance). */
  retire(): void {
    this.retired = true;
    if (this.pending) clearTimeout(this.pending);
    this.pending = null;
    this.spare = null;
  }

  private schedule(): void {
    if (this.spare || this.pending || this.retired || this.spareFailed) return;
    this.pending = setTimeout(() => {
      this.pending = null;
      if (this.held()) return;
      try {
        this.spare = this.build();
      } catch (e) {
        this.spareFailed = true;
        this.log.error("filter cannot build a spare instance; calls build their own until one succeeds", {
          error: (e as Error).message,
        });
      }
    }, 0);
  }
}
