// Hostile HTTP/2 input: malformed frames (built by hand, frames.ts), malformed requests,
// limits, and the floods behind the HTTP/2 CVEs (rapid reset, CONTINUATION, control frames
// to a client that never reads). Each case asserts the error the proxy answers with (GOAWAY
// or RST_STREAM and its code, or a status), then (corpus.ts) that others are still served
// and nothing smuggled reached the upstream. test/proxy-http2.test.ts has the well-formed side.
import { describe } from "node:test";
import assert from "node:assert/strict";
import http2 from "node:http2";
import { Buffer } from "node:buffer";
import { SMUGGLED, assertServing, hostileCorpus } from "./corpus.ts";
import { H2Connection, ErrorCode, Flag, Type, errorName, frame, headers, hpack, requestFields, rstStream, settings, u32, type Frame } from "./frames.ts";

const LIMITS = { maxConcurrentStreams: 8, maxRequestHeadBytes: 8192, maxHeaderCount: 50, maxRequestBodyBytes: 65536 };

/** What a flood may push before the proxy must have cut it off: far above any limit, far below harm. */
const FLOOD_CEILING_BYTES = 64 * 1024 * 1024;

interface ConnectionError {
  name: string;
  frames: Buffer[];
  code: number;
}

const connectionErrors: ConnectionError[] = [
  { name: "a SETTINGS frame whose length is not a multiple of 6", frames: [frame(Type.SETTINGS, 0, 0, Buffer.alloc(5))], code: ErrorCode.FRAME_SIZE_ERROR },
  { name: "a SETTINGS ACK with a payload", frames: [frame(Type.SETTINGS, Flag.ACK, 0, Buffer.alloc(6))], code: ErrorCode.FRAME_SIZE_ERROR },
  { name: "a PING of 7 bytes", frames: [frame(Type.PING, 0, 0, Buffer.alloc(7))], code: ErrorCode.FRAME_SIZE_ERROR },
  { name: "a PRIORITY of 4 bytes", frames: [frame(Type.PRIORITY, 0, 1, Buffer.alloc(4))], code: ErrorCode.FRAME_SIZE_ERROR },
  { name: "a frame larger than SETTINGS_MAX_FRAME_SIZE", frames: [frame(Type.DATA, 0, 1, Buffer.alloc(16385))], code: ErrorCode.FRAME_SIZE_ERROR },
  { name: "DATA on stream 0", frames: [frame(Type.DATA, 0, 0, Buffer.from("x"))], code: ErrorCode.PROTOCOL_ERROR },
  { name: "HEADERS on an even (server-initiated) stream", frames: [headers(2, requestFields(SMUGGLED))], code: ErrorCode.PROTOCOL_ERROR },
  { name: "RST_STREAM on an idle stream", frames: [rstStream(1, ErrorCode.CANCEL)], code: ErrorCode.PROTOCOL_ERROR },
  { name: "PUSH_PROMISE from a client", frames: [frame(Type.PUSH_PROMISE, Flag.END_HEADERS, 1, Buffer.concat([u32(2), hpack(requestFields(SMUGGLED))]))], code: ErrorCode.PROTOCOL_ERROR },
  { name: "padding longer than the frame", frames: [frame(Type.HEADERS, Flag.END_HEADERS | Flag.END_STREAM | Flag.PADDED, 1, Buffer.concat([Buffer.from([200]), hpack(requestFields(SMUGGLED))]))], code: ErrorCode.PROTOCOL_ERROR },
  { name: "a WINDOW_UPDATE of 0 on the connection", frames: [frame(Type.WINDOW_UPDATE, 0, 0, u32(0))], code: ErrorCode.PROTOCOL_ERROR },
  { name: "WINDOW_UPDATEs past 2^31-1 on the connection", frames: [frame(Type.WINDOW_UPDATE, 0, 0, u32(0x7fffffff)), frame(Type.WINDOW_UPDATE, 0, 0, u32(0x7fffffff))], code: ErrorCode.FLOW_CONTROL_ERROR },
  { name: "SETTINGS_ENABLE_PUSH of 2", frames: [settings({ 2: 2 })], code: ErrorCode.PROTOCOL_ERROR },
  { name: "SETTINGS_INITIAL_WINDOW_SIZE past 2^31-1", frames: [settings({ 4: 0x80000000 })], code: ErrorCode.FLOW_CONTROL_ERROR },
  { name: "SETTINGS_MAX_FRAME_SIZE below 16384", frames: [settings({ 5: 100 })], code: ErrorCode.PROTOCOL_ERROR },
  { name: "an undecodable header block (HPACK index 0)", frames: [frame(Type.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, 1, Buffer.from([0x80]))], code: ErrorCode.COMPRESSION_ERROR },
  { name: "CONTINUATION without HEADERS", frames: [frame(Type.CONTINUATION, Flag.END_HEADERS, 1, hpack(requestFields(SMUGGLED)))], code: ErrorCode.PROTOCOL_ERROR },
  { name: "HEADERS interrupted by another stream's HEADERS", frames: [frame(Type.HEADERS, Flag.END_STREAM, 1, hpack(requestFields(SMUGGLED))), headers(3, requestFields(SMUGGLED))], code: ErrorCode.PROTOCOL_ERROR },
];

/** Requests that are malformed (RFC 9113 section 8.1.1): each must be refused, never forwarded. */
const malformedRequests: { name: string; fields: [string, string][]; flags?: number; data?: Buffer }[] = [
  { name: "no :path", fields: [[":method", "GET"], [":scheme", "http"], [":authority", "app"]] },
  { name: "an unknown pseudo-header", fields: requestFields(SMUGGLED, [[":foo", "x"]]) },
  { name: "a pseudo-header after a regular field", fields: [[":method", "GET"], [":scheme", "http"], ["x-a", "1"], [":authority", "app"], [":path", SMUGGLED]] },
  { name: "two :path pseudo-headers", fields: requestFields(SMUGGLED, [[":path", `${SMUGGLED}-2`]]) },
  { name: "an upper-case field name", fields: requestFields(SMUGGLED, [["X-Upper", "1"]]) },
  { name: "a connection-specific field", fields: requestFields(SMUGGLED, [["connection", "keep-alive"]]) },
  { name: "transfer-encoding: chunked", fields: requestFields(SMUGGLED, [["transfer-encoding", "chunked"]]) },
  { name: "te other than trailers", fields: requestFields(SMUGGLED, [["te", "gzip"]]) },
  {
    name: "a content-length the DATA does not match",
    fields: [[":method", "POST"], [":scheme", "http"], [":authority", "app"], [":path", SMUGGLED], ["content-length", "10"]],
    flags: Flag.END_HEADERS,
    data: frame(Type.DATA, Flag.END_STREAM, 1, Buffer.from("abc")),
  },
];

/**
 * The error a stream ended with: RST_STREAM on it, or a GOAWAY for the whole connection (a
 * peer may treat any stream error as a connection error, RFC 9113 section 5.4.1).
 */
async function streamError(c: H2Connection, stream: number): Promise<{ code: number; how: string } | null> {
  const f = await c.waitFor((x) => (x.type === Type.RST_STREAM && x.stream === stream) || x.type === Type.GOAWAY);
  if (!f) return null;
  return f.type === Type.GOAWAY ? { code: f.payload.readUInt32BE(4), how: "GOAWAY" } : { code: f.payload.readUInt32BE(0), how: "RST_STREAM" };
}

/** A well-formed request with a real client: its status, or the code of the reset that ended it. */
async function h2outcome(port: number, fields: http2.OutgoingHttpHeaders, body?: string): Promise<{ status: number; error: string } | { reset: number }> {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on("error", () => {});
  try {
    return await new Promise((resolve, reject) => {
      const stream = session.request(fields, { endStream: body === undefined });
      let response: http2.IncomingHttpHeaders | null = null;
      stream.on("response", (h) => (response = h));
      stream.resume();
      stream.on("close", () =>
        resolve(response ? { status: Number(response[":status"]), error: String(response["x-weft-error"] ?? "") } : { reset: stream.rstCode ?? -1 }),
      );
      stream.on("error", () => {});
      session.on("error", reject);
      if (body !== undefined) stream.end(body);
    });
  } finally {
    session.close();
  }
}

/**
 * Pushes what `next` gives until the proxy closes the connection, `next` runs out (null) or
 * FLOOD_CEILING_BYTES have gone; returns the bytes the proxy took.
 */
async function flood(c: H2Connection, next: () => Buffer | null): Promise<number> {
  let sent = 0;
  for (let chunk = next(); chunk && !c.closed && sent < FLOOD_CEILING_BYTES; chunk = next()) {
    if (!(await c.sendPaced(chunk))) break;
    sent += chunk.length;
  }
  return sent;
}

/** Many copies of one frame in one write, so a flood is not paced by the test's own syscalls. */
const batch = (f: Buffer, n = 1000) => () => Buffer.concat(Array.from({ length: n }, () => f));

describe("hostile HTTP/2", () => {
  const corpus = hostileCorpus("http2", LIMITS);

  describe("HTTP/2 frames", () => {
    for (const c of connectionErrors) {
      corpus.case("HTTP/2 frames", `${c.name}: GOAWAY ${errorName(c.code)}`, async ({ port }) => {
        const conn = await H2Connection.open(port);
        try {
          conn.send(...c.frames);
          const code = await conn.goaway();
          assert.equal(code === null ? "no GOAWAY" : errorName(code), errorName(c.code));
          assert.ok(await conn.waitClosed(), "the proxy should close the connection after GOAWAY");
        } finally {
          conn.close();
        }
      });
    }
    corpus.case("HTTP/2 frames", "a broken connection preface: the connection is closed", async ({ port }) => {
      const conn = await H2Connection.open(port, Buffer.from("PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n"));
      try {
        assert.ok(await conn.waitClosed(), "the proxy should close a connection whose preface is wrong");
      } finally {
        conn.close();
      }
    });
  });

  describe("HTTP/2 requests", () => {
    for (const r of malformedRequests) {
      corpus.case("HTTP/2 requests", `${r.name}: PROTOCOL_ERROR`, async ({ port }) => {
        const conn = await H2Connection.open(port);
        try {
          conn.send(headers(1, r.fields, r.flags), ...(r.data ? [r.data] : []));
          const error = await streamError(conn, 1);
          assert.ok(error, "the proxy neither reset the stream nor closed the connection");
          assert.equal(errorName(error.code), "PROTOCOL_ERROR", `${error.how} with the wrong code`);
        } finally {
          conn.close();
        }
      });
    }
    corpus.case("HTTP/2 requests", "CR LF in a field value: refused, or the field dropped; never injected upstream", async ({ port, upstream }) => {
      const seen = upstream.received.length;
      const conn = await H2Connection.open(port);
      try {
        conn.send(headers(1, requestFields("/echo", [["x-a", `a\r\nx-injected: 1\r\n\r\nGET ${SMUGGLED} HTTP/1.1\r\nHost: app\r\n\r\n`]])));
        const answer = await conn.waitFor((f) => (f.type === Type.RST_STREAM || f.type === Type.HEADERS) && f.stream === 1);
        assert.ok(answer, "the stream got neither a response nor a reset");
        if (answer.type === Type.RST_STREAM) assert.equal(errorName(answer.payload.readUInt32BE(0)), "PROTOCOL_ERROR");
        // Served (the runtime dropped the invalid field): the upstream must not have seen it.
        for (const r of upstream.received.slice(seen)) {
          assert.equal(r.headers["x-injected"], undefined);
          assert.equal(r.headers["x-a"], undefined);
        }
      } finally {
        conn.close();
      }
    });
    corpus.case("HTTP/2 requests", "CONNECT: 405", async ({ port }) => {
      const outcome = await h2outcome(port, { ":method": "CONNECT", ":authority": "app:443" }, `GET ${SMUGGLED} HTTP/1.1\r\nHost: app\r\n\r\n`);
      assert.deepEqual(outcome, { status: 405, error: "CONNECT is not supported" });
    });
  });

  describe("HTTP/2 limits", () => {
    const category = "HTTP/2 limits";
    corpus.case(category, "streams past maxConcurrentStreams: REFUSED_STREAM, the others served", async ({ port }) => {
      const conn = await H2Connection.open(port);
      try {
        const streams = Array.from({ length: LIMITS.maxConcurrentStreams + 4 }, (_, i) => 1 + 2 * i);
        conn.send(...streams.map((s) => headers(s, requestFields("/delay/300"))));
        const served = streams.slice(0, LIMITS.maxConcurrentStreams);
        const refused = streams.slice(LIMITS.maxConcurrentStreams);
        for (const s of refused) assert.equal(errorName((await conn.reset(s)) ?? -1), "REFUSED_STREAM", `stream ${s}`);
        for (const s of served) {
          const last = (f: Frame) => (f.type === Type.DATA || f.type === Type.HEADERS) && f.stream === s && (f.flags & Flag.END_STREAM) !== 0;
          assert.ok(await conn.waitFor(last), `stream ${s} was not answered to its end`);
        }
      } finally {
        conn.close();
      }
    });
    corpus.case(category, "a header list over maxRequestHeadBytes: 431 (or the runtime resets the stream)", async ({ port }) => {
      const outcome = await h2outcome(port, { ":method": "GET", ":path": SMUGGLED, ":authority": "app", "x-big": "a".repeat(LIMITS.maxRequestHeadBytes) });
      // Bun's node:http2 enforces the advertised SETTINGS_MAX_HEADER_LIST_SIZE itself.
      if ("reset" in outcome) assert.equal(errorName(outcome.reset), "ENHANCE_YOUR_CALM");
      else assert.deepEqual(outcome, { status: 431, error: `header list exceeds ${LIMITS.maxRequestHeadBytes} bytes` });
    });
    corpus.case(category, "more fields than maxHeaderCount: 431", async ({ port }) => {
      const fields = Object.fromEntries(Array.from({ length: LIMITS.maxHeaderCount + 1 }, (_, i) => [`x-${i}`, "v"]));
      const outcome = await h2outcome(port, { ":method": "GET", ":path": SMUGGLED, ":authority": "app", ...fields });
      assert.deepEqual(outcome, { status: 431, error: `more than ${LIMITS.maxHeaderCount} header fields` });
    });
    corpus.case(category, "a content-length over maxRequestBodyBytes: 413", async ({ port }) => {
      const body = "x".repeat(LIMITS.maxRequestBodyBytes + 1);
      const outcome = await h2outcome(port, { ":method": "POST", ":path": SMUGGLED, ":authority": "app", "content-length": String(body.length) }, body);
      assert.deepEqual(outcome, { status: 413, error: `request body exceeds ${LIMITS.maxRequestBodyBytes} bytes (limits.maxRequestBodyBytes)` });
    });
    corpus.case(category, "a streamed body that grows past maxRequestBodyBytes: 413", async ({ port }) => {
      const outcome = await h2outcome(port, { ":method": "POST", ":path": SMUGGLED, ":authority": "app" }, "x".repeat(LIMITS.maxRequestBodyBytes + 1));
      assert.deepEqual(outcome, { status: 413, error: `request body exceeds ${LIMITS.maxRequestBodyBytes} bytes (limits.maxRequestBodyBytes)` });
    });
  });

  describe("HTTP/2 floods", () => {
    const category = "HTTP/2 floods";
    corpus.case(category, "rapid reset (CVE-2023-44487): the connection is ended and the upstream sees few of the requests", async ({ port, upstream }) => {
      const opened = 5000;
      const seen = upstream.received.length;
      const conn = await H2Connection.open(port);
      try {
        let stream = 1;
        // 100 streams opened and reset per write.
        const attack = flood(conn, () => {
          if (stream > 2 * opened) return null;
          const pairs: Buffer[] = [];
          for (let i = 0; i < 100; i++, stream += 2) pairs.push(headers(stream, requestFields("/rapid-reset")), rstStream(stream, ErrorCode.CANCEL));
          return Buffer.concat(pairs);
        });
        await assertServing(port);
        await attack;
        const code = await conn.goaway();
        // nghttp2 (Node.js, Deno) ends the session with INTERNAL_ERROR past its reset rate; Bun with ENHANCE_YOUR_CALM.
        assert.ok(code === ErrorCode.ENHANCE_YOUR_CALM || code === ErrorCode.INTERNAL_ERROR, `GOAWAY ${code === null ? "missing" : errorName(code)}`);
        const forwarded = upstream.received.slice(seen).filter((r) => r.url === "/rapid-reset").length;
        assert.ok(forwarded < opened / 10, `${forwarded} of ${opened} reset requests reached the upstream`);
      } finally {
        conn.close();
      }
    });
    corpus.case(category, "CONTINUATION flood: endless CONTINUATION frames end the connection with an error", async ({ port }) => {
      const conn = await H2Connection.open(port);
      try {
        conn.send(frame(Type.HEADERS, 0, 1, hpack(requestFields(SMUGGLED))));
        const continuation = frame(Type.CONTINUATION, 0, 1, hpack([["x-flood", "c".repeat(1000)]]));
        const sent = await flood(conn, batch(continuation, 16));
        assert.ok(conn.closed, `the proxy took ${sent} bytes of CONTINUATION frames without closing the connection`);
        const code = await conn.goaway();
        assert.ok(code !== null && code !== ErrorCode.NO_ERROR, `GOAWAY ${code === null ? "missing" : errorName(code)}`);
      } finally {
        conn.close();
      }
    });
    const neverReads: [string, () => Buffer][] = [
      ["PING flood (CVE-2019-9512)", batch(frame(Type.PING, 0, 0, Buffer.alloc(8)))],
      ["SETTINGS flood (CVE-2019-9515)", batch(settings({ 3: 100 }))],
    ];
    for (const [name, unit] of neverReads) {
      corpus.case(category, `${name} from a client that never reads: the connection is closed`, async ({ port }) => {
        const conn = await H2Connection.open(port);
        try {
          await conn.waitFor((f) => f.type === Type.SETTINGS);
          conn.stopReading();
          const attack = flood(conn, unit);
          await assertServing(port);
          const sent = await attack;
          assert.ok(conn.closed, `the proxy took ${sent} bytes without closing the connection`);
        } finally {
          conn.close();
        }
      });
    }
    corpus.case(category, "empty DATA frames (CVE-2019-9518): others are served meanwhile", async ({ port }) => {
      const conn = await H2Connection.open(port);
      try {
        conn.send(headers(1, [[":method", "POST"], [":scheme", "http"], [":authority", "app"], [":path", SMUGGLED]], Flag.END_HEADERS));
        let stop = false;
        const empty = batch(frame(Type.DATA, 0, 1));
        const attack = flood(conn, () => (stop ? null : empty()));
        await assertServing(port);
        stop = true;
        await attack;
      } finally {
        conn.close();
      }
    });
  });
});
