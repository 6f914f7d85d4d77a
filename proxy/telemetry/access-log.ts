// One JSON line per request, in the spirit of Istio's JSON access log (same key names where
// Istio has them), batched: lines collect in memory and go out in one write per flush
// interval (or as soon as 64 KiB wait). The proxy never waits for the sink: while a write is
// in flight, lines keep collecting; beyond `maxBufferedBytes` they are dropped and counted.
import process from "node:process";
import type { RequestRecord } from "./types.ts";
import { traceIdOf } from "./tracing.ts";

/**
 * Receives a batch of complete lines. Return a promise (or accept the callback) to tell the
 * log when the sink can take more; the log never has more than one write in flight.
 */
export type AccessLogSink = (chunk: string) => void | Promise<unknown>;

export interface AccessLogOptions {
  sink?: AccessLogSink;
  /** How long lines may wait before they are written (default 100 ms). */
  flushIntervalMs?: number;
  /** Write at once when this many bytes (UTF-16 units) wait (default 64 KiB). */
  flushBytes?: number;
  /** Drop lines beyond this many waiting bytes while the sink is slow (default 8 MiB). */
  maxBufferedBytes?: number;
}

/** The default sink: the process's standard output, without blocking the event loop. */
export function stdoutSink(): AccessLogSink {
  const deno = (globalThis as { Deno?: { stdout: { write(p: Uint8Array): Promise<number> } } }).Deno;
  if (deno !== undefined) {
    // Deno's process.stdout writes synchronously; Deno.stdout.write is asynchronous.
    const enc = new TextEncoder();
    return async (chunk) => {
      let bytes = enc.encode(chunk);
      while (bytes.length > 0) bytes = bytes.subarray(await deno.stdout.write(bytes));
    };
  }
  return (chunk) =>
    new Promise<void>((resolve) => {
      process.stdout.write(chunk, () => resolve());
    });
}

// Escapes a string for a JSON string literal. Most values are plain ASCII, which a regex test
// finds faster than JSON.stringify allocates.
const NEEDS_ESCAPE = /["\\\u0000-\u001f\u2028\u2029\ud800-\udfff]/;
function str(s: string): string {
  return NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : '"' + s + '"';
}
function strOrNull(s: string): string {
  return s === "" ? "null" : str(s);
}

let lastMs = -1;
let lastIso = "";
function iso(ms: number): string {
  const whole = Math.floor(ms);
  if (whole !== lastMs) {
    lastMs = whole;
    lastIso = new Date(whole).toISOString();
  }
  return lastIso;
}

/** The access-log line for one request, without the trailing newline. */
export function formatAccessLogLine(r: RequestRecord): string {
  const traceparent = r.trace !== undefined ? r.trace.traceparent : r.traceparent;
  const traceId = r.trace !== undefined ? r.trace.traceId : traceparent === "" ? "" : traceIdOf(traceparent);
  return (
    '{"start_time":"' +
    iso(r.startTime) +
    '","direction":"' +
    r.direction +
    '","method":' +
    str(r.method) +
    ',"path":' +
    str(r.path) +
    ',"protocol":"' +
    r.protocol +
    '","response_code":' +
    r.status +
    ',"response_flags":"' +
    (r.responseFlag === "" ? "-" : r.responseFlag) +
    '","bytes_received":' +
    r.requestBytes +
    ',"bytes_sent":' +
    r.responseBytes +
    ',"duration":' +
    Math.round(r.durationMs * 1000) / 1000 +
    ',"upstream_host":' +
    strOrNull(r.upstreamAddress) +
    ',"upstream_cluster":' +
    strOrNull(r.destination.cluster) +
    ',"route_name":' +
    strOrNull(r.route) +
    ',"request_id":' +
    strOrNull(r.requestId) +
    ',"authority":' +
    str(r.authority) +
    ',"user_agent":' +
    strOrNull(r.userAgent) +
    ',"downstream_peer_principal":' +
    strOrNull(r.source.principal) +
    ',"upstream_peer_principal":' +
    strOrNull(r.direction === "outbound" && r.mtls ? r.destination.principal : "") +
    ',"mtls":' +
    r.mtls +
    ',"traceparent":' +
    strOrNull(traceparent) +
    ',"trace_id":' +
    strOrNull(traceId) +
    ',"attempts":' +
    r.attempts +
    (r.grpcStatus !== undefined ? ',"grpc_status":' + r.grpcStatus : "") +
    "}"
  );
}

export class AccessLog {
  #sink: AccessLogSink;
  #interval: number;
  #flushBytes: number;
  #maxBuffered: number;
  #lines: string[] = [];
  #bytes = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #writing: Promise<void> | undefined;
  #closed = false;
  /** Lines dropped because the sink could not keep up. */
  dropped = 0;
  written = 0;

  constructor(options: AccessLogOptions = {}) {
    this.#sink = options.sink ?? stdoutSink();
    this.#interval = options.flushIntervalMs ?? 100;
    this.#flushBytes = options.flushBytes ?? 65536;
    this.#maxBuffered = options.maxBufferedBytes ?? 8 * 1024 * 1024;
  }

  log(record: RequestRecord): void {
    if (this.#closed) return;
    const line = formatAccessLogLine(record);
    if (this.#bytes + line.length > this.#maxBuffered) {
      this.dropped++;
      return;
    }
    this.#lines.push(line);
    this.#bytes += line.length + 1;
    if (this.#writing !== undefined) return; // the write's completion flushes what collected
    if (this.#bytes >= this.#flushBytes) this.flush();
    else if (this.#timer === undefined) {
      this.#timer = setTimeout(this.#onTimer, this.#interval);
      (this.#timer as { unref?: () => void }).unref?.();
    }
  }

  #onTimer = (): void => {
    this.#timer = undefined;
    this.flush();
  };

  /** Hands what has collected to the sink now (one write), unless a write is in flight. */
  flush(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#writing !== undefined || this.#lines.length === 0) return;
    const n = this.#lines.length;
    const chunk = this.#lines.join("\n") + "\n";
    this.#lines = [];
    this.#bytes = 0;
    let result: void | Promise<unknown>;
    try {
      result = this.#sink(chunk);
    } catch {
      this.dropped += n;
      return;
    }
    this.written += n;
    if (result instanceof Promise) {
      this.#writing = result.then(
        () => this.#afterWrite(),
        () => this.#afterWrite(),
      );
    }
  }

  #afterWrite(): void {
    this.#writing = undefined;
    if (this.#lines.length === 0) return;
    if (this.#bytes >= this.#flushBytes || this.#closed) this.flush();
    else if (this.#timer === undefined) {
      this.#timer = setTimeout(this.#onTimer, this.#interval);
      (this.#timer as { unref?: () => void }).unref?.();
    }
  }

  /** Writes everything that has collected and waits for the sink to take it. */
  async drain(): Promise<void> {
    for (;;) {
      if (this.#writing !== undefined) {
        await this.#writing;
        continue;
      }
      if (this.#lines.length === 0) return;
      this.flush();
    }
  }

  /** drain(), and ignore later records. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.drain();
  }
}
