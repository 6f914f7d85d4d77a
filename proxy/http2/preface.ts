// The client connection preface that opens HTTP/2 (RFC 9113 section 3.4), and telling it
// apart from HTTP/1.1 on a port that serves both.
import type { Buffer } from "node:buffer";

/** The client preface that opens HTTP/2 with prior knowledge (h2c). */
export const PREFACE = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/** "PRI * HTTP/2.0\r\n": past these bytes, the client can only mean HTTP/2. */
const REQUEST_LINE_LENGTH = 16;

/**
 * "h2": the bytes are the h2c preface; "more": they could still become it; "bad": they
 * began as the preface and then diverged, which is an HTTP/2 connection error (close it,
 * never answer in HTTP/1.1); "no": not h2.
 */
export function sniffPreface(buf: Buffer): "h2" | "more" | "bad" | "no" {
  const n = Math.min(buf.length, PREFACE.length);
  for (let i = 0; i < n; i++) if (buf[i] !== PREFACE.charCodeAt(i)) return i < REQUEST_LINE_LENGTH ? "no" : "bad";
  return n === PREFACE.length ? "h2" : "more";
}
