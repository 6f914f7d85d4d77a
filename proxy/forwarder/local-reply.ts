// Every answer the proxy makes itself: an error of the request path (no route, refused, timed
// out, upstream failed: plain text, or trailers-only for gRPC clients) and a filter's local
// reply. Each is first a LocalResponse, which the response phases of the filters whose request
// phases ran may see and change (stages/filter-response.ts), then goes out whole. Once a
// response head has gone out nothing can be answered: the exchange is reset.
import { Buffer } from "node:buffer";
import type { LocalReply } from "../filters/message.ts";
import type { ServerExchange } from "../http/exchange.ts";
import { diagnosticHeaderValue, headerValue } from "../http/headers.ts";

/** A local reply before it is sent: its head and its whole body. */
export interface LocalResponse {
  status: number;
  headers: string[];
  /** The whole body; for HEAD, what a GET would get (its length is the content-length). */
  body: Buffer;
  /** gRPC's trailers-only answer: the head alone (HTTP 200, grpc-status), ending the stream. */
  trailersOnly: boolean;
  /** The status telemetry records: the error's for a trailers-only answer, which goes out as 200. */
  recorded: number;
}

// HTTP status of a local reply → gRPC status, as gRPC's HTTP mapping prescribes.
function grpcStatusOf(status: number): number {
  if (status === 400) return 13; // INTERNAL
  if (status === 401) return 16; // UNAUTHENTICATED
  if (status === 403) return 7; // PERMISSION_DENIED
  if (status === 404) return 12; // UNIMPLEMENTED
  if (status === 429 || status === 502 || status === 503 || status === 504) return 14; // UNAVAILABLE
  return 2; // UNKNOWN
}

/** An error as a response: `message` in the body and in x-weft-error. */
export function errorResponse(exchange: ServerExchange, status: number, message: string, extraHeaders: string[]): LocalResponse {
  const contentType = headerValue(exchange.headers, "content-type") ?? "";
  if (exchange.protocol === "HTTP/2" && contentType.startsWith("application/grpc")) {
    // gRPC clients read errors from grpc-status: answer "trailers-only".
    const headers = [
      "content-type",
      "application/grpc",
      "grpc-status",
      String(grpcStatusOf(status)),
      "grpc-message",
      encodeURIComponent(message),
      "x-weft-error",
      diagnosticHeaderValue(message),
      ...extraHeaders,
    ];
    return { status: 200, headers, body: Buffer.alloc(0), trailersOnly: true, recorded: status };
  }
  const headers = ["content-type", "text/plain; charset=utf-8", "x-weft-error", diagnosticHeaderValue(message), ...extraHeaders];
  return { status, headers, body: Buffer.from(`${message}\n`), trailersOnly: false, recorded: status };
}

/** A filter's local reply (or its failStrategy's), with the request's id. */
export function filterResponse(reply: LocalReply, requestId: string): LocalResponse {
  const headers = reply.headers.slice();
  if (reply.body.length > 0 && !headerValue(headers, "content-type")) headers.push("content-type", "text/plain; charset=utf-8");
  if (!headerValue(headers, "x-request-id")) headers.push("x-request-id", requestId);
  const body = Buffer.from(reply.body.buffer, reply.body.byteOffset, reply.body.byteLength);
  return { status: reply.status, headers, body, trailersOnly: false, recorded: reply.status };
}

/** Sends a local reply, framed for the request's method and the status (or resets once a head has gone out). */
export function sendLocal(exchange: ServerExchange, reply: LocalResponse): void {
  if (exchange.headSent) {
    exchange.reset();
    return;
  }
  if (reply.trailersOnly) {
    exchange.sendHead(reply.status, "", reply.headers, 0, false);
    exchange.sendEnd(null);
    return;
  }
  const head = exchange.method === "HEAD";
  const hasBody = !head && reply.status !== 204 && reply.status !== 304;
  exchange.sendHead(reply.status, "", reply.headers, hasBody || head ? reply.body.length : 0, hasBody);
  if (hasBody && reply.body.length > 0) exchange.sendData(reply.body);
  exchange.sendEnd(null);
}
