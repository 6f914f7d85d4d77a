// The request head sent upstream, from the request as routed: hop-by-hop fields dropped, the
// forwarding and tracing fields set, the direction's and the route's changes applied, then the
// framing and Host this proxy decides.
import type { Route } from "../config/schema.ts";
import { applyHeaderModifier, dropUnderscoredNames, forwardableHeaders, headerValue, removeHeader, setHeader } from "../http/headers.ts";
import type { UpstreamRequestHead } from "../upstream/exchange.ts";
import type { Transaction } from "./transaction.ts";

export function upstreamRequest(tx: Transaction, route: Route): UpstreamRequestHead {
  const { exchange: ex, ctx, request } = tx;
  const headers = forwardableHeaders(request.headers, ex.connectionTokens, ex.upgrade !== "");
  dropUnderscoredNames(headers);
  if (ex.upgrade) headers.push("connection", "upgrade");
  if (!headerValue(headers, "x-request-id")) headers.push("x-request-id", tx.requestId);
  const forwardedFor = headerValue(headers, "x-forwarded-for");
  removeHeader(headers, "x-forwarded-for");
  headers.push("x-forwarded-for", forwardedFor ? `${forwardedFor}, ${ex.peerAddress}` : ex.peerAddress);
  if (!headerValue(headers, "x-forwarded-proto")) headers.push("x-forwarded-proto", ex.peerTls ? "https" : "http");
  // The upstream's parent span is this proxy's span: same trace, new span id.
  const trace = ctx.telemetry.startTrace(
    ctx.direction,
    headerValue(headers, "traceparent"),
    headerValue(headers, "tracestate"),
    ex.startTime,
  );
  tx.trace = trace;
  setHeader(headers, "traceparent", trace.traceparent);
  if (trace.tracestate) setHeader(headers, "tracestate", trace.tracestate);
  else removeHeader(headers, "tracestate");
  ctx.decorate(headers, ex, tx.cluster);
  if (route.requestHeaders) applyHeaderModifier(headers, route.requestHeaders);
  if (tx.backend?.requestHeaders) applyHeaderModifier(headers, tx.backend.requestHeaders);
  // Framing and Host come last and from what this proxy read and routed by, never from a
  // header as the client, a filter or a route's modifier wrote it: a body of known length
  // gets exactly that Content-Length, any other is chunked, a body a filter has read is
  // sent whole with its (possibly new) length, and there is one Host.
  const read = tx.readBody;
  const chunked = !read && ex.hasRequestBody && ex.requestContentLength === -1;
  const sentLength = headerValue(request.headers, "content-length") !== undefined;
  removeHeader(headers, "content-length");
  removeHeader(headers, "transfer-encoding");
  if (chunked) headers.push("transfer-encoding", "chunked");
  else if (read) headers.push("content-length", String(read.body.length));
  else if (ex.hasRequestBody) headers.push("content-length", String(ex.requestContentLength));
  else if (sentLength) headers.push("content-length", "0");
  removeHeader(headers, "host");
  headers.unshift("host", request.authority);
  return {
    method: request.method,
    target: request.path,
    authority: request.authority,
    headers,
    chunked,
    hasBody: read ? read.body.length > 0 : ex.hasRequestBody,
  };
}
