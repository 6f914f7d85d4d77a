// runtimes: node deno bun
// A filter's instances (proxy/filters/instance-pool.ts) on real filter modules: an error return
// keeps the instance, a trap drops it and the spare built after the failed call serves the next
// one, and no spare is built for a filter that left the configuration, during a quarantine, or
// again and again when building fails. Constructions are counted through the filter's factory;
// a spare is built in a timer, so a test lets one pass (`nextTurn`) where one may be built.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import * as v from "valibot";
import { Registry } from "prom-client";
import { FilterConfig } from "../proxy/config/filters.ts";
import { FilterFault } from "../proxy/filters/fault.ts";
import { Filter, type FilterDependencies } from "../proxy/filters/filter.ts";
import { FilterInstance } from "../proxy/filters/instance.ts";
import { FilterMetrics } from "../proxy/filters/metrics.ts";
import { compileFilter, sha256Hex } from "../proxy/filters/module.ts";
import { Quarantine, QUARANTINE_POLICY } from "../proxy/filters/quarantine.ts";
import { FilterState } from "../proxy/filters/state.ts";
import { createLogger } from "../shared/log.ts";
import { filterModule, hostileMessage, op, proceed, set, whenHostile, type Code } from "./hostile/wasm-modules.ts";

// Sets x-reused when its instance has run before (a flag it keeps in its own memory), then does
// `onHostile` for requests with the HOSTILE header.
async function flagging(onHostile: Code) {
  const bytes = filterModule({
    phases: {
      on_request_headers: [
        ...[...op.i32(0), ...op.i32Load, ...op.if, ...set("x-reused", "yes"), ...op.end],
        ...[...op.i32(0), ...op.i32(1), ...op.i32Store],
        ...whenHostile(onHostile),
        ...proceed,
      ],
    },
  });
  return compileFilter(bytes, sha256Hex(bytes), 16, "the test's filter");
}
const erring = await flagging([...op.i32(1), ...op.return]);
const trapping = await flagging(op.unreachable);

type Compiled = Awaited<ReturnType<typeof flagging>>;

/** A filter whose constructions are counted (`built()`); `failBuilds(true)` makes them throw. */
function counted(compiled: Compiled, failStrategy: "FailClose" | "FailOpen" | "FailReload", deps: Partial<FilterDependencies> = {}) {
  let built = 0;
  let failing = false;
  const logged: string[] = [];
  const config = v.parse(FilterConfig, { name: "f", namespace: "test", module: { sha256: compiled.sha256 }, failStrategy });
  const filter = new Filter(config, compiled, "", {
    log: createLogger({}, "error", (line) => void logged.push(line)),
    metrics: new FilterMetrics(new Registry()),
    state: new FilterState(),
    instantiate: (c, s) => {
      built++;
      if (failing) throw new FilterFault("trap", "cannot instantiate the module: a test's refusal");
      return new FilterInstance(c, s);
    },
    ...deps,
  });
  /** Runs a request; returns what it left in x-reused ("yes": on an instance that had run before), or its 500. */
  const call = (hostile = false) => {
    const m = hostileMessage(hostile);
    const { reply } = filter.run("on_request_headers", m);
    if (reply) return `${reply.status}`;
    const at = m.request.headers.indexOf("x-reused");
    return at < 0 ? "fresh" : "reused";
  };
  return { filter, call, built: () => built, failBuilds: (on: boolean) => void (failing = on), logged };
}

const nextTurn = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

describe("a filter's instances", () => {
  it("keep serving after an error return: the next call runs on the same instance", async () => {
    const f = counted(erring, "FailClose");
    assert.equal(f.call(), "fresh");
    assert.equal(f.call(true), "500", "the filter returned an error");
    assert.equal(f.call(), "reused");
    await nextTurn();
    assert.equal(f.built(), 1, "no spare either: nothing was lost");
  });

  it("are replaced after a trap by a spare built after the failed call, not on the next one's path; a new spare follows", async () => {
    const f = counted(trapping, "FailOpen");
    assert.equal(f.call(), "fresh");
    assert.equal(f.call(true), "fresh", "FailOpen skipped the trapped filter");
    assert.equal(f.built(), 1, "the failed call built nothing");
    await nextTurn();
    assert.equal(f.built(), 2, "the spare");
    assert.equal(f.call(), "fresh", "the call ran on a fresh instance");
    assert.equal(f.built(), 2, "the spare, built before the call");
    await nextTurn();
    assert.equal(f.built(), 3, "a filter that lost an instance keeps a spare");
    assert.equal(f.call(), "reused", "the instance in service stays in service");
    await nextTurn();
    assert.equal(f.built(), 3);
  });

  it("FailReload: a spare is ready from the start, so the second call builds nothing on the request path; another follows", async () => {
    const f = counted(trapping, "FailReload");
    f.filter.warm();
    await nextTurn();
    assert.equal(f.built(), 2, "the instance in service and a spare beside it, before any failure");
    assert.equal(f.call(true), "500", "both calls trapped");
    assert.equal(f.built(), 2, "the second call ran on the spare");
    await nextTurn();
    assert.equal(f.built(), 3, "the next spare");
    assert.equal(f.call(), "fresh", "on the spare");
    await nextTurn();
    assert.equal(f.built(), 4, "the instance in service and a spare beside it");
    assert.equal(f.call(true), "500");
    assert.equal(f.built(), 4, "the second call ran on the spare");
    await nextTurn();
    assert.equal(f.built(), 5);
  });

  it("FailReload after an error return calls a new instance, as it promises: the filter's own memory starts over", async () => {
    const f = counted(erring, "FailReload");
    assert.equal(f.call(), "fresh");
    assert.equal(f.call(true), "500", "both calls returned an error");
    assert.equal(f.built(), 2, "the second call ran on an instance of its own");
    assert.equal(f.call(), "reused", "that instance (it ran once) stays in service");
  });

  it("a filter that left the configuration before its spare was built builds none, and still serves calls in flight", async () => {
    const f = counted(trapping, "FailOpen");
    f.call(true);
    f.filter.retire();
    await nextTurn();
    assert.equal(f.built(), 1);
    assert.equal(f.call(), "fresh", "a call in flight builds its own instance");
    await nextTurn();
    assert.equal(f.built(), 2, "and no spare after it");
  });

  it("no spare is built during a quarantine; the first call after it builds its instance, and a spare follows", async () => {
    let now = 1_000_000;
    const f = counted(trapping, "FailOpen", { quarantine: new Quarantine(() => now) });
    for (let i = 0; i < QUARANTINE_POLICY.failures; i++) f.call(true);
    assert.ok(f.filter.quarantined());
    const before = f.built();
    await nextTurn();
    assert.equal(f.built(), before, "no spare during the back-off");
    now += QUARANTINE_POLICY.firstBackoffMs;
    assert.equal(f.call(), "fresh");
    assert.equal(f.built(), before + 1);
    await nextTurn();
    assert.equal(f.built(), before + 2, "the spare");
  });

  it("a spare that cannot be built is logged once; calls build their own until one succeeds, then spares resume", async () => {
    const f = counted(trapping, "FailOpen", { quarantine: null });
    f.call(true);
    f.failBuilds(true);
    await nextTurn();
    assert.equal(f.built(), 2, "the spare's build, which failed");
    for (let i = 0; i < 3; i++) {
      assert.equal(f.call(), "fresh", "FailOpen: the call that could not build its instance skipped the filter");
      await nextTurn();
    }
    assert.equal(f.built(), 5, "one build per call, no spare builds between them");
    const spareErrors = f.logged.filter((l) => l.includes("cannot build a spare instance"));
    assert.equal(spareErrors.length, 1, f.logged.join(""));
    f.failBuilds(false);
    assert.equal(f.call(), "fresh");
    assert.equal(f.built(), 6);
    await nextTurn();
    assert.equal(f.built(), 7, "spares again once a build succeeded");
  });
});
