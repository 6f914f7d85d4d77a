// Serves HTTP/2 on one downstream connection with node:http2's stream API (the one HTTP/2
// implementation every supported runtime has; see docs/design/http2.md). The runtime
// adapter keeps TLS and ALPN; this takes over the connection once it is known to be h2.
import http2 from "node:http2";
import type { Buffer } from "node:buffer";
import type { ServerExchange } from "../http/exchange.ts";
import type { BodySink } from "../http/exchange.ts";
import { bodyTooLarge, ProtocolError } from "../http/protocol-error.ts";
import type { Conn, TlsInfo } from "../runtime/types.ts";
import { flatten, toHttp2 } from "./headers.ts";
import { FrameGuard, MAX_FRAME_SIZE } from "./frame-guard.ts";
import { sniffPreface } from "./preface.ts";
import { diagnosticHeaderValue } from "../http/headers.ts";
import { currentRuntime } from "../runtime/current.ts";

// The HTTP/1.1 side sniffs h2c with it; it lives with the preface.
export { sniffPreface };

export interface Http2DownstreamOptions {
  maxConcurrentStreams: number;
  /** Bytes of a request's header list, counted as RFC 9113 section 6.5.2 does (431 past it). */
  maxHeaderListSize: number;
  /** Fields in a request's header list, pseudo-headers not counted (431 past it). */
  maxHeaderCount: number;
  /** Largest request body accepted (413 past it); 0 = no limit. */
  maxBodyBytes: number;
  onExchange: (exchange: ServerExchange) => void;
  onClose: () => void;
}

const { NGHTTP2_FLAG_END_STREAM, NGHTTP2_PROTOCOL_ERROR, NGHTTP2_INTERNAL_ERROR } = http2.constants;

// Only Deno's node:http2 needs FrameGuard (frame-guard.ts says why). Node.js's answers the
// same frames itself without harm, and reading through a JS stream instead of its native
// socket cost it about 25% more CPU per request (measured with h2c GETs and 16 KiB POSTs).
// Bun's is its own implementation, and behind a JS stream it loses the GOAWAY of its own
// connection errors (it marks the session disconnected before writing it).
const GUARD_FRAMES = currentRuntime().name === "deno";

/** The values a field came with, in order; none when it is absent. */
function valuesOf(headers: http2.IncomingHttpHeaders, name: string): string[] {
  const value = headers[name];
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [String(value)];
}

/**
 * The request body's length as content-length declares it, -1 when it does not, or why the
 * field makes the request malformed (RFC 9113 section 8.1.1): the forwarder may frame the
 * body upstream by this number, so it must be one, exactly.
 */
function declaredLength(headers: http2.IncomingHttpHeaders): number | ProtocolError {
  const values = valuesOf(headers, "content-length");
  if (values.length === 0) return -1;
  if (values.length > 1)
    return new ProtocolError(
      `content-length sent ${values.length} times (${values.map((v) => JSON.stringify(v)).join(", ")}): send it once`,
    );
  if (!/^\d{1,15}$/.test(values[0]))
    return new ProtocolError(`invalid content-length ${JSON.stringify(values[0])}: send one decimal number of bytes`);
  return Number(values[0]);
}

/**
 * Why a request is refused before it is forwarded, or null. Not every runtime's node:http2
 * enforces the header list size it advertises, or the rules on host and content-length, so
 * they are checked here.
 */
function refusal(
  headers: http2.IncomingHttpHeaders,
  length: number,
  endStream: boolean,
  options: Http2DownstreamOptions,
): ProtocolError | null {
  // Extended CONNECT tunnels are not supported, as over HTTP/1.1.
  if (headers[":method"] === "CONNECT") return new ProtocolError("CONNECT is not supported", 405);
  // Routing reads :authority and the upstream gets it as Host: a different host could route
  // one way here and another way behind (RFC 9113 section 8.3.1).
  const authority = headers[":authority"];
  const host = valuesOf(headers, "host");
  if (host.length > 1) return new ProtocolError(`host sent ${host.length} times: send it once, or only :authority`);
  if (!authority && !host[0])
    return new ProtocolError("the request has neither :authority nor host: send :authority with the host it is for");
  if (authority !== undefined && host.length === 1 && authority.toLowerCase() !== host[0].toLowerCase()) {
    return new ProtocolError(
      `host ${JSON.stringify(host[0])} differs from :authority ${JSON.stringify(authority)}: send the same in both, or only :authority`,
    );
  }
  if (length > 0 && endStream)
    return new ProtocolError(`content-length ${length} on a request whose headers ended the stream: send the body, or no content-length`);
  let size = 0;
  let fields = 0;
  for (const name in headers) {
    const value = headers[name];
    for (const v of Array.isArray(value) ? value : [value]) {
      if (v === undefined) continue;
      size += name.length + String(v).length + 32;
      // Pseudo-headers stand for the request line, which HTTP/1.1's count leaves out too.
      if (name.charCodeAt(0) !== 58 /* : */) fields++;
    }
  }
  if (size > options.maxHeaderListSize) return new ProtocolError(`header list exceeds ${options.maxHeaderListSize} bytes`, 431);
  if (fields > options.maxHeaderCount) return new ProtocolError(`more than ${options.maxHeaderCount} header fields`, 431);
  if (options.maxBodyBytes > 0 && length > options.maxBodyBytes) return bodyTooLarge(options.maxBodyBytes);
  return null;
}

/** Answers a stream with a local error, the way HTTP/1.1 answers a refused request. */
function refuse(stream: http2.ServerHttp2Stream, error: ProtocolError): void {
  stream.on("error", () => {}); // the client may reset it meanwhile
  // Whatever body is still coming is read and dropped: a stream closes only once both sides ended.
  stream.resume();
  if (stream.destroyed) return;
  stream.respond({ ":status": error.status, "content-type": "text/plain", "x-weft-error": diagnosticHeaderValue(error.message) });
  stream.end(`${error.message}\n`);
}

class Http2Exchange implements ServerExchange {
  readonly method: string;
  readonly target: string;
  readonly authority: string;
  readonly headers: string[];
  readonly protocol = "HTTP/2" as const;
  readonly upgrade = "";
  readonly connectionTokens: string[] = [];
  readonly expectContinue = false;
  readonly requestContentLength: number;
  readonly hasRequestBody: boolean;
  readonly peerAddress: string;
  readonly peerTls: TlsInfo | null;
  readonly startTime = Date.now();
  requestBytes = 0;
  responseBytes = 0;
  onResponseDrain: () => void = () => {};
  onAbort: () => void = () => {};
  private finished = false;
  /** The request body broke a rule after the response began: its trailers must not end the stream cleanly. */
  private bodyRefused = false;
  private responseHasBody = false;
  private trailers: string[] | null = null;
  private readonly stream: http2.ServerHttp2Stream;
  private readonly maxBodyBytes: number;

  constructor(
    stream: http2.ServerHttp2Stream,
    headers: http2.IncomingHttpHeaders,
    contentLength: number,
    endStream: boolean,
    peer: Conn,
    maxBodyBytes: number,
  ) {
    this.stream = stream;
    this.maxBodyBytes = maxBodyBytes;
    this.method = String(headers[":method"] ?? "GET");
    this.target = String(headers[":path"] ?? "/");
    this.authority = String(headers[":authority"] ?? headers.host ?? "").toLowerCase();
    this.headers = flatten(headers);
    this.requestContentLength = contentLength;
    this.hasRequestBody = !endStream;
    this.peerAddress = peer.remoteAddress;
    this.peerTls = peer.tls;
    stream.on("drain", () => this.onResponseDrain());
    stream.on("close", () => {
      if (!this.finished) {
        this.finished = true;
        this.onAbort();
      }
    });
    stream.on("error", () => {}); // reported through "close"
  }

  get headSent(): boolean {
    return this.stream.headersSent;
  }

  readRequestBody(sink: BodySink): void {
    if (!this.hasRequestBody) {
      sink.end(null);
      return;
    }
    let trailers: string[] | null = null;
    // The sink gets exactly the declared length or nothing more: an HTTP/1.1 upstream framed
    // by content-length would read extra bytes as another request, and wait on missing ones
    // for the rest of this one (RFC 9113 section 8.1.1 makes either malformed).
    const declared = this.requestContentLength;
    const onData = (chunk: Buffer) => {
      this.requestBytes += chunk.length;
      if (declared >= 0 && this.requestBytes > declared) {
        stop(new ProtocolError(`the request body is longer than its content-length ${declared}`), NGHTTP2_PROTOCOL_ERROR);
      } else if (this.maxBodyBytes > 0 && this.requestBytes > this.maxBodyBytes) {
        stop(bodyTooLarge(this.maxBodyBytes), NGHTTP2_INTERNAL_ERROR);
      } else {
        sink.data(chunk);
      }
    };
    const onEnd = () => {
      if (declared >= 0 && this.requestBytes < declared) {
        stop(
          new ProtocolError(`the request body ended after ${this.requestBytes} bytes, short of its content-length ${declared}`),
          NGHTTP2_PROTOCOL_ERROR,
        );
      } else {
        sink.end(trailers);
      }
    };
    const stop = (error: ProtocolError, rstCode: number) => {
      this.stream.off("data", onData);
      this.stream.off("end", onEnd);
      this.refuseBody(error, rstCode);
    };
    this.stream.on("data", onData);
    this.stream.on("trailers", (t: http2.IncomingHttpHeaders) => (trailers = flatten(t)));
    this.stream.on("end", onEnd);
  }

  /** The request body broke a rule: answer `error` if the head is not out yet, else reset the stream with `rstCode`; abort the exchange. */
  private refuseBody(error: ProtocolError, rstCode: number): void {
    // A complete response needs nothing more; the rest of the body is dropped.
    if (this.finished) return;
    this.finished = true;
    if (this.stream.headersSent) {
      // close(code) sends RST_STREAM with that code (destroy() always says INTERNAL_ERROR);
      // bodyRefused keeps the trailers, which would end the stream as if complete, unsent.
      this.bodyRefused = true;
      this.stream.close(rstCode);
    } else {
      refuse(this.stream, error);
    }
    this.onAbort();
  }

  pauseRequestBody(): void {
    this.stream.pause();
  }
  resumeRequestBody(): void {
    this.stream.resume();
  }

  sendInterim(): void {
    // 100 Continue has no use in HTTP/2 (the client does not wait), and 103 is rare.
  }

  sendHead(status: number, _reason: string, headers: string[], contentLength: number, hasBody: boolean): void {
    if (this.stream.destroyed || this.stream.headersSent) return;
    const out = toHttp2(headers, { ":status": status });
    if (contentLength >= 0) out["content-length"] = String(contentLength);
    this.responseHasBody = hasBody;
    if (!hasBody) {
      this.stream.respond(out, { endStream: true });
      return;
    }
    // Trailers are known only at the end, so always offer to send them (gRPC needs them).
    this.stream.respond(out, { waitForTrailers: true });
    this.stream.once("wantTrailers", () => {
      if (!this.stream.destroyed && !this.bodyRefused) this.stream.sendTrailers(this.trailers ? toHttp2(this.trailers) : {});
    });
  }

  sendData(chunk: Buffer): boolean {
    if (this.stream.destroyed) return true;
    this.responseBytes += chunk.length;
    return this.stream.write(chunk);
  }

  sendEnd(trailers: string[] | null): void {
    if (this.finished) return;
    this.finished = true;
    this.trailers = trailers;
    if (this.responseHasBody && !this.stream.destroyed) this.stream.end();
  }

  reset(): void {
    if (this.finished) return;
    this.finished = true;
    // destroy(error) sends RST_STREAM(INTERNAL_ERROR); close() would send END_STREAM and
    // make a truncated response look complete.
    this.stream.destroy(new Error("the upstream failed while the response was being sent"));
  }

  takeTunnel(): null {
    return null;
  }
}

export class Http2Downstream {
  private readonly session: Promise<http2.ServerHttp2Session>;

  constructor(conn: Conn, leftover: Buffer | null, options: Http2DownstreamOptions) {
    // A server object per connection: it only parses this connection, and its stream
    // events carry this connection's peer without any lookup.
    const server = http2.createServer({
      // maxFrameSize as FrameGuard enforces it.
      settings: {
        maxConcurrentStreams: options.maxConcurrentStreams,
        maxHeaderListSize: options.maxHeaderListSize,
        maxFrameSize: MAX_FRAME_SIZE,
      },
    });
    server.on("stream", (stream, headers, flags) => {
      const endStream = (flags & NGHTTP2_FLAG_END_STREAM) !== 0;
      const length = declaredLength(headers);
      if (typeof length !== "number") {
        refuse(stream, length);
        return;
      }
      const refused = refusal(headers, length, endStream, options);
      if (refused) refuse(stream, refused);
      else options.onExchange(new Http2Exchange(stream, headers, length, endStream, conn, options.maxBodyBytes));
    });
    this.session = new Promise((resolve) => server.once("session", resolve));
    void this.session.then((session) => {
      session.on("error", () => {});
      session.on("close", () => options.onClose());
    });
    // A preface that went wrong after "PRI * HTTP/2.0" gets FrameGuard's answer on every runtime:
    // GOAWAY PROTOCOL_ERROR (RFC 9113 section 3.4), where Node.js's own says INTERNAL_ERROR.
    const guard = GUARD_FRAMES || (leftover !== null && sniffPreface(leftover) === "bad");
    conn.handOver((socket) => server.emit("connection", guard ? new FrameGuard(socket, () => this.drain()) : socket), leftover);
  }

  /** Graceful: GOAWAY, streams in flight finish, then the connection closes. */
  drain(): void {
    void this.session.then((s) => s.close());
  }

  destroy(): void {
    void this.session.then((s) => s.destroy());
  }
}
