// Time and chance as the request path sees them: the system's in the sidecar, fakes in unit
// tests, so a stage's timeouts, retries' back-off and fault percentages are tested without waiting.

/** A pending timer; only the Clock that made it can cancel it. */
export type Timer = { readonly __timer: unique symbol };

export interface Clock {
  now(): number;
  setTimeout(callback: () => void, ms: number): Timer;
  clearTimeout(timer: Timer): void;
}

/** A number in [0, 1), as Math.random. */
export type Random = () => number;

export const systemClock: Clock = {
  now: Date.now,
  setTimeout: (callback, ms) => setTimeout(callback, ms) as unknown as Timer,
  clearTimeout: (timer) => clearTimeout(timer as unknown as ReturnType<typeof setTimeout>),
};
