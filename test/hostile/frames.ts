// HTTP/2 frames written by hand (RFC 9113), because real clients will not send malformed
// ones, and a raw connection that reads back what the server answers frame by frame.
import net from "node:net";
import { Buffer } from "node:buffer";

export const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

export const Type = {
  DATA: 0, HEADERS: 1, PRIORITY: 2, RST_STREAM: 3, SETTINGS: 4, PUSH_PROMISE: 5, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9,
} as const;

export const Flag = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4, PADDED: 0x8, PRIORITY: 0x20 } as const;

export const ErrorCode = {
  NO_ERROR: 0, PROTOCOL_ERROR: 1, INTERNAL_ERROR: 2, FLOW_CONTROL_ERROR: 3, SETTINGS_TIMEOUT: 4, STREAM_CLOSED: 5,
  FRAME_SIZE_ERROR: 6, REFUSED_STREAM: 7, CANCEL: 8, COMPRESSION_ERROR: 9, CONNECT_ERROR: 10, ENHANCE_YOUR_CALM: 11,
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

/** A plaintext (h2c, prior knowledge) connection that records every frame the server sends. */
export class H2Connection {
  readonly frames: Frame[] = [];
  closed = false;
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
        if (last.type === Type.SETTINGS && !(last.flags & Flag.ACK) && this.socket.writable) this.socket.write(frame(Type.SETTINGS, Flag.ACK, 0));
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
