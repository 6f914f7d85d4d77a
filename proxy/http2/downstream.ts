// Serves HTTP/2 on one downstream connection with node:http2's stream API (the one HTTP/2
// implementation every supported runtime has; see docs/design/http2.md). The runtime
// adapter keeps TLS and ALPN; this takes over the connection once it is known to be h2.
import http2 from "node:http2";
import type { Buffer } from "node:buffer";
import type { ServerExchange } from "../http/exchange.ts";
import { bodyTooLarge, type BodySink } from "../http1/framing.ts";
import { ProtocolError } from "../http1/head.ts";
import type { Conn, TlsInfo } from "../runtime/types.ts";
import { flatten, toHttp2 } from "./headers.ts";
import { diagnosticHeaderValue } from "../http/headers.ts";

/** The client preface that opens HTTP/2 with prior knowledge (h2c). */
export const PREFACE = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/** "h2": the bytes are the h2c preface; "more": they could still become it; "no": not h2. */
export function sniffPreface(buf: Buffer): "h2" | "more" | "no" {
  const n = Math.min(buf.length, PREFACE.length);
  for (let i = 0; i < n; i++) if (buf[i] !== PREFACE.charCodeAt(i)) return "no";
  return n === PREFACE.length ? "h2" : "more";
}

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

/**
 * Why a request is refused before it is forwarded, or null. Not every runtime's node:http2
 * enforces the header list size it advertises, so it is checked here.
 */
function refusal(headers: http2.IncomingHttpHeaders, options: Http2DownstreamOptions): ProtocolError | null {
  // Extended CONNECT tunnels are not supported, as over HTTP/1.1.
  if (headers[":method"] === "CONNECT") return new ProtocolError("CONNECT is not supported", 405);
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
  const length = headers["content-length"];
  if (options.maxBodyBytes > 0 && length !== undefined && Number(length) > options.maxBodyBytes) return bodyTooLarge(options.maxBodyBytes);
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
  private responseHasBody = false;
  private trailers: string[] | null = null;
  private readonly stream: http2.ServerHttp2Stream;
  private readonly maxBodyBytes: number;

  constructor(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, flags: number, peer: Conn, maxBodyBytes: number) {
    this.stream = stream;
    this.maxBodyBytes = maxBodyBytes;
    this.method = String(headers[":method"] ?? "GET");
    this.target = String(headers[":path"] ?? "/");
    this.authority = String(headers[":authority"] ?? headers.host ?? "").toLowerCase();
    this.headers = flatten(headers);
    const length = headers["content-length"];
    this.requestContentLength = length !== undefined && /^\d+$/.test(String(length)) ? Number(length) : -1;
    this.hasRequestBody = (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) === 0;
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
    const onData = (chunk: Buffer) => {
      this.requestBytes += chunk.length;
      if (this.maxBodyBytes > 0 && this.requestBytes > this.maxBodyBytes) {
        this.stream.off("data", onData);
        this.refuseBody();
        return;
      }
      sink.data(chunk);
    };
    this.stream.on("data", onData);
    this.stream.on("trailers", (t: http2.IncomingHttpHeaders) => (trailers = flatten(t)));
    this.stream.on("end", () => sink.end(trailers));
  }
  /** The request body grew past maxBodyBytes: answer 413 if still possible, and abort the exchange. */
  private refuseBody(): void {
    // A complete response needs nothing more; the rest of the body is dropped.
    if (this.finished) return;
    if (this.stream.headersSent) {
      this.reset();
    } else {
      this.finished = true;
      refuse(this.stream, bodyTooLarge(this.maxBodyBytes));
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
      if (!this.stream.destroyed) this.stream.sendTrailers(this.trailers ? toHttp2(this.trailers) : {});
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
      settings: { maxConcurrentStreams: options.maxConcurrentStreams, maxHeaderListSize: options.maxHeaderListSize },
    });
    server.on("stream", (stream, headers, flags) => {
      const refused = refusal(headers, options);
      if (refused) refuse(stream, refused);
      else options.onExchange(new Http2Exchange(stream, headers, flags, conn, options.maxBodyBytes));
    });
    this.session = new Promise((resolve) => server.once("session", resolve));
    void this.session.then((session) => {
      session.on("error", () => {});
      session.on("close", () => options.onClose());
    });
    conn.handOver((socket) => server.emit("connection", socket), leftover);
  }

  /** Graceful: GOAWAY, streams in flight finish, then the connection closes. */
  drain(): void {
    void this.session.then((s) => s.close());
  }

  destroy(): void {
    void this.session.then((s) => s.destroy());
  }
}
