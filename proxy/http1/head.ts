// Parses HTTP/1.1 message heads (RFC 9112) strictly: whatever two parsers could read two
// ways (the root of request smuggling) is refused rather than guessed at.
import type { Buffer } from "node:buffer";
import { authorityProblem } from "../http/authority.ts";
import type { Framing, ResponseHead } from "../http/message-head.ts";
import { ProtocolError } from "../http/protocol-error.ts";

export interface RequestHead extends Framing {
  method: string;
  /** Origin-form target (path and query); absolute-form is converted and its authority kept. */
  target: string;
  /** HTTP minor version: 0 or 1. */
  minor: number;
  host: string;
  expectContinue: boolean;
}

export interface HeadLimits {
  maxHeadBytes: number;
  maxHeaderCount: number;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// RFC 9110 section 5.5: a field value is visible characters, obs-text, SP and HTAB; any
// other control character (NUL, CR, LF, VT, ...) is refused, not passed on to a peer that
// may read it differently.
const FORBIDDEN_IN_VALUE = /[\0-\x08\x0a-\x1f\x7f]/;
const TARGET = /^[\x21-\x7e]+$/;
const CRLFCRLF = "\r\n\r\n";
const BARE_LINE_BREAK = "bare CR or LF in message head (lines end with CRLF)";

/**
 * Finds the end of a head in `buf` from `start`. Returns the offset just past the blank
 * line, -1 when more bytes are needed, and throws when the head is already too large.
 */
export function findHeadEnd(buf: Buffer, start: number, limits: HeadLimits): number {
  const at = buf.indexOf(CRLFCRLF, start, "latin1");
  if (at === -1) {
    if (buf.length - start > limits.maxHeadBytes) {
      throw new ProtocolError(`message head exceeds ${limits.maxHeadBytes} bytes`, 431);
    }
    // A head with bare LF line ends never shows CRLFCRLF: refuse it now, not at the timeout.
    for (let lf = buf.indexOf(10, start); lf !== -1; lf = buf.indexOf(10, lf + 1)) {
      if (lf === start || buf[lf - 1] !== 13) throw new ProtocolError(BARE_LINE_BREAK);
    }
    return -1;
  }
  if (at + 4 - start > limits.maxHeadBytes) throw new ProtocolError(`message head exceeds ${limits.maxHeadBytes} bytes`, 431);
  return at + 4;
}

/** Whether c is optional whitespace around a field value (RFC 9110 section 5.6.3: SP, HTAB only). */
function isOws(c: number): boolean {
  return c === 32 || c === 9;
}

/** Splits one `name: value` line (a header or a trailer field) and checks both parts. */
export function parseFieldLine(line: string): [name: string, value: string] {
  const colon = line.indexOf(":");
  if (colon <= 0) {
    if (isOws(line.charCodeAt(0))) throw new ProtocolError("obsolete line folding in header field");
    throw new ProtocolError(`malformed header field line ${JSON.stringify(line.slice(0, 64))}`);
  }
  const name = line.slice(0, colon);
  if (!TOKEN.test(name)) throw new ProtocolError(`invalid header field name ${JSON.stringify(name)}`);
  // Not String.trim(): it also strips VT, FF and NBSP, which would turn "\vchunked" into chunked.
  let from = colon + 1;
  let to = line.length;
  while (from < to && isOws(line.charCodeAt(from))) from++;
  while (to > from && isOws(line.charCodeAt(to - 1))) to--;
  const value = line.slice(from, to);
  if (FORBIDDEN_IN_VALUE.test(value)) throw new ProtocolError(`invalid character in header field ${name}`);
  return [name, value];
}

function parseFields(lines: string[], limits: HeadLimits, minor: number): Framing & { host: string; expect: string; hostCount: number } {
  if (lines.length - 1 > limits.maxHeaderCount) {
    throw new ProtocolError(`more than ${limits.maxHeaderCount} header fields`, 431);
  }
  const headers: string[] = [];
  let contentLength = -1;
  let transferEncoding = "";
  let transferEncodingSeen = false;
  let connection = "";
  let upgrade = "";
  let host = "";
  let hostCount = 0;
  let expect = "";
  for (let i = 1; i < lines.length; i++) {
    const [name, value] = parseFieldLine(lines[i]);
    headers.push(name, value);
    switch (name.length) {
      case 4:
        if (name.toLowerCase() === "host") {
          host = value;
          hostCount++;
        }
        break;
      case 6:
        if (name.toLowerCase() === "expect") expect = value.toLowerCase();
        break;
      case 7:
        if (name.toLowerCase() === "upgrade") upgrade = value.toLowerCase();
        break;
      case 10:
        if (name.toLowerCase() === "connection") connection = connection ? `${connection},${value}` : value;
        break;
      case 14:
        if (name.toLowerCase() === "content-length") {
          if (!/^\d{1,15}$/.test(value)) throw new ProtocolError(`invalid Content-Length ${JSON.stringify(value)}`);
          const n = Number(value);
          if (contentLength !== -1 && contentLength !== n) throw new ProtocolError("conflicting Content-Length fields");
          contentLength = n;
        }
        break;
      case 17:
        if (name.toLowerCase() === "transfer-encoding") {
          transferEncoding = transferEncodingSeen ? `${transferEncoding},${value}` : value;
          transferEncodingSeen = true;
        }
        break;
    }
  }
  let chunked = false;
  if (transferEncodingSeen) {
    // An empty one is no coding at all to us, and chunked to a lenient parser in front of us.
    if (transferEncoding.replace(/[\s,]/g, "") === "") throw new ProtocolError("empty Transfer-Encoding field");
    if (minor === 0) throw new ProtocolError("Transfer-Encoding in an HTTP/1.0 message");
    // Only plain "chunked" is accepted: other codings would need decoding we do not do, and
    // variants (", chunked", "chunked, identity", odd case) are classic smuggling vectors.
    if (transferEncoding.toLowerCase() !== "chunked") {
      throw new ProtocolError(`unsupported Transfer-Encoding ${JSON.stringify(transferEncoding)}`, 501);
    }
    if (contentLength !== -1) throw new ProtocolError("both Content-Length and Transfer-Encoding");
    chunked = true;
  }
  const connectionTokens = connection
    ? connection
        .toLowerCase()
        .split(",")
        .map((t) => t.trim())
        .filter(Boolean)
    : [];
  const close = minor === 0 ? !connectionTokens.includes("keep-alive") : connectionTokens.includes("close");
  return {
    headers,
    contentLength,
    chunked,
    close,
    upgrade: connectionTokens.includes("upgrade") ? upgrade : "",
    connectionTokens,
    host,
    hostCount,
    expect,
  };
}

function splitLines(buf: Buffer, start: number, end: number): string[] {
  // latin1 keeps every byte as one char, so obs-text survives and lengths stay byte counts.
  const text = buf.toString("latin1", start, end - 4);
  const lines = text.split("\r\n");
  for (const line of lines) {
    if (line.includes("\n") || line.includes("\r")) throw new ProtocolError(BARE_LINE_BREAK);
  }
  return lines;
}

export function parseRequestHead(buf: Buffer, start: number, end: number, limits: HeadLimits): RequestHead {
  const lines = splitLines(buf, start, end);
  const requestLine = lines[0];
  const sp1 = requestLine.indexOf(" ");
  const sp2 = requestLine.lastIndexOf(" ");
  if (sp1 <= 0 || sp2 === sp1) throw new ProtocolError("malformed request line");
  const method = requestLine.slice(0, sp1);
  let target = requestLine.slice(sp1 + 1, sp2);
  const version = requestLine.slice(sp2 + 1);
  if (!TOKEN.test(method)) throw new ProtocolError("invalid method");
  if (!TARGET.test(target)) throw new ProtocolError("invalid request target");
  let minor: number;
  if (version === "HTTP/1.1") minor = 1;
  else if (version === "HTTP/1.0") minor = 0;
  else throw new ProtocolError(`unsupported protocol version ${JSON.stringify(version)}`, 505);
  const fields = parseFields(lines, limits, minor);
  if (fields.hostCount > 1) throw new ProtocolError("more than one Host field");
  if (minor === 1 && fields.hostCount === 0) throw new ProtocolError("HTTP/1.1 request without Host");
  let host = fields.host;
  if (target.charCodeAt(0) !== 47 /* / */) {
    if (method === "CONNECT") throw new ProtocolError("CONNECT is not supported", 405);
    if (target === "*" && method === "OPTIONS") {
      // asterisk-form is kept as is
    } else {
      // absolute-form, as sent by clients using the sidecar as an explicit HTTP proxy:
      // the authority in the target wins over Host (RFC 9112 section 3.2.2).
      const m = /^https?:\/\/([^/?#]+)([^#]*)$/i.exec(target);
      if (!m) throw new ProtocolError("invalid request target");
      // userinfo is deprecated and a way to make one authority read as another (RFC 9110 section 4.2.4).
      if (m[1].includes("@")) throw new ProtocolError("userinfo in the request target");
      host = m[1];
      target = m[2] || "/";
      if (!target.startsWith("/")) target = `/${target}`;
      // The Host field is replaced too, so the upstream sees the authority the request was routed by.
      replaceHost(fields.headers, host);
    }
  }
  // HTTP/1.0 may omit Host, but a mesh routes by it: there is nothing to route such a request by.
  if (host === "" && fields.hostCount === 0)
    throw new ProtocolError("HTTP/1.0 request without Host (the sidecar routes by Host: send one)");
  const problem = authorityProblem(host);
  if (problem) throw new ProtocolError(problem);
  return {
    ...fields,
    // An upgrade that carries a body is declined (the body would have to be read before the
    // switch), and so is h2c: a tunnel speaking HTTP/2 to the app would carry requests this
    // proxy never sees, past access policies and filters ("h2c smuggling").
    upgrade: fields.upgrade && !fields.chunked && fields.contentLength <= 0 && !/(^|,)\s*h2c\b/.test(fields.upgrade) ? fields.upgrade : "",
    method,
    target,
    minor,
    host: host.toLowerCase(),
    expectContinue: fields.expect === "100-continue",
  };
}

function replaceHost(headers: string[], host: string): void {
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i].length === 4 && headers[i].toLowerCase() === "host") {
      headers[i + 1] = host;
      return;
    }
  }
  headers.push("host", host);
}

export function parseResponseHead(buf: Buffer, start: number, end: number, limits: HeadLimits): ResponseHead {
  const lines = splitLines(buf, start, end);
  const statusLine = lines[0];
  const m = /^HTTP\/1\.([01]) (\d{3})(?: (.*))?$/.exec(statusLine);
  if (!m) throw new ProtocolError("malformed status line", 502);
  const minor = Number(m[1]);
  let fields: Framing;
  try {
    fields = parseFields(lines, limits, minor);
  } catch (e) {
    // A malformed upstream response is the upstream's fault: report it as a bad gateway.
    throw new ProtocolError((e as Error).message, 502);
  }
  const status = Number(m[2]);
  if (status < 100 || status > 599) throw new ProtocolError(`invalid status code ${m[2]} (expected 100-599)`, 502);
  // The reason phrase is passed on to the client: the same characters as a field value.
  if (m[3] !== undefined && FORBIDDEN_IN_VALUE.test(m[3]))
    throw new ProtocolError("invalid character in the status line's reason phrase", 502);
  return { ...fields, status, reason: m[3] ?? "", minor };
}
