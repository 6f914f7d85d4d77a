// The response phases of the filters attached to a request, in reverse chain order: they see
// the head (and, when one reads it, the whole body, so the head waits for it) and may change
// them or answer instead.
import { Buffer } from "node:buffer";
import { anyHandles, runPhase } from "../../filters/chain.ts";
import type { Filter } from "../../filters/filter.ts";
import type { FilterMessage } from "../../filters/message.ts";
import { BodyBuffer } from "../body-buffer.ts";
import type { ResponseOut, ResponseSink } from "../response.ts";
import type { Transaction } from "../transaction.ts";

export class FilterResponse implements ResponseSink {
  private readonly tx: Transaction;
  private readonly filters: readonly Filter[];
  private readonly message: FilterMessage;
  private readonly next: ResponseSink;
  /** The head held back for the body phase, and the body collected for it. */
  private held: ResponseOut | null = null;
  private body: BodyBuffer | null = null;

  constructor(tx: Transaction, filters: readonly Filter[], message: FilterMessage, next: ResponseSink) {
    this.tx = tx;
    this.filters = filters;
    this.message = message;
    this.next = next;
  }

  head(out: ResponseOut): void {
    // A 101's connection becomes a tunnel: there is no response for filters to see.
    if (out.status === 101) {
      this.next.head(out);
      return;
    }
    const message = this.message;
    message.response = { status: out.status, headers: out.headers };
    const reply = runPhase(this.filters, "on_response_headers", message);
    if (reply) {
      this.tx.replyWith(reply);
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
    const reply = runPhase(this.filters, "on_response_body", message);
    if (reply) {
      this.tx.replyWith(reply);
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
}
