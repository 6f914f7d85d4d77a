// The response phases of the filters attached to a request, in reverse chain order: they see
// the head (and, when one reads it, the whole body, so the head waits for it) and may change
// them or answer instead. Local replies pass them too (docs/filter-abi.md#local-replies-and-response-phases):
// a reply made at a point of the request path goes back through the response phases of the
// filters before that point, as a response from there would: the filter that made it and those
// after it never see it, and no filter sees two responses for one request. Replies made before
// the filters stage (the access check's 403) pass no filter: the transaction has no path yet.
import { Buffer } from "node:buffer";
import { anyHandles, runPhaseOver } from "../../filters/chain.ts";
import type { Filter } from "../../filters/filter.ts";
import type { FilterMessage } from "../../filters/message.ts";
import { BodyBuffer } from "../body-buffer.ts";
import { filterResponse, type LocalResponse } from "../local-reply.ts";
import type { ResponseOut, ResponseSink } from "../response.ts";
import type { LocalReplyPath, Transaction } from "../transaction.ts";

export class FilterResponse implements ResponseSink, LocalReplyPath {
  private readonly tx: Transaction;
  private readonly filters: readonly Filter[];
  private readonly message: FilterMessage;
  private readonly next: ResponseSink;
  /** The head held back for the body phase, and the body collected for it. */
  private held: ResponseOut | null = null;
  private body: BodyBuffer | null = null;
  /** A response head has reached the response phases: from here on every filter has seen one. */
  private responding = false;

  constructor(tx: Transaction, filters: readonly Filter[], message: FilterMessage, next: ResponseSink) {
    this.tx = tx;
    this.filters = filters;
    this.message = message;
    this.next = next;
  }

  head(out: ResponseOut): void {
    this.responding = true;
    // A 101's connection becomes a tunnel: there is no response for filters to see.
    if (out.status === 101) {
      this.next.head(out);
      return;
    }
    const message = this.message;
    message.response = { status: out.status, headers: out.headers };
    const made = runPhaseOver(this.filters, this.filters.length, "on_response_headers", message);
    if (made) {
      // The filters after it in reverse order (before it in the chain) have seen nothing yet.
      this.tx.replyWith(made.reply, made.at);
      return;
    }
    const status = message.response.status;
    const head = { ...out, status, reason: status === out.status ? out.reason : "", headers: message.response.headers };
    if (anyHandles(this.filters, "on_response_body") && !out.bodyless) {
      this.held = head;
      this.body = new BodyBuffer(this.filters, "on_response_body");
      return;
    }
    this.next.head(head);
  }

  data(chunk: Buffer): boolean {
    const body = this.body;
    if (!body) return this.next.data(chunk);
    if (!body.add(chunk))
      this.tx.reply(
        502,
        `the response body is larger than ${body.limit} bytes, the body buffer of the filters attached to this request (limits.bodyBytes)`,
        "",
      );
    return true;
  }

  end(trailers: string[] | null): void {
    const held = this.held;
    if (!held || !this.body) {
      this.next.end(trailers);
      return;
    }
    const message = this.message;
    message.response = { status: held.status, headers: held.headers };
    message.body = this.body.take();
    const made = runPhaseOver(this.filters, this.filters.length, "on_response_body", message);
    if (made) {
      // Every filter's on_response_headers has seen the upstream's head: the reply goes out as it is.
      this.tx.replyWith(made.reply, 0);
      return;
    }
    const { status, headers } = message.response;
    const out = Buffer.from(message.body.buffer, message.body.byteOffset, message.body.byteLength);
    const hasBody = this.tx.exchange.method !== "HEAD" && status !== 204 && status !== 304;
    this.next.head({
      status,
      reason: status === held.status ? held.reason : "",
      headers,
      contentLength: out.length,
      hasBody,
      bodyless: false,
    });
    if (hasBody && out.length > 0) this.next.data(out);
    this.next.end(trailers);
  }

  /**
   * A local reply through the response phases of the filters before `madeAt` (every filter for
   * the proxy's own replies, none once a response has reached the response phases). A filter
   * that answers it in turn replaces it, and its reply goes on through the filters before it.
   */
  pass(reply: LocalResponse, madeAt?: number): LocalResponse {
    let reach = madeAt ?? (this.responding ? 0 : this.filters.length);
    this.responding = true;
    const message = this.message;
    while (reach > 0) {
      message.reply = null;
      message.body = null;
      message.response = { status: reply.status, headers: reply.headers };
      const made = runPhaseOver(this.filters, reach, "on_response_headers", message);
      if (made) {
        reply = filterResponse(made.reply, this.tx.requestId);
        reach = made.at;
        continue;
      }
      let body = reply.body;
      if (!reply.trailersOnly && anyHandles(this.filters, "on_response_body", reach)) {
        message.body = new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
        const bodyMade = runPhaseOver(this.filters, reach, "on_response_body", message);
        if (bodyMade) {
          reply = filterResponse(bodyMade.reply, this.tx.requestId);
          break;
        }
        body = Buffer.from(message.body.buffer, message.body.byteOffset, message.body.byteLength);
      }
      const { status, headers } = message.response;
      message.body = null;
      return { status, headers, body, trailersOnly: reply.trailersOnly, recorded: status === reply.status ? reply.recorded : status };
    }
    return reply;
  }
}
