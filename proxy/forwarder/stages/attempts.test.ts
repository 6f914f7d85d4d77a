// runtimes: node deno bun
// The attempts stage against a fake cluster whose connections the test answers: one attempt
// and its response, retries within the policy (back-off on a fake clock), per-try timeouts,
// stale kept-alive connections, and what an attempt gives back when the request ends.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { FakeExchange, FakeUpstream, harness } from "../../../test/support/request-path.ts";
import { UpstreamFailure } from "../../upstream/cluster.ts";
import { attempts } from "./attempts.ts";
import { route } from "./route.ts";

const retry = (more: Record<string, unknown> = {}) => ({
  retry: { attempts: 2, retryOn: ["5xx", "connect-failure"], backoffBaseMs: 100, ...more },
});

describe("attempts stage", () => {
  it("sends the request to a picked endpoint and streams the answer back", async () => {
    const h = harness([route, attempts]);
    h.tx.next();
    const up = await h.cluster.give();
    assert.equal(up.head?.headers[0], "host");
    assert.equal(up.head?.method, "GET");
    assert.equal(h.cluster.endpoints[0]!.active, 1, "the attempt counts in its endpoint's requests");
    up.respond(200, "hello");
    assert.equal(h.exchange.sent?.status, 200);
    assert.equal(h.exchange.text, "hello");
    assert.ok(h.exchange.ended);
    assert.equal(h.telemetry.last.attempts, 1);
    assert.equal(h.telemetry.last.upstreamAddress, "a");
    assert.equal(h.cluster.endpoints[0]!.active, 0);
    assert.deepEqual(h.cluster.outcomes, ["a:success"]);
  });

  it("retries a 503 at another endpoint after a back-off, and answers with the second try", async () => {
    const h = harness([route, attempts], { route: retry(), random: [0.5] });
    h.tx.next();
    (await h.cluster.give()).respond(503);
    assert.equal(h.exchange.headSent, false, "a retried answer is not sent");
    assert.equal(h.cluster.retries, 1, "the retry holds budget while it waits");
    h.clock.advance(49);
    assert.equal(h.cluster.waiting.length, 0);
    h.clock.advance(1);
    assert.equal(h.cluster.retries, 0);
    assert.equal(h.cluster.waiting[0]?.endpoint.key, "b", "the retry avoids the endpoint that failed");
    (await h.cluster.give()).respond(200, "ok");
    assert.equal(h.exchange.sent?.status, 200);
    assert.equal(h.telemetry.last.attempts, 2);
    assert.deepEqual(h.cluster.outcomes, ["a:5xx", "b:success"]);
  });

  it("answers with the upstream's own 503 once the retries are used up", async () => {
    const h = harness([route, attempts], { route: retry({ attempts: 1 }), random: [0] });
    h.tx.next();
    (await h.cluster.give()).respond(503);
    h.clock.advance(0);
    (await h.cluster.give()).respond(503, "busy");
    assert.equal(h.exchange.sent?.status, 503);
    assert.equal(h.exchange.text, "busy");
    assert.equal(h.telemetry.last.attempts, 2);
  });

  it("does not retry beyond the cluster's retry budget", async () => {
    const h = harness([route, attempts], { route: retry() });
    h.cluster.retryBudget = 0;
    h.tx.next();
    (await h.cluster.give()).respond(503, "no");
    assert.equal(h.exchange.sent?.status, 503);
  });

  it("answers 503 UF naming the endpoint when it cannot connect, and URX after retries", async () => {
    const once = harness([route, attempts]);
    once.tx.next();
    await once.cluster.fail(new Error("cannot connect to a: ECONNREFUSED"));
    assert.equal(once.exchange.sent?.status, 503);
    assert.equal(once.exchange.text, "cannot connect to a: ECONNREFUSED\n");
    assert.equal(once.telemetry.last.responseFlag, "UF");

    const twice = harness([route, attempts], { route: retry({ attempts: 1 }), random: [0] });
    twice.tx.next();
    await twice.cluster.fail(new Error("refused a"));
    twice.clock.advance(0);
    await twice.cluster.fail(new Error("refused b"));
    assert.equal(twice.exchange.text, "refused b (after 2 attempts)\n");
    assert.equal(twice.telemetry.last.responseFlag, "URX");
  });

  it("answers 503 UO when the cluster's connection queue is full", async () => {
    const h = harness([route, attempts]);
    h.tx.next();
    await h.cluster.fail(new UpstreamFailure("overflow", 'circuit breaker: cluster "app" has 1 connections'));
    assert.equal(h.exchange.sent?.status, 503);
    assert.equal(h.telemetry.last.responseFlag, "UO");
    assert.equal(h.cluster.endpoints[0]!.active, 0);
  });

  it("gives up a try after its per-try timeout: the connection is aborted, the answer is 504 UT", async () => {
    const h = harness([route, attempts], { route: { retry: { attempts: 0, perTryTimeoutMs: 250 } } });
    h.tx.next();
    const up = await h.cluster.give();
    h.clock.advance(250);
    assert.ok(up.aborted);
    assert.equal(h.exchange.sent?.status, 504);
    assert.equal(h.exchange.text, "no response from a within the per-try timeout of 250 ms\n");
    assert.equal(h.telemetry.last.responseFlag, "UT");
  });

  it("sends a request again, without counting an attempt, when a kept-alive connection was stale", async () => {
    const h = harness([route, attempts]);
    h.tx.next();
    const stale = new FakeUpstream();
    stale.reused = true;
    await h.cluster.give(stale);
    stale.handler!.error(new Error("socket hang up"), true);
    (await h.cluster.give()).respond(200, "fresh");
    assert.equal(h.exchange.text, "fresh");
    assert.equal(h.telemetry.last.attempts, 1);
  });

  it("resets the downstream when the upstream fails mid-response (flag UC)", async () => {
    const h = harness([route, attempts]);
    h.tx.next();
    const up = await h.cluster.give();
    up.handler!.head({
      status: 200,
      reason: "OK",
      minor: 1,
      headers: [],
      contentLength: 100,
      chunked: false,
      close: false,
      upgrade: "",
      connectionTokens: [],
    });
    up.handler!.error(new Error("reset by peer"), false);
    assert.ok(h.exchange.wasReset);
    assert.equal(h.telemetry.last.responseFlag, "UC");
  });

  it("streams the request body, keeping it for a retry, and sends it whole again", async () => {
    const exchange = new FakeExchange({ method: "PUT", hasRequestBody: true, requestContentLength: 6 });
    const h = harness([route, attempts], { route: retry(), exchange, random: [0] });
    h.tx.next();
    const first = await h.cluster.give();
    exchange.sendBody(["abc", "def"]);
    assert.equal(Buffer.concat(first.body).toString(), "abcdef");
    first.respond(503);
    h.clock.advance(0);
    const second = await h.cluster.give();
    assert.equal(Buffer.concat(second.body).toString(), "abcdef");
    assert.ok(second.bodyEnded);
  });

  it("gives back the connection and the endpoint's count when the downstream goes away", async () => {
    const h = harness([route, attempts]);
    h.tx.next();
    const up = await h.cluster.give();
    h.exchange.onAbort();
    assert.ok(up.aborted);
    assert.equal(h.cluster.endpoints[0]!.active, 0);
    assert.equal(h.telemetry.last.responseFlag, "DC");
  });

  it("returns a connection that arrives after the request ended, unused", async () => {
    const h = harness([route, attempts]);
    h.tx.next();
    h.exchange.onAbort();
    const late = await h.cluster.give();
    assert.ok(late.released);
    assert.equal(late.head, null);
  });
});
