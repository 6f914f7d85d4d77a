// Raw HTTP/1.1 on a socket: sends exactly the bytes a case wants (which no client library
// would) and reads back everything the proxy answers, until it closes the connection.
import net from "node:net";
import { Buffer } from "node:buffer";
import assert from "node:assert/strict";
import { readChunked } from "../support/chunked.ts";

export interface RawResponse {
  status: number;
  /** Lower-cased names. */
  headers: Record<string, string>;
  body: string;
}

export interface RawReply {
  /** Everything the proxy sent, as latin1. */
  text: string;
  /** The proxy closed the connection (rather than the wait running out). */
  closed: boolean;
  /** The complete responses in `text`, in order. */
  responses: RawResponse[];
  /** Their status codes. */
  statuses: number[];
}

/** Splits what a server sent into responses, each framed as RFC 9112 section 6.3 says. */
export function parseResponses(text: string): RawResponse[] {
  const out: RawResponse[] = [];
  let at = 0;
  for (;;) {
    const end = text.indexOf("\r\n\r\n", at);
    if (end === -1) return out;
    const [statusLine, ...lines] = text.slice(at, end).split("\r\n");
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1]);
    if (!status) return out;
    const headers: Record<string, string> = {};
    for (const line of lines) headers[line.slice(0, line.indexOf(":")).toLowerCase()] = line.slice(line.indexOf(":") + 1).trim();
    let body = "";
    at = end + 4;
    if (status >= 100 && status < 200) {
      // interim: no body
    } else if (headers["content-length"] !== undefined) {
      const length = Number(headers["content-length"]);
      if (text.length < at + length) return out;
      body = text.slice(at, at + length);
      at += length;
    } else if (headers["transfer-encoding"] === "chunked") {
      const chunked = readChunked(text, at);
      if (chunked === null || chunked === "bad") return out;
      ({ body, end: at } = chunked);
    } else {
      body = text.slice(at);
      at = text.length;
    }
    out.push({ status, headers, body });
  }
}

export interface RawOptions {
  /** Give up waiting for the proxy to close after this long (the connection is then destroyed). */
  waitMs?: number;
  /** Stop as soon as this holds for what arrived so far. */
  until?: (text: string) => boolean;
  /** Pause between writes. */
  gapMs?: number;
  /** Keep writing after the proxy has ended its side, as a client that ignores the close would. */
  halfOpen?: boolean;
}

/** Sends `writes` on a fresh connection, one write each, and collects the answer. */
export function sendRaw(port: number, writes: string | (string | Buffer)[], options: RawOptions = {}): Promise<RawReply> {
  const { waitMs = 5000, until, gapMs = 0, halfOpen = false } = options;
  const parts = typeof writes === "string" ? [writes] : writes;
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: "127.0.0.1", allowHalfOpen: halfOpen });
    let text = "";
    let settled = false;
    const finish = (closed: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      const responses = parseResponses(text);
      resolve({ text, closed, responses, statuses: responses.map((r) => r.status) });
    };
    const timer = setTimeout(() => finish(false), waitMs);
    socket.on("data", (d: Buffer) => {
      text += d.toString("latin1");
      if (until?.(text)) finish(false);
    });
    socket.on("error", (e: NodeJS.ErrnoException) => {
      // A reset after the proxy's answer still counts as the proxy closing the connection.
      if (e.code === "ECONNRESET" || e.code === "EPIPE") finish(true);
      else if (!settled) {
        settled = true;
        clearTimeout(timer);
        reject(e);
      }
    });
    socket.on("close", () => finish(true));
    socket.on("connect", async () => {
      for (const part of parts) {
        if (settled || !socket.writable) return;
        socket.write(typeof part === "string" ? Buffer.from(part, "latin1") : part);
        if (gapMs > 0) await new Promise((r) => setTimeout(r, gapMs));
      }
    });
  });
}

/** The proxy answered exactly one `status` whose x-weft-error matches `reason`, and closed the connection. */
export function assertRefused(reply: RawReply, status: number, reason: RegExp): void {
  assert.deepEqual(reply.statuses, [status], `expected one ${status} response, got:\n${reply.text.slice(0, 500)}`);
  assert.match(reply.responses[0].headers["x-weft-error"] ?? "", reason);
  assert.ok(reply.closed, "the proxy should close the connection after refusing a request");
}
