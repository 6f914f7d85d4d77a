// Polling for unit tests on real timers: wait for a condition, bounded.
import assert from "node:assert/strict";

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until `check` holds, for at most `ms`; fails the test naming `what` otherwise. */
export async function within(ms: number, what: string, check: () => boolean): Promise<void> {
  const deadline = performance.now() + ms;
  while (!check()) {
    if (performance.now() > deadline) assert.fail(`not within ${ms} ms: ${what}`);
    await sleep(10);
  }
}
