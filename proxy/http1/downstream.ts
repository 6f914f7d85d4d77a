// Serves HTTP/1.1 on one downstream connection: parses requests (pipelined ones are held
// until the previous response is complete), exposes each as a ServerExchange, and writes
// responses with the framing the client can read.
import { Buffer } from "node:buffer";
import type { Conn } from "../runtime/types.ts";
import type { ServerExchange } from "../http/exchange.ts";
import { findHeadEnd, parseRequestHead, type HeadLimits, type RequestHead } from "./head.ts";
import { BodyDecoder, encodeLastChunk } from "./framing.ts";
import type { BodySink } from "../http/exchange.ts";
import { bodyTooLarge, ProtocolError } from "../http/protocol-error.ts";
import { encodeResponseHead, reasonPhrase } from "./encode.ts";
import { diagnosticHeaderValue } from "../http/headers.ts";
import type { Deadlines } from "../http/deadlines.ts";
import { sniffPreface } from "../http2/downstream.ts";

export interface DownstreamOptions extends HeadLimits {
  /** Largest request body accepted (413 past it); 0 = no limit. */
  maxBodyBytes: number;
  headerTimeoutMs: number;
  idleTimeoutMs: number;
  /** A request body with no bytes for this long gets 408 (the connection closes); 0 = no limit. */
  bodyIdleTimeoutMs: number;
  deadlines: Deadlines;
  onExchange: (exchange: ServerExchange) => void;
  onProtocolError: (conn: Conn, error: Error) => void;
  /** When set, a connection that opens with the HTTP/2 preface is handed over to it. */
  onHttp2Preface?: (leftover: Buffer) => void;
}

const CRLF = "\r\n";
// Below this size a chunk and its framing are copied into one buffer: one write, one syscall.
const COALESCE_BYTES = 16384;

/** Buffers request-body events until the forwarding logic attaches its sink. */
class RequestBody implements BodySink {
  private sink: BodySink | null = null;
  private early: Buffer[] = [];
  private ended: { trailers: string[] | null } | null = null;

  attach(sink: BodySink): void {
    this.sink = sink;
    for (const chunk of this.early) sink.data(chunk);
    this.early = [];
    if (this.ended) sink.end(this.ended.trailers);
  }
  data(chunk: Buffer): void {
    if (this.sink) this.sink.data(chunk);
    else this.early.push(chunk);
  }
  end(trailers: string[] | null): void {
    if (this.sink) this.sink.end(trailers);
    else this.ended = { trailers };
  }
}

class Http1Exchange implements ServerExchange {
  readonly method: string;
  readonly target: string;
  readonly authority: string;
  readonly headers: string[];
  readonly protocol: "HTTP/1.1" | "HTTP/1.0";
  readonly upgrade: string;
  readonly connectionTokens: string[];
  readonly expectContinue: boolean;
  readonly requestContentLength: number;
  readonly hasRequestBody: boolean;
  readonly peerAddress: string;
  readonly startTime = Date.now();
  readonly peerTls;
  requestBytes = 0;
  responseBytes = 0;
  onResponseDrain: () => void = () => {};
  onAbort: () => void = () => {};
  headSent = false;
  finished = false;
  /** Whether the connection must close after this response. */
  closeAfter: boolean;
  readonly body = new RequestBody();
  private chunked = false;
  private pendingHead: Buffer | null = null;
  private tunnelTaken = false;
  private readonly owner: Http1Downstream;

  constructor(owner: Http1Downstream, head: RequestHead) {
    this.owner = owner;
    this.method = head.method;
    this.target = head.target;
    this.authority = head.host;
    this.headers = head.headers;
    this.protocol = head.minor === 1 ? "HTTP/1.1" : "HTTP/1.0";
    this.upgrade = head.upgrade;
    this.connectionTokens = head.connectionTokens;
    this.expectContinue = head.expectContinue;
    this.requestContentLength = head.chunked ? -1 : Math.max(head.contentLength, 0);
    this.hasRequestBody = head.chunked || head.contentLength > 0;
    this.peerAddress = owner.conn.remoteAddress;
    this.peerTls = owner.conn.tls;
    this.closeAfter = head.close;
  }

  readRequestBody(sink: BodySink): void {
    this.body.attach(sink);
  }
  pauseRequestBody(): void {
    this.owner.conn.pause();
    this.owner.bodyPaused = true;
  }
  resumeRequestBody(): void {
    this.owner.bodyPaused = false;
    this.owner.conn.resume();
  }

  sendInterim(status: number, headers: string[]): void {
    if (this.headSent || this.protocol === "HTTP/1.0") return;
    this.owner.conn.write(encodeResponseHead(status, reasonPhrase(status), headers));
  }

  sendHead(status: number, reason: string, headers: string[], contentLength: number, hasBody: boolean): void {
    this.headSent = true;
    const out = headers.slice();
    if (contentLength >= 0) out.push("content-length", String(contentLength));
    else if (hasBody) {
      if (this.protocol === "HTTP/1.1") {
        this.chunked = true;
        out.push("transfer-encoding", "chunked");
      } else {
        // HTTP/1.0 has no chunked framing: the body ends when the connection does.
        this.closeAfter = true;
      }
    }
    if (status === 101) {
      out.push("connection", "upgrade");
    } else if (this.closeAfter || this.owner.draining) {
      this.closeAfter = true;
      out.push("connection", "close");
    } else if (this.protocol === "HTTP/1.0") {
      out.push("connection", "keep-alive");
    }
    this.pendingHead = encodeResponseHead(status, reason, out);
    this.responseBytes = 0;
  }

  sendData(chunk: Buffer): boolean {
    if (chunk.length === 0) return true;
    this.responseBytes += chunk.length;
    const head = this.pendingHead;
    this.pendingHead = null;
    const conn = this.owner.conn;
    if (this.chunked) {
      const size = `${chunk.length.toString(16)}${CRLF}`;
      if (chunk.length < COALESCE_BYTES) {
        const parts = head ? [head, Buffer.from(size, "latin1"), chunk, CRLF_BUF] : [Buffer.from(size, "latin1"), chunk, CRLF_BUF];
        return conn.write(Buffer.concat(parts));
      }
      if (head) conn.write(head);
      conn.write(size);
      conn.write(chunk);
      return conn.write(CRLF);
    }
    if (head) {
      if (chunk.length < COALESCE_BYTES) return conn.write(Buffer.concat([head, chunk]));
      conn.write(head);
    }
    return conn.write(chunk);
  }

  sendEnd(trailers: string[] | null): void {
    if (this.finished) return;
    const conn = this.owner.conn;
    const head = this.pendingHead;
    this.pendingHead = null;
    if (this.chunked) {
      const last = encodeLastChunk(trailers);
      conn.write(head ? Buffer.concat([head, last]) : last);
    } else if (head) {
      conn.write(head);
    }
    this.finished = true;
    this.owner.exchangeDone(this);
  }

  reset(): void {
    if (this.finished) return;
    this.finished = true;
    this.owner.conn.destroy();
  }

  takeTunnel(): { conn: Conn; leftover: Buffer | null } | null {
    if (this.tunnelTaken) return null;
    this.tunnelTaken = true;
    const head = this.pendingHead;
    this.pendingHead = null;
    if (head) this.owner.conn.write(head);
    this.finished = true;
    return this.owner.handOver();
  }
}

const CRLF_BUF = Buffer.from(CRLF, "latin1");

export class Http1Downstream {
  readonly conn: Conn;
  draining = false;
  private readonly options: DownstreamOptions;
  private buf: Buffer | null = null;
  private exchange: Http1Exchange | null = null;
  private decoder: BodyDecoder | null = null;
  private handedOver = false;
  /** Our side has ended: nothing more is read (close()). */
  private closing = false;
  private sniffing: boolean;
  /** Deadline for the current wait (head, idle between requests, or the next body bytes); 0 = none. */
  deadline = 0;
  /** The forwarder stopped reading the body (back-pressure): a quiet client is then not stalling. */
  bodyPaused = false;

  constructor(conn: Conn, options: DownstreamOptions) {
    this.conn = conn;
    this.options = options;
    this.sniffing = !!options.onHttp2Preface;
    conn.onData = (chunk) => this.onData(chunk);
    conn.onEnd = () => this.onPeerEnd();
    conn.onClose = () => this.onClose();
    conn.onDrain = () => this.exchange?.onResponseDrain();
    this.deadline = Date.now() + options.headerTimeoutMs;
    options.deadlines.add(this);
  }

  /** Called by the deadline sweeper. */
  expire(): void {
    if (this.closing) {
      this.conn.destroy();
    } else if (!this.exchange) {
      if (this.buf && this.buf.length > 0) this.fail(new ProtocolError("timed out waiting for the request head", 408));
      else this.close();
    } else if (this.decoder && !this.bodyPaused) {
      this.fail(new ProtocolError(`no request body bytes for ${this.options.bodyIdleTimeoutMs} ms (limits.bodyIdleTimeoutMs)`, 408));
    } else if (this.decoder) {
      this.armBodyDeadline();
    }
  }

  /** Stop taking new requests: close once the current exchange (if any) is done. */
  drain(): void {
    this.draining = true;
    if (!this.exchange) this.close();
  }

  /**
   * Ends our side and reads no more requests. A half-closed peer can go on sending: what it
   * sends is dropped, never parsed (after a refused request, or a response that came before
   * its request's body, those bytes are whatever the client wants them to be), and the
   * connection is destroyed if the peer has not closed by the header timeout.
   */
  private close(): void {
    this.closing = true;
    this.buf = null;
    this.decoder = null;
    this.deadline = Date.now() + this.options.headerTimeoutMs;
    this.conn.end();
  }

  private onData(chunk: Buffer): void {
    if (this.handedOver || this.closing) return;
    this.buf = this.buf && this.buf.length > 0 ? Buffer.concat([this.buf, chunk]) : chunk;
    if (this.sniffing) {
      const seen = sniffPreface(this.buf);
      if (seen === "more") return;
      this.sniffing = false;
      if (seen === "h2" || seen === "bad") {
        const { leftover } = this.handOver();
        this.options.onHttp2Preface!(leftover!);
        return;
      }
    }
    this.process();
  }

  destroy(): void {
    this.conn.destroy();
  }

  private process(): void {
    const options = this.options;
    while (this.buf && this.buf.length > 0 && !this.handedOver) {
      if (this.decoder) {
        let end: number;
        try {
          end = this.decoder.push(this.buf, 0);
        } catch (e) {
          this.fail(e as Error);
          return;
        }
        // The body's sink may have answered already (a filter's 413, a local reply), closing the connection.
        if (this.closing) return;
        this.buf = end >= this.buf.length ? null : this.buf.subarray(end);
        if (this.decoder.done) {
          this.decoder = null;
          if (this.exchange) this.deadline = 0;
        } else {
          this.armBodyDeadline();
        }
        continue;
      }
      if (this.exchange) {
        // Pipelined request: hold it until the current response is complete, and stop
        // reading if the client keeps pushing.
        if (this.buf.length > options.maxHeadBytes) this.conn.pause();
        return;
      }
      // RFC 9112 section 2.2: empty lines before a request line are ignored (some clients
      // send CRLF after a POST body). Only whole CRLFs: a bare CR or LF stays an error.
      let skip = 0;
      while (this.buf[skip] === 13 && this.buf[skip + 1] === 10) skip += 2;
      if (skip > 0) {
        this.buf = skip >= this.buf.length ? null : this.buf.subarray(skip);
        continue;
      }
      if (this.buf.length === 1 && this.buf[0] === 13) return;
      let headEnd: number;
      let head: RequestHead;
      try {
        headEnd = findHeadEnd(this.buf, 0, options);
        if (headEnd === -1) return;
        head = parseRequestHead(this.buf, 0, headEnd, options);
        if (options.maxBodyBytes > 0 && head.contentLength > options.maxBodyBytes) throw bodyTooLarge(options.maxBodyBytes);
      } catch (e) {
        this.fail(e as Error);
        return;
      }
      this.buf = headEnd >= this.buf.length ? null : this.buf.subarray(headEnd);
      this.startExchange(head, headEnd);
    }
  }

  private startExchange(head: RequestHead, headBytes: number): void {
    const exchange = new Http1Exchange(this, head);
    exchange.requestBytes = headBytes;
    this.exchange = exchange;
    this.deadline = 0;
    if (head.upgrade) {
      // After an upgrade the bytes are the new protocol's: the tunnel takes them over. If the
      // upstream declines, they are still not HTTP/1.1 requests: the connection closes after
      // the response, and they are never parsed.
      this.decoder = null;
      exchange.closeAfter = true;
    } else {
      const mode = head.chunked ? "chunked" : head.contentLength > 0 ? "length" : "none";
      const limit = this.options.maxBodyBytes;
      const decoder = new BodyDecoder(mode, head.contentLength, {
        data: (chunk) => {
          // A chunked body's size shows only as it arrives; throwing here stops the decoder
          // before the chunk goes on, and process() answers 413.
          if (limit > 0 && decoder.received > limit) throw bodyTooLarge(limit);
          exchange.requestBytes += chunk.length;
          exchange.body.data(chunk);
        },
        end: (trailers) => exchange.body.end(trailers),
      });
      if (decoder.done) decoder.finishEmpty();
      else {
        this.decoder = decoder;
        this.armBodyDeadline();
      }
    }
    this.options.onExchange(exchange);
  }

  /** The next body bytes are due within bodyIdleTimeoutMs (a slow-body client holds nothing longer). */
  private armBodyDeadline(): void {
    const ms = this.options.bodyIdleTimeoutMs;
    this.deadline = ms > 0 ? Date.now() + ms : 0;
  }

  /** The current exchange finished its response. */
  exchangeDone(exchange: Http1Exchange): void {
    if (this.exchange !== exchange) return;
    if (this.decoder) {
      // The response is complete before the request body: the rest of the body cannot be
      // told apart from a next request without reading it, so close (as nginx does).
      exchange.closeAfter = true;
    }
    this.exchange = null;
    if (exchange.closeAfter || this.draining) {
      this.close();
      return;
    }
    this.deadline = Date.now() + this.options.idleTimeoutMs;
    this.conn.resume();
    if (this.buf && this.buf.length > 0) {
      this.deadline = Date.now() + this.options.headerTimeoutMs;
      this.process();
    }
  }

  handOver(): { conn: Conn; leftover: Buffer | null } {
    this.handedOver = true;
    this.options.deadlines.delete(this);
    const leftover = this.buf;
    this.buf = null;
    this.exchange = null;
    return { conn: this.conn, leftover };
  }

  private fail(error: Error): void {
    this.options.onProtocolError(this.conn, error);
    const exchange = this.exchange;
    if (exchange?.headSent) {
      exchange.reset();
      return;
    }
    const status = error instanceof ProtocolError ? error.status : 400;
    const body = `${error.message}\n`;
    this.conn.write(
      encodeResponseHead(status, reasonPhrase(status), [
        "content-type",
        "text/plain",
        "content-length",
        String(Buffer.byteLength(body)),
        "connection",
        "close",
        "x-weft-error",
        diagnosticHeaderValue(error.message),
      ]),
    );
    this.conn.write(body);
    this.close();
    if (exchange) {
      this.exchange = null;
      exchange.finished = true;
      exchange.onAbort();
    }
  }

  private onPeerEnd(): void {
    // A client that half-closes after its request still gets its response; with nothing
    // in flight, close our side too.
    if (this.decoder) {
      try {
        this.decoder.closed();
      } catch (e) {
        this.fail(e as Error);
        return;
      }
    }
    if (!this.exchange) this.close();
  }

  private onClose(): void {
    this.options.deadlines.delete(this);
    const exchange = this.exchange;
    this.exchange = null;
    if (exchange && !exchange.finished) {
      exchange.finished = true;
      exchange.onAbort();
    }
  }
}
