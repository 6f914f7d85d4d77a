// The response on its way back to the downstream. Stages that see responses (route header
// modifiers, filters' response phases) wrap the sink on their way in, so the last stage to see
// the request is the first to see the response.
import type { Buffer } from "node:buffer";
import { forwardableHeaders, removeHeader } from "../http/headers.ts";
import type { ResponseHead } from "../http/message-head.ts";

/** A final response head as it will be sent downstream. */
export interface ResponseOut {
  status: number;
  reason: string;
  headers: string[];
  /** -1 when not known in advance. */
  contentLength: number;
  hasBody: boolean;
  /** The upstream's answer ended with its head (HTTP/2 trailers-only): no body will come. */
  bodyless: boolean;
}

export interface ResponseSink {
  head(out: ResponseOut): void;
  /** false: the downstream is full; the upstream waits for the exchange's onResponseDrain. */
  data(chunk: Buffer): boolean;
  end(trailers: string[] | null): void;
}

/** An upstream's final head as the downstream will get it: its hop-by-hop fields gone, its framing set for `method`. */
export function responseOut(head: ResponseHead, method: string): ResponseOut {
  const status = head.status;
  const headers = forwardableHeaders(head.headers, head.connectionTokens, status === 101);
  removeHeader(headers, "content-length");
  const bodyless = !!head.bodyless;
  if (status === 101) return { status, reason: head.reason, headers, contentLength: -1, hasBody: false, bodyless };
  const noBody = method === "HEAD" || status === 204 || status === 304;
  if (bodyless && !noBody) return { status, reason: head.reason, headers, contentLength: 0, hasBody: false, bodyless };
  const contentLength = noBody && method !== "HEAD" ? -1 : head.chunked ? -1 : head.contentLength;
  return { status, reason: head.reason, headers, contentLength, hasBody: !noBody, bodyless };
}
