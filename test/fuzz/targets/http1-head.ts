// HTTP/1.1 heads (proxy/http1/head.ts) from arbitrary bytes, as a request and as a response,
// delivered whole and in pieces. A head that parses must be safe to forward: names are tokens,
// no value, target or reason carries a line break, NUL or other control character, framing is
// unambiguous, and what the proxy re-encodes reads back the same.
import { Buffer } from "node:buffer";
import { findHeadEnd, parseRequestHead, parseResponseHead, type HeadLimits, type RequestHead } from "../../../proxy/http1/head.ts";
import type { ResponseHead } from "../../../proxy/http/message-head.ts";
import { ProtocolError } from "../../../proxy/http/protocol-error.ts";
import { encodeRequestHead, encodeResponseHead } from "../../../proxy/http1/encode.ts";
import { bytes, check, cutsOf, refusedOr, type FuzzTarget } from "../target.ts";

// Small, so that inputs the mutator makes reach both limits.
const LIMITS: HeadLimits = { maxHeadBytes: 1024, maxHeaderCount: 16 };
// A message already consumed on the connection: heads are also parsed from an offset.
const BEFORE = Buffer.from("GET /before HTTP/1.1\r\nHost: a\r\n\r\n", "latin1");

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// RFC 9110 section 5.5 and RFC 9112 section 4: what a field value and a reason phrase may hold.
const CONTROL = /[\0-\x08\x0a-\x1f\x7f]/;

export const isProtocolError = (e: unknown): boolean => e instanceof ProtocolError && e.status >= 400 && e.status <= 599;

/** The framing facts two parsers must agree on, for comparing a head with its re-encoding. */
const framing = (h: RequestHead | ResponseHead) =>
  JSON.stringify([h.headers, h.contentLength, h.chunked, h.close, h.upgrade, h.connectionTokens]);

function checkFields(h: RequestHead | ResponseHead): void {
  check(h.headers.length % 2 === 0, "odd header list");
  const lengths: number[] = [];
  let te = false;
  for (let i = 0; i < h.headers.length; i += 2) {
    const [name, value] = [h.headers[i], h.headers[i + 1]];
    check(TOKEN.test(name), () => `header name ${JSON.stringify(name)} is not a token`);
    check(!CONTROL.test(value), () => `value of ${name} holds a control character: ${JSON.stringify(value)}`);
    check(!/^[ \t]|[ \t]$/.test(value), () => `value of ${name} keeps edge whitespace: ${JSON.stringify(value)}`);
    const lower = name.toLowerCase();
    if (lower === "content-length") lengths.push(Number(value));
    if (lower === "transfer-encoding") te = true;
  }
  check(
    lengths.every((n) => n === h.contentLength),
    "a Content-Length field differs from the length the head frames by",
  );
  check(lengths.length > 0 || h.contentLength === -1, "a length without a Content-Length field");
  check(te === h.chunked, "Transfer-Encoding present but not chunked framing, or the reverse");
  check(!(h.chunked && h.contentLength !== -1), "both chunked and a Content-Length");
  check(
    h.connectionTokens.every((t) => t !== "" && t === t.toLowerCase() && t === t.trim()),
    "connection tokens not normalized",
  );
  check(h.upgrade === "" || h.connectionTokens.includes("upgrade"), "upgrade without Connection: upgrade");
}

function checkRequest(h: RequestHead): void {
  checkFields(h);
  check(TOKEN.test(h.method), "method is not a token");
  check(/^[\x21-\x7e]+$/.test(h.target), () => `target ${JSON.stringify(h.target)} has a space or control character`);
  check(
    h.target.startsWith("/") || (h.target === "*" && h.method === "OPTIONS"),
    () => `target ${JSON.stringify(h.target)} is neither origin-form nor OPTIONS *`,
  );
  check(h.minor === 0 || h.minor === 1, "minor version not 0 or 1");
  check(!CONTROL.test(h.host) && !h.host.includes(" "), () => `host ${JSON.stringify(h.host)} has a space or control character`);
  check(!(h.chunked && h.minor === 0), "chunked HTTP/1.0");
  if (h.minor === 1) {
    // What the proxy forwards must read back the same at the next hop.
    const again = parseRequestHead(...whole(encodeRequestHead(h.method, h.target, h.headers)));
    check(
      again.method === h.method && again.target === h.target && again.host === h.host && framing(again) === framing(h),
      "re-encoded request head reads differently",
    );
  }
}

function checkResponse(h: ResponseHead): void {
  checkFields(h);
  check(h.status >= 100 && h.status <= 599, () => `status ${h.status} outside 100-599`);
  check(!CONTROL.test(h.reason), () => `reason phrase holds a control character: ${JSON.stringify(h.reason)}`);
  const again = parseResponseHead(...whole(encodeResponseHead(h.status, h.reason, h.headers)));
  check(
    again.status === h.status && (h.reason === "" || again.reason === h.reason) && framing({ ...again, close: h.close }) === framing(h),
    "re-encoded response head reads differently",
  );
}

/** Arguments for a parse of a head that fills `buf`. */
function whole(buf: Buffer): [Buffer, number, number, HeadLimits] {
  return [
    buf,
    0,
    findHeadEnd(buf, 0, { maxHeadBytes: Infinity, maxHeaderCount: Infinity }),
    { maxHeadBytes: Infinity, maxHeaderCount: Infinity },
  ];
}

type Outcome = { end: number } | { refused: true };

function find(buf: Buffer, start: number): Outcome {
  const end = refusedOr(() => findHeadEnd(buf, start, LIMITS), isProtocolError);
  return end === undefined ? { refused: true } : { end };
}

export const http1Head: FuzzTarget = {
  name: "http1-head",
  about:
    "findHeadEnd, parseRequestHead and parseResponseHead on arbitrary bytes, whole and cut into pieces, from offset 0 and after an earlier message",
  sources: ["proxy/http1/head.ts"],
  maxLength: 2048,
  dictionary: [
    "GET ",
    "POST ",
    "OPTIONS ",
    "CONNECT ",
    " HTTP/1.1",
    " HTTP/1.0",
    "HTTP/1.1 200 OK",
    "HTTP/1.0 ",
    "HTTP/1.1 101 ",
    "\r\n",
    "\r\n\r\n",
    "\n",
    "\r",
    ": ",
    ":",
    "\t",
    " ",
    "\0",
    "\x0b",
    "\x7f",
    "\xa0",
    "Host: ",
    "Content-Length: ",
    "Transfer-Encoding: ",
    "chunked",
    "Connection: ",
    "close",
    "keep-alive",
    "upgrade",
    "Upgrade: ",
    "Expect: ",
    "100-continue",
    "http://",
    "https://",
    "@",
    "*",
    "/",
    "?",
    "#",
    "0",
    "1",
    "000000000000000",
    "1000000000000000",
    "-1",
    "+1",
    "0x1",
    ", ",
    ",",
  ],
  seeds: () =>
    [
      "GET / HTTP/1.1\r\nHost: app\r\n\r\n",
      "POST /echo?q=1 HTTP/1.1\r\nHost: app\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\n",
      "POST / HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n",
      "GET http://other.test:9090/x HTTP/1.1\r\nHost: app\r\nConnection: Upgrade, close\r\nUpgrade: websocket\r\n\r\n",
      "OPTIONS * HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: b c\r\n\r\n",
      "HTTP/1.0 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n",
      "HTTP/1.1 204 \r\nTransfer-Encoding: chunked\r\n\r\n",
    ].map(bytes),
  fuzz(data) {
    const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const found = find(buf, 0);
    // After an earlier message, the same head is found at the same place relative to its start.
    const shifted = find(Buffer.concat([BEFORE, buf]), BEFORE.length);
    const relative = "end" in shifted && shifted.end !== -1 ? { end: shifted.end - BEFORE.length } : shifted;
    check(
      JSON.stringify(relative) === JSON.stringify(found),
      () => `from an offset: ${JSON.stringify(relative)}, from 0: ${JSON.stringify(found)}`,
    );
    let request: RequestHead | undefined;
    let response: ResponseHead | undefined;
    const complete = "end" in found && found.end !== -1;
    if (complete) {
      check(
        found.end >= 4 && found.end <= buf.length && buf.toString("latin1", found.end - 4, found.end) === "\r\n\r\n",
        "head end not just past a blank line",
      );
      request = refusedOr(() => parseRequestHead(buf, 0, found.end, LIMITS), isProtocolError);
      if (request) checkRequest(request);
      response = refusedOr(() => parseResponseHead(buf, 0, found.end, LIMITS), isProtocolError);
      if (response) checkResponse(response);
    }
    // Bytes arriving in pieces: until the head is complete it is not found, and once refused
    // the whole is refused too (by findHeadEnd, or by the parser for a bare LF it saw first).
    for (const cut of cutsOf(data, 4)) {
      const prefix = find(buf.subarray(0, cut), 0);
      if (complete && cut >= found.end)
        check("end" in prefix && prefix.end === found.end, "a complete head found elsewhere in a longer prefix");
      else if ("end" in prefix)
        check(prefix.end === -1, () => `a prefix of ${cut} bytes has a head end at ${prefix.end}, the whole has ${JSON.stringify(found)}`);
      else check(!request && !response, () => `a prefix of ${cut} bytes is refused, but the whole head parses`);
    }
  },
};
