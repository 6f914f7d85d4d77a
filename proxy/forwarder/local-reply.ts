// Every answer the proxy makes itself: an error of the request path (no route, refused, timed
// out, upstream failed: plain text, or trailers-only for gRPC clients) and a filter's local
// reply. Once a response head has gone out nothing can be answered: the exchange is reset.
import { Buffer } from "node:buffer";
import type { LocalReply } from "../filters/message.ts";
import type { ServerExchange } from "../http/exchange.ts";
import { diagnosticHeaderValue, headerValue } from "../http/headers.ts";

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
export function errorReply(exchange: ServerExchange, status: number, message: string, extraHeaders: string[]): void {
  if (exchange.headSent) {
    exchange.reset();
    return;
  }
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
    exchange.sendHead(200, "", headers, 0, false);
    exchange.sendEnd(null);
    return;
  }
  const body = Buffer.from(`${message}\n`);
  exchange.sendHead(
    status,
    "",
    ["content-type", "text/plain; charset=utf-8", "x-weft-error", diagnosticHeaderValue(message), ...extraHeaders],
    body.length,
    exchange.method !== "HEAD",
  );
  if (exchange.method !== "HEAD") exchange.sendData(body);
  exchange.sendEnd(null);
}

/** A filter's local reply (or its failStrategy's), with the request's id. */
export function filterReply(exchange: ServerExchange, reply: LocalReply, requestId: string): void {
  if (exchange.headSent) {
    exchange.reset();
    return;
  }
  const headers = reply.headers.slice();
  if (reply.body.length > 0 && !headerValue(headers, "content-type")) headers.push("content-type", "text/plain; charset=utf-8");
  if (!headerValue(headers, "x-request-id")) headers.push("x-request-id", requestId);
  const hasBody = exchange.method !== "HEAD" && reply.status !== 204 && reply.status !== 304;
  exchange.sendHead(reply.status, "", headers, hasBody || exchange.method === "HEAD" ? reply.body.length : 0, hasBody);
  if (hasBody && reply.body.length > 0) exchange.sendData(Buffer.from(reply.body.buffer, reply.body.byteOffset, reply.body.byteLength));
  exchange.sendEnd(null);
}
