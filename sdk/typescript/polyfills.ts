// What QuickJS lacks that filters, and the npm packages they bundle, commonly use: TextEncoder
// and TextDecoder (UTF-8 only), and console, whose lines go to the filter's log. The build
// injects this file ahead of every other module of the bundle, so a package that looks for
// them when it loads finds them.
import { native } from "./native.ts";

class TextEncoder {
  readonly encoding = "utf-8";

  encode(input = ""): Uint8Array {
    return native.encode(String(input));
  }
}

class TextDecoder {
  readonly encoding = "utf-8";

  constructor(label = "utf-8") {
    if (!/^(utf-?8|unicode-1-1-utf-8)$/i.test(label.trim()))
      throw new RangeError(`TextDecoder: a weft filter decodes only UTF-8, not "${label}"`);
  }

  /** Invalid sequences become U+FFFD and a leading byte order mark is dropped, as on the web. */
  decode(input?: ArrayBuffer | ArrayBufferView): string {
    if (input === undefined) return "";
    if (input instanceof Uint8Array) return native.decode(input);
    return native.decode(
      ArrayBuffer.isView(input) ? new Uint8Array(input.buffer, input.byteOffset, input.byteLength) : new Uint8Array(input),
    );
  }
}

function show(value: unknown): string {
  if (typeof value === "string") return value;
  if (value instanceof Error) return value.stack ? `${String(value)}\n${value.stack.trimEnd()}` : String(value);
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value); // a cycle, a BigInt
  }
}

const line =
  (level: number) =>
  (...values: unknown[]) =>
    native.log(level, values.map(show).join(" "));
const console = { debug: line(1), log: line(2), info: line(2), warn: line(3), error: line(4) };

const global = globalThis as Record<string, unknown>;
global.TextEncoder ??= TextEncoder;
global.TextDecoder ??= TextDecoder;
global.console ??= console;
