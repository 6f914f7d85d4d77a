// runtimes: node deno bun
// The route stage: the route and cluster for the request as routed, a 404 that says why, the
// route timeout (on a fake clock) and the response header modifier.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { FakeExchange, harness } from "../../../test/support/request-path.ts";
import { headerValue } from "../../http/headers.ts";
import { route } from "./route.ts";

describe("route stage", () => {
  it("finds the route and its cluster and passes the request on", () => {
    const h = harness([route]);
    h.tx.next();
    assert.ok(h.passed);
    assert.equal(h.tx.cluster?.config.name, "app");
    assert.ok(h.tx.route);
  });

  it("routes the request as the filters left it, not as it arrived", () => {
    const h = harness([route], { route: { match: { path: { type: "PathPrefix", value: "/api" } } } });
    h.tx.request = { ...h.tx.request, path: "/api/cart?x=1" };
    h.tx.next();
    assert.ok(h.passed);
  });

  it("answers 404 NR naming host and path (without the query) when nothing matches", () => {
    const h = harness([route], {
      route: { match: { path: { type: "PathPrefix", value: "/api" } } },
      exchange: new FakeExchange({ target: "/admin?token=1" }),
    });
    h.tx.next();
    assert.equal(h.passed, false);
    assert.equal(h.exchange.sent?.status, 404);
    assert.equal(h.exchange.text, 'no route for host "shop.test" and path "/admin"\n');
    assert.equal(h.telemetry.last.responseFlag, "NR");
  });

  it("answers a redirecting route's redirect itself, with the Location, and sends nothing on", () => {
    const h = harness([route], {
      route: { backends: [], redirect: { hostname: "example.org", statusCode: 301 } },
      exchange: new FakeExchange({ target: "/a?b=c" }),
    });
    h.tx.next();
    assert.equal(h.passed, false);
    assert.equal(h.exchange.sent?.status, 301);
    assert.equal(headerValue(h.exchange.sent!.headers, "location"), "http://example.org/a?b=c");
    assert.equal(h.tx.cluster, null);
  });

  it("rewrites the Host and the matched prefix of what it sends on, keeping the query", () => {
    const h = harness([route], {
      route: {
        match: { path: { type: "PathPrefix", value: "/shop" } },
        rewrite: { hostname: "store.internal", path: { type: "ReplacePrefixMatch", value: "/v2" } },
      },
      exchange: new FakeExchange({ target: "/shop/cart?id=7" }),
    });
    h.tx.next();
    assert.ok(h.passed);
    assert.equal(h.tx.request.authority, "store.internal");
    assert.equal(h.tx.request.path, "/v2/cart?id=7");
  });

  it("answers 504 UT when the route timeout passes first, and clears the timer when the request ends first", () => {
    const late = harness([route], { route: { timeoutMs: 300 } });
    late.tx.next();
    late.clock.advance(299);
    assert.equal(late.exchange.headSent, false);
    late.clock.advance(1);
    assert.equal(late.exchange.sent?.status, 504);
    assert.equal(late.exchange.text, "upstream did not answer within the route timeout of 300 ms\n");
    assert.equal(late.telemetry.last.responseFlag, "UT");
    assert.deepEqual(late.telemetry.errors, ["app:timeout"]);

    const early = harness([route], { route: { timeoutMs: 300 } });
    early.tx.next();
    early.tx.reply(503, "done", "UH");
    assert.equal(early.clock.pending, 0, "the timer is cleared when the request ends");
  });

  it("resets a response already under way when the route timeout passes", () => {
    const h = harness([route], { route: { timeoutMs: 100 } });
    h.tx.next();
    h.tx.responseStarted = true;
    h.clock.advance(100);
    assert.ok(h.exchange.wasReset);
    assert.equal(h.telemetry.last.responseFlag, "UT");
  });

  it("applies the route's response header modifier to the response on its way back", () => {
    const h = harness([route], { route: { responseHeaders: { set: [{ name: "x-route", value: "yes" }], remove: ["server"] } } });
    h.tx.next();
    h.tx.response.head({
      status: 200,
      reason: "OK",
      headers: ["server", "app", "x-a", "1"],
      contentLength: 0,
      hasBody: true,
      bodyless: false,
    });
    h.tx.response.end(null);
    assert.deepEqual(h.exchange.sent?.headers, ["x-a", "1", "x-route", "yes"]);
    assert.ok(h.exchange.ended);
  });

  it("applies the picked backend's response header modifier after the route's (the backend's wins), and keeps the backend for the request's", () => {
    const h = harness([route], {
      route: {
        responseHeaders: { set: [{ name: "x-by", value: "route" }] },
        backends: [
          {
            cluster: "app",
            requestHeaders: { set: [{ name: "x-backend", value: "app" }] },
            responseHeaders: { set: [{ name: "x-by", value: "backend" }], add: [{ name: "x-backend", value: "app" }] },
          },
        ],
      },
    });
    h.tx.next();
    assert.deepEqual(h.tx.backend?.requestHeaders?.set, [{ name: "x-backend", value: "app" }]);
    h.tx.response.head({ status: 200, reason: "OK", headers: ["x-a", "1"], contentLength: 0, hasBody: true, bodyless: false });
    h.tx.response.end(null);
    assert.deepEqual(h.exchange.sent?.headers, ["x-a", "1", "x-by", "backend", "x-backend", "app"]);
  });
});
