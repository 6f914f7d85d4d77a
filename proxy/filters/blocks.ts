// Extism's memory blocks: the host-side memory through which a filter and the proxy pass
// bytes (docs/filter-abi.md). Offsets index one growable buffer; a bump allocator serves the
// blocks and everything is released at the end of each phase call, as Extism does per call.
import { FilterFault } from "./fault.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class Blocks {
  private bytes = new Uint8Array(16 * 1024);
  private view = new DataView(this.bytes.buffer);
  private top = 8; // offset 0 means "no block"
  private readonly lengths = new Map<number, number>();
  private readonly ceiling: number;

  constructor(ceilingBytes: number) {
    this.ceiling = ceilingBytes;
  }

  alloc(length: number): number {
    if (!Number.isSafeInteger(length) || length < 0) throw new FilterFault("trap", `alloc(${length}): not a block length`);
    const offset = this.top;
    const end = offset + length;
    if (end > this.ceiling) {
      throw new FilterFault(
        "memory",
        `the filter's blocks would take ${end} bytes in one call, over its memory limit of ${this.ceiling} bytes`,
      );
    }
    if (end > this.bytes.length) this.grow(end);
    // Aligned to 8 so that load_u64/store_u64 loops stay inside one block; an empty block
    // still takes a slot, or the next block would share its offset.
    this.top = (Math.max(end, offset + 1) + 7) & ~7;
    this.lengths.set(offset, length);
    return offset;
  }

  private grow(needed: number): void {
    let size = this.bytes.length * 2;
    while (size < needed) size *= 2;
    const next = new Uint8Array(Math.min(size, this.ceiling + 8));
    next.set(this.bytes.subarray(0, this.top));
    this.bytes = next;
    this.view = new DataView(next.buffer);
  }

  length(offset: number): number {
    return this.lengths.get(offset) ?? 0;
  }

  /** A view of a block's bytes (valid until the next alloc). */
  read(offset: number): Uint8Array {
    const length = this.lengths.get(offset);
    if (length === undefined) throw new FilterFault("trap", `${offset} is not the offset of a memory block`);
    return this.bytes.subarray(offset, offset + length);
  }

  readString(offset: number): string {
    return decoder.decode(this.read(offset));
  }

  /** Like readString, but 0 reads as null. */
  readOptional(offset: number): string | null {
    return offset === 0 ? null : this.readString(offset);
  }

  write(data: Uint8Array): number {
    const offset = this.alloc(data.length);
    this.bytes.set(data, offset);
    return offset;
  }

  writeString(text: string): number {
    return this.write(encoder.encode(text));
  }

  free(offset: number): void {
    this.lengths.delete(offset);
  }

  private check(offset: number, size: number): void {
    if (offset < 8 || offset + size > this.top)
      throw new FilterFault("trap", `memory access at ${offset} (${size} bytes) is outside every block`);
  }

  loadU8(offset: number): number {
    this.check(offset, 1);
    return this.bytes[offset]!;
  }

  loadU64(offset: number): bigint {
    this.check(offset, 8);
    return this.view.getBigUint64(offset, true);
  }

  storeU8(offset: number, value: number): void {
    this.check(offset, 1);
    this.bytes[offset] = value;
  }

  storeU64(offset: number, value: bigint): void {
    this.check(offset, 8);
    this.view.setBigUint64(offset, value, true);
  }

  /** Releases every block; called after each phase call. */
  reset(): void {
    this.top = 8;
    this.lengths.clear();
  }
}
