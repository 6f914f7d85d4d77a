// runtimes: node deno bun
// The breaker stage: maxRequests in flight per cluster, each admitted request holding its
// place until it ends, however it ends.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { harness } from "../../../test/support/request-path.ts";
import { breaker } from "./breaker.ts";
import { route } from "./route.ts";

describe("breaker stage", () => {
  it("admits within maxRequests and gives the place back when the request ends", () => {
    const h = harness([route, breaker], { cluster: { circuitBreaker: { maxRequests: 1 } } });
    h.tx.next();
    assert.ok(h.passed);
    assert.equal(h.cluster.inFlight, 1);
    h.exchange.onAbort();
    assert.equal(h.cluster.inFlight, 0);
  });

  it("answers 503 UO once maxRequests are in flight, and counts an overflow", () => {
    const h = harness([route, breaker], { cluster: { circuitBreaker: { maxRequests: 2 } } });
    h.cluster.inFlight = 2;
    h.tx.next();
    assert.equal(h.passed, false);
    assert.equal(h.exchange.sent?.status, 503);
    assert.equal(h.exchange.text, 'circuit breaker: cluster "app" has 2 requests in flight (maxRequests)\n');
    assert.equal(h.telemetry.last.responseFlag, "UO");
    assert.deepEqual(h.telemetry.errors, ["app:overflow"]);
    assert.equal(h.cluster.inFlight, 2, "a refused request takes no place");
  });
});
