// One request to an upstream as the forwarder drives it, whatever the upstream protocol:
// a pooled HTTP/1.1 connection or a stream on a shared HTTP/2 session.
import type { Buffer } from "node:buffer";
import type { Conn } from "../runtime/types.ts";
import type { ResponseHead } from "../http/message-head.ts";

export interface UpstreamRequestHead {
  method: string;
  /** Path and query. */
  target: string;
  authority: string;
  /** Regular header fields, Host included for HTTP/1.1. */
  headers: string[];
  /** HTTP/1.1: frame the body as chunked (its length is not known). */
  chunked: boolean;
  hasBody: boolean;
}

export interface ResponseHandler {
  /** Interim (1xx other than 101) heads come first; then exactly one final head. */
  head(head: ResponseHead): void;
  data(chunk: Buffer): void;
  end(trailers: string[] | null): void;
  /**
   * The exchange failed. `beforeResponse` is true when not a byte of the response had
   * arrived, which is what makes a retry safe.
   */
  error(error: Error, beforeResponse: boolean): void;
}

export interface UpstreamExchange {
  /** The connection served requests before this one (a failure may be a stale keep-alive). */
  readonly reused: boolean;
  readonly tls: boolean;
  /** Called when writeBody may be called again after it returned false. */
  onDrain: () => void;
  start(head: UpstreamRequestHead, handler: ResponseHandler): void;
  /** Sends the head now rather than with the first body bytes (a client awaits 100 Continue). */
  flushHead(): void;
  writeBody(chunk: Buffer): boolean;
  endBody(trailers: string[] | null): void;
  pauseResponse(): void;
  resumeResponse(): void;
  /** Gives up on the exchange; its connection or stream is not reused. */
  abort(): void;
  /** Returns an exchange that was never started (its attempt was abandoned). */
  release(): void;
  /** For a 101 answer: the raw connection and bytes already read, HTTP/1.1 only. */
  takeTunnel(): { conn: Conn; leftover: Buffer | null } | null;
}
