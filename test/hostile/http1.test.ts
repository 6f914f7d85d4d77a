// runtimes: node deno bun
// Hostile HTTP/1.1 input on raw sockets: ambiguous framing (request smuggling), obfuscated
// Transfer-Encoding, stray line breaks and control characters, broken chunked bodies, size
// limits, odd targets and methods, pipelining and slow clients. Each case asserts the exact
// refusal, then (corpus.ts) that the proxy still serves others and that nothing smuggled got
// through. test/proxy-http1.test.ts has the well-formed behaviour these cases are the
// other side of.
import { describe } from "node:test";
import assert from "node:assert/strict";
import { SMUGGLED, assertServing, hostileCorpus, type Target } from "./corpus.ts";
import { sendRaw, assertRefused, parseResponses, type RawReply } from "./wire.ts";

const LIMITS = {
  maxRequestHeadBytes: 8192,
  maxHeaderCount: 50,
  maxRequestBodyBytes: 65536,
  headerTimeoutMs: 1000,
  idleTimeoutMs: 1500,
  bodyIdleTimeoutMs: 1000,
};

/** A request the upstream must never see, whose body is itself a request that must not get through either. */
const smuggling = (fields: string, body = `0\r\n\r\nGET ${SMUGGLED}-inner HTTP/1.1\r\nHost: app\r\n\r\n`) =>
  `POST ${SMUGGLED} HTTP/1.1\r\nHost: app\r\n${fields}\r\n${body}`;

/** A head with the given extra field lines; its path marks it as one that must not get through. */
const withFields = (fields: string, version = "HTTP/1.1") => `GET ${SMUGGLED} ${version}\r\nHost: app\r\n${fields}\r\n`;

/** A request routed by `host` (the Host field's whole value). */
const withHost = (host: string, version = "HTTP/1.1") => `GET ${SMUGGLED} ${version}\r\nHost: ${host}\r\n\r\n`;

/** A chunked request whose body (from the first chunk on) is `chunks`. */
const chunked = (chunks: string) => `POST ${SMUGGLED} HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\r\n${chunks}`;

interface Refusal {
  name: string;
  bytes: string | string[];
  status: number;
  reason: RegExp;
}

const refusals: Record<string, Refusal[]> = {
  "Content-Length and Transfer-Encoding": [
    {
      name: "Content-Length with Transfer-Encoding",
      bytes: smuggling("Content-Length: 44\r\nTransfer-Encoding: chunked\r\n"),
      status: 400,
      reason: /both Content-Length and Transfer-Encoding/,
    },
    {
      name: "Transfer-Encoding with Content-Length",
      bytes: smuggling("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"),
      status: 400,
      reason: /both Content-Length and Transfer-Encoding/,
    },
    {
      name: "two different Content-Length values",
      bytes: smuggling("Content-Length: 5\r\nContent-Length: 44\r\n"),
      status: 400,
      reason: /conflicting Content-Length/,
    },
    { name: "a Content-Length list", bytes: smuggling("Content-Length: 5, 44\r\n"), status: 400, reason: /invalid Content-Length/ },
    { name: "a signed Content-Length", bytes: smuggling("Content-Length: +5\r\n"), status: 400, reason: /invalid Content-Length/ },
    { name: "a hexadecimal Content-Length", bytes: smuggling("Content-Length: 0x5\r\n"), status: 400, reason: /invalid Content-Length/ },
    {
      name: "a Content-Length of 16 digits",
      bytes: smuggling("Content-Length: 1000000000000005\r\n"),
      status: 400,
      reason: /invalid Content-Length/,
    },
    {
      name: "a vertical tab before the Content-Length",
      bytes: smuggling("Content-Length: \x0b5\r\n"),
      status: 400,
      reason: /invalid character in header field Content-Length/,
    },
  ],
  "Transfer-Encoding obfuscation": [
    {
      name: "chunked, identity",
      bytes: smuggling("Transfer-Encoding: chunked, identity\r\n"),
      status: 501,
      reason: /unsupported Transfer-Encoding/,
    },
    {
      name: "gzip, chunked",
      bytes: smuggling("Transfer-Encoding: gzip, chunked\r\n"),
      status: 501,
      reason: /unsupported Transfer-Encoding/,
    },
    { name: "xchunked", bytes: smuggling("Transfer-Encoding: xchunked\r\n"), status: 501, reason: /unsupported Transfer-Encoding/ },
    {
      name: "chunked on two field lines",
      bytes: smuggling("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"),
      status: 501,
      reason: /unsupported Transfer-Encoding/,
    },
    {
      name: "a space before the colon",
      bytes: smuggling("Transfer-Encoding : chunked\r\n"),
      status: 400,
      reason: /invalid header field name/,
    },
    {
      name: "a vertical tab before chunked",
      bytes: smuggling("Transfer-Encoding: \x0bchunked\r\n"),
      status: 400,
      reason: /invalid character in header field Transfer-Encoding/,
    },
    {
      name: "a no-break space after chunked",
      bytes: smuggling("Transfer-Encoding: chunked\xa0\r\n"),
      status: 501,
      reason: /unsupported Transfer-Encoding/,
    },
    {
      name: "chunked folded onto a continuation line",
      bytes: smuggling("Transfer-Encoding:\r\n chunked\r\n"),
      status: 400,
      reason: /obsolete line folding/,
    },
    {
      name: "an empty Transfer-Encoding beside a Content-Length",
      bytes: smuggling("Transfer-Encoding:\r\nContent-Length: 5\r\n"),
      status: 400,
      reason: /empty Transfer-Encoding field/,
    },
    {
      name: "an all-space Transfer-Encoding",
      bytes: smuggling("Transfer-Encoding:    \r\n"),
      status: 400,
      reason: /empty Transfer-Encoding field/,
    },
    {
      name: "a Transfer-Encoding of commas only",
      bytes: smuggling("Transfer-Encoding: , ,\r\n"),
      status: 400,
      reason: /empty Transfer-Encoding field/,
    },
    {
      name: "Transfer-Encoding in an HTTP/1.0 request",
      bytes: `POST ${SMUGGLED} HTTP/1.0\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
      status: 400,
      reason: /Transfer-Encoding in an HTTP\/1\.0 message/,
    },
  ],
  "Line breaks and control characters": [
    { name: "bare LF line ends", bytes: `GET ${SMUGGLED} HTTP/1.1\nHost: app\n\n`, status: 400, reason: /bare CR or LF/ },
    { name: "a bare CR between fields", bytes: withFields("X-A: 1\rX-B: 2\r\n"), status: 400, reason: /bare CR or LF/ },
    {
      name: "a bare LF inside a field value",
      bytes: withFields("X-A: 1\nTransfer-Encoding: chunked\r\n"),
      status: 400,
      reason: /bare CR or LF/,
    },
    { name: "NUL in a field value", bytes: withFields("X-A: a\0b\r\n"), status: 400, reason: /invalid character in header field X-A/ },
    { name: "NUL in a field name", bytes: withFields("X-\0A: b\r\n"), status: 400, reason: /invalid header field name/ },
    {
      name: "NUL in the request target",
      bytes: `GET ${SMUGGLED}\0 HTTP/1.1\r\nHost: app\r\n\r\n`,
      status: 400,
      reason: /invalid request target/,
    },
    {
      name: "a control character (0x01) in a field value",
      bytes: withFields("X-A: a\x01b\r\n"),
      status: 400,
      reason: /invalid character in header field X-A/,
    },
    { name: "DEL in a field value", bytes: withFields("X-A: a\x7fb\r\n"), status: 400, reason: /invalid character in header field X-A/ },
    {
      name: "a space inside the request target",
      bytes: `GET ${SMUGGLED} x HTTP/1.1\r\nHost: app\r\n\r\n`,
      status: 400,
      reason: /invalid request target/,
    },
  ],
  "Chunked bodies": [
    { name: "a chunk size that is not hex", bytes: chunked("zz\r\nhello\r\n0\r\n\r\n"), status: 400, reason: /invalid chunk size/ },
    { name: "a 0x-prefixed chunk size", bytes: chunked("0x5\r\nhello\r\n0\r\n\r\n"), status: 400, reason: /invalid chunk size/ },
    { name: "a negative chunk size", bytes: chunked("-5\r\nhello\r\n0\r\n\r\n"), status: 400, reason: /invalid chunk size/ },
    {
      name: "a chunk size past 13 hex digits",
      bytes: chunked("10000000000000\r\nhello\r\n0\r\n\r\n"),
      status: 400,
      reason: /chunk size too large/,
    },
    {
      name: "a chunk longer than its size",
      bytes: chunked("3\r\nhello\r\n0\r\n\r\n"),
      status: 400,
      reason: /chunk data not followed by CRLF/,
    },
    { name: "a chunk size line ended by a bare LF", bytes: chunked("5\nhello\r\n0\r\n\r\n"), status: 400, reason: /invalid chunk size/ },
    {
      name: "a bare LF in a chunk extension",
      bytes: chunked("5;a=b\nc\r\nhello\r\n0\r\n\r\n"),
      status: 400,
      reason: /invalid chunk extension/,
    },
    {
      name: "junk after whitespace after a chunk size (not a ; extension)",
      bytes: chunked("5 x\r\nhello\r\n0\r\n\r\n"),
      status: 400,
      reason: /invalid chunk size/,
    },
    {
      name: "a control character in a chunk extension",
      bytes: chunked("5;a\x01b\r\nhello\r\n0\r\n\r\n"),
      status: 400,
      reason: /invalid chunk extension/,
    },
    {
      name: "Content-Length in the trailers",
      bytes: chunked("5\r\nhello\r\n0\r\nContent-Length: 44\r\n\r\n"),
      status: 400,
      reason: /Content-Length is not allowed in trailers/,
    },
    {
      name: "Transfer-Encoding in the trailers",
      bytes: chunked("5\r\nhello\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n"),
      status: 400,
      reason: /Transfer-Encoding is not allowed in trailers/,
    },
    {
      name: "a trailer line without a colon",
      bytes: chunked("5\r\nhello\r\n0\r\nnot a field\r\n\r\n"),
      status: 400,
      reason: /malformed header field line/,
    },
    {
      name: "a trailer section over 16 KiB",
      bytes: chunked(`5\r\nhello\r\n0\r\n${`X-T: ${"t".repeat(1000)}\r\n`.repeat(20)}\r\n`),
      status: 431,
      reason: /trailer section too large/,
    },
  ],
  "Size limits": [
    {
      name: "a request line longer than maxRequestHeadBytes",
      bytes: `GET ${SMUGGLED}/${"a".repeat(LIMITS.maxRequestHeadBytes)} HTTP/1.1\r\nHost: app\r\n\r\n`,
      status: 431,
      reason: /message head exceeds 8192 bytes/,
    },
    {
      name: "a header section larger than maxRequestHeadBytes",
      bytes: withFields(`X-Big: ${"a".repeat(LIMITS.maxRequestHeadBytes)}\r\n`),
      status: 431,
      reason: /message head exceeds 8192 bytes/,
    },
    {
      name: "a head that grows past maxRequestHeadBytes over many writes",
      bytes: [`GET ${SMUGGLED} HTTP/1.1\r\nHost: app\r\n`, ...Array.from({ length: 12 }, (_, i) => `X-${i}: ${"a".repeat(1000)}\r\n`)],
      status: 431,
      reason: /message head exceeds 8192 bytes/,
    },
    {
      name: "more fields than maxHeaderCount",
      bytes: withFields(Array.from({ length: LIMITS.maxHeaderCount }, (_, i) => `X-${i}: v\r\n`).join("")),
      status: 431,
      reason: /more than 50 header fields/,
    },
    {
      name: "a Content-Length over maxRequestBodyBytes",
      bytes: `POST ${SMUGGLED} HTTP/1.1\r\nHost: app\r\nContent-Length: ${LIMITS.maxRequestBodyBytes + 1}\r\n\r\nhello`,
      status: 413,
      reason: /request body exceeds 65536 bytes/,
    },
    {
      name: "a Content-Length over maxRequestBodyBytes with Expect: 100-continue gets no 100",
      bytes: `POST ${SMUGGLED} HTTP/1.1\r\nHost: app\r\nExpect: 100-continue\r\nContent-Length: ${LIMITS.maxRequestBodyBytes + 1}\r\n\r\n`,
      status: 413,
      reason: /request body exceeds 65536 bytes/,
    },
    {
      name: "a chunked body that grows past maxRequestBodyBytes",
      bytes: [
        chunked(""),
        ...Array.from({ length: 8 }, () => `2000\r\n${"b".repeat(0x2000)}\r\n`),
        "2000\r\n",
        "b".repeat(0x2000),
        "\r\n0\r\n\r\n",
      ],
      status: 413,
      reason: /request body exceeds 65536 bytes/,
    },
  ],
  "Hosts and request targets": [
    { name: "HTTP/1.1 without Host", bytes: `GET ${SMUGGLED} HTTP/1.1\r\n\r\n`, status: 400, reason: /HTTP\/1\.1 request without Host/ },
    { name: "two Host fields", bytes: withFields("Host: other\r\n"), status: 400, reason: /more than one Host field/ },
    { name: "an empty Host", bytes: withHost(""), status: 400, reason: /empty authority \(Host\)/ },
    { name: "HTTP/1.0 without Host", bytes: `GET ${SMUGGLED} HTTP/1.0\r\n\r\n`, status: 400, reason: /HTTP\/1\.0 request without Host/ },
    { name: "a Host with userinfo", bytes: withHost("evil@app"), status: 400, reason: /invalid authority "evil@app"/ },
    { name: "a Host with a space in it", bytes: withHost("app other"), status: 400, reason: /invalid authority "app other"/ },
    { name: "a Host with a path", bytes: withHost("app/admin"), status: 400, reason: /invalid authority "app\/admin"/ },
    { name: "a Host that is a list", bytes: withHost("app,other"), status: 400, reason: /invalid authority "app,other"/ },
    { name: "a Host with a port past 65535", bytes: withHost("app:99999"), status: 400, reason: /invalid port in authority "app:99999"/ },
    {
      name: "a Host with a port that is not a number",
      bytes: withHost("app:http"),
      status: 400,
      reason: /invalid port in authority "app:http"/,
    },
    { name: "a Host with an empty port", bytes: withHost("app:"), status: 400, reason: /invalid port in authority "app:"/ },
    {
      name: "absolute-form whose authority is a list",
      bytes: `GET http://app,other${SMUGGLED} HTTP/1.1\r\nHost: app\r\n\r\n`,
      status: 400,
      reason: /invalid authority "app,other"/,
    },
    {
      name: "absolute-form with userinfo",
      bytes: `GET http://app@internal.test${SMUGGLED} HTTP/1.1\r\nHost: app\r\n\r\n`,
      status: 400,
      reason: /userinfo in the request target/,
    },
    {
      name: "absolute-form with a scheme other than http(s)",
      bytes: `GET ftp://app${SMUGGLED} HTTP/1.1\r\nHost: app\r\n\r\n`,
      status: 400,
      reason: /invalid request target/,
    },
    { name: "authority-form with GET", bytes: `GET app:80 HTTP/1.1\r\nHost: app\r\n\r\n`, status: 400, reason: /invalid request target/ },
    { name: "asterisk-form with GET", bytes: `GET * HTTP/1.1\r\nHost: app\r\n\r\n`, status: 400, reason: /invalid request target/ },
  ],
  "Methods and versions": [
    {
      name: "CONNECT, with bytes for the tunnel after it",
      bytes: `CONNECT app:443 HTTP/1.1\r\nHost: app:443\r\n\r\nGET ${SMUGGLED} HTTP/1.1\r\nHost: app\r\n\r\n`,
      status: 405,
      reason: /CONNECT is not supported/,
    },
    {
      name: "a method with a separator in it",
      bytes: `GE(T ${SMUGGLED} HTTP/1.1\r\nHost: app\r\n\r\n`,
      status: 400,
      reason: /invalid method/,
    },
    {
      name: "an unknown HTTP version",
      bytes: withFields("", "HTTP/1.2"),
      status: 505,
      reason: /unsupported protocol version "HTTP\/1\.2"/,
    },
    {
      name: "an HTTP/2.0 request line without the preface",
      bytes: withFields("", "HTTP/2.0"),
      status: 505,
      reason: /unsupported protocol version "HTTP\/2\.0"/,
    },
  ],
};

/** The JSON body of the upstream's /echo, from the first response of a raw reply. */
function echoed(reply: RawReply): { method: string; url: string; headers: Record<string, string>; body: string } {
  return JSON.parse(reply.responses[0].body);
}

/** Opens `n` connections that trickle a head that never ends, one byte every `gapMs`. */
function slowloris(port: number, n: number, gapMs: number): Promise<RawReply[]> {
  const trickle = [`GET ${SMUGGLED} HTTP/1.1\r\nHost: app\r\nX-Slow: `, ..."a".repeat(200)];
  return Promise.all(Array.from({ length: n }, () => sendRaw(port, trickle, { gapMs, waitMs: 15_000 })));
}

type AddCase = (name: string, body: (target: Target) => Promise<void>) => void;

/** Cases that check more than a refusal, by category; each runs after its category's refusals. */
const beyondRefusals: Record<string, (add: AddCase) => void> = {
  "Hosts and request targets": (add) => {
    add("HTTP/1.0 with Host is served, and the proxy closes after the response", async ({ port }) => {
      const reply = await sendRaw(port, "GET /echo HTTP/1.0\r\nHost: app\r\n\r\n");
      assert.deepEqual(reply.statuses, [200]);
      assert.ok(reply.closed, "HTTP/1.0 without keep-alive: the proxy closes after the response");
      assert.equal(echoed(reply).headers.host, "app");
    });
    add("absolute-form: the target's authority replaces Host, so the upstream sees what was routed", async ({ port }) => {
      const reply = await sendRaw(port, "GET http://other.test:9090/echo?q=1 HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n");
      assert.deepEqual(reply.statuses, [200]);
      const seen = echoed(reply);
      assert.equal(seen.url, "/echo?q=1");
      assert.equal(seen.headers.host, "other.test:9090");
    });
  },
  Pipelining: (add) => {
    add("a refused request ends the pipeline: the requests after it never reach the upstream", async ({ port, upstream }) => {
      const seen = upstream.received.length;
      const reply = await sendRaw(
        port,
        `GET /one HTTP/1.1\r\nHost: app\r\n\r\n${smuggling("Content-Length: 44\r\nTransfer-Encoding: chunked\r\n")}GET ${SMUGGLED}-after HTTP/1.1\r\nHost: app\r\n\r\n`,
      );
      assert.deepEqual(reply.statuses, [200, 400]);
      assert.ok(reply.closed);
      assert.deepEqual(
        upstream.received.slice(seen).map((r) => r.url),
        ["/one"],
      );
    });
    add("a body that looks like a request stays a body", async ({ port, upstream }) => {
      const seen = upstream.received.length;
      const inner = `GET ${SMUGGLED} HTTP/1.1\r\nHost: app\r\n\r\n`;
      const reply = await sendRaw(
        port,
        `POST /echo HTTP/1.1\r\nHost: app\r\nContent-Length: ${inner.length}\r\n\r\n${inner}GET /after HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n`,
      );
      assert.deepEqual(reply.statuses, [200, 200]);
      assert.equal(echoed(reply).body, inner);
      assert.deepEqual(
        upstream.received.slice(seen).map((r) => r.url),
        ["/echo", "/after"],
      );
    });
    add(
      "empty lines before a request line, and between pipelined requests, are ignored (RFC 9112 section 2.2)",
      async ({ port, upstream }) => {
        const seen = upstream.received.length;
        const reply = await sendRaw(
          port,
          "\r\n\r\nGET /one HTTP/1.1\r\nHost: app\r\n\r\n\r\nGET /two HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n",
        );
        assert.deepEqual(reply.statuses, [200, 200]);
        assert.deepEqual(
          upstream.received.slice(seen).map((r) => r.url),
          ["/one", "/two"],
        );
      },
    );
    add("a bare LF before a request line is still refused", async ({ port }) => {
      assertRefused(await sendRaw(port, `\nGET ${SMUGGLED} HTTP/1.1\r\nHost: app\r\n\r\n`), 400, /bare CR or LF/);
    });
    add("requests pipelined after Connection: close are not served", async ({ port }) => {
      const reply = await sendRaw(
        port,
        `GET /one HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\nGET ${SMUGGLED} HTTP/1.1\r\nHost: app\r\n\r\n`,
      );
      assert.deepEqual(reply.statuses, [200]);
      assert.ok(reply.closed);
    });
    add("200 requests pipelined in one write, more than maxRequestHeadBytes in all, are answered in order", async ({ port, upstream }) => {
      const n = 200;
      const seen = upstream.received.length;
      // About 20 KB: the proxy stops reading while it holds more than a head's worth.
      const batch = Array.from({ length: n }, (_, i) => `GET /p?i=${i} HTTP/1.1\r\nHost: app\r\nX-Pad: ${"p".repeat(60)}\r\n\r\n`).join("");
      const reply = await sendRaw(port, batch, { waitMs: 30_000, until: (text) => parseResponses(text).length >= n });
      assert.equal(reply.statuses.length, n);
      assert.ok(reply.statuses.every((s) => s === 200));
      assert.deepEqual(
        upstream.received.slice(seen).map((r) => r.url),
        Array.from({ length: n }, (_, i) => `/p?i=${i}`),
      );
    });
  },
  "Clients that go on after a close": (add) => {
    // Each client keeps its side open and sends another request once the proxy has answered
    // and ended its side: the proxy must drop those bytes, never parse them. Then it keeps
    // writing now and then: past the header timeout the proxy must have disconnected it (the
    // writes then meet a reset), or a client that never closes would hold the connection.
    const after = (first: string) => [first, `GET ${SMUGGLED}-after HTTP/1.1\r\nHost: app\r\n\r\n`, "\r\n", "\r\n", "\r\n"];
    const options = { halfOpen: true, gapMs: LIMITS.headerTimeoutMs / 2 };
    add("a request sent after a 400 is dropped", async ({ port }) => {
      assertRefused(await sendRaw(port, after(withFields("X-A: \x01\r\n")), options), 400, /invalid character in header field X-A/);
    });
    add("a body sent after its 413 is dropped, not read as requests", async ({ port }) => {
      assertRefused(
        await sendRaw(
          port,
          after(`POST ${SMUGGLED} HTTP/1.1\r\nHost: app\r\nContent-Length: ${LIMITS.maxRequestBodyBytes + 1}\r\n\r\n`),
          options,
        ),
        413,
        /request body exceeds/,
      );
    });
    add("a request sent after a Connection: close response is dropped", async ({ port }) => {
      const reply = await sendRaw(port, after("GET /one HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n"), options);
      assert.deepEqual(reply.statuses, [200]);
      assert.ok(reply.closed, "the proxy should disconnect a peer that does not close, by the header timeout");
    });
  },
  "Slow and idle clients": (add) => {
    add("slowloris: heads trickled byte by byte get 408 while others are served", async ({ port }) => {
      const attack = slowloris(port, 10, 50);
      await assertServing(port);
      for (const reply of await attack) assertRefused(reply, 408, /timed out waiting for the request head/);
    });
    add(
      "a request body that stops arriving gets 408 after bodyIdleTimeoutMs, and the upstream request is abandoned",
      async ({ port, upstream }) => {
        const seen = upstream.received.length;
        const reply = await sendRaw(port, "POST /echo?slow-body HTTP/1.1\r\nHost: app\r\nContent-Length: 10\r\n\r\nab");
        assertRefused(reply, 408, /no request body bytes for 1000 ms \(limits\.bodyIdleTimeoutMs\)/);
        assert.deepEqual(
          upstream.received.slice(seen).map((r) => r.url),
          [],
          "the upstream never got a complete request",
        );
      },
    );
    add("a request body trickled slower in all than bodyIdleTimeoutMs, but never idle that long, is served", async ({ port }) => {
      const parts = ["POST /echo HTTP/1.1\r\nHost: app\r\nConnection: close\r\nContent-Length: 6\r\n\r\n", ..."abcdef"];
      const reply = await sendRaw(port, parts, { gapMs: 400, waitMs: 10_000 });
      assert.deepEqual(reply.statuses, [200]);
      assert.equal(JSON.parse(reply.responses[0].body).body, "abcdef");
    });
    add("a connection that never sends a byte is closed after headerTimeoutMs", async ({ port }) => {
      const reply = await sendRaw(port, []);
      assert.ok(reply.closed, "the proxy should close a silent connection");
      assert.equal(reply.text, "");
    });
    add("a kept-alive connection left idle past idleTimeoutMs is closed", async ({ port }) => {
      const reply = await sendRaw(port, "GET / HTTP/1.1\r\nHost: app\r\n\r\n");
      assert.deepEqual(reply.statuses, [200]);
      assert.ok(reply.closed, "the proxy should close an idle kept-alive connection");
    });
  },
};

describe("hostile HTTP/1.1", () => {
  const corpus = hostileCorpus("http1", LIMITS);
  for (const category of new Set([...Object.keys(refusals), ...Object.keys(beyondRefusals)])) {
    describe(category, () => {
      for (const c of refusals[category] ?? []) {
        corpus.case(category, `${c.name}: ${c.status}`, async ({ port }) =>
          assertRefused(await sendRaw(port, c.bytes), c.status, c.reason),
        );
      }
      beyondRefusals[category]?.((name, body) => corpus.case(category, name, body));
    });
  }
});
