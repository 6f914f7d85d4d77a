// After a 101 Switching Protocols (WebSocket and friends) the proxy only moves bytes,
// with back-pressure each way, until either side closes.
import type { Buffer } from "node:buffer";
import type { Conn } from "../runtime/types.ts";

interface Side {
  conn: Conn;
  leftover: Buffer | null;
}

function pipe(from: Conn, to: Conn): void {
  from.onData = (chunk) => {
    if (!to.write(chunk)) from.pause();
  };
  to.onDrain = () => from.resume();
  from.onEnd = () => to.end();
  from.onClose = () => {
    if (!to.closed) to.end();
  };
}

export function tunnel(downstream: Side, upstream: Side): void {
  pipe(downstream.conn, upstream.conn);
  pipe(upstream.conn, downstream.conn);
  if (downstream.leftover?.length) upstream.conn.write(downstream.leftover);
  if (upstream.leftover?.length) downstream.conn.write(upstream.leftover);
  // Either side may have been paused for back-pressure while it spoke HTTP.
  downstream.conn.resume();
  upstream.conn.resume();
}
