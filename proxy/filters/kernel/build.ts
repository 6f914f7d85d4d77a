// Assembles kernel.wat into kernel-wasm.ts (the bytes the proxy links every filter to):
//   node proxy/filters/kernel/build.ts
// The proxy does not carry an assembler; kernel.test.ts checks that the committed bytes are
// what the text assembles to.
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Buffer } from "node:buffer";
import binaryen from "binaryen";

const here = (name: string) => fileURLToPath(new URL(name, import.meta.url));

/** kernel.wat, assembled, as the TypeScript module kernel-wasm.ts holds it. */
export function kernelModuleSource(): string {
  const module = binaryen.parseText(readFileSync(here("kernel.wat"), "utf8"));
  try {
    if (!module.validate()) throw new Error("proxy/filters/kernel/kernel.wat does not validate (binaryen printed why above)");
    const base64 = Buffer.from(module.emitBinary()).toString("base64");
    return `// Generated from kernel.wat by \`node proxy/filters/kernel/build.ts\`; do not edit.\nexport const KERNEL_WASM_BASE64 =\n  "${base64}";\n`;
  } finally {
    module.dispose();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(here("kernel-wasm.ts"), kernelModuleSource());
}
