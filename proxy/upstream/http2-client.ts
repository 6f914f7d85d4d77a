// HTTP/2 to an upstream (gRPC services, h2-only backends): one node:http2 session per
// endpoint, reconnected when it goes away, with each request a stream on it.
import http2 from "node:http2";
import type { Buffer } from "node:buffer";
import type { Conn } from "../runtime/types.ts";
import type { ResponseHead } from "../http/message-head.ts";
import { flatten, toHttp2 } from "../http2/headers.ts";
import type { ResponseHandler, UpstreamExchange, UpstreamRequestHead } from "./exchange.ts";

const { NGHTTP2_CANCEL, NGHTTP2_FLAG_END_STREAM } = http2.constants;

function responseHead(headers: http2.IncomingHttpHeaders, bodyless: boolean): ResponseHead {
  const length = headers["content-length"];
  return {
    status: Number(headers[":status"]),
    reason: "",
    minor: 1,
    headers: flatten(headers),
    contentLength: length !== undefined && /^\d+$/.test(String(length)) ? Number(length) : -1,
    chunked: false,
    close: false,
    upgrade: "",
    connectionTokens: [],
    bodyless,
  };
}

class Http2StreamExchange implements UpstreamExchange {
  readonly reused: boolean;
  readonly tls: boolean;
  onDrain: () => void = () => {};
  private stream: http2.ClientHttp2Stream | null = null;
  private readonly session: http2.ClientHttp2Session;
  private requestTrailers: string[] | null = null;

  constructor(session: http2.ClientHttp2Session, reused: boolean, tls: boolean) {
    this.session = session;
    this.reused = reused;
    this.tls = tls;
  }

  start(request: UpstreamRequestHead, handler: ResponseHandler): void {
    const headers = toHttp2(request.headers, {
      ":method": request.method,
      ":path": request.target,
      ":authority": request.authority,
      ":scheme": this.tls ? "https" : "http",
    });
    let stream: http2.ClientHttp2Stream;
    try {
      stream = this.session.request(headers, request.hasBody ? { waitForTrailers: true } : { endStream: true });
    } catch (e) {
      queueMicrotask(() => handler.error(e as Error, true));
      return;
    }
    this.stream = stream;
    let responded = false;
    let ended = false;
    let trailers: string[] | null = null;
    // Deno 2.9 can emit "data" before "response": hold it until the head is out.
    let held: (Buffer | null)[] | null = [];
    stream.on("response", (h, flags) => {
      responded = true;
      // The END_STREAM flag, not stream.endAfterHeaders: that is not yet set at this point.
      handler.head(responseHead(h, (flags & NGHTTP2_FLAG_END_STREAM) !== 0));
      const early = held!;
      held = null;
      for (const item of early) {
        if (item) handler.data(item);
        else finish();
      }
    });
    const finish = () => {
      if (ended) return;
      ended = true;
      handler.end(trailers);
    };
    stream.on("data", (chunk: Buffer) => (held ? held.push(chunk) : handler.data(chunk)));
    stream.on("trailers", (t) => (trailers = flatten(t)));
    stream.on("end", () => (held ? held.push(null) : finish()));
    stream.on("wantTrailers", () => {
      if (!stream.destroyed) stream.sendTrailers(this.requestTrailers ? toHttp2(this.requestTrailers) : {});
    });
    stream.on("drain", () => this.onDrain());
    stream.on("error", () => {}); // reported through "close"
    stream.on("close", () => {
      if (ended || this.stream !== stream) return;
      ended = true;
      handler.error(new Error(`upstream reset the HTTP/2 stream (code ${stream.rstCode})`), !responded);
    });
  }

  flushHead(): void {}

  writeBody(chunk: Buffer): boolean {
    return this.stream && !this.stream.destroyed ? this.stream.write(chunk) : true;
  }

  endBody(trailers: string[] | null): void {
    this.requestTrailers = trailers;
    if (this.stream && !this.stream.destroyed) this.stream.end();
  }

  pauseResponse(): void {
    this.stream?.pause();
  }

  resumeResponse(): void {
    this.stream?.resume();
  }

  abort(): void {
    const stream = this.stream;
    this.stream = null;
    if (stream && !stream.destroyed) stream.close(NGHTTP2_CANCEL);
  }

  release(): void {}

  takeTunnel(): null {
    return null;
  }
}

/** The HTTP/2 session to one endpoint, shared by all its requests. */
export class Http2Upstream {
  private session: http2.ClientHttp2Session | null = null;
  private connecting: Promise<http2.ClientHttp2Session> | null = null;
  private streams = 0;
  private tls = false;
  private readonly connect: () => Promise<Conn>;
  private readonly authority: string;

  constructor(authority: string, connect: () => Promise<Conn>) {
    this.authority = authority;
    this.connect = connect;
  }

  async exchange(): Promise<UpstreamExchange> {
    const session = this.session && !this.session.closed && !this.session.destroyed ? this.session : await this.open();
    return new Http2StreamExchange(session, this.streams++ > 0, this.tls);
  }

  private open(): Promise<http2.ClientHttp2Session> {
    this.connecting ??= (async () => {
      try {
        const conn = await this.connect();
        if (conn.tls && conn.tls.alpn !== "h2") {
          conn.destroy();
          throw new Error(`the upstream did not agree to HTTP/2 (ALPN "${conn.tls.alpn ?? ""}"): set the cluster's protocol to http1`);
        }
        this.tls = conn.tls !== null;
        let session!: http2.ClientHttp2Session;
        conn.handOver((socket) => {
          session = http2.connect(`http://${this.authority}`, { createConnection: () => socket });
        }, null);
        session.on("error", () => {});
        const forget = () => {
          if (this.session === session) this.session = null;
        };
        session.on("goaway", forget);
        session.on("close", forget);
        this.session = session;
        this.streams = 0;
        return session;
      } finally {
        this.connecting = null;
      }
    })();
    return this.connecting;
  }

  close(): void {
    this.session?.close();
    this.session = null;
  }
}
