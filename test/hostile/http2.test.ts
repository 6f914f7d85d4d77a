// runtimes: node deno bun
// Hostile HTTP/2 input: malformed frames (built by hand, frames.ts), malformed requests,
// limits, and the floods behind the HTTP/2 CVEs (rapid reset, CONTINUATION, control frames
// to a client that never reads). Each case asserts the error the proxy answers with (GOAWAY
// or RST_STREAM and its code, or a status), then (corpus.ts) that others are still served
// and nothing smuggled reached the upstream. test/proxy-http2.test.ts has the well-formed side.
import { describe } from "node:test";
import assert from "node:assert/strict";
import http2 from "node:http2";
import { Buffer } from "node:buffer";
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import process from "node:process";
import { SMUGGLED, assertServing, hostileCorpus } from "./corpus.ts";
import { simpleConfig } from "../support/proxy.ts";
import { deadPort } from "../support/upstream.ts";
import {
  H2Connection,
  ErrorCode,
  Flag,
  Type,
  data,
  errorName,
  frame,
  goaway,
  headers,
  hpack,
  requestFields,
  rstStream,
  settings,
  u32,
  type Frame,
} from "./frames.ts";
import { currentRuntime, type RuntimeName } from "../../proxy/runtime/current.ts";

const LIMITS = { maxConcurrentStreams: 8, maxRequestHeadBytes: 8192, maxHeaderCount: 50, maxRequestBodyBytes: 65536 };

/** What a flood may push before the proxy must have cut it off: far above any limit, far below harm. */
const FLOOD_CEILING_BYTES = 64 * 1024 * 1024;

interface ConnectionError {
  name: string;
  frames: Buffer[];
  code: number;
}

const connectionErrors: ConnectionError[] = [
  {
    name: "a SETTINGS frame whose length is not a multiple of 6",
    frames: [frame(Type.SETTINGS, 0, 0, Buffer.alloc(5))],
    code: ErrorCode.FRAME_SIZE_ERROR,
  },
  { name: "a SETTINGS ACK with a payload", frames: [frame(Type.SETTINGS, Flag.ACK, 0, Buffer.alloc(6))], code: ErrorCode.FRAME_SIZE_ERROR },
  { name: "a PING of 7 bytes", frames: [frame(Type.PING, 0, 0, Buffer.alloc(7))], code: ErrorCode.FRAME_SIZE_ERROR },
  { name: "a PRIORITY of 4 bytes", frames: [frame(Type.PRIORITY, 0, 1, Buffer.alloc(4))], code: ErrorCode.FRAME_SIZE_ERROR },
  {
    name: "a frame larger than SETTINGS_MAX_FRAME_SIZE",
    frames: [frame(Type.DATA, 0, 1, Buffer.alloc(16385))],
    code: ErrorCode.FRAME_SIZE_ERROR,
  },
  { name: "DATA on stream 0", frames: [frame(Type.DATA, 0, 0, Buffer.from("x"))], code: ErrorCode.PROTOCOL_ERROR },
  { name: "HEADERS on an even (server-initiated) stream", frames: [headers(2, requestFields(SMUGGLED))], code: ErrorCode.PROTOCOL_ERROR },
  { name: "RST_STREAM on an idle stream", frames: [rstStream(1, ErrorCode.CANCEL)], code: ErrorCode.PROTOCOL_ERROR },
  {
    name: "PUSH_PROMISE from a client",
    frames: [frame(Type.PUSH_PROMISE, Flag.END_HEADERS, 1, Buffer.concat([u32(2), hpack(requestFields(SMUGGLED))]))],
    code: ErrorCode.PROTOCOL_ERROR,
  },
  {
    name: "padding longer than the frame",
    frames: [
      frame(
        Type.HEADERS,
        Flag.END_HEADERS | Flag.END_STREAM | Flag.PADDED,
        1,
        Buffer.concat([Buffer.from([200]), hpack(requestFields(SMUGGLED))]),
      ),
    ],
    code: ErrorCode.PROTOCOL_ERROR,
  },
  { name: "a WINDOW_UPDATE of 0 on the connection", frames: [frame(Type.WINDOW_UPDATE, 0, 0, u32(0))], code: ErrorCode.PROTOCOL_ERROR },
  {
    name: "WINDOW_UPDATEs past 2^31-1 on the connection",
    frames: [frame(Type.WINDOW_UPDATE, 0, 0, u32(0x7fffffff)), frame(Type.WINDOW_UPDATE, 0, 0, u32(0x7fffffff))],
    code: ErrorCode.FLOW_CONTROL_ERROR,
  },
  { name: "SETTINGS_ENABLE_PUSH of 2", frames: [settings({ 2: 2 })], code: ErrorCode.PROTOCOL_ERROR },
  { name: "SETTINGS_INITIAL_WINDOW_SIZE past 2^31-1", frames: [settings({ 4: 0x80000000 })], code: ErrorCode.FLOW_CONTROL_ERROR },
  { name: "SETTINGS_MAX_FRAME_SIZE below 16384", frames: [settings({ 5: 100 })], code: ErrorCode.PROTOCOL_ERROR },
  {
    name: "an undecodable header block (HPACK index 0)",
    frames: [frame(Type.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, 1, Buffer.from([0x80]))],
    code: ErrorCode.COMPRESSION_ERROR,
  },
  {
    name: "CONTINUATION without HEADERS",
    frames: [frame(Type.CONTINUATION, Flag.END_HEADERS, 1, hpack(requestFields(SMUGGLED)))],
    code: ErrorCode.PROTOCOL_ERROR,
  },
  {
    name: "HEADERS interrupted by another stream's HEADERS",
    frames: [frame(Type.HEADERS, Flag.END_STREAM, 1, hpack(requestFields(SMUGGLED))), headers(3, requestFields(SMUGGLED))],
    code: ErrorCode.PROTOCOL_ERROR,
  },
];

const RUNTIME = currentRuntime().name;

/**
 * How each runtime's node:http2 ends a request it finds malformed before weft sees it: Deno's
 * ends the whole connection; Node.js's ends it too when DATA runs past the content-length.
 */
const MALFORMED: Record<RuntimeName, string> = {
  node: "RST_STREAM PROTOCOL_ERROR",
  deno: "GOAWAY PROTOCOL_ERROR",
  bun: "RST_STREAM PROTOCOL_ERROR",
};

/** Requests that are malformed (RFC 9113 section 8.1.1): each must be refused, never forwarded. */
const malformedRequests: { name: string; fields: [string, string][]; flags?: number; data?: Buffer }[] = [
  {
    name: "no :path",
    fields: [
      [":method", "GET"],
      [":scheme", "http"],
      [":authority", "app"],
    ],
  },
  { name: "an unknown pseudo-header", fields: requestFields(SMUGGLED, [[":foo", "x"]]) },
  {
    name: "a pseudo-header after a regular field",
    fields: [
      [":method", "GET"],
      [":scheme", "http"],
      ["x-a", "1"],
      [":authority", "app"],
      [":path", SMUGGLED],
    ],
  },
  { name: "two :path pseudo-headers", fields: requestFields(SMUGGLED, [[":path", `${SMUGGLED}-2`]]) },
  { name: "an upper-case field name", fields: requestFields(SMUGGLED, [["X-Upper", "1"]]) },
  { name: "a connection-specific field", fields: requestFields(SMUGGLED, [["connection", "keep-alive"]]) },
  { name: "transfer-encoding: chunked", fields: requestFields(SMUGGLED, [["transfer-encoding", "chunked"]]) },
  { name: "te other than trailers", fields: requestFields(SMUGGLED, [["te", "gzip"]]) },
  {
    name: "neither :authority nor host",
    fields: [
      [":method", "GET"],
      [":scheme", "http"],
      [":path", SMUGGLED],
    ],
  },
];

const post = (path: string, contentLength: string[]): [string, string][] => [
  [":method", "POST"],
  [":scheme", "http"],
  [":authority", "app"],
  [":path", path],
  ...contentLength.map((v): [string, string] => ["content-length", v]),
];

/**
 * A body whose DATA and content-length disagree, or a content-length that is not one number
 * (RFC 9113 section 8.1.1): the upstream may get the body over HTTP/1.1 framed by that
 * length, where extra bytes would be a second request. Each case answers as the runtime's
 * node:http2 does; weft's exchange enforces the same rules (400, or RST_STREAM once the
 * response began) as the backstop.
 */
const contentLengthCases: { name: string; frames: Buffer[]; answer: Record<RuntimeName, string>; path: string; forwarded?: string }[] = [
  {
    name: "DATA past its content-length, the excess a smuggled request",
    frames: [
      headers(1, post("/cl-longer", ["3"]), Flag.END_HEADERS),
      data(1, "abc"),
      data(1, `GET ${SMUGGLED} HTTP/1.1\r\nHost: app\r\n\r\n`, Flag.END_STREAM),
    ],
    answer: { ...MALFORMED, node: "GOAWAY INTERNAL_ERROR" },
    path: "/cl-longer",
    forwarded: "abc",
  },
  {
    name: "DATA short of its content-length at END_STREAM",
    frames: [headers(1, post(SMUGGLED, ["10"]), Flag.END_HEADERS), data(1, "abc", Flag.END_STREAM)],
    answer: MALFORMED,
    path: SMUGGLED,
  },
  { name: "a content-length of 10 and no DATA", frames: [headers(1, post(SMUGGLED, ["10"]))], answer: MALFORMED, path: SMUGGLED },
  {
    name: 'a content-length list "5, 5"',
    frames: [headers(1, post(SMUGGLED, ["5, 5"]), Flag.END_HEADERS), data(1, "abcde", Flag.END_STREAM)],
    answer: MALFORMED,
    path: SMUGGLED,
  },
  {
    name: "a content-length of -1",
    frames: [headers(1, post(SMUGGLED, ["-1"]), Flag.END_HEADERS), data(1, "abcde", Flag.END_STREAM)],
    answer: MALFORMED,
    path: SMUGGLED,
  },
  {
    name: "two different content-length fields",
    frames: [headers(1, post(SMUGGLED, ["5", "6"]), Flag.END_HEADERS), data(1, "abcde", Flag.END_STREAM)],
    answer: MALFORMED,
    path: SMUGGLED,
  },
];

/**
 * The error a stream ended with: RST_STREAM on it, or a GOAWAY for the whole connection (a
 * peer may treat any stream error as a connection error, RFC 9113 section 5.4.1).
 */
async function streamError(c: H2Connection, stream: number): Promise<{ code: number; how: string } | null> {
  const f = await c.waitFor((x) => (x.type === Type.RST_STREAM && x.stream === stream) || x.type === Type.GOAWAY);
  if (!f) return null;
  return f.type === Type.GOAWAY
    ? { code: f.payload.readUInt32BE(4), how: "GOAWAY" }
    : { code: f.payload.readUInt32BE(0), how: "RST_STREAM" };
}

/** A well-formed request with a real client: its status, or the code of the reset that ended it. */
async function h2outcome(
  port: number,
  fields: http2.OutgoingHttpHeaders,
  body?: string,
): Promise<{ status: number; error: string } | { reset: number }> {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on("error", () => {});
  try {
    return await new Promise((resolve, reject) => {
      const stream = session.request(fields, { endStream: body === undefined });
      let response: http2.IncomingHttpHeaders | null = null;
      stream.on("response", (h) => (response = h));
      stream.resume();
      stream.on("close", () =>
        resolve(
          response
            ? { status: Number(response[":status"]), error: String(response["x-weft-error"] ?? "") }
            : { reset: stream.rstCode ?? -1 },
        ),
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

/**
 * Every frame type a client may send, well formed, with padding, priority and a header block
 * split over CONTINUATION: what vets frames (FrameGuard, on Deno) must pass all of it on.
 */
function everyFrame(): Buffer {
  const block = hpack(post("/echo?every-frame", ["5"]));
  const cut = block.length >> 1;
  const priority = Buffer.concat([u32(0), Buffer.from([16])]);
  return Buffer.concat([
    frame(Type.PRIORITY, 0, 3, priority),
    frame(
      Type.HEADERS,
      Flag.PADDED | Flag.PRIORITY,
      1,
      Buffer.concat([Buffer.from([2]), priority, block.subarray(0, cut), Buffer.alloc(2)]),
    ),
    frame(Type.CONTINUATION, Flag.END_HEADERS, 1, block.subarray(cut)),
    frame(Type.WINDOW_UPDATE, 0, 0, u32(1000)),
    frame(Type.WINDOW_UPDATE, 0, 1, u32(1000)),
    frame(Type.DATA, Flag.PADDED, 1, Buffer.concat([Buffer.from([3]), Buffer.from("abc"), Buffer.alloc(3)])),
    frame(0x20, 0, 0, Buffer.from("an extension frame type, which must be ignored")),
    frame(Type.PING, 0, 0, Buffer.from("pingpong")),
    data(1, "de", Flag.END_STREAM),
    headers(3, requestFields("/echo?every-frame-2")),
  ]);
}

/**
 * A sidecar in a process of its own (`weft proxy`, on the runtime running this test) with the
 * default limits, in front of `upstreamPort`: a client that crashes it shows as the process
 * exiting. (Deno's abort on a client's GOAWAY showed in such a process, rarely in a test's own.)
 */
interface SidecarProcess {
  port: number;
  /** "running", or how it ended; waits up to `graceMs` for an exit that may be on its way. */
  state: (graceMs?: number) => Promise<string>;
  /** A connection to it; failing, the error says how the sidecar is. */
  connect: () => Promise<H2Connection>;
  stop: () => void;
}

async function sidecarProcess(upstreamPort: number): Promise<SidecarProcess> {
  const port = await deadPort();
  const config = simpleConfig([upstreamPort], { admin: { address: "127.0.0.1", port: await deadPort() } });
  (config.listeners as { port: number }[])[0].port = port;
  const file = path.join(mkdtempSync(path.join(tmpdir(), "weft-h2-")), "proxy.json");
  writeFileSync(file, JSON.stringify(config));
  const script = ["bin/weft.ts", "proxy", "--config", file];
  const child = spawn(process.execPath, "Deno" in globalThis ? ["run", "-A", ...script] : script, {
    cwd: path.resolve(import.meta.dirname ?? ".", "../.."),
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr!.on("data", (d) => (stderr += d));
  let exit = "";
  const exited = new Promise<void>((resolve) =>
    child.on("exit", (code, signal) => {
      exit = `exited (${signal ?? code}): ${stderr.trim().split("\n").pop()}`;
      resolve();
    }),
  );
  for (let tries = 0; ; tries++) {
    try {
      (await H2Connection.open(port, Buffer.alloc(0))).close();
      break;
    } catch (e) {
      if (exit || tries === 100) throw new Error(`the sidecar did not start: ${exit || (e as Error).message}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const state = async (graceMs = 0) => {
    if (!exit && graceMs > 0) await Promise.race([exited, new Promise((r) => setTimeout(r, graceMs))]);
    return exit || "running";
  };
  const connect = () =>
    H2Connection.open(port).catch(async (e: Error) => {
      throw new Error(`cannot connect (${e.message}); the sidecar: ${await state(2000)}`);
    });
  return { port, state, connect, stop: () => child.kill("SIGKILL") };
}

/** Many copies of one frame in one write, so a flood is not paced by the test's own syscalls. */
const batch =
  (f: Buffer, n = 1000) =>
  () =>
    Buffer.concat(Array.from({ length: n }, () => f));

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
    for (const piece of [0, 5]) {
      const how = piece ? `in writes of ${piece} bytes` : "in one write";
      corpus.case(
        "HTTP/2 frames",
        `every frame type a client may send, well formed, ${how}: served, PING answered, then the client's GOAWAY gets GOAWAY NO_ERROR`,
        async ({ port }) => {
          const conn = await H2Connection.open(port);
          try {
            // This client acknowledges the server's SETTINGS as they come: not inside a frame of ours.
            await conn.waitFor((f) => f.type === Type.SETTINGS);
            const bytes = everyFrame();
            for (let at = 0; at < bytes.length; at += piece || bytes.length) {
              conn.send(bytes.subarray(at, at + (piece || bytes.length)));
              if (piece) await new Promise((r) => setTimeout(r, 1));
            }
            const first = await conn.response(1);
            assert.deepEqual(first && { status: first.status, body: JSON.parse(first.body).body }, { status: 200, body: "abcde" });
            assert.equal((await conn.response(3))?.status, 200);
            const pong = await conn.waitFor((f) => f.type === Type.PING && (f.flags & Flag.ACK) !== 0);
            assert.equal(pong?.payload.toString(), "pingpong");
            conn.send(goaway(0, ErrorCode.NO_ERROR));
            const code = await conn.goaway();
            assert.deepEqual(
              { goaway: code === null ? "none" : errorName(code), closed: await conn.waitClosed() },
              { goaway: "NO_ERROR", closed: true },
            );
          } finally {
            conn.close();
          }
        },
      );
    }
    corpus.case(
      "HTTP/2 frames",
      "a broken connection preface (h2spec 3.5/2): GOAWAY PROTOCOL_ERROR, never an HTTP/1.1 answer",
      async ({ port }) => {
        const conn = await H2Connection.open(port, Buffer.from("PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n"));
        try {
          const code = await conn.goaway();
          assert.equal(code === null ? "no GOAWAY" : errorName(code), "PROTOCOL_ERROR");
          assert.ok(await conn.waitClosed(), "the proxy should close a connection whose preface is wrong");
          // Frames are binary from their first byte on; an HTTP/1.1 status line would show as text.
          assert.ok(
            !conn.received.includes("HTTP/1.1"),
            `the proxy answered in HTTP/1.1: ${JSON.stringify(conn.received.toString("latin1").slice(0, 40))}`,
          );
        } finally {
          conn.close();
        }
      },
    );
    // Deno's node:http2 aborted the process (nghttp2's find_stream_on_goaway_func assertion,
    // or a double free) on a client's GOAWAY: on an error GOAWAY within about 70 such
    // connections, on any GOAWAY after a few hundred streams on one connection. FrameGuard
    // keeps every client GOAWAY from it. Both run against a sidecar process of their own.
    corpus.case(
      "HTTP/2 frames",
      "a client GOAWAY with an error code, 0 to 3 ms after a request, on 300 connections: GOAWAY NO_ERROR and closed each time (Deno aborted on it)",
      async ({ upstream }) => {
        const rounds = 300;
        const sidecar = await sidecarProcess(upstream.port);
        let started = 0;
        const answers: Record<string, number> = {};
        const client = async () => {
          while (started < rounds) {
            const delay = started++ % 4;
            const conn = await sidecar.connect();
            try {
              conn.send(headers(1, requestFields("/")));
              await new Promise((r) => setTimeout(r, delay));
              conn.send(goaway(0, ErrorCode.INTERNAL_ERROR));
              const code = await conn.goaway();
              const answer = `${code === null ? "no GOAWAY" : `GOAWAY ${errorName(code)}`}${(await conn.waitClosed()) ? ", closed" : ", left open"}`;
              answers[answer] = (answers[answer] ?? 0) + 1;
            } finally {
              conn.close();
            }
          }
        };
        try {
          await Promise.all(Array.from({ length: 16 }, client));
          assert.deepEqual(
            { answers, sidecar: await sidecar.state(500) },
            { answers: { "GOAWAY NO_ERROR, closed": rounds }, sidecar: "running" },
          );
        } finally {
          sidecar.stop();
        }
      },
    );
    // With the default limits: with maxConcurrentStreams 8, as above, nghttp2 keeps too few
    // closed streams for the abort to show.
    corpus.case(
      "HTTP/2 frames",
      "a client GOAWAY after 300 requests on one connection, 5 times: all answered, then GOAWAY NO_ERROR and closed (Deno aborted on it)",
      async ({ upstream }) => {
        const requests = 300;
        const sidecar = await sidecarProcess(upstream.port);
        const round = async (n: number) => {
          const path = `/many?${n}`;
          const conn = await sidecar.connect();
          try {
            const statuses: Record<number, number> = {};
            for (let i = 0, stream = 1; i < requests; i++, stream += 2) {
              conn.send(headers(stream, requestFields(path)));
              const status = (await conn.response(stream))?.status ?? 0;
              statuses[status] = (statuses[status] ?? 0) + 1;
            }
            conn.send(goaway(0, ErrorCode.NO_ERROR));
            const code = await conn.goaway();
            const closed = await conn.waitClosed();
            // A connection cut short may be the sidecar dying: give its exit time to show.
            const healthy = statuses[200] === requests && code === ErrorCode.NO_ERROR;
            const outcome = {
              statuses,
              goaway: code === null ? "none" : errorName(code),
              closed,
              sidecar: await sidecar.state(healthy ? 0 : 2000),
            };
            assert.deepEqual(outcome, { statuses: { 200: requests }, goaway: "NO_ERROR", closed: true, sidecar: "running" });
          } finally {
            conn.close();
          }
          assert.equal(upstream.received.filter((r) => r.url === path).length, requests);
        };
        try {
          for (let n = 0; n < 5; n++) await round(n);
          assert.equal(await sidecar.state(500), "running", "after the last connection");
          await assertServing(sidecar.port);
        } finally {
          sidecar.stop();
        }
      },
    );
  });

  describe("HTTP/2 requests", () => {
    for (const r of malformedRequests) {
      corpus.case("HTTP/2 requests", `${r.name}: PROTOCOL_ERROR`, async ({ port }) => {
        const conn = await H2Connection.open(port);
        try {
          conn.send(headers(1, r.fields, r.flags), ...(r.data ? [r.data] : []));
          const error = await streamError(conn, 1);
          assert.equal(error ? `${error.how} ${errorName(error.code)}` : "neither RST_STREAM nor GOAWAY", MALFORMED[RUNTIME]);
        } finally {
          conn.close();
        }
      });
    }
    corpus.case(
      "HTTP/2 requests",
      "CR LF in a field value: refused, or the field dropped; never injected upstream",
      async ({ port, upstream }) => {
        const seen = upstream.received.length;
        const conn = await H2Connection.open(port);
        try {
          conn.send(
            headers(1, requestFields("/echo", [["x-a", `a\r\nx-injected: 1\r\n\r\nGET ${SMUGGLED} HTTP/1.1\r\nHost: app\r\n\r\n`]])),
          );
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
      },
    );
    for (const c of contentLengthCases) {
      // Names are the same on every runtime (the report has one row per name); answers differ.
      const name = c.forwarded
        ? `${c.name}: reset, the upstream gets the declared body or nothing`
        : `${c.name}: PROTOCOL_ERROR, the upstream gets nothing`;
      corpus.case("HTTP/2 requests", name, async ({ port, upstream }) => {
        const seen = upstream.received.length;
        const conn = await H2Connection.open(port);
        try {
          conn.send(...c.frames);
          const error = await streamError(conn, 1);
          assert.equal(error ? `${error.how} ${errorName(error.code)}` : "neither RST_STREAM nor GOAWAY", c.answer[RUNTIME]);
          await assertServing(port); // lets a request the proxy wrongly forwarded arrive
          const forwarded = upstream.received
            .slice(seen)
            .filter((r) => r.url === c.path)
            .map((r) => `${r.method} ${r.body}`);
          const allowed = c.forwarded ? [[], [`POST ${c.forwarded}`]] : [[]];
          assert.ok(
            allowed.some((a) => JSON.stringify(a) === JSON.stringify(forwarded)),
            `the upstream got ${JSON.stringify(forwarded)}`,
          );
        } finally {
          conn.close();
        }
      });
    }
    corpus.case(
      "HTTP/2 requests",
      "a body over two DATA frames that matches its content-length: 200, forwarded once with exactly that body",
      async ({ port, upstream }) => {
        const seen = upstream.received.length;
        const conn = await H2Connection.open(port);
        try {
          conn.send(headers(1, post("/echo?cl-exact", ["6"]), Flag.END_HEADERS), data(1, "abc"), data(1, "def", Flag.END_STREAM));
          assert.equal((await conn.response(1))?.status, 200);
          assert.deepEqual(
            upstream.received.slice(seen).map((r) => `${r.method} ${r.url} ${r.headers["content-length"]} ${r.body}`),
            ["POST /echo?cl-exact 6 abcdef"],
          );
        } finally {
          conn.close();
        }
      },
    );
    // Routing reads :authority; the upstream gets it as Host. A second, different host could
    // route one way here and another way behind (RFC 9113 section 8.3.1). The body of a refusal
    // is its x-weft-error message.
    corpus.case("HTTP/2 requests", "a host that differs from :authority: 400", async ({ port }) => {
      const conn = await H2Connection.open(port);
      try {
        conn.send(headers(1, requestFields(SMUGGLED, [["host", "other.example"]])));
        const error = 'host "other.example" differs from :authority "app": send the same in both, or only :authority';
        assert.deepEqual(await conn.response(1), { status: 400, body: `${error}\n` });
      } finally {
        conn.close();
      }
    });
    corpus.case(
      "HTTP/2 requests",
      "a host equal to :authority but for case: forwarded once, with that host",
      async ({ port, upstream }) => {
        const seen = upstream.received.length;
        const conn = await H2Connection.open(port);
        try {
          conn.send(headers(1, requestFields("/echo?host-same", [["host", "APP"]])));
          assert.equal((await conn.response(1))?.status, 200);
          assert.deepEqual(
            upstream.received.slice(seen).map((r) => `${r.url} ${r.headers.host}`),
            ["/echo?host-same app"],
          );
        } finally {
          conn.close();
        }
      },
    );
    corpus.case("HTTP/2 requests", "CONNECT: 405", async ({ port }) => {
      const outcome = await h2outcome(
        port,
        { ":method": "CONNECT", ":authority": "app:443" },
        `GET ${SMUGGLED} HTTP/1.1\r\nHost: app\r\n\r\n`,
      );
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
          const last = (f: Frame) =>
            (f.type === Type.DATA || f.type === Type.HEADERS) && f.stream === s && (f.flags & Flag.END_STREAM) !== 0;
          assert.ok(await conn.waitFor(last), `stream ${s} was not answered to its end`);
        }
      } finally {
        conn.close();
      }
    });
    corpus.case(category, "a header list over maxRequestHeadBytes: 431 (or the runtime resets the stream)", async ({ port }) => {
      const outcome = await h2outcome(port, {
        ":method": "GET",
        ":path": SMUGGLED,
        ":authority": "app",
        "x-big": "a".repeat(LIMITS.maxRequestHeadBytes),
      });
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
      const outcome = await h2outcome(
        port,
        { ":method": "POST", ":path": SMUGGLED, ":authority": "app", "content-length": String(body.length) },
        body,
      );
      assert.deepEqual(outcome, {
        status: 413,
        error: `request body exceeds ${LIMITS.maxRequestBodyBytes} bytes (limits.maxRequestBodyBytes)`,
      });
    });
    corpus.case(category, "a streamed body that grows past maxRequestBodyBytes: 413", async ({ port }) => {
      const outcome = await h2outcome(
        port,
        { ":method": "POST", ":path": SMUGGLED, ":authority": "app" },
        "x".repeat(LIMITS.maxRequestBodyBytes + 1),
      );
      assert.deepEqual(outcome, {
        status: 413,
        error: `request body exceeds ${LIMITS.maxRequestBodyBytes} bytes (limits.maxRequestBodyBytes)`,
      });
    });
  });

  describe("HTTP/2 floods", () => {
    const category = "HTTP/2 floods";
    corpus.case(
      category,
      "rapid reset (CVE-2023-44487): the connection is ended and the upstream sees few of the requests",
      async ({ port, upstream }) => {
        const opened = 5000;
        const seen = upstream.received.length;
        const conn = await H2Connection.open(port);
        try {
          let stream = 1;
          // 100 streams opened and reset per write.
          const attack = flood(conn, () => {
            if (stream > 2 * opened) return null;
            const pairs: Buffer[] = [];
            for (let i = 0; i < 100; i++, stream += 2)
              pairs.push(headers(stream, requestFields("/rapid-reset")), rstStream(stream, ErrorCode.CANCEL));
            return Buffer.concat(pairs);
          });
          await assertServing(port);
          await attack;
          const code = await conn.goaway();
          // nghttp2 (Node.js, Deno) ends the session with INTERNAL_ERROR past its reset rate; Bun with ENHANCE_YOUR_CALM.
          assert.ok(
            code === ErrorCode.ENHANCE_YOUR_CALM || code === ErrorCode.INTERNAL_ERROR,
            `GOAWAY ${code === null ? "missing" : errorName(code)}`,
          );
          const forwarded = upstream.received.slice(seen).filter((r) => r.url === "/rapid-reset").length;
          assert.ok(forwarded < opened / 10, `${forwarded} of ${opened} reset requests reached the upstream`);
        } finally {
          conn.close();
        }
      },
    );
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
        conn.send(
          headers(
            1,
            [
              [":method", "POST"],
              [":scheme", "http"],
              [":authority", "app"],
              [":path", SMUGGLED],
            ],
            Flag.END_HEADERS,
          ),
        );
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
