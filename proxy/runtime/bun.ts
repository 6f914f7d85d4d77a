// Runtime adapter on Bun's own sockets (Bun.listen, Bun.connect) for plaintext listeners and
// upstream connections: on Bun it costs about 15% less CPU per proxied request than node:net
// (docs/design/bun-sockets.md). TLS and the admin server stay on the node:net adapter (node.ts).
// select.ts loads this module only on Bun.
//
// It behaves as node.ts does (a node:net socket without allowHalfOpen), which is what the proxy
// was written against: a peer's FIN is reported with onEnd, then our side ends too, after what
// is buffered; end() sends what is buffered, then a FIN, and reads until the peer closes; onClose
// comes after the call that closed the socket, never inside it. Bun's write() takes what the
// kernel takes and returns the count: the rest is kept here, in order, and sent from the drain
// callback. handOver gives node:http2 a Duplex over the same socket (SocketStream).
import { Buffer } from "node:buffer";
import { Duplex } from "node:stream";
import process from "node:process";
import type { Conn, ConnectOptions, ListenOptions, Runtime, Server } from "./types.ts";
import { nodeRuntime } from "./node.ts";

// The part of Bun's API used here (bun-types is not a dependency).
interface BunSocket {
  data: BunConn | undefined;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localPort: number;
  /** Bytes the kernel took (possibly fewer than given), or -1 when the socket is closed. */
  write(data: Uint8Array | string): number;
  /** Sends a FIN and keeps reading. */
  shutdown(): void;
  /** Closes both directions (the close callback runs before it returns). */
  end(): void;
  /** Closes with a reset. */
  terminate(): void;
  pause(): void;
  resume(): void;
  setNoDelay(noDelay: boolean): boolean;
}

interface SocketHandlers {
  open?(socket: BunSocket): void;
  data(socket: BunSocket, chunk: Buffer): void;
  drain(socket: BunSocket): void;
  end(socket: BunSocket): void;
  close(socket: BunSocket, error?: Error): void;
  error(socket: BunSocket, error: Error): void;
}

interface BunListener {
  readonly port: number;
  stop(closeActiveConnections?: boolean): void;
}

declare const Bun: {
  listen(options: { hostname: string; port: number; allowHalfOpen: boolean; socket: SocketHandlers }): BunListener;
  connect(options: { hostname: string; port: number; allowHalfOpen: boolean; socket: SocketHandlers }): Promise<BunSocket>;
};

const noop = () => {};

class BunConn implements Conn {
  onData: (chunk: Buffer) => void = noop;
  onEnd: () => void = noop;
  onClose: (error?: Error) => void = noop;
  onDrain: () => void = noop;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localPort: number;
  readonly tls = null;
  closed = false;
  socket: BunSocket;
  /** Bytes the kernel has not taken yet, oldest first. */
  pending: Uint8Array[] | null = null;
  /** write() returned false: onDrain is owed once pending is sent. */
  owesDrain = false;
  ending = false;
  peerEnded = false;
  // Bun's sockets are all made half-open: ending our side after the peer's is ours to do.
  halfOpen = false;
  paused = false;
  failure: Error | undefined;
  /** After handOver, the stream the socket's events go to instead of the callbacks. */
  stream: SocketStream | null = null;
  /** Told when the connection has closed (a listener counts its connections). */
  gone: () => void = noop;

  constructor(socket: BunSocket) {
    this.socket = socket;
    this.remoteAddress = socket.remoteAddress ?? "";
    this.remotePort = socket.remotePort ?? 0;
    this.localPort = socket.localPort ?? 0;
    socket.setNoDelay(true);
  }

  write(chunk: Uint8Array | string): boolean {
    if (this.closed || this.ending) return false;
    if (this.pending) {
      this.pending.push(typeof chunk === "string" ? Buffer.from(chunk) : chunk);
      this.owesDrain = true;
      return false;
    }
    const written = this.socket.write(chunk);
    const length = typeof chunk === "string" ? Buffer.byteLength(chunk) : chunk.byteLength;
    if (written === length) return true;
    if (written < 0) return false;
    const bytes = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
    this.pending = [bytes.subarray(written)];
    this.owesDrain = true;
    return false;
  }

  /** The socket can take more: send what is pending, then finish an end() or tell the writer. */
  flush(): void {
    const pending = this.pending;
    if (!pending) {
      // node:http2 writes to the socket itself (SocketStream) and waits for this.
      this.stream?.drained();
      return;
    }
    while (pending.length > 0) {
      const head = pending[0];
      const written = this.socket.write(head);
      if (written < 0) return;
      if (written < head.byteLength) {
        pending[0] = head.subarray(written);
        return;
      }
      pending.shift();
    }
    this.pending = null;
    if (this.ending) this.finish();
    else if (this.stream) this.stream.drained();
    else if (this.owesDrain) {
      this.owesDrain = false;
      this.onDrain();
    }
  }

  end(): void {
    if (this.closed || this.ending) return;
    this.ending = true;
    if (!this.pending) this.finish();
  }

  /** Everything is sent: a FIN, or a close when the peer has sent its own. */
  private finish(): void {
    if (this.peerEnded) this.socket.end();
    else this.socket.shutdown();
  }

  destroy(): void {
    if (this.closed) return;
    this.pending = null;
    this.socket.end();
  }

  pause(): void {
    if (this.paused || this.closed) return;
    this.paused = true;
    this.socket.pause();
  }

  resume(): void {
    if (!this.paused || this.closed) return;
    this.paused = false;
    this.socket.resume();
  }

  handOver(take: (socket: Duplex) => void, leftover: Buffer | null): void {
    const stream = new SocketStream(this);
    this.stream = stream;
    this.onData = this.onEnd = this.onDrain = noop;
    this.onClose = noop;
    take(stream);
    if (leftover?.length) stream.push(leftover);
  }

  peerEnd(): void {
    if (this.peerEnded) return;
    this.peerEnded = true;
    if (this.stream) {
      this.stream.push(null);
      return;
    }
    this.onEnd();
    // As node:net without allowHalfOpen, unless the owner keeps it open: our side ends once the
    // peer's has, on the next tick (so that what onEnd writes still goes out).
    if (!this.halfOpen) process.nextTick(() => this.end());
  }

  closedBySocket(error?: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.pending = null;
    const failure = error ?? this.failure;
    this.gone();
    // Bun runs the close callback inside end(): the proxy expects it later, as node:net emits it.
    process.nextTick(() => {
      if (this.stream) this.stream.destroy(failure);
      else this.onClose(failure);
    });
  }
}

/**
 * The connection as a node:stream Duplex, for node:http2 (handOver). Bun's node:http2 writes
 * straight to the native socket it finds as `_handle`, as it does for a node:net socket; through
 * the stream's write() instead, it loses the GOAWAY it sends before closing on a client's error.
 */
class SocketStream extends Duplex {
  private readonly conn: BunConn;
  private writeDone: ((error?: Error | null) => void) | null = null;
  readonly _handle: BunSocket;

  constructor(conn: BunConn) {
    super({ allowHalfOpen: false });
    this.conn = conn;
    this._handle = conn.socket;
  }

  get remoteAddress(): string {
    return this.conn.remoteAddress;
  }

  get remotePort(): number {
    return this.conn.remotePort;
  }

  received(chunk: Buffer): void {
    if (!this.push(chunk)) this.conn.pause();
  }

  drained(): void {
    const done = this.writeDone;
    this.writeDone = null;
    if (done) done();
    else this.emit("drain");
  }

  override _read(): void {
    this.conn.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.conn.closed || this.conn.ending) callback(new Error("the connection is closed"));
    else if (this.conn.write(chunk)) callback();
    else this.writeDone = callback;
  }

  override _final(callback: (error?: Error | null) => void): void {
    // As Bun's node:net socket does: node:http2 ends the socket before it writes its GOAWAY.
    process.nextTick(() => {
      this.conn.end();
      callback();
    });
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.conn.destroy();
    this.drained();
    callback(error);
  }
}

const handlers: SocketHandlers = {
  data(socket, chunk) {
    const conn = socket.data;
    if (!conn) return;
    if (conn.stream) conn.stream.received(chunk);
    else conn.onData(chunk);
  },
  drain(socket) {
    socket.data?.flush();
  },
  end(socket) {
    socket.data?.peerEnd();
  },
  close(socket, error) {
    socket.data?.closedBySocket(error);
  },
  error(socket, error) {
    if (socket.data) socket.data.failure = error;
  },
};

// The connection exists from the open callback on, before anything else can arrive for it.
const connectHandlers: SocketHandlers = {
  ...handlers,
  open(socket) {
    socket.data = new BunConn(socket);
  },
};

function listen(options: ListenOptions, onConnection: (conn: Conn) => void): Server {
  let open = 0;
  let closing: Promise<void> | null = null;
  let allGone: (() => void) | null = null;
  const connectionGone = () => {
    open--;
    if (open === 0 && allGone) allGone();
  };
  let listener: BunListener;
  try {
    listener = Bun.listen({
      hostname: options.address,
      port: options.port,
      allowHalfOpen: true,
      socket: {
        ...handlers,
        open(socket) {
          const conn = new BunConn(socket);
          socket.data = conn;
          open++;
          conn.gone = connectionGone;
          onConnection(conn);
        },
      },
    });
  } catch (e) {
    // Bun says only "Failed to listen at ADDRESS": name the port and the code, as node:net does.
    const code = (e as { code?: string }).code ?? "EINVAL";
    throw Object.assign(new Error(`listen ${code}: cannot listen on ${options.address}:${options.port}`), { code });
  }
  return {
    port: listener.port,
    // As net.Server's close: stops accepting now, resolves once the accepted connections are gone.
    close: () => {
      if (!closing) {
        listener.stop(false);
        closing = open === 0 ? Promise.resolve() : new Promise<void>((resolve) => (allGone = resolve));
      }
      return closing;
    },
  };
}

/** The error node:net gives for a failed connect, so messages read the same on every runtime. */
function connectFailure(error: Error & { code?: string }, options: ConnectOptions): Error {
  const code = error.code ?? "ECONNREFUSED";
  return Object.assign(new Error(`connect ${code} ${options.address}:${options.port}`), { code });
}

async function connect(options: ConnectOptions): Promise<Conn> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let timedOut = false;
  const connecting = Bun.connect({ hostname: options.address, port: options.port, allowHalfOpen: true, socket: connectHandlers });
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      timedOut = true;
      reject(new Error(`connect timeout after ${options.timeoutMs} ms`));
    }, options.timeoutMs);
  });
  let socket: BunSocket;
  try {
    socket = await Promise.race([connecting, timeout]);
  } catch (e) {
    if (timedOut) connecting.then((late) => late.terminate(), noop);
    throw timedOut ? e : connectFailure(e as Error, options);
  } finally {
    clearTimeout(timer);
  }
  return socket.data!;
}

export const bunRuntime: Runtime = {
  name: "bun",
  async listen(options, onConnection) {
    if (options.tls) return nodeRuntime.listen(options, onConnection);
    return listen(options, onConnection);
  },
  connect(options) {
    if (options.tls) return nodeRuntime.connect(options);
    return connect(options);
  },
  serveHttp: (options, handler) => nodeRuntime.serveHttp(options, handler),
};
