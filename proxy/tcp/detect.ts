// Protocol detection for a port whose protocol nobody declared (as Linkerd does): a connection
// whose first bytes open an HTTP request is served as HTTP; any other is carried as opaque TCP,
// and so is one whose client says nothing for a while (a server-first protocol: MySQL, SMTP).
import { Buffer } from "node:buffer";
import type { Conn } from "../runtime/types.ts";

const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n");
/** A method token longer than this is no HTTP method anyone sends. */
const LONGEST_METHOD = 20;

export type Detected = "http" | "tcp" | "undecided";

/** What the first bytes of a connection say; "undecided" until enough of them have come. */
export function detect(first: Buffer): Detected {
  if (first.length === 0) return "undecided";
  const preface = Math.min(first.length, H2_PREFACE.length);
  if (first.subarray(0, preface).equals(H2_PREFACE.subarray(0, preface))) return preface === H2_PREFACE.length ? "http" : "undecided";
  for (let i = 0; i < Math.min(first.length, LONGEST_METHOD + 1); i++) {
    const c = first[i]!;
    if (c === 0x20) return i > 0 ? "http" : "tcp";
    // Methods in use are upper-case tokens (GET, POST, PROPFIND, M-SEARCH).
    if (!((c >= 0x41 && c <= 0x5a) || c === 0x2d || c === 0x5f)) return "tcp";
  }
  return first.length > LONGEST_METHOD ? "tcp" : "undecided";
}

/**
 * Reads a connection's first bytes until they say what it is, for at most `timeoutMs`, and
 * pauses it. `take()` gives back every byte read (to be replayed) and hands the connection's
 * callbacks over; `ended`: the client finished sending meanwhile (a half-close).
 */
export function detectConnection(conn: Conn, timeoutMs: number): Promise<{ protocol: "http" | "tcp"; ended: boolean; take: () => Buffer }> {
  return new Promise((resolve) => {
    let first: Buffer = Buffer.alloc(0);
    let ended = false;
    let done = false;
    const finish = (protocol: "http" | "tcp") => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      conn.pause();
      resolve({ protocol, ended, take: () => first });
    };
    const timer = setTimeout(() => finish("tcp"), timeoutMs);
    conn.onData = (chunk) => {
      // Kept after the decision too: whatever comes before the new owner takes over is replayed.
      first = first.length === 0 ? chunk : Buffer.concat([first, chunk]);
      const said = detect(first);
      if (said !== "undecided") finish(said);
    };
    conn.onEnd = () => {
      ended = true;
      finish("tcp");
    };
    conn.resume();
  });
}
