// The client side of HTTP/1.1 on one upstream connection: sends one request at a time
// and parses the response, telling the pool whether the connection can be reused.
import { Buffer } from "node:buffer";
import type { Conn } from "../runtime/types.ts";
import { findHeadEnd, parseResponseHead, type HeadLimits } from "../http1/head.ts";
import { ProtocolError } from "../http/protocol-error.ts";
import { BodyDecoder, encodeChunk, encodeLastChunk } from "../http1/framing.ts";
import { encodeRequestHead } from "../http1/encode.ts";
import type { ResponseHandler, UpstreamExchange, UpstreamRequestHead } from "./exchange.ts";

const RESPONSE_LIMITS: HeadLimits = { maxHeadBytes: 65536, maxHeaderCount: 200 };
const COALESCE_BYTES = 16384;

export class UpstreamHttp1 implements UpstreamExchange {
  readonly conn: Conn;
  /** Requests completed on this connection; >0 means it was reused from the pool. */
  served = 0;
  reusable = true;
  idleSince = 0;
  private handler: ResponseHandler | null = null;
  private buf: Buffer | null = null;
  private decoder: BodyDecoder | null = null;
  private headReceived = false;
  private gotBytes = false;
  private requestMethod = "";
  private requestDone = false;
  private responseDone = false;
  private chunkedRequest = false;
  private pendingHead: Buffer | null = null;
  private tunnel = false;
  private trailers: string[] | null = null;
  /** Whether this connection still counts against its cluster's connection limit. */
  slotHeld = true;
  /** Called once when the connection has closed, whatever state it was in. */
  onGone: () => void = () => {};
  onDrain: () => void = () => {};
  /** Called when the exchange finished and the connection may go back to the pool. */
  onRelease: (conn: UpstreamHttp1) => void = () => {};

  constructor(conn: Conn) {
    this.conn = conn;
    conn.onData = (chunk) => this.onData(chunk);
    conn.onEnd = () => this.onPeerEnd();
    conn.onClose = (error) => this.onClose(error);
    conn.onDrain = () => this.onDrain();
  }

  get reused(): boolean {
    return this.served > 0;
  }

  get tls(): boolean {
    return this.conn.tls !== null;
  }

  /**
   * Starts a request. With a body, the head is held back and sent with the first body
   * bytes (one write) unless flushHead() is called.
   */
  start(request: UpstreamRequestHead, handler: ResponseHandler): void {
    // The previous exchange may have paused reading for a slow client and finished before
    // that client drained: a pooled connection must read again.
    this.conn.resume();
    this.handler = handler;
    this.requestMethod = request.method;
    this.headReceived = false;
    this.gotBytes = false;
    this.requestDone = !request.hasBody;
    this.responseDone = false;
    this.chunkedRequest = request.chunked;
    const head = encodeRequestHead(request.method, request.target, request.headers);
    if (request.hasBody) this.pendingHead = head;
    else this.conn.write(head);
  }

  pauseResponse(): void {
    this.conn.pause();
  }

  resumeResponse(): void {
    this.conn.resume();
  }

  release(): void {
    if (this.handler === null) this.onRelease(this);
  }

  /** Sends body bytes now; used when a client waits for 100 Continue before its body. */
  flushHead(): void {
    if (this.pendingHead) {
      this.conn.write(this.pendingHead);
      this.pendingHead = null;
    }
  }

  writeBody(chunk: Buffer): boolean {
    if (chunk.length === 0) return true;
    const framed = this.chunkedRequest ? encodeChunk(chunk) : chunk;
    const head = this.pendingHead;
    if (head) {
      this.pendingHead = null;
      if (framed.length < COALESCE_BYTES) return this.conn.write(Buffer.concat([head, framed]));
      this.conn.write(head);
    }
    return this.conn.write(framed);
  }

  endBody(trailers: string[] | null): void {
    const last = this.chunkedRequest ? encodeLastChunk(trailers) : null;
    const head = this.pendingHead;
    this.pendingHead = null;
    if (head && last) this.conn.write(Buffer.concat([head, last]));
    else if (head) this.conn.write(head);
    else if (last) this.conn.write(last);
    this.requestDone = true;
    this.maybeRelease();
  }

  /** Switches to a raw tunnel after 101: the caller owns the connection from now on. */
  takeTunnel(): { conn: Conn; leftover: Buffer | null } | null {
    this.tunnel = true;
    this.reusable = false;
    this.handler = null;
    const leftover = this.buf;
    this.buf = null;
    return { conn: this.conn, leftover };
  }

  /** Gives up on the current exchange: the connection cannot be reused. */
  abort(): void {
    this.handler = null;
    this.reusable = false;
    this.conn.destroy();
  }

  private onData(chunk: Buffer): void {
    if (this.tunnel) return;
    if (!this.handler) {
      // Bytes while idle: the server broke HTTP/1.1 framing; never reuse.
      this.reusable = false;
      this.conn.destroy();
      return;
    }
    this.gotBytes = true;
    this.buf = this.buf && this.buf.length > 0 ? Buffer.concat([this.buf, chunk]) : chunk;
    try {
      this.process();
    } catch (e) {
      this.fail(e as Error);
    }
  }

  private process(): void {
    while (this.buf && this.buf.length > 0 && this.handler && !this.tunnel) {
      if (this.decoder) {
        const decoder = this.decoder;
        const end = decoder.push(this.buf, 0);
        this.buf = end >= this.buf.length ? null : this.buf.subarray(end);
        if (decoder.done && this.decoder === decoder) {
          this.decoder = null;
          this.responseComplete();
        }
        continue;
      }
      if (this.headReceived) {
        // Bytes after a complete response: not a valid HTTP/1.1 server.
        this.reusable = false;
        this.buf = null;
        return;
      }
      const headEnd = findHeadEnd(this.buf, 0, RESPONSE_LIMITS);
      if (headEnd === -1) return;
      const head = parseResponseHead(this.buf, 0, headEnd, RESPONSE_LIMITS);
      this.buf = headEnd >= this.buf.length ? null : this.buf.subarray(headEnd);
      const handler = this.handler;
      if (head.status >= 100 && head.status < 200 && head.status !== 101) {
        handler.head(head);
        continue;
      }
      this.headReceived = true;
      if (head.close) this.reusable = false;
      if (head.status === 101) {
        handler.head(head);
        return;
      }
      const noBody = this.requestMethod === "HEAD" || head.status === 204 || head.status === 304;
      const mode = noBody ? "none" : head.chunked ? "chunked" : head.contentLength >= 0 ? "length" : "close";
      if (mode === "close") this.reusable = false;
      // A response that may not have a body but whose head announces one (a HEAD's length,
      // a 204 with Transfer-Encoding) may be followed by that body, in this read or a later
      // one: the connection is never given to another request, which would read it as its response.
      if (noBody && (head.chunked || head.contentLength > 0)) this.reusable = false;
      const decoder = new BodyDecoder(mode, head.contentLength, {
        data: (chunk) => this.handler?.data(chunk),
        end: (trailers) => (this.trailers = trailers),
      });
      handler.head(head);
      if (decoder.done) this.responseComplete();
      else this.decoder = decoder;
    }
  }

  /**
   * The response's last byte has been read. Bytes after it mean the server framed the
   * response differently from us (extra bytes after a Content-Length body, a body after
   * HEAD, 204 or 304): they are dropped, and the connection is not reused, or the next
   * request on it would get them as its response.
   */
  private responseComplete(): void {
    if (this.buf && this.buf.length > 0) {
      this.reusable = false;
      this.buf = null;
    }
    const handler = this.handler;
    const trailers = this.trailers;
    this.trailers = null;
    this.responseDone = true;
    this.maybeRelease();
    handler?.end(trailers);
  }

  private maybeRelease(): void {
    if (!this.requestDone || !this.responseDone || !this.handler) return;
    this.handler = null;
    this.served++;
    this.onRelease(this);
  }

  private fail(error: Error): void {
    const handler = this.handler;
    this.handler = null;
    this.reusable = false;
    this.conn.destroy();
    handler?.error(error, !this.gotBytes);
  }

  private onPeerEnd(): void {
    if (this.decoder?.mode === "close") {
      try {
        this.decoder.closed();
      } catch (e) {
        this.fail(e as Error);
        return;
      }
    }
    this.reusable = false;
    if (this.handler && !this.tunnel) this.fail(new ProtocolError("upstream closed the connection before the response was complete", 502));
    else this.conn.end();
  }

  private onClose(error?: Error): void {
    this.reusable = false;
    if (this.handler && !this.tunnel) this.fail(error ?? new ProtocolError("upstream connection reset", 502));
    this.onGone();
  }
}
