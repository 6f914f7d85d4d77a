// The request body on its way upstream: streamed to the current attempt with back-pressure,
// and kept whole while it may be sent again (retries, mirroring) and fits the buffer.
import type { Buffer } from "node:buffer";
import type { BodySink, ServerExchange } from "../http/exchange.ts";
import type { UpstreamExchange } from "../upstream/exchange.ts";
import type { ReadBody } from "./transaction.ts";

export class RequestBody implements BodySink {
  private readonly exchange: ServerExchange;
  private readonly keep: boolean;
  private readonly limit: number;
  private chunks: Buffer[] = [];
  /** How many of `chunks` the current upstream has been given. */
  private sent = 0;
  private bytes = 0;
  private upstream: UpstreamExchange | null = null;
  /** Whether every byte is still here, so the body can be sent again. */
  replayable = true;
  ended = false;
  trailers: string[] | null = null;
  /** Called once the whole body has arrived. */
  onEnded: (() => void) | null = null;

  /** `keep`: hold the body for a later attempt or a mirror, up to `limit` bytes. `read`: a body a stage already read whole. */
  constructor(exchange: ServerExchange, keep: boolean, limit: number, read: ReadBody | null) {
    this.exchange = exchange;
    this.keep = keep;
    this.limit = limit;
    if (read) {
      if (read.body.length > 0) this.chunks.push(read.body);
      this.bytes = read.body.length;
      this.ended = true;
      this.trailers = read.trailers;
    } else {
      exchange.readRequestBody(this);
    }
  }

  data(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.bytes += chunk.length;
    const upstream = this.upstream;
    if (upstream) {
      this.sent++;
      if (!upstream.writeBody(chunk)) this.pauseUntilDrain(upstream);
    }
    this.trim();
  }

  end(trailers: string[] | null): void {
    this.ended = true;
    this.trailers = trailers;
    this.upstream?.endBody(trailers);
    this.onEnded?.();
  }

  /** What has arrived so far, for a mirrored copy. */
  copy(): Buffer[] {
    return this.chunks.slice();
  }

  /** Gives an attempt's upstream what is kept, then the rest as it arrives. */
  sendTo(upstream: UpstreamExchange, hasBody: boolean): void {
    this.upstream = upstream;
    upstream.onDrain = () => {};
    this.sent = 0;
    for (const chunk of this.chunks) {
      this.sent++;
      if (!upstream.writeBody(chunk)) this.pauseUntilDrain(upstream);
    }
    if (this.ended && hasBody) upstream.endBody(this.trailers);
    this.trim();
  }

  /** The attempt ended: nothing more goes to its upstream. */
  detach(): void {
    this.upstream = null;
  }

  /** Drops what was sent once it can no longer be needed again; the request then cannot be attempted again. */
  private trim(): void {
    if (this.keep && this.bytes <= this.limit) return;
    if (this.sent > 0) {
      this.replayable = false;
      this.chunks.splice(0, this.sent);
      this.sent = 0;
    }
  }

  private pauseUntilDrain(upstream: UpstreamExchange): void {
    this.exchange.pauseRequestBody();
    upstream.onDrain = () => {
      upstream.onDrain = () => {};
      this.exchange.resumeRequestBody();
    };
  }
}
