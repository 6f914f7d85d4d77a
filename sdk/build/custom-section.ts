// Appending a custom section to a WebAssembly module (binary format: id 0, the section size,
// then the name and the payload). Custom sections may come anywhere, so the end will do.

export function leb128(value: number): number[] {
  const bytes: number[] = [];
  do {
    let byte = value & 0x7f;
    value = Math.floor(value / 128);
    if (value > 0) byte |= 0x80;
    bytes.push(byte);
  } while (value > 0);
  return bytes;
}

export function appendCustomSection(module: Uint8Array, name: string, payload: Uint8Array): Uint8Array {
  const nameBytes = new TextEncoder().encode(name);
  const nameLength = leb128(nameBytes.length);
  const size = leb128(nameLength.length + nameBytes.length + payload.length);
  const out = new Uint8Array(module.length + 1 + size.length + nameLength.length + nameBytes.length + payload.length);
  let at = 0;
  for (const part of [module, [0], size, nameLength, nameBytes, payload]) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}
