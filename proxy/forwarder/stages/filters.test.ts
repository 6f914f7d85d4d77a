// runtimes: node deno bun
// The filters stage with fake filters: which filters a request gets, a filter's changes and
// local replies, the body phase and its buffer, the response phases in reverse order, and which
// of them a local reply passes.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import type { FilterMessage, FilterPhaseName, LocalReply } from "../../filters/message.ts";
import { FakeExchange, fakeFilter, harness, localReply } from "../../../test/support/request-path.ts";
import type { Transaction } from "../transaction.ts";
import { access } from "./access.ts";
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

// Which response phases a local reply passes (docs/filter-abi.md#local-replies-and-response-phases).
describe("local replies through the response phases", () => {
  const header = (m: FilterMessage, name: string) => {
    const h = m.response!.headers;
    for (let i = 0; i < h.length; i += 2) if (h[i] === name) return h[i + 1];
    return undefined;
  };
  /** A filter that records which response phases it ran, for which status, and adds x-<id>. */
  const recording = (
    id: string,
    calls: string[],
    more: Partial<Record<FilterPhaseName, (m: FilterMessage) => LocalReply | null | void>> = {},
  ) =>
    fakeFilter(id, {
      on_response_headers: (m) => {
        calls.push(`${id} ${m.response!.status}`);
        m.response!.headers.push(`x-${id}`, "1");
      },
      ...more,
    });
  const proxyReply =
    (status: number, message: string, flag: "UH" | "NR") =>
    (tx: Transaction): void =>
      tx.reply(status, message, flag);

  it("a filter's reply passes the response phases of the filters before it, never its own or those after it", () => {
    const calls: string[] = [];
    const h = harness([filters], {
      filters: [
        recording("a", calls),
        recording("b", calls, { on_request_headers: () => localReply(401, "who are you") }),
        recording("c", calls),
      ],
    });
    h.tx.next();
    assert.equal(h.passed, false);
    assert.deepEqual(calls, ["a 401"]);
    assert.equal(h.exchange.sent?.status, 401);
    assert.equal(h.exchange.header("x-a"), "1");
    assert.equal(h.exchange.header("x-b"), undefined);
    assert.equal(h.exchange.text, "who are you");
    assert.equal(h.exchange.header("x-request-id"), h.tx.requestId);
  });

  it("a reply from a request body phase passes the filters before the one that made it", () => {
    const calls: string[] = [];
    const exchange = new FakeExchange({ method: "POST", hasRequestBody: true, requestContentLength: 4 });
    const h = harness([filters], {
      exchange,
      filters: [
        recording("a", calls),
        recording("b", calls, { on_request_body: () => localReply(400, "bad body") }),
        recording("c", calls),
      ],
    });
    h.tx.next();
    exchange.sendBody(["nope"]);
    assert.deepEqual(calls, ["a 400"]);
    assert.equal(h.exchange.sent?.status, 400);
  });

  it("the proxy's own replies after the filters stage pass every filter's response phases, in reverse, which may change them", () => {
    const calls: string[] = [];
    const h = harness([filters, proxyReply(503, `no endpoints for cluster "app"`, "UH")], {
      filters: [
        recording("a", calls, {
          on_response_headers: (m) => {
            calls.push(`a ${m.response!.status} ${header(m, "x-weft-error")}`);
            m.response!.status = 502;
          },
        }),
        recording("b", calls),
      ],
    });
    h.tx.next();
    assert.deepEqual(calls, ["b 503", `a 503 no endpoints for cluster "app"`]);
    assert.equal(h.exchange.sent?.status, 502);
    assert.equal(h.exchange.header("x-b"), "1");
    assert.equal(h.exchange.text, `no endpoints for cluster "app"\n`);
    assert.equal(h.telemetry.last.status, 502, "telemetry records the status that went out");
    assert.equal(h.telemetry.last.responseFlag, "UH", "and the flag says what the proxy did");
  });

  it("the access check's refusal passes no filter: a response phase cannot turn the 403 into a 200", () => {
    const calls: string[] = [];
    const h = harness([access, filters], {
      refuse: () => "access policy shop/no-admin denies this request",
      filters: [
        fakeFilter("opener", {
          on_request_headers: () => void calls.push("request"),
          on_response_headers: (m) => {
            calls.push("response");
            m.response!.status = 200;
          },
        }),
      ],
    });
    h.tx.next();
    assert.deepEqual(calls, []);
    assert.equal(h.exchange.sent?.status, 403);
    assert.equal(h.telemetry.last.status, 403);
    assert.equal(h.telemetry.last.responseFlag, "RBAC");
  });

  it("a local reply's body passes the response body phases and goes out with its new length; HEAD gets the length and no body", () => {
    for (const method of ["GET", "HEAD"]) {
      const h = harness([filters, proxyReply(404, "no route", "NR")], {
        exchange: new FakeExchange({ method }),
        filters: [
          fakeFilter("wrap", {
            on_response_body: (m) => void (m.body = new TextEncoder().encode(`[${new TextDecoder().decode(m.body!)}]`)),
          }),
        ],
      });
      h.tx.next();
      assert.equal(h.exchange.sent?.status, 404, method);
      assert.equal(h.exchange.sent?.contentLength, "[no route\n]".length, method);
      assert.equal(h.exchange.text, method === "HEAD" ? "" : "[no route\n]", method);
      assert.ok(h.exchange.ended, method);
    }
  });

  it("a reply made in a response phase passes the filters before the one that made it, once", () => {
    const calls: string[] = [];
    const h = harness([filters], {
      filters: [
        recording("a", calls),
        recording("b", calls, { on_response_headers: (m) => (calls.push(`b ${m.response!.status}`), localReply(418, "tea")) }),
        recording("c", calls),
      ],
    });
    h.tx.next();
    h.tx.response.head({ ...ok, headers: ok.headers.slice() });
    assert.deepEqual(calls, ["c 200", "b 200", "a 418"]);
    assert.equal(h.exchange.sent?.status, 418);
    assert.equal(h.exchange.header("x-a"), "1");
    assert.equal(h.exchange.header("x-c"), undefined, "c's changes were to the upstream's response, which the reply replaced");
    assert.equal(h.exchange.text, "tea");
  });

  it("a filter answering a proxy's reply in its response phase replaces it, and its reply goes on through the filters before it", () => {
    const calls: string[] = [];
    const h = harness([filters, proxyReply(503, "no endpoints", "UH")], {
      filters: [
        recording("a", calls),
        recording("b", calls, { on_response_headers: (m) => (calls.push(`b ${m.response!.status}`), localReply(503, "custom page")) }),
        recording("c", calls),
      ],
    });
    h.tx.next();
    assert.deepEqual(calls, ["c 503", "b 503", "a 503"]);
    assert.equal(h.exchange.text, "custom page");
    assert.equal(h.exchange.header("x-a"), "1");
    assert.equal(h.exchange.header("x-weft-error"), undefined);
  });

  it("once a response has reached the response phases, a later reply goes out without passing them again", () => {
    const calls: string[] = [];
    // b's body buffer overflows: the 502 goes out as it is.
    const small = harness([filters], {
      filters: [recording("a", calls), fakeFilter("b", { on_response_body: () => {} }, 4)],
    });
    small.tx.next();
    small.tx.response.head({ ...ok, headers: ok.headers.slice() });
    small.tx.response.data(Buffer.from("12345"));
    assert.deepEqual(calls, ["a 200"]);
    assert.equal(small.exchange.sent?.status, 502);
    assert.equal(small.exchange.header("x-a"), undefined);
    // A reply from a response body phase: every filter's on_response_headers has seen the upstream's head.
    calls.length = 0;
    const body = harness([filters], {
      filters: [recording("a", calls), fakeFilter("b", { on_response_body: () => localReply(500, "bad response") })],
    });
    body.tx.next();
    body.tx.response.head({ ...ok, headers: ok.headers.slice() });
    body.tx.response.data(Buffer.from("hello"));
    body.tx.response.end(null);
    assert.deepEqual(calls, ["a 200"]);
    assert.equal(body.exchange.sent?.status, 500);
    assert.equal(body.exchange.text, "bad response");
  });

  it("a gRPC client's trailers-only error passes the response header phases, no body phase, and stays trailers-only", () => {
    const calls: string[] = [];
    const exchange = new FakeExchange({ method: "POST", headers: ["content-type", "application/grpc"] });
    exchange.protocol = "HTTP/2";
    const h = harness([filters, proxyReply(503, "no endpoints", "UH")], {
      exchange,
      filters: [
        recording("a", calls, {
          on_response_headers: (m) => {
            calls.push(`a ${m.response!.status} grpc-status ${header(m, "grpc-status")}`);
            m.response!.headers.push("x-a", "1");
          },
          on_response_body: () => void calls.push("a body"),
        }),
      ],
    });
    h.tx.next();
    assert.deepEqual(calls, ["a 200 grpc-status 14"]);
    assert.equal(h.exchange.sent?.status, 200);
    assert.equal(h.exchange.sent?.hasBody, false);
    assert.equal(h.exchange.header("x-a"), "1");
    assert.equal(h.telemetry.last.status, 503, "telemetry records the error, as without filters");
  });
});
