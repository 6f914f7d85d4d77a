// Decodes a chunked HTTP/1.1 body from text as a test peer received it (latin1), for the raw
// clients and servers of the hostile suites.

/**
 * A chunked body in `text` from `at`: the decoded body and the offset past its last chunk and
 * trailers; null when more bytes are needed, "bad" when a chunk size is not hex.
 */
export function readChunked(text: string, at: number): { body: string; end: number } | null | "bad" {
  let body = "";
  for (;;) {
    const lineEnd = text.indexOf("\r\n", at);
    if (lineEnd === -1) return null;
    const size = parseInt(text.slice(at, lineEnd), 16);
    if (Number.isNaN(size)) return "bad";
    if (size === 0) {
      const trailersEnd = text.indexOf("\r\n\r\n", lineEnd);
      return trailersEnd === -1 ? null : { body, end: trailersEnd + 4 };
    }
    if (text.length < lineEnd + 2 + size + 2) return null;
    body += text.slice(lineEnd + 2, lineEnd + 2 + size);
    at = lineEnd + 2 + size + 2;
  }
}
