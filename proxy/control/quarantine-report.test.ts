// runtimes: node deno bun
// The quarantine reporter (quarantine-report.ts) on real timers, bounded to a few seconds: a burst
// of trips is one re-acknowledgement, the next waits out the interval, and the end of a back-off
// is reported without any event, once, a little after it.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { QuarantineStatus } from "../filters/quarantine.ts";
import type { QuarantinedFilter } from "./client.ts";
import { QUARANTINE_REPORT_INTERVAL_MS, QuarantineReporter } from "./quarantine-report.ts";
import { sleep, within } from "../../test/support/within.ts";

describe("quarantine reporter", () => {
  it("coalesces a burst into one report, waits out the interval, and reports the end of the back-off once", async () => {
    // One filter quarantined until `until` (performance.now()), as FilterRuntime.status() shows it.
    let until = 0;
    let backoffMs = 0;
    const filters = () => {
      const remainingMs = Math.ceil(until - performance.now());
      const quarantine: QuarantineStatus | undefined = remainingMs > 0 ? { remainingMs, backoffMs, reason: "it trapped" } : undefined;
      return [{ filter: "shop/trapper", ...(quarantine ? { quarantine } : {}) }];
    };
    const sent: { at: number; quarantined: QuarantinedFilter[] }[] = [];
    const reporter = new QuarantineReporter({
      filters,
      // As ControlClient.reacknowledge does: the acknowledgement asks for the list.
      send: async () => void sent.push({ at: performance.now(), quarantined: reporter.report() }),
    });
    try {
      // A configuration's acknowledgement: nothing quarantined.
      assert.deepEqual(reporter.report(), []);
      await sleep(QUARANTINE_REPORT_INTERVAL_MS);

      const trip = (ms: number) => {
        backoffMs = ms;
        until = performance.now() + ms;
        reporter.changed();
      };
      trip(1_000);
      for (let i = 0; i < 10; i++) reporter.changed();
      await within(500, "the first trip reported", () => sent.length === 1);
      assert.equal(sent[0]!.quarantined.length, 1);
      assert.equal(sent[0]!.quarantined[0]!.backoffMs, 1_000);
      assert.ok(Math.abs(Date.parse(sent[0]!.quarantined[0]!.until) - (Date.now() + (until - performance.now()))) < 100);

      // Its back-off doubles at once: reported a second after the first report, not before.
      trip(2_000);
      await within(QUARANTINE_REPORT_INTERVAL_MS + 500, "the doubled back-off reported", () => sent.length === 2);
      assert.ok(sent[1]!.at - sent[0]!.at >= QUARANTINE_REPORT_INTERVAL_MS - 5, `${sent[1]!.at - sent[0]!.at} ms apart`);
      assert.equal(sent[1]!.quarantined[0]!.backoffMs, 2_000);

      // No event marks the end: it is reported a little after the back-off, once.
      await within(until - performance.now() + 1_000, "the end reported", () => sent.length === 3);
      assert.deepEqual(sent[2]!.quarantined, []);
      assert.ok(sent[2]!.at >= until, "not before the back-off ended");
      await sleep(300);
      assert.equal(sent.length, 3, "nothing more to report");
    } finally {
      reporter.stop();
    }
  });
});
