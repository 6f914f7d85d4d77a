// What every message head carries once parsed, whatever the protocol (HTTP/1.1's parser and
// HTTP/2's frames both produce it), so the forwarder reads heads without knowing the protocol.
/** Framing facts every head carries, extracted once while parsing. */
export interface Framing {
  /** Header fields as [name, value, name, value, ...], names as received. */
  headers: string[];
  /** -1 when absent. */
  contentLength: number;
  chunked: boolean;
  /** The sender asked to close after this message (or is HTTP/1.0 without keep-alive). */
  close: boolean;
  /** Lower-cased Upgrade value when `Connection: upgrade` was sent, else "". */
  upgrade: string;
  /** Lower-cased tokens of the Connection header: these name hop-by-hop headers. */
  connectionTokens: string[];
}

export interface ResponseHead extends Framing {
  status: number;
  reason: string;
  minor: number;
  /** HTTP/2 only: the response ended with its headers (no body, no trailers). */
  bodyless?: boolean;
}
