// One coarse timer for all connection-level deadlines (header and idle timeouts), so the
// request path never arms a timer per request for them.
import { setInterval, clearInterval } from "node:timers";

export interface Expiring {
  /** Epoch ms after which expire() is called; 0 = no deadline. */
  deadline: number;
  expire(): void;
}

export class Deadlines {
  private readonly items = new Set<Expiring>();
  private readonly timer;

  constructor(resolutionMs = 250) {
    this.timer = setInterval(() => this.sweep(), resolutionMs);
    this.timer.unref();
  }

  add(item: Expiring): void {
    this.items.add(item);
  }

  delete(item: Expiring): void {
    this.items.delete(item);
  }

  get size(): number {
    return this.items.size;
  }

  private sweep(): void {
    const now = Date.now();
    for (const item of this.items) {
      if (item.deadline !== 0 && item.deadline <= now) {
        item.deadline = 0;
        item.expire();
      }
    }
  }

  close(): void {
    clearInterval(this.timer);
    this.items.clear();
  }
}
