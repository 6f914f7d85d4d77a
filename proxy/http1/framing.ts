// Decodes an HTTP/1.1 message body from the byte stream: by Content-Length, chunked, or
// until the connection closes. It hands out decoded data and tells exactly where the
// message ends, so the next message on a kept-alive connection starts at the right byte.
import { Buffer } from "node:buffer";
import type { BodySink } from "../http/exchange.ts";
import { ProtocolError } from "../http/protocol-error.ts";
import { parseFieldLine } from "./head.ts";

const ChunkState = {
  SIZE: 0,
  EXT: 1,
  SIZE_LF: 2,
  DATA: 3,
  DATA_CR: 4,
  DATA_LF: 5,
  TRAILER: 6,
  TRAILER_LF: 7,
  DONE: 8,
  /** Whitespace after the size, allowed only before a ";" extension (RFC 9112 section 7.1.1: BWS). */
  SIZE_BWS: 9,
} as const;

const MAX_CHUNK_SIZE_DIGITS = 13; // 2^52 > 16^13: large enough, never loses precision
const MAX_TRAILER_BYTES = 16384;
// Fields that frame or route a message may not come after it (RFC 9110 section 6.5.1): a
// peer that merges trailers into the head would read the message differently from us.
const NOT_IN_TRAILERS = new Set(["content-length", "transfer-encoding", "host", "trailer"]);

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

export type BodyMode = "none" | "length" | "chunked" | "close";

/** The error for a request body over limits.maxRequestBodyBytes, for HTTP/1.1 and HTTP/2 alike. */
export class BodyDecoder {
  readonly mode: BodyMode;
  done: boolean;
  /** Decoded bytes delivered so far. */
  received = 0;
  private remaining: number;
  private state: number = ChunkState.SIZE;
  private digits = 0;
  private trailerLine = "";
  private trailerBytes = 0;
  private trailers: string[] | null = null;
  private readonly sink: BodySink;

  constructor(mode: BodyMode, contentLength: number, sink: BodySink) {
    this.mode = mode;
    this.sink = sink;
    this.remaining = mode === "length" ? contentLength : 0;
    this.done = mode === "none" || (mode === "length" && contentLength === 0);
  }

  /** Signals a zero-length body's end; call once right after construction when `done`. */
  finishEmpty(): void {
    this.sink.end(null);
  }

  /**
   * Consumes body bytes from buf[start..]. Returns the offset just past the last byte that
   * belonged to this body (bytes after it belong to the next message).
   */
  push(buf: Buffer, start: number): number {
    if (this.done) return start;
    if (this.mode === "close") {
      if (start < buf.length) this.deliver(start === 0 ? buf : buf.subarray(start));
      return buf.length;
    }
    if (this.mode === "length") {
      const take = Math.min(this.remaining, buf.length - start);
      if (take > 0) this.deliver(start === 0 && take === buf.length ? buf : buf.subarray(start, start + take));
      this.remaining -= take;
      if (this.remaining === 0) this.finish();
      return start + take;
    }
    return this.pushChunked(buf, start);
  }

  /** The connection closed: only a close-delimited body ends well this way. */
  closed(): void {
    if (this.done) return;
    if (this.mode === "close") {
      this.finish();
      return;
    }
    throw new ProtocolError("connection closed before the message body was complete", 502);
  }

  private deliver(chunk: Buffer) {
    this.received += chunk.length;
    this.sink.data(chunk);
  }

  private finish() {
    this.done = true;
    this.state = ChunkState.DONE;
    this.sink.end(this.trailers);
  }

  private pushChunked(buf: Buffer, start: number): number {
    let i = start;
    const n = buf.length;
    while (i < n && !this.done) {
      const c = buf[i];
      switch (this.state) {
        case ChunkState.SIZE: {
          const h = hexValue(c);
          if (h >= 0) {
            if (++this.digits > MAX_CHUNK_SIZE_DIGITS) throw new ProtocolError("chunk size too large");
            this.remaining = this.remaining * 16 + h;
            i++;
          } else if (this.digits === 0) {
            throw new ProtocolError("invalid chunk size");
          } else if (c === 13) {
            this.state = ChunkState.SIZE_LF;
            i++;
          } else if (c === 59 /* ; */) {
            this.state = ChunkState.EXT;
            i++;
          } else if (c === 32 || c === 9) {
            this.state = ChunkState.SIZE_BWS;
            i++;
          } else {
            throw new ProtocolError("invalid chunk size");
          }
          break;
        }
        case ChunkState.SIZE_BWS:
          // "5 junk" is not an extension: a parser that stops at the space reads another size.
          if (c === 59 /* ; */) this.state = ChunkState.EXT;
          else if (c === 13) this.state = ChunkState.SIZE_LF;
          else if (c !== 32 && c !== 9) throw new ProtocolError('invalid chunk size (only ";" may follow whitespace after it)');
          i++;
          break;
        case ChunkState.EXT:
          // Chunk extensions are ignored but may not smuggle line breaks or control characters.
          if (c === 13) this.state = ChunkState.SIZE_LF;
          else if ((c < 32 && c !== 9) || c === 127) throw new ProtocolError("invalid chunk extension");
          i++;
          break;
        case ChunkState.SIZE_LF:
          if (c !== 10) throw new ProtocolError("chunk size line not ended by CRLF");
          i++;
          this.digits = 0;
          this.state = this.remaining === 0 ? ChunkState.TRAILER : ChunkState.DATA;
          break;
        case ChunkState.DATA: {
          const take = Math.min(this.remaining, n - i);
          this.deliver(buf.subarray(i, i + take));
          i += take;
          this.remaining -= take;
          if (this.remaining === 0) this.state = ChunkState.DATA_CR;
          break;
        }
        case ChunkState.DATA_CR:
          if (c !== 13) throw new ProtocolError("chunk data not followed by CRLF");
          this.state = ChunkState.DATA_LF;
          i++;
          break;
        case ChunkState.DATA_LF:
          if (c !== 10) throw new ProtocolError("chunk data not followed by CRLF");
          this.state = ChunkState.SIZE;
          i++;
          break;
        case ChunkState.TRAILER: {
          // Read one trailer line up to CR.
          const cr = buf.indexOf(13, i);
          const end = cr === -1 ? n : cr;
          this.trailerLine += buf.toString("latin1", i, end);
          this.trailerBytes += end - i;
          if (this.trailerBytes > MAX_TRAILER_BYTES) throw new ProtocolError("trailer section too large", 431);
          i = end;
          if (cr !== -1) {
            this.state = ChunkState.TRAILER_LF;
            i++;
          }
          break;
        }
        case ChunkState.TRAILER_LF: {
          if (c !== 10) throw new ProtocolError("trailer line not ended by CRLF");
          i++;
          const line = this.trailerLine;
          this.trailerLine = "";
          if (line === "") {
            this.finish();
          } else {
            const [name, value] = parseFieldLine(line);
            if (NOT_IN_TRAILERS.has(name.toLowerCase())) throw new ProtocolError(`${name} is not allowed in trailers`);
            (this.trailers ??= []).push(name, value);
            this.state = ChunkState.TRAILER;
          }
          break;
        }
      }
    }
    return i;
  }
}

/** Frames one decoded chunk for a chunked body. */
export function encodeChunk(data: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${data.length.toString(16)}\r\n`, "latin1"), data, CRLF]);
}

const CRLF = Buffer.from("\r\n", "latin1");

export function encodeLastChunk(trailers: string[] | null): Buffer {
  let text = "0\r\n";
  if (trailers) for (let i = 0; i < trailers.length; i += 2) text += `${trailers[i]}: ${trailers[i + 1]}\r\n`;
  return Buffer.from(`${text}\r\n`, "latin1");
}
