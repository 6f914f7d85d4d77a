// runtimes: node deno bun
// Quarantine (proxy/filters/quarantine.ts) on a clock the test moves: what trips it, the back-off
// doubling to its cap, the probation after it, and each failStrategy's answer while a filter is
// quarantined, on a real filter module. No sleeps: every time here is the fake clock's.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import * as v from "valibot";
import { Registry } from "prom-client";
import { FilterConfig } from "../proxy/config/filters.ts";
import { FilterFault, type FaultKind } from "../proxy/filters/fault.ts";
import { Filter } from "../proxy/filters/filter.ts";
import { FilterMetrics } from "../proxy/filters/metrics.ts";
import { compileFilter, sha256Hex } from "../proxy/filters/module.ts";
import { Quarantine, QUARANTINE_POLICY } from "../proxy/filters/quarantine.ts";
import { FilterState } from "../proxy/filters/state.ts";
import { createLogger } from "../shared/log.ts";
import { filterModule, hostileMessage, op, proceed, set, whenHostile } from "./hostile/wasm-modules.ts";

const {
  failures: TRIP,
  burstMs: BURST,
  failureShare: SHARE,
  windowMs: WINDOW,
  firstBackoffMs: FIRST,
  probationMs: PROBATION,
  maxBackoffMs: MAX,
} = QUARANTINE_POLICY;

function clock(): { now: () => number; advance: (ms: number) => void } {
  let t = 1_000_000;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

const fault = (kind: FaultKind = "trap") => new FilterFault(kind, `a ${kind}`);

/** Fails `times` calls `gapMs` apart; returns what the last one started. */
function failTimes(q: Quarantine, c: ReturnType<typeof clock>, times: number, gapMs = 0) {
  let started: ReturnType<Quarantine["failed"]> = null;
  for (let i = 0; i < times; i++) {
    if (i > 0) c.advance(gapMs);
    started = q.failed(fault());
  }
  return started;
}

describe("quarantine", () => {
  it(`trips at the ${TRIP}th deadline, trap, abort or memory failure within ${WINDOW} ms, whatever succeeds between them`, () => {
    const c = clock();
    const q = new Quarantine(c.now);
    for (const kind of ["deadline", "trap", "abort", "memory"] as const) {
      assert.equal(q.failed(fault(kind)), null);
      q.succeeded();
    }
    // The window is whole seconds: the first failures' second is still in it.
    c.advance(WINDOW - 1_000);
    const started = q.failed(fault("trap"));
    assert.deepEqual(started, {
      remainingMs: FIRST,
      backoffMs: FIRST,
      reason: `it failed ${TRIP} times in ${2 * TRIP - 1} calls within ${WINDOW / 1000} s (the last: a trap)`,
    });
    assert.deepEqual(q.status(), started);
    c.advance(FIRST - 1);
    assert.equal(q.status()?.remainingMs, 1);
    c.advance(1);
    assert.equal(q.status(), null, "the back-off is over");
  });

  it("does not trip on failures spread wider than the window, on error returns or on a filter that could not load", () => {
    const c = clock();
    const q = new Quarantine(c.now);
    assert.equal(failTimes(q, c, TRIP * 3, WINDOW / (TRIP - 1) + 1), null);
    for (let i = 0; i < TRIP * 2; i++) {
      assert.equal(q.failed(fault("error")), null);
      assert.equal(q.failed(fault("unavailable")), null);
    }
    assert.equal(q.status(), null);
  });

  it(`trips at ${TRIP} failures within ${BURST} ms however many calls succeed between them: an abusive client among many`, () => {
    const c = clock();
    const q = new Quarantine(c.now);
    for (let i = 0; i < 10_000; i++) q.succeeded();
    assert.equal(failTimes(q, c, TRIP - 1, 200), null);
    c.advance(BURST - (TRIP - 1) * 200);
    assert.deepEqual(q.failed(fault()), {
      remainingMs: FIRST,
      backoffMs: FIRST,
      reason: `it failed ${TRIP} times within ${BURST / 1000} s (the last: a trap)`,
    });
  });

  it(`does not trip while failures slower than that are under ${SHARE * 100} % of the calls in the window: a rare trap among many requests`, () => {
    const c = clock();
    const q = new Quarantine(c.now);
    const calls = TRIP / SHARE;
    const gap = BURST / 2 + 1; // no 5 of them within BURST
    for (let i = 0; i < calls - TRIP; i++) q.succeeded();
    assert.equal(failTimes(q, c, TRIP - 1, gap), null);
    q.succeeded();
    c.advance(gap);
    assert.equal(q.failed(fault()), null, `${TRIP} failures in ${calls + 1} calls`);
    c.advance(gap);
    assert.match(
      q.failed(fault())?.reason ?? "",
      new RegExp(`^it failed ${TRIP + 1} times in ${calls + 2} calls within`),
      "one more is over the share",
    );
  });

  it(`doubles the back-off at each failure within ${PROBATION} ms after one, up to ${MAX} ms, successes or not; a probation without a failure starts over`, () => {
    const c = clock();
    const q = new Quarantine(c.now);
    failTimes(q, c, TRIP);
    const backoffs: number[] = [FIRST];
    for (let i = 0; i < 8; i++) {
      c.advance(q.status()!.remainingMs);
      // Everyone else's requests succeed in between: the probation holds.
      for (let k = 0; k < 100; k++) q.succeeded();
      c.advance(i % 2 === 0 ? 0 : PROBATION);
      const again = q.failed(fault());
      assert.ok(again, "a failure within the probation: quarantined again at once");
      assert.match(
        again.reason,
        new RegExp(`^it failed again within ${PROBATION / 1000} s of a quarantine of ${backoffs.at(-1)} ms \\(the last: a trap\\)$`),
      );
      backoffs.push(again.backoffMs);
    }
    assert.deepEqual(backoffs, [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000]);
    c.advance(MAX + PROBATION + 1);
    q.succeeded();
    assert.equal(q.failed(fault()), null, "after a probation without failures one failure does not quarantine it");
    c.advance(BURST + 1);
    assert.deepEqual(failTimes(q, c, TRIP - 1)?.backoffMs, FIRST, `${TRIP} failures (that one too) start at the first back-off again`);
  });
});

// A filter that sets x-ran on every request and traps on those with the HOSTILE header.
const bytes = filterModule({ phases: { on_request_headers: [...set("x-ran", "yes"), ...whenHostile(op.unreachable), ...proceed] } });
const compiled = await compileFilter(bytes, sha256Hex(bytes), 16, "the test's filter");

describe("a quarantined filter", () => {
  for (const failStrategy of ["FailClose", "FailOpen", "FailReload"] as const) {
    it(`${failStrategy}: ${failStrategy === "FailOpen" ? "is skipped" : "answers 500 naming the quarantine"} without running, and runs again after the back-off`, async () => {
      const c = clock();
      const registry = new Registry();
      const config = v.parse(FilterConfig, { name: "trapper", namespace: "test", module: { sha256: compiled.sha256 }, failStrategy });
      const filter = new Filter(config, compiled, "", {
        log: createLogger({}, "error", () => {}),
        metrics: new FilterMetrics(registry, () => [[filter.id, filter.quarantined() !== null]]),
        state: new FilterState(),
        quarantine: new Quarantine(c.now),
      });
      for (let i = 0; i < TRIP; i++) {
        const { reply } = filter.run("on_request_headers", hostileMessage(true));
        if (failStrategy === "FailOpen") assert.equal(reply, null);
        else assert.match(String(reply?.headers[3]), /^filter test\/trapper failed: the filter trapped: unreachable$/);
      }
      assert.equal(filter.quarantined()?.backoffMs, FIRST);

      const calm = hostileMessage(false);
      const { reply } = filter.run("on_request_headers", calm);
      assert.deepEqual(calm.request.headers, [], "the filter did not run");
      if (failStrategy === "FailOpen") assert.equal(reply, null, "FailOpen: the request goes on without the filter");
      else {
        assert.equal(reply?.status, 500);
        assert.equal(
          reply?.headers[3],
          `filter test/trapper is quarantined for ${FIRST} ms (${FIRST} ms left): it failed ${TRIP} times within ${BURST / 1000} s (the last: the filter trapped: unreachable); it is not run until then`,
        );
      }
      const metrics = await registry.metrics();
      assert.match(metrics, /^weft_filter_quarantined\{filter="test\/trapper"\} 1$/m);
      assert.match(metrics, /^weft_filter_quarantines_total\{filter="test\/trapper"\} 1$/m);
      assert.match(metrics, /^weft_filter_failures_total\{filter="test\/trapper",phase="on_request_headers",kind="quarantined"\} 1$/m);

      c.advance(FIRST);
      assert.equal(filter.quarantined(), null);
      assert.match(
        await registry.metrics(),
        /^weft_filter_quarantined\{filter="test\/trapper"\} 0$/m,
        "the gauge drops when the back-off ends",
      );
      const after = hostileMessage(false);
      assert.equal(filter.run("on_request_headers", after).reply, null);
      assert.deepEqual(after.request.headers, ["x-ran", "yes"], "the filter runs again after the back-off");
    });
  }

  it("a filter's weft_metric may not take the name of weft's own filter metrics", () => {
    const metrics = new FilterMetrics(new Registry());
    for (const name of ["quarantined", "quarantines_total", "failures_total"])
      assert.match(String(metrics.record("test/f", 1, name, 1)), /is taken by weft's own weft_filter_/);
  });
});
