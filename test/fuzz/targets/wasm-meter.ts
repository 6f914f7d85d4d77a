// The filter meter (proxy/filters/meter.ts) decodes and rewrites WebAssembly binaries that
// users upload. On arbitrary bytes it returns a module or a MeterError; and the engine is the
// oracle for the rest: a module the engine accepts and the meter does not refuse on purpose
// must come out as a module the engine accepts, importing tick and exporting its two globals.
import { MeterError, meter } from "../../../proxy/filters/meter.ts";
import { check, type FuzzTarget } from "../target.ts";

// Small, so that a mutated memory size meets it.
const LIMIT = { maxMemoryPages: 16 };
// Refusals of valid modules that the meter makes on purpose (its messages say what to change).
const DELIBERATE = /which weft cannot meter|reserves|imports its memory|memories|pages \(.*\) of memory at start/;

/** Seed modules: the handmade ones the meter's tests use and AssemblyScript builds of the fixtures. */
async function seeds(): Promise<Uint8Array[]> {
  // Imported here: they are test fixtures the replay never needs.
  const handmade = await import("../../fixtures/meter/handmade.ts");
  const { compileAssemblyScript } = await import("../../support/asc.ts");
  const built = await Promise.all(
    ["test/fixtures/meter/loop.ts", "test/fixtures/meter/calls.ts"].map((f) =>
      compileAssemblyScript(f, ["--runtime", "stub", "--optimize"]),
    ),
  );
  return [
    handmade.indices(),
    handmade.features({ multiMemory: false }),
    handmade.memory(1, 4),
    handmade.memory(2),
    handmade.oneFunction([0x03, 0x40, 0x0c, 0, 0x0b, 0x41, 7, 0x0b]),
    handmade.named(new TextEncoder().encode('{"name":"x"}')),
    handmade.startsForever(),
    ...built.map((b) => b.wasm),
  ];
}

export const wasmMeter: FuzzTarget = {
  name: "wasm-meter",
  about:
    "meter() on arbitrary bytes: a module or a MeterError; an engine-valid module is metered into an engine-valid module or refused on purpose",
  sources: ["proxy/filters/meter.ts"],
  maxLength: 16384,
  dictionary: [
    "\0asm\x01\0\0\0",
    "\x60",
    "\x7f",
    "\x7e",
    "\x7b",
    "\x70",
    "\x6f",
    "\x40",
    "\x0b",
    "\x03\x40",
    "\x02\x40",
    "\x04\x40",
    "\x10\0",
    "\x23\0",
    "\x24\0",
    "\x40\0",
    "\xfc\x0b\0",
    "\xfd\x0c",
    "\xd2\0",
    "\xd0\x70",
    "\x80\x80\x80\x80\x10",
    "\xff\xff\xff\xff\x0f",
    "\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01",
    "\x04name",
    "\x01",
    "\x02",
    "\x05",
    "\x06",
    "\x07",
    "\x08",
    "\x09",
    "\x0a",
    "\x0c",
    "\x0d",
    "\x0e",
    "\x0aweft:meter",
    "\x09weft_fuel",
    "\x04tick",
  ],
  seeds,
  fuzz(data) {
    let out: Uint8Array;
    try {
      out = meter(data, LIMIT).bytes;
    } catch (e) {
      if (!(e instanceof MeterError)) throw e;
      check(
        !WebAssembly.validate(data as Uint8Array<ArrayBuffer>) || DELIBERATE.test(e.message),
        () => `a module the engine accepts was refused: ${e.message}`,
      );
      return;
    }
    check(out.length >= 8 && out[0] === 0 && out[1] === 0x61 && out[2] === 0x73 && out[3] === 0x6d, "output is not a WebAssembly binary");
    if (!WebAssembly.validate(data as Uint8Array<ArrayBuffer>)) return;
    check(WebAssembly.validate(out as Uint8Array<ArrayBuffer>), "a module the engine accepts was metered into one it refuses");
    const module = new WebAssembly.Module(out as Uint8Array<ArrayBuffer>);
    const exports = WebAssembly.Module.exports(module).filter((e) => e.name === "weft_fuel" || e.name === "weft_grow");
    check(exports.length === 2 && exports.every((e) => e.kind === "global"), "the metered module does not export weft_fuel and weft_grow");
    check(
      WebAssembly.Module.imports(module).some((i) => i.module === "weft:meter" && i.name === "tick" && i.kind === "function"),
      "the metered module does not import tick",
    );
  },
};
