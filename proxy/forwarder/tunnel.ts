// After a 101 Switching Protocols (WebSocket and friends) the proxy only moves bytes,
// with back-pressure each way, until either side closes.
import type { Buffer } from "node:buffer";
import type { Conn } from "../runtime/types.ts";
import type { ConnectionMeter } from "../telemetry/types.ts";

interface Side {
  conn: Conn;
  leftover: Buffer | null;
}

function pipe(from: Conn, to: Conn, count: ((bytes: number) => void) | undefined): void {
  from.onData = (chunk) => {
    count?.(chunk.length);
    if (!to.write(chunk)) from.pause();
  };
  to.onDrain = () => from.resume();
  from.onEnd = () => to.end();
  from.onClose = () => {
    if (!to.closed) to.end();
  };
}

/** `meter`: counts the bytes each way (an opaque TCP connection's istio_tcp_*_bytes_total). */
export function tunnel(downstream: Side, upstream: Side, meter?: ConnectionMeter): void {
  // Each way ends on its own: a reply still goes back after the client has finished sending.
  downstream.conn.halfOpen = true;
  upstream.conn.halfOpen = true;
  pipe(downstream.conn, upstream.conn, meter?.received);
  pipe(upstream.conn, downstream.conn, meter?.sent);
  if (downstream.leftover?.length) {
    meter?.received(downstream.leftover.length);
    upstream.conn.write(downstream.leftover);
  }
  if (upstream.leftover?.length) {
    meter?.sent(upstream.leftover.length);
    downstream.conn.write(upstream.leftover);
  }
  // Either side may have been paused for back-pressure while it spoke HTTP.
  downstream.conn.resume();
  upstream.conn.resume();
}
