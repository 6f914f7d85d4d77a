// One request/response exchange as the forwarding logic sees it, whatever protocol the
// downstream connection speaks. HTTP/1.1 implements it today; HTTP/2 streams will too.
import type { Buffer } from "node:buffer";
import type { Conn, TlsInfo } from "../runtime/types.ts";

export interface BodySink {
  data(chunk: Buffer): void;
  /** The body is complete; trailers as a flat [name, value, ...] list when chunked sent any. */
  end(trailers: string[] | null): void;
}

export interface ServerExchange {
  readonly method: string;
  /** Path and query. */
  readonly target: string;
  /** Lower-cased authority (Host or :authority), with port if one was sent. */
  readonly authority: string;
  /** [name, value, ...] as received, hop-by-hop fields included. */
  readonly headers: string[];
  readonly protocol: "HTTP/1.1" | "HTTP/1.0" | "HTTP/2";
  /** Lower-cased protocol named by Upgrade, or "". */
  readonly upgrade: string;
  /** Hop-by-hop tokens from Connection. */
  readonly connectionTokens: string[];
  readonly expectContinue: boolean;
  /** -1 when unknown (chunked or streamed). */
  readonly requestContentLength: number;
  readonly hasRequestBody: boolean;
  readonly peerAddress: string;
  readonly peerTls: TlsInfo | null;
  readonly startTime: number;
  requestBytes: number;
  responseBytes: number;

  /** Request body events go to this sink; events that arrived earlier are replayed. */
  readRequestBody(sink: BodySink): void;
  pauseRequestBody(): void;
  resumeRequestBody(): void;

  sendInterim(status: number, headers: string[]): void;
  /** contentLength -1: the body's length is not known in advance. */
  sendHead(status: number, reason: string, headers: string[], contentLength: number, hasBody: boolean): void;
  /** false: wait for onResponseDrain before sending more. */
  sendData(chunk: Buffer): boolean;
  sendEnd(trailers: string[] | null): void;
  onResponseDrain: () => void;
  /** Whether a response head has been sent (after which no local reply is possible). */
  readonly headSent: boolean;
  /** Aborts the exchange (the connection for HTTP/1.1) after a failure mid-response. */
  reset(): void;
  /** Called once when the downstream goes away before the response is complete. */
  onAbort: () => void;
  /** For a 101 upgrade: takes over the raw downstream connection and any bytes it sent. */
  takeTunnel(): { conn: Conn; leftover: Buffer | null } | null;
}
