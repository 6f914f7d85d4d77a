// A body collected whole for a filter's body phase, up to the smallest body buffer of the
// filters that read it.
import { Buffer } from "node:buffer";
import type { Filter } from "../filters/filter.ts";

export class BodyBuffer {
  readonly limit: number;
  private chunks: Buffer[] = [];
  length = 0;

  constructor(filters: readonly Filter[], phase: "on_request_body" | "on_response_body") {
    let limit = Infinity;
    for (const f of filters) if (f.handles(phase)) limit = Math.min(limit, f.config.limits.bodyBytes);
    this.limit = limit;
  }

  /** false once the body is over the limit. */
  add(chunk: Buffer): boolean {
    this.chunks.push(chunk);
    this.length += chunk.length;
    return this.length <= this.limit;
  }

  take(): Buffer {
    const body = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.length);
    this.chunks = [];
    return body;
  }
}
