// The chunked body decoder (proxy/http1/framing.ts) on arbitrary bytes. The same bytes must
// decode to the same body, trailers, end offset and verdict however they are cut into reads:
// whole, one byte at a time, and at cut points derived from the input.
import { Buffer } from "node:buffer";
import { BodyDecoder } from "../../../proxy/http1/framing.ts";
import { bytes, check, cutsOf, piecesOf, type FuzzTarget } from "../target.ts";
import { isProtocolError } from "./http1-head.ts";

const NOT_IN_TRAILERS = ["content-length", "transfer-encoding", "host", "trailer"];

interface Decoded {
  body: string;
  trailers: string[] | null;
  /** Offset in the input just past the body, -1 while it is incomplete. */
  end: number;
  error: string | null;
}

function decode(pieces: Uint8Array[]): Decoded {
  const body: Buffer[] = [];
  let trailers: string[] | null = null;
  let ends = 0;
  const decoder = new BodyDecoder("chunked", -1, { data: (d) => body.push(Buffer.from(d)), end: (t) => ((trailers = t), ends++) });
  let offset = 0;
  let end = -1;
  let error: string | null = null;
  try {
    for (const piece of pieces) {
      const buf = Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
      const at = decoder.push(buf, 0);
      check(at >= 0 && at <= buf.length, `push returned ${at} for a read of ${buf.length} bytes`);
      if (decoder.done) {
        end = offset + at;
        break;
      }
      check(at === buf.length, "the decoder stopped early without ending the body");
      offset += buf.length;
    }
  } catch (e) {
    if (!isProtocolError(e)) throw e;
    error = (e as Error).message;
  }
  check(ends === (decoder.done ? 1 : 0), `end() called ${ends} times, done is ${decoder.done}`);
  const all = Buffer.concat(body);
  check(decoder.received === all.length, "received does not count the delivered bytes");
  return { body: all.toString("latin1"), trailers, end, error };
}

export const chunked: FuzzTarget = {
  name: "chunked",
  about:
    "BodyDecoder in chunked mode on arbitrary bytes: the same outcome for any split, never more bytes out than in, no framing field in the trailers",
  sources: ["proxy/http1/framing.ts"],
  maxLength: 2048,
  dictionary: [
    "0\r\n\r\n",
    "\r\n",
    "\r",
    "\n",
    ";",
    "; ext=1",
    " ",
    "\t",
    "\0",
    "0",
    "1",
    "a",
    "F",
    "ffffffffffff",
    "10000000000000",
    "5\r\nhello\r\n",
    "X-T: v\r\n",
    "Content-Length: 1\r\n",
    "Trailer: x\r\n",
    ":",
  ],
  seeds: () =>
    ["5\r\nhello\r\n0\r\n\r\n", "3;a=b\r\nabc\r\nA\r\n0123456789\r\n0\r\nX-Trailer: v\r\nY: w\r\n\r\nGET / HTTP/1.1\r\n", "0\r\n\r\n"].map(
      bytes,
    ),
  fuzz(data) {
    const whole = decode([data]);
    const bytewise = decode(
      piecesOf(
        data,
        Array.from({ length: data.length }, (_, i) => i),
      ),
    );
    const cut = decode(piecesOf(data, cutsOf(data, 3)));
    for (const [name, other] of [
      ["one byte at a time", bytewise],
      ["in pieces", cut],
    ] as const) {
      check(
        JSON.stringify(other) === JSON.stringify(whole),
        () => `decoded ${name}: ${JSON.stringify(other)}, whole: ${JSON.stringify(whole)}`,
      );
    }
    check(whole.body.length <= data.length, "more body bytes out than in");
    if (whole.end !== -1) check(whole.error === null && whole.end <= data.length, "ended past its input");
    for (let i = 0; i < (whole.trailers?.length ?? 0); i += 2) {
      check(!NOT_IN_TRAILERS.includes(whole.trailers![i].toLowerCase()), `trailer ${whole.trailers![i]} let through`);
      check(!/[\0-\x08\x0a-\x1f\x7f]/.test(whole.trailers![i + 1]), "a trailer value holds a control character");
    }
  },
};
