// The header list operations of proxy/http/headers.ts on header lists made from arbitrary
// bytes. The input is read as latin1 lines: the first line is the Connection header's value
// (a "+" anywhere in it asks to keep Upgrade), every other line one "name:value" field, split
// at its first colon and not validated, since filters and HTTP/2 peers hand these functions
// lists the HTTP/1.1 parser never saw.
import { diagnosticHeaderValue, dropUnderscoredNames, forwardableHeaders, setHeader } from "../../../proxy/http/headers.ts";
import { parseFieldLine } from "../../../proxy/http1/head.ts";
import { bytes, check, latin1, utf8, type FuzzTarget } from "../target.ts";

const HOP_BY_HOP = [
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
];
// They frame and route the message: never dropped because Connection named them.
const FRAMING = ["content-length", "host"];

function headerList(lines: string[]): string[] {
  return lines.flatMap((line) => {
    const colon = line.indexOf(":");
    return colon === -1 ? [line, ""] : [line.slice(0, colon), line.slice(colon + 1)];
  });
}

/** Whether a field survives a hop, from RFC 9110 section 7.6.1 rather than from the code under test. */
function forwarded(name: string, value: string, tokens: string[], keepUpgrade: boolean): boolean {
  const lower = name.toLowerCase();
  if (lower === "te") return value.toLowerCase() === "trailers";
  if (lower === "upgrade") return keepUpgrade;
  if (HOP_BY_HOP.includes(lower)) return false;
  return FRAMING.includes(lower) || !tokens.includes(lower);
}

const pairs = (list: string[]) => Array.from({ length: list.length / 2 }, (_, i) => [list[2 * i], list[2 * i + 1]] as const);

export const forwardableHeadersTarget: FuzzTarget = {
  name: "forwardable-headers",
  about:
    "forwardableHeaders, dropUnderscoredNames, setHeader and diagnosticHeaderValue: exactly the end-to-end fields are forwarded, Content-Length and Host never dropped, diagnostics are wire-safe",
  sources: ["proxy/http/headers.ts"],
  maxLength: 1024,
  dictionary: [
    "\n",
    ":",
    ",",
    " ",
    "+",
    "_",
    "close",
    "keep-alive",
    "upgrade",
    "Upgrade",
    "te",
    "TE",
    "trailers",
    "Trailers",
    "content-length",
    "Content-Length",
    "host",
    "Host",
    "transfer-encoding",
    "proxy-connection",
    "connection",
    "x-a",
    "\r",
    "\0",
    "\xe9",
    "\u0100",
    "\u010a",
  ],
  seeds: () =>
    [
      "close, x-a, content-length, host\nHost:app\nContent-Length:5\nX-A:1\nTE:trailers\nUpgrade:h2c\nKeep-Alive:5",
      "upgrade+\nupgrade:websocket\nconnection:upgrade\nx_forwarded_for:1",
    ].map(bytes),
  fuzz(data) {
    const [first, ...rest] = latin1(data).split("\n");
    const tokens = first
      .toLowerCase()
      .split(",")
      .map((t) => t.trim())
      .filter(Boolean);
    const keepUpgrade = first.includes("+");
    const headers = headerList(rest);

    const out = forwardableHeaders(headers, tokens, keepUpgrade);
    const expected = pairs(headers).filter(([n, v]) => forwarded(n, v, tokens, keepUpgrade));
    check(
      JSON.stringify(pairs(out)) === JSON.stringify(expected),
      () => `forwarded ${JSON.stringify(out)}, expected ${JSON.stringify(expected.flat())}`,
    );

    const underscored = headers.slice();
    dropUnderscoredNames(underscored);
    check(
      JSON.stringify(underscored) ===
        JSON.stringify(
          pairs(headers)
            .filter(([n]) => !n.includes("_"))
            .flat(),
        ),
      "dropUnderscoredNames kept an underscored name or dropped another",
    );

    if (headers.length >= 2) {
      const [name, value] = [headers[headers.length - 2], headers[headers.length - 1]];
      const set = headers.slice(0, -2);
      setHeader(set, name, value);
      const others = pairs(headers.slice(0, -2)).filter(([n]) => n.toLowerCase() !== name.toLowerCase());
      check(JSON.stringify(set) === JSON.stringify([...others.flat(), name, value]), "setHeader did not leave one field of the name, last");
    }

    // Diagnostics quote what peers sent, characters past U+00FF included.
    const diagnostic = diagnosticHeaderValue(utf8(data));
    check(/^[\t\x20-\x7e]*$/.test(diagnostic), () => `diagnostic value not visible ASCII: ${JSON.stringify(diagnostic)}`);
    parseFieldLine(`x-weft-error: ${diagnostic}`);
  },
};
