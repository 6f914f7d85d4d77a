// The header checks between a filter and the wire (proxy/filters/headers.ts) on arbitrary text:
// what parseHeaderLines accepts (weft_respond's header text) must be headers a filter may set,
// survive an HTTP/1.1 head unchanged, and serialize back to the same list.
import { Buffer } from "node:buffer";
import { checkHeader, getHeader, headerBytes, parseHeaderLines, serializeHeaders } from "../../../proxy/filters/headers.ts";
import { encodeRequestHead } from "../../../proxy/http1/encode.ts";
import { findHeadEnd, parseRequestHead } from "../../../proxy/http1/head.ts";
import { bytes, check, utf8, type FuzzTarget } from "../target.ts";

const UNLIMITED = { maxHeadBytes: Infinity, maxHeaderCount: Infinity };

export const filterHeaders: FuzzTarget = {
  name: "filter-headers",
  about:
    "parseHeaderLines and checkHeader on arbitrary UTF-8 text: accepted headers are tokens a filter may set with wire-safe values, and cross an HTTP/1.1 head and serializeHeaders unchanged",
  sources: ["proxy/filters/headers.ts"],
  maxLength: 1024,
  dictionary: [
    "\n",
    "\r\n",
    ":",
    ": ",
    " ",
    "\t",
    "\x0b",
    "\xa0",
    "\u2028",
    "\ufeff",
    "\u010a",
    "\u0100",
    "\0",
    "content-length",
    "Host",
    "connection",
    "te",
    "x-a",
    "x-b",
    ":path",
    "_",
  ],
  seeds: () => ["x-a: 1\nX-B:\tb c \r\nx-a: 2\n", "content-type: text/plain\n\n\r\n"].map(bytes),
  fuzz(data) {
    const text = utf8(data);
    const parsed = parseHeaderLines(text);
    if (typeof parsed === "string") {
      check(parsed.length > 0, "an empty problem");
      return;
    }
    check(parsed.length % 2 === 0, "odd header list");
    for (let i = 0; i < parsed.length; i += 2) {
      const [name, value] = [parsed[i], parsed[i + 1]];
      check(
        checkHeader(name, value) === null,
        () => `accepted ${JSON.stringify(name)}: ${JSON.stringify(value)}, which checkHeader refuses`,
      );
      check(name === name.toLowerCase(), "name not lower-cased");
      check(value === value.trim(), "value not trimmed");
      const values = parsed.filter((_, j) => j % 2 === 1 && parsed[j - 1] === name);
      check(getHeader(parsed, name) === values.join(", "), `getHeader(${JSON.stringify(name)}) does not join every value`);
    }
    check(
      JSON.stringify(parseHeaderLines(serializeHeaders(parsed))) === JSON.stringify(parsed),
      "serialized headers parse to another list",
    );
    const head = encodeRequestHead("GET", "/", ["host", "app", ...parsed]);
    check(
      headerBytes(parsed) === Buffer.byteLength(serializeHeaders(parsed).replaceAll("\n", "\r\n"), "latin1"),
      "headerBytes is not the bytes on the wire",
    );
    const wire = parseRequestHead(head, 0, findHeadEnd(head, 0, UNLIMITED), UNLIMITED);
    check(
      JSON.stringify(wire.headers.slice(2)) === JSON.stringify(parsed),
      () => `headers read back from the wire as ${JSON.stringify(wire.headers.slice(2))}`,
    );
  },
};
