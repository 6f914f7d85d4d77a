// Vets what an HTTP/2 client sends before the runtime's node:http2 sees it. Deno's
// node:http2 (nghttp2 behind its own binding) aborts the whole process, in nghttp2's
// find_stream_on_goaway_func assertion or a double free, when it takes a client's GOAWAY
// on a session that has served a few hundred streams, and it can when it ends a session
// over a client's error (docs/design/http2.md). So node:http2 never sees a client's GOAWAY,
// and every connection error that a frame header and a few payload bytes reveal is answered
// here: a GOAWAY of ours, then the connection is closed, and the offending frame is never
// passed on. Errors that need stream, flow-control or HPACK state stay with node:http2.
// Only Deno reads through this (downstream.ts says why the others do not).
import { Duplex } from "node:stream";
import { Buffer } from "node:buffer";
import { setImmediate } from "node:timers";
import { PREFACE } from "./preface.ts";

/** The largest frame a client may send: the protocol default, which the server advertises (downstream.ts). */
export const MAX_FRAME_SIZE = 16384;

const HEADER_LENGTH = 9;

// RFC 9113 section 6.
const DATA = 0;
const HEADERS = 1;
const PRIORITY = 2;
const RST_STREAM = 3;
const SETTINGS = 4;
const PUSH_PROMISE = 5;
const PING = 6;
const GOAWAY = 7;
const WINDOW_UPDATE = 8;
const CONTINUATION = 9;
const TYPE_NAMES = [
  "DATA",
  "HEADERS",
  "PRIORITY",
  "RST_STREAM",
  "SETTINGS",
  "PUSH_PROMISE",
  "PING",
  "GOAWAY",
  "WINDOW_UPDATE",
  "CONTINUATION",
];

const ACK = 0x1;
const END_HEADERS = 0x4;
const PADDED = 0x8;
const PRIORITY_FLAG = 0x20;

// RFC 9113 section 7.
const NO_ERROR = 0;
const PROTOCOL_ERROR = 1;
const FLOW_CONTROL_ERROR = 3;
const FRAME_SIZE_ERROR = 6;

/** Frames that belong to a stream, never to the connection (stream 0), and the reverse. */
const STREAM_ONLY = new Set([DATA, HEADERS, PRIORITY, RST_STREAM, PUSH_PROMISE, CONTINUATION]);
const CONNECTION_ONLY = new Set([SETTINGS, PING, GOAWAY]);
/** Frames that must not name an idle stream (RFC 9113 section 5.1); HEADERS opens one, PRIORITY may name one. */
const NOT_ON_IDLE = new Set([DATA, RST_STREAM, WINDOW_UPDATE]);

/** A peer that never reads could hold a closed connection open: it gets this long to take the GOAWAY. */
const CLOSE_GRACE_MS = 1000;

interface FrameHeader {
  length: number;
  type: number;
  flags: number;
  stream: number;
}

/** Why the connection ends: the code of our GOAWAY and, as its debug data, what the client did. */
interface Verdict {
  code: number;
  reason: string;
}

const typeName = (type: number) => TYPE_NAMES[type] ?? `frame type ${type}`;

/** An empty SETTINGS frame: the server's preface, which must come before any GOAWAY. */
const EMPTY_SETTINGS = Buffer.from([0, 0, 0, SETTINGS, 0, 0, 0, 0, 0]);

/** A GOAWAY frame; `reason` goes in its debug data, which h2 tools print. */
function goaway(lastStream: number, verdict: Verdict): Buffer {
  const debug = Buffer.from(verdict.reason);
  const frame = Buffer.alloc(HEADER_LENGTH + 8 + debug.length);
  frame.writeUIntBE(8 + debug.length, 0, 3);
  frame[3] = GOAWAY;
  frame.writeUInt32BE(lastStream, HEADER_LENGTH);
  frame.writeUInt32BE(verdict.code, HEADER_LENGTH + 4);
  debug.copy(frame, HEADER_LENGTH + 8);
  return frame;
}

/**
 * The connection between a client and node:http2's server: bytes pass through unchanged
 * until a frame breaks a rule this can check, then the client gets a GOAWAY and node:http2
 * never sees that frame or anything after it.
 */
export class FrameGuard extends Duplex {
  private readonly socket: Duplex;
  private readonly onClientGoaway: () => void;
  /** The start of a frame whose header, or the payload bytes vetted with it, have not all come. */
  private kept: Buffer | null = null;
  private prefaceAt = 0;
  private payloadLeft = 0;
  private settingsSeen = false;
  /** The stream whose header block only CONTINUATION frames may continue, or 0. */
  private headerBlockStream = 0;
  /** The highest stream a HEADERS frame opened; above it, every client stream is idle. */
  private lastStream = 0;
  /** Whether the payload bytes still to come (payloadLeft) are dropped rather than passed on. */
  private dropping = false;
  /** A client's GOAWAY came: onClientGoaway is due once node:http2 has read what came before it. */
  private goawayPending = false;
  private closing = false;
  private waitingForDrain = false;
  /** Whether node:http2 has written anything (its SETTINGS first). */
  private wrote = false;

  /**
   * `onClientGoaway`: the client sent GOAWAY NO_ERROR, which node:http2 never sees; the
   * owner closes the session gracefully instead (its streams finish, then GOAWAY and close).
   */
  constructor(socket: Duplex, onClientGoaway: () => void) {
    // Like the server's own sockets: when the client ends, so does node:http2's side.
    super({ allowHalfOpen: false });
    this.socket = socket;
    this.onClientGoaway = onClientGoaway;
    socket.on("data", (chunk: Buffer) => {
      try {
        this.vet(chunk);
      } catch (e) {
        // A fault in this code must cost the one connection, never the process.
        this.socket.destroy(e as Error);
      }
    });
    socket.on("end", () => {
      if (!this.closing) this.push(null);
    });
    socket.on("error", () => {}); // the "close" that follows ends the session
    socket.on("close", () => this.destroy());
  }

  override _read(): void {
    this.socket.resume();
    this.reportGoaway();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    this.send([chunk], done);
  }

  override _writev(chunks: { chunk: Buffer }[], done: (error?: Error | null) => void): void {
    this.send(
      chunks.map((c) => c.chunk),
      done,
    );
  }

  override _final(done: (error?: Error | null) => void): void {
    this.socket.end();
    done();
  }

  override _destroy(error: Error | null, done: (error?: Error | null) => void): void {
    // While closing, the GOAWAY may still be on its way out; the grace timer ends the socket.
    if (!this.closing) this.socket.destroy();
    done(error);
  }

  /** What node:http2 writes goes straight out (a GOAWAY of ours is sent from a read, never between its writes). */
  private send(chunks: Buffer[], done: (error?: Error | null) => void): void {
    if (this.closing || this.socket.destroyed) {
      done();
      return;
    }
    this.wrote = true;
    let more = true;
    for (const chunk of chunks) more = this.socket.write(chunk);
    if (more) {
      done();
      return;
    }
    // Held until the client reads, so that node:http2's own limits on unsent data apply.
    this.waitingForDrain = true;
    this.socket.once("drain", () => {
      this.waitingForDrain = false;
      done();
    });
  }

  private vet(chunk: Buffer): void {
    if (this.closing) return;
    const buf = this.kept ? Buffer.concat([this.kept, chunk]) : chunk;
    this.kept = null;
    let pos = 0;
    // Where the bytes not yet passed on begin: a dropped frame leaves a gap.
    let from = 0;
    while (this.prefaceAt < PREFACE.length && pos < buf.length) {
      if (buf[pos] !== PREFACE.charCodeAt(this.prefaceAt)) {
        this.endWith({ code: PROTOCOL_ERROR, reason: "the connection preface is not PRI * HTTP/2.0 SM" });
        return;
      }
      pos++;
      this.prefaceAt++;
    }
    while (pos < buf.length) {
      if (this.payloadLeft > 0) {
        const n = Math.min(this.payloadLeft, buf.length - pos);
        pos += n;
        this.payloadLeft -= n;
        if (this.dropping) from = pos;
        continue;
      }
      if (buf.length - pos < HEADER_LENGTH) {
        this.kept = buf.subarray(pos);
        break;
      }
      const header: FrameHeader = {
        length: buf.readUIntBE(pos, 3),
        type: buf[pos + 3],
        flags: buf[pos + 4],
        stream: buf.readUInt32BE(pos + 5) & 0x7fffffff,
      };
      let verdict = this.vetHeader(header);
      if (!verdict) {
        const needed = payloadToVet(header);
        if (buf.length - pos - HEADER_LENGTH < needed) {
          this.kept = buf.subarray(pos);
          break;
        }
        if (needed > 0) verdict = vetPayload(header, buf.subarray(pos + HEADER_LENGTH, pos + HEADER_LENGTH + needed));
      }
      if (verdict) {
        // The frames before this one were valid: node:http2 gets them, then the connection ends.
        this.pass(buf.subarray(from, pos));
        this.endWith(verdict);
        return;
      }
      this.accept(header);
      // A client's GOAWAY (NO_ERROR; the others end the connection above) only says it opens
      // no more streams and will close: dropped, so that node:http2 just sees the close.
      this.dropping = header.type === GOAWAY;
      if (this.dropping) {
        this.pass(buf.subarray(from, pos));
        this.goawayPending = true;
        this.reportGoaway();
      }
      pos += HEADER_LENGTH;
      if (this.dropping) from = pos;
      this.payloadLeft = header.length;
    }
    this.pass(buf.subarray(from, this.kept ? buf.length - this.kept.length : buf.length));
  }

  /** Calls onClientGoaway once node:http2 has read every byte before the GOAWAY (its streams count). */
  private reportGoaway(): void {
    if (!this.goawayPending || this.readableLength > 0) return;
    this.goawayPending = false;
    // Not from inside a read: closing the session may destroy this stream.
    setImmediate(() => {
      if (!this.closing && !this.destroyed) this.onClientGoaway();
    });
  }

  private pass(bytes: Buffer): void {
    if (bytes.length > 0 && !this.push(bytes)) this.socket.pause();
  }

  /** The rules a frame header alone can break; `this` is read, not changed. */
  private vetHeader(h: FrameHeader): Verdict | null {
    const name = typeName(h.type);
    if (!this.settingsSeen && (h.type !== SETTINGS || h.flags & ACK)) {
      return { code: PROTOCOL_ERROR, reason: `${name} where the preface's SETTINGS must come` };
    }
    if (h.length > MAX_FRAME_SIZE) {
      return { code: FRAME_SIZE_ERROR, reason: `a ${name} of ${h.length} bytes, past SETTINGS_MAX_FRAME_SIZE ${MAX_FRAME_SIZE}` };
    }
    if (this.headerBlockStream !== 0 && (h.type !== CONTINUATION || h.stream !== this.headerBlockStream)) {
      return { code: PROTOCOL_ERROR, reason: `${name} on stream ${h.stream} inside stream ${this.headerBlockStream}'s header block` };
    }
    if (this.headerBlockStream === 0 && h.type === CONTINUATION) {
      return { code: PROTOCOL_ERROR, reason: `CONTINUATION on stream ${h.stream} without HEADERS before it` };
    }
    if (h.type === PUSH_PROMISE) return { code: PROTOCOL_ERROR, reason: "PUSH_PROMISE from a client" };
    if (h.stream === 0 && STREAM_ONLY.has(h.type)) return { code: PROTOCOL_ERROR, reason: `${name} on stream 0` };
    if (h.stream !== 0 && CONNECTION_ONLY.has(h.type)) return { code: PROTOCOL_ERROR, reason: `${name} on stream ${h.stream}, not 0` };
    if (h.type === HEADERS && h.stream % 2 === 0)
      return { code: PROTOCOL_ERROR, reason: `HEADERS on even stream ${h.stream}, which only a server opens` };
    if (NOT_ON_IDLE.has(h.type) && h.stream !== 0 && (h.stream % 2 === 0 || h.stream > this.lastStream)) {
      return { code: PROTOCOL_ERROR, reason: `${name} on idle stream ${h.stream}` };
    }
    return vetLength(h);
  }

  /** What a frame that passed changes: the streams opened and the header block in progress. */
  private accept(h: FrameHeader): void {
    if (h.type === SETTINGS) this.settingsSeen = true;
    if (h.type === HEADERS) {
      this.lastStream = Math.max(this.lastStream, h.stream);
      if (!(h.flags & END_HEADERS)) this.headerBlockStream = h.stream;
    }
    if (h.type === CONTINUATION && h.flags & END_HEADERS) this.headerBlockStream = 0;
  }

  /** Answers with GOAWAY and closes; node:http2 gets nothing more and learns of the end through "close". */
  private endWith(verdict: Verdict): void {
    this.closing = true;
    this.kept = null;
    // Reading on (and dropping) lets the client's FIN close the socket soon.
    this.socket.resume();
    if (this.waitingForDrain || this.writableLength > 0) {
      // node:http2 is part way through writing: a GOAWAY now could land inside one of its frames.
      this.socket.destroy();
      return;
    }
    // node:http2 may not have sent its SETTINGS yet (Node.js sends them a tick later).
    const frame = goaway(this.lastStream, verdict);
    this.socket.end(this.wrote ? frame : Buffer.concat([EMPTY_SETTINGS, frame]));
    const timer = setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS);
    this.socket.once("close", () => clearTimeout(timer));
  }
}

/** The frame sizes RFC 9113 fixes (section 6), and payloads too short for their own fields. */
function vetLength(h: FrameHeader): Verdict | null {
  const name = typeName(h.type);
  const exactly = (n: number): Verdict | null =>
    h.length === n ? null : { code: FRAME_SIZE_ERROR, reason: `a ${name} of ${h.length} bytes, not ${n}` };
  switch (h.type) {
    case SETTINGS:
      if (h.flags & ACK && h.length !== 0) return { code: FRAME_SIZE_ERROR, reason: `a SETTINGS ACK with ${h.length} bytes of payload` };
      if (h.length % 6 !== 0) return { code: FRAME_SIZE_ERROR, reason: `a SETTINGS of ${h.length} bytes, not a multiple of 6` };
      return null;
    case PING:
      return exactly(8);
    case PRIORITY:
      return exactly(5);
    case RST_STREAM:
    case WINDOW_UPDATE:
      return exactly(4);
    case GOAWAY:
      return h.length >= 8 ? null : { code: FRAME_SIZE_ERROR, reason: `a GOAWAY of ${h.length} bytes, less than 8` };
    case DATA:
    case HEADERS: {
      const fixed = (h.flags & PADDED ? 1 : 0) + (h.type === HEADERS && h.flags & PRIORITY_FLAG ? 5 : 0);
      return h.length >= fixed
        ? null
        : { code: FRAME_SIZE_ERROR, reason: `a ${name} of ${h.length} bytes, too short for its padding and priority fields` };
    }
    default:
      return null;
  }
}

/** How many payload bytes vetPayload needs (vetLength has made sure the frame has them). */
function payloadToVet(h: FrameHeader): number {
  switch (h.type) {
    case DATA:
    case HEADERS:
      return h.flags & PADDED ? 1 : 0;
    case SETTINGS:
      return h.length;
    case GOAWAY:
      return 8;
    case WINDOW_UPDATE:
      return h.stream === 0 ? 4 : 0;
    default:
      return 0;
  }
}

/** The rules the first payload bytes can break; `payload` holds payloadToVet's count, at least 1. */
function vetPayload(h: FrameHeader, payload: Buffer): Verdict | null {
  switch (h.type) {
    case DATA:
    case HEADERS: {
      if (!(h.flags & PADDED)) return null;
      const room = h.length - 1 - (h.type === HEADERS && h.flags & PRIORITY_FLAG ? 5 : 0);
      return payload[0] <= room
        ? null
        : { code: PROTOCOL_ERROR, reason: `${payload[0]} bytes of padding in a ${typeName(h.type)} of ${h.length}` };
    }
    case SETTINGS:
      for (let i = 0; i < payload.length; i += 6) {
        const verdict = vetSetting(payload.readUInt16BE(i), payload.readUInt32BE(i + 2));
        if (verdict) return verdict;
      }
      return null;
    case WINDOW_UPDATE:
      return (payload.readUInt32BE(0) & 0x7fffffff) !== 0
        ? null
        : { code: PROTOCOL_ERROR, reason: "a WINDOW_UPDATE of 0 on the connection" };
    case GOAWAY: {
      // The client is ending the connection over an error: close it as Node.js's node:http2
      // does (GOAWAY NO_ERROR, the streams cut).
      const code = payload.readUInt32BE(4);
      return code === NO_ERROR ? null : { code: NO_ERROR, reason: `the client sent GOAWAY with error code ${code}` };
    }
    default:
      return null;
  }
}

/** SETTINGS values RFC 9113 section 6.5.2 rules out. */
function vetSetting(id: number, value: number): Verdict | null {
  if (id === 2 && value > 1) return { code: PROTOCOL_ERROR, reason: `SETTINGS_ENABLE_PUSH of ${value}, not 0 or 1` };
  if (id === 4 && value > 0x7fffffff) return { code: FLOW_CONTROL_ERROR, reason: `SETTINGS_INITIAL_WINDOW_SIZE of ${value}, past 2^31-1` };
  if (id === 5 && (value < 16384 || value > 0xffffff))
    return { code: PROTOCOL_ERROR, reason: `SETTINGS_MAX_FRAME_SIZE of ${value}, outside 16384 to 2^24-1` };
  return null;
}
