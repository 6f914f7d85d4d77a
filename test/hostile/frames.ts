// HTTP/2 frames written by hand (RFC 9113), because real clients will not send malformed
// ones, and a raw connection that reads back what the server answers frame by frame.
import net from "node:net";
import { Buffer } from "node:buffer";

export const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

export const Type = {
  DATA: 0,
  HEADERS: 1,
  PRIORITY: 2,
  RST_STREAM: 3,
  SETTINGS: 4,
  PUSH_PROMISE: 5,
  PING: 6,
  GOAWAY: 7,
  WINDOW_UPDATE: 8,
  CONTINUATION: 9,
} as const;

export const Flag = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4, PADDED: 0x8, PRIORITY: 0x20 } as const;

export const ErrorCode = {
  NO_ERROR: 0,
  PROTOCOL_ERROR: 1,
  INTERNAL_ERROR: 2,
  FLOW_CONTROL_ERROR: 3,
  SETTINGS_TIMEOUT: 4,
  STREAM_CLOSED: 5,
  FRAME_SIZE_ERROR: 6,
  REFUSED_STREAM: 7,
  CANCEL: 8,
  COMPRESSION_ERROR: 9,
  CONNECT_ERROR: 10,
  ENHANCE_YOUR_CALM: 11,
} as const;

/** The name of an error code, for assertion messages. */
export function errorName(code: number): string {
  return Object.entries(ErrorCode).find(([, c]) => c === code)?.[0] ?? `0x${code.toString(16)}`;
}

export interface Frame {
  type: number;
  flags: number;
  stream: number;
  payload: Buffer;
}

/** One frame; `length` overrides the length field, to lie about the payload. */
export function frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0), length = payload.length): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream & 0x7fffffff, 5);
  return Buffer.concat([head, payload]);
}

export function settings(values: Record<number, number> = {}): Buffer {
  const entries = Object.entries(values);
  const payload = Buffer.alloc(entries.length * 6);
  entries.forEach(([id, value], i) => {
    payload.writeUInt16BE(Number(id), i * 6);
    payload.writeUInt32BE(value, i * 6 + 2);
  });
  return frame(Type.SETTINGS, 0, 0, payload);
}

export function u32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(value >>> 0);
  return b;
}

export const rstStream = (stream: number, code: number) => frame(Type.RST_STREAM, 0, stream, u32(code));

/** An HPACK integer with an n-bit prefix (RFC 7541 section 5.1). */
function hpackInt(value: number, prefixBits: number, firstByte: number): number[] {
  const max = (1 << prefixBits) - 1;
  if (value < max) return [firstByte | value];
  const out = [firstByte | max];
  value -= max;
  while (value >= 128) {
    out.push((value % 128) + 128);
    value = Math.floor(value / 128);
  }
  out.push(value);
  return out;
}

/** A header block of literal fields without indexing, names and values as they are (no Huffman). */
export function hpack(fields: [string, string][]): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of fields) {
    const n = Buffer.from(name, "latin1");
    const v = Buffer.from(value, "latin1");
    parts.push(Buffer.from([0x00, ...hpackInt(n.length, 7, 0)]), n, Buffer.from(hpackInt(v.length, 7, 0)), v);
  }
  return Buffer.concat(parts);
}

/** The fields of a GET to `path`, with more fields appended. */
export function requestFields(path: string, extra: [string, string][] = []): [string, string][] {
  return [[":method", "GET"], [":scheme", "http"], [":authority", "app"], [":path", path], ...extra];
}

export const headers = (stream: number, fields: [string, string][], flags: number = Flag.END_HEADERS | Flag.END_STREAM) =>
  frame(Type.HEADERS, flags, stream, hpack(fields));

export const data = (stream: number, payload: string, flags = 0) => frame(Type.DATA, flags, stream, Buffer.from(payload, "latin1"));

export const goaway = (lastStream: number, code: number) => frame(Type.GOAWAY, 0, 0, Buffer.concat([u32(lastStream), u32(code)]));

/** The :status values of the HPACK static table (RFC 7541 appendix A), by index. */
const STATIC_STATUS: Record<number, number> = { 8: 200, 9: 204, 10: 206, 11: 304, 12: 400, 13: 404, 14: 500 };

/**
 * The :status of a response's header block (servers put it first): an indexed static entry,
 * or a literal under the :status name. Anything else, such as a Huffman-coded status, is an
 * error that says so rather than a guess.
 */
function statusOf(block: Buffer): number {
  let i = 0;
  // Dynamic table size updates (001xxxxx) may come first.
  while ((block[i] & 0xe0) === 0x20) {
    i++;
    if ((block[i - 1] & 0x1f) === 0x1f) while (block[i++] & 0x80);
  }
  const first = block[i];
  if (first & 0x80) {
    const status = STATIC_STATUS[first & 0x7f];
    if (status === undefined) throw new Error(`the response's first field is static entry ${first & 0x7f}, not a :status`);
    return status;
  }
  const name = first & 0x40 ? first & 0x3f : first & 0x0f;
  const length = block[i + 1];
  if (STATIC_STATUS[name] === undefined || length & 0x80)
    throw new Error(`cannot decode the response's first field (0x${block.subarray(i, i + 2).toString("hex")})`);
  return Number(block.subarray(i + 2, i + 2 + length).toString("latin1"));
}

/** A HEADERS frame's header block, without its padding and priority fields. */
function headerBlock(f: Frame): Buffer {
  const padded = (f.flags & Flag.PADDED) !== 0;
  const start = (padded ? 1 : 0) + (f.flags & Flag.PRIORITY ? 5 : 0);
  return f.payload.subarray(start, f.payload.length - (padded ? f.payload[0] : 0));
}

/** A plaintext (h2c, prior knowledge) connection that records every frame the server sends. */
export class H2Connection {
  readonly frames: Frame[] = [];
  closed = false;
  private readonly chunks: Buffer[] = [];
  private readonly socket: net.Socket;
  private pending = Buffer.alloc(0);
  private readonly ready: Promise<void>;
  private readonly waiters = new Set<() => void>();

  private constructor(port: number) {
    this.socket = net.connect(port, "127.0.0.1");
    this.ready = new Promise((resolve, reject) => {
      this.socket.once("connect", () => resolve());
      this.socket.once("error", reject);
    });
    this.socket.on("error", () => {}); // a reset is how some servers end a bad connection
    this.socket.on("data", (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.pending = Buffer.concat([this.pending, chunk]);
      while (this.pending.length >= 9) {
        const length = this.pending.readUIntBE(0, 3);
        if (this.pending.length < 9 + length) break;
        this.frames.push({
          type: this.pending[3],
          flags: this.pending[4],
          stream: this.pending.readUInt32BE(5) & 0x7fffffff,
          payload: this.pending.subarray(9, 9 + length),
        });
        this.pending = this.pending.subarray(9 + length);
        // Acknowledge the server's settings, as every client must, or it may time us out.
        const last = this.frames[this.frames.length - 1];
        if (last.type === Type.SETTINGS && !(last.flags & Flag.ACK) && this.socket.writable)
          this.socket.write(frame(Type.SETTINGS, Flag.ACK, 0));
      }
      this.wake();
    });
    this.socket.on("close", () => {
      this.closed = true;
      this.wake();
    });
  }

  /** Connects and sends the preface and an empty SETTINGS frame unless `preface` says otherwise. */
  static async open(port: number, preface: Buffer = Buffer.concat([PREFACE, settings()])): Promise<H2Connection> {
    const c = new H2Connection(port);
    await c.ready;
    if (preface.length) c.socket.write(preface);
    return c;
  }

  private wake(): void {
    for (const w of this.waiters) w();
  }

  /** Writes bytes; false when the socket is gone or must drain first. */
  send(...chunks: Buffer[]): boolean {
    if (!this.socket.writable) return false;
    return this.socket.write(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks));
  }

  /** Writes and waits for the socket to take the bytes, so a flood cannot buffer without bound here. */
  async sendPaced(chunk: Buffer): Promise<boolean> {
    if (this.send(chunk)) return true;
    if (!this.socket.writable) return false;
    await Promise.race([new Promise((r) => this.socket.once("drain", r)), new Promise((r) => this.socket.once("close", r))]);
    return this.socket.writable;
  }

  /** Waits until `done()` holds (checked on every frame and on close); false after `timeoutMs`. */
  private async until(done: () => boolean, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!done()) {
      if (Date.now() >= deadline) return false;
      await new Promise<void>((resolve) => {
        const wake = () => {
          this.waiters.delete(wake);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(wake, deadline - Date.now());
        this.waiters.add(wake);
      });
    }
    return true;
  }

  /** The first frame that matches, or null when the connection closed or `timeoutMs` passed without one. */
  async waitFor(match: (f: Frame) => boolean, timeoutMs = 5000): Promise<Frame | null> {
    await this.until(() => this.closed || this.frames.some(match), timeoutMs);
    return this.frames.find(match) ?? null;
  }

  /** The GOAWAY the server sent (its error code), waiting for it up to `timeoutMs`. */
  async goaway(timeoutMs = 5000): Promise<number | null> {
    const f = await this.waitFor((x) => x.type === Type.GOAWAY, timeoutMs);
    return f ? f.payload.readUInt32BE(4) : null;
  }

  /** The RST_STREAM the server sent for `stream` (its error code). */
  async reset(stream: number, timeoutMs = 5000): Promise<number | null> {
    const f = await this.waitFor((x) => x.type === Type.RST_STREAM && x.stream === stream, timeoutMs);
    return f ? f.payload.readUInt32BE(0) : null;
  }

  /**
   * The response on `stream` once it ended: its :status and body. Null when the stream was
   * reset, the connection closed, or `timeoutMs` passed first.
   */
  async response(stream: number, timeoutMs = 5000): Promise<{ status: number; body: string } | null> {
    const last = (f: Frame) =>
      f.stream === stream &&
      (f.type === Type.RST_STREAM || ((f.type === Type.DATA || f.type === Type.HEADERS) && (f.flags & Flag.END_STREAM) !== 0));
    const end = await this.waitFor(last, timeoutMs);
    if (!end || end.type === Type.RST_STREAM) return null;
    const mine = this.frames.filter((f) => f.stream === stream);
    const head = mine.find((f) => f.type === Type.HEADERS);
    if (!head) return null;
    const body = Buffer.concat(mine.filter((f) => f.type === Type.DATA).map((f) => f.payload)).toString("latin1");
    return { status: statusOf(headerBlock(head)), body };
  }

  /** Every byte the server sent, as it came: an HTTP/1.1 answer shows here, not as frames. */
  get received(): Buffer {
    return Buffer.concat(this.chunks);
  }

  /** Waits until the server closes the connection; false if it still has not after `timeoutMs`. */
  waitClosed(timeoutMs = 5000): Promise<boolean> {
    return this.until(() => this.closed, timeoutMs);
  }

  /** Stops reading what the server sends, as a client that floods and never reads would. */
  stopReading(): void {
    this.socket.pause();
  }

  close(): void {
    this.socket.destroy();
  }
}
