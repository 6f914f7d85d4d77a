// runtimes: node deno bun
// The filters stage with fake filters: which filters a request gets, a filter's changes and
// local replies, the body phase and its buffer, and the response phases in reverse order.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { FakeExchange, fakeFilter, harness, localReply } from "../../../test/support/request-path.ts";
import { filters } from "./filters.ts";

const ok = { status: 200, reason: "OK", headers: ["content-type", "text/plain"], contentLength: 5, hasBody: true, bodyless: false };

describe("filters stage", () => {
  it("passes the request on untouched when no filter is attached", () => {
    const h = harness([filters]);
    const arrived = h.tx.request;
    h.tx.next();
    assert.ok(h.passed);
    assert.equal(h.tx.request, arrived);
    assert.equal(h.tx.response, h.tx, "no response phase wraps the response");
  });

  it("routes the filters' copy of the request, leaving the downstream's headers as they came", () => {
    const h = harness([filters], {
      filters: [
        fakeFilter("rewrite", {
          on_request_headers: (m) => {
            m.request.path = "/v2/cart";
            m.request.headers.push("x-user", "ada");
          },
        }),
      ],
    });
    h.tx.next();
    assert.ok(h.passed);
    assert.equal(h.tx.request.path, "/v2/cart");
    assert.deepEqual(h.tx.request.headers, ["host", "shop.test", "x-user", "ada"]);
    assert.deepEqual(h.exchange.headers, ["host", "shop.test"]);
  });

  it("answers with a filter's local reply, with the request id, and runs no later filter", () => {
    const calls: string[] = [];
    const h = harness([filters], {
      filters: [
        fakeFilter("a-deny", { on_request_headers: () => (calls.push("deny"), localReply(401, "who are you")) }),
        fakeFilter("b-next", { on_request_headers: () => void calls.push("next") }),
      ],
    });
    h.tx.next();
    assert.equal(h.passed, false);
    assert.deepEqual(calls, ["deny"]);
    assert.equal(h.exchange.sent?.status, 401);
    assert.equal(h.exchange.text, "who are you");
    assert.equal(h.exchange.header("x-request-id"), h.tx.requestId);
  });

  it("reads the body whole for a body phase, then passes on the changed body with its trailers", () => {
    const exchange = new FakeExchange({ method: "POST", hasRequestBody: true, requestContentLength: 10 });
    const h = harness([filters], {
      exchange,
      filters: [
        fakeFilter("upper", {
          on_request_body: (m) => void (m.body = new TextEncoder().encode(new TextDecoder().decode(m.body!).toUpperCase())),
        }),
      ],
    });
    h.tx.next();
    assert.equal(h.passed, false, "the request waits for its body");
    exchange.sendBody(["hello ", "body"]);
    assert.ok(h.passed);
    assert.equal(h.tx.readBody?.body.toString(), "HELLO BODY");
  });

  it("answers 413 when the body outgrows the smallest body buffer of the filters reading it", () => {
    const exchange = new FakeExchange({ method: "POST", hasRequestBody: true, requestContentLength: -1 });
    const h = harness([filters], { exchange, filters: [fakeFilter("small", { on_request_body: () => {} }, 8)] });
    h.tx.next();
    exchange.sendBody(["12345", "6789"], false);
    assert.equal(h.exchange.sent?.status, 413);
    assert.match(h.exchange.text, /larger than 8 bytes/);
    assert.equal(h.passed, false);
  });

  it("runs response phases in reverse chain order and sends what they changed", () => {
    const order: string[] = [];
    const h = harness([filters], {
      filters: [
        fakeFilter("a", { on_response_headers: (m) => void (order.push("a"), m.response!.headers.push("x-a", "1")) }),
        fakeFilter("b", { on_response_headers: (m) => void (order.push("b"), (m.response!.status = 203)) }),
      ],
    });
    h.tx.next();
    h.tx.response.head({ ...ok, headers: ok.headers.slice() });
    assert.deepEqual(order, ["b", "a"]);
    assert.equal(h.exchange.sent?.status, 203);
    assert.equal(h.exchange.sent?.reason, "", "a changed status gets its own reason phrase");
    assert.equal(h.exchange.header("x-a"), "1");
  });

  it("holds the head for a response body phase and sends the changed body with its new length", () => {
    const h = harness([filters], {
      filters: [
        fakeFilter("wrap", { on_response_body: (m) => void (m.body = new TextEncoder().encode(`[${new TextDecoder().decode(m.body!)}]`)) }),
      ],
    });
    h.tx.next();
    h.tx.response.head({ ...ok, headers: ok.headers.slice() });
    assert.equal(h.exchange.headSent, false, "the head waits for the body");
    assert.ok(h.tx.response.data(Buffer.from("hel")));
    assert.ok(h.tx.response.data(Buffer.from("lo")));
    h.tx.response.end(null);
    assert.equal(h.exchange.sent?.contentLength, 7);
    assert.equal(h.exchange.text, "[hello]");
    assert.ok(h.exchange.ended);
    assert.equal(h.telemetry.last.status, 200);
  });

  it("answers 502 when the response body outgrows the filters' body buffer", () => {
    const h = harness([filters], { filters: [fakeFilter("small", { on_response_body: () => {} }, 4)] });
    h.tx.next();
    h.tx.response.head({ ...ok, headers: ok.headers.slice() });
    h.tx.response.data(Buffer.from("12345"));
    assert.equal(h.exchange.sent?.status, 502);
    assert.ok(h.tx.done);
  });
});
