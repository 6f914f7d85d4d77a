// Moving bytes across the boundary: one weft_write or weft_read per block, straight between
// the module's memory and the host's block (a plain PDK copies 8 bytes per host call).
// Text goes through one scratch buffer that lives as long as the instance, so naming a
// header, or reading one back, allocates nothing but the string read: calls leave the
// incremental GC little to do.
import { length, weft_read, weft_write } from "./abi";

// Text is given room for 3 bytes of UTF-8 a UTF-16 unit, the most it can take (a surrogate
// pair, two units, is 4). Longer text (a body) gets a buffer of its own rather than growing
// the scratch for good.
const SCRATCH_MAX: i32 = 16 * 1024;
let scratch = new ArrayBuffer(1024);

/** The scratch buffer, at least `bytes` long. */
function room(bytes: i32): usize {
  if (bytes > scratch.byteLength) scratch = new ArrayBuffer(max(bytes, scratch.byteLength << 1));
  return changetype<usize>(scratch);
}

function encodeInto(text: string, at: usize): usize {
  return String.UTF8.encodeUnsafe(changetype<usize>(text), text.length, at);
}

/** A new block holding `text` as UTF-8 (sized in bytes, not UTF-16 units). */
export function textBlock(text: string): u64 {
  if (text.length * 3 > SCRATCH_MAX) {
    const bytes = String.UTF8.encode(text);
    return weft_write(changetype<usize>(bytes), bytes.byteLength);
  }
  const buffer = room(text.length * 3);
  return weft_write(buffer, <i32>encodeInto(text, buffer));
}

/** A block holding `prefix` then `text` ("request." + a header name), without building that string. */
export function prefixedBlock(prefix: string, text: string): u64 {
  if ((prefix.length + text.length) * 3 > SCRATCH_MAX) return textBlock(prefix + text);
  const buffer = room((prefix.length + text.length) * 3);
  const split = encodeInto(prefix, buffer);
  return weft_write(buffer, <i32>(split + encodeInto(text, buffer + split)));
}

export function bytesBlock(bytes: Uint8Array): u64 {
  return weft_write(bytes.dataStart, bytes.byteLength);
}

/** The block's bytes, or null for block 0 ("none"). */
export function readBytes(block: u64): Uint8Array | null {
  if (block == 0) return null;
  const bytes = new Uint8Array(<i32>length(block));
  if (bytes.byteLength > 0) weft_read(block, bytes.dataStart);
  return bytes;
}

/** The block as UTF-8 text, or null for block 0 ("none"). */
export function readText(block: u64): string | null {
  if (block == 0) return null;
  const size = <i32>length(block);
  if (size == 0) return "";
  if (size > SCRATCH_MAX) {
    const bytes = new ArrayBuffer(size);
    weft_read(block, changetype<usize>(bytes));
    return String.UTF8.decode(bytes);
  }
  const buffer = room(size);
  weft_read(block, buffer);
  return String.UTF8.decodeUnsafe(buffer, size);
}
