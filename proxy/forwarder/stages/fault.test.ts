// runtimes: node deno bun
// The fault stage, with injected randomness and a fake clock.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { harness } from "../../../test/support/request-path.ts";
import { fault } from "./fault.ts";
import { route } from "./route.ts";

const faulty = { fault: { abort: { percent: 30, status: 418 }, delay: { percent: 50, ms: 200 } } };

describe("fault stage", () => {
  it("aborts the requests whose draw falls within abort.percent", () => {
    const h = harness([route, fault], { route: faulty, random: [0.29] });
    h.tx.next();
    assert.equal(h.passed, false);
    assert.equal(h.exchange.sent?.status, 418);
    assert.match(h.exchange.text, /^fault injected by route /);
    assert.equal(h.telemetry.last.responseFlag, "FI");
  });

  it("delays the requests whose second draw falls within delay.percent, then passes them on", () => {
    const h = harness([route, fault], { route: faulty, random: [0.3, 0.49] });
    h.tx.next();
    assert.equal(h.passed, false);
    h.clock.advance(199);
    assert.equal(h.passed, false);
    h.clock.advance(1);
    assert.ok(h.passed);
  });

  it("passes the others on at once, and the route without faults always", () => {
    const h = harness([route, fault], { route: faulty, random: [0.3, 0.5] });
    h.tx.next();
    assert.ok(h.passed);
    const plain = harness([route, fault], { random: [0] });
    plain.tx.next();
    assert.ok(plain.passed);
  });

  it("does not pass on a delayed request that ended meanwhile", () => {
    const h = harness([route, fault], { route: faulty, random: [0.3, 0] });
    h.tx.next();
    h.exchange.onAbort();
    h.clock.advance(200);
    assert.equal(h.passed, false);
    assert.equal(h.telemetry.last.responseFlag, "DC");
  });
});
