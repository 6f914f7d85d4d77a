// Stage 2: the request phases of the WebAssembly filters attached to this request (headers,
// then the whole body if one of them reads it). They may change the request before it is
// routed, or answer it. Their response phases wrap the response, and see the local replies
// made from here on (filter-response.ts).
import { Buffer } from "node:buffer";
import { anyHandles, runPhaseOver } from "../../filters/chain.ts";
import type { FilterMessage } from "../../filters/message.ts";
import { authorityPort } from "../../filters/request-port.ts";
import { pathOf } from "../../http/target.ts";
import { BodyBuffer } from "../body-buffer.ts";
import type { Transaction } from "../transaction.ts";
import { FilterResponse } from "./filter-response.ts";

export function filters(tx: Transaction): void {
  const { ctx, exchange } = tx;
  if (ctx.filters.filters.length === 0) {
    tx.next();
    return;
  }
  const selected = ctx.filters.select({
    direction: ctx.direction === "inbound" ? "Inbound" : "Outbound",
    port: ctx.port ?? authorityPort(exchange.authority),
    method: exchange.method,
    path: pathOf(exchange.target),
  });
  if (selected.length === 0) {
    tx.next();
    return;
  }
  tx.request = { ...tx.request, headers: exchange.headers.slice() };
  const message: FilterMessage = {
    phase: "on_request_headers",
    request: tx.request,
    response: null,
    body: null,
    attributes: {
      direction: ctx.direction,
      sourceAddress: exchange.peerAddress,
      sourcePrincipal: ctx.describe(exchange, null, "").source.principal,
      requestId: tx.requestId,
    },
    reply: null,
  };
  // Set before the request phases run, so that a filter's reply passes the response phases of the filters before it.
  const response =
    anyHandles(selected, "on_response_headers") || anyHandles(selected, "on_response_body")
      ? new FilterResponse(tx, selected, message, tx.response)
      : null;
  tx.localReplies = response;
  const made = runPhaseOver(selected, selected.length, "on_request_headers", message);
  if (made) {
    tx.replyWith(made.reply, made.at);
    return;
  }
  if (response) tx.response = response;
  if (!anyHandles(selected, "on_request_body")) {
    tx.next();
    return;
  }
  const buffer = new BodyBuffer(selected, "on_request_body");
  exchange.readRequestBody({
    data: (chunk) => {
      if (tx.done || buffer.add(chunk)) return;
      tx.reply(
        413,
        `the request body is larger than ${buffer.limit} bytes, the body buffer of the filters attached to this request (limits.bodyBytes)`,
        "",
      );
    },
    end: (trailers) => {
      if (tx.done) return;
      message.body = buffer.take();
      const bodyMade = runPhaseOver(selected, selected.length, "on_request_body", message);
      if (bodyMade) {
        tx.replyWith(bodyMade.reply, bodyMade.at);
        return;
      }
      tx.readBody = { body: Buffer.from(message.body.buffer, message.body.byteOffset, message.body.byteLength), trailers };
      message.body = null;
      tx.next();
    },
  });
}
