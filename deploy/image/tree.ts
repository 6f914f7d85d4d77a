// The contents of one layer: paths in the image and where each comes from (a file of this
// machine, generated text, a symbolic link, a directory). A layer's cache key is made from
// this description, so it names every input: the content hash of each file, each mode.
import { lstat, readlink } from "node:fs/promises";
import path from "node:path";
import type { HashMemo } from "./hash.ts";

export type Entry =
  /** A file of this machine, copied (or copied without its symbols, with `strip`). */
  | { kind: "file"; source: string; mode: number; strip?: boolean }
  | { kind: "data"; data: string; mode: number }
  | { kind: "link"; target: string }
  | { kind: "dir"; mode: number };

export class Tree {
  readonly entries = new Map<string, Entry>();

  /** The same path given twice must agree; a clash is a mistake in the image's definition. */
  #set(at: string, entry: Entry): this {
    if (!path.isAbsolute(at)) throw new Error(`image path "${at}" must be absolute`);
    const before = this.entries.get(at);
    if (before && JSON.stringify(before) !== JSON.stringify(entry)) {
      throw new Error(`image path ${at} is given twice, as ${JSON.stringify(before)} and ${JSON.stringify(entry)}`);
    }
    this.entries.set(at, entry);
    return this;
  }

  file(at: string, source: string, options: { mode?: number; strip?: boolean } = {}): this {
    return this.#set(at, { kind: "file", source, mode: options.mode ?? 0o755, ...(options.strip ? { strip: true } : {}) });
  }

  data(at: string, data: string, mode = 0o644): this {
    return this.#set(at, { kind: "data", data, mode });
  }

  link(at: string, target: string): this {
    return this.#set(at, { kind: "link", target });
  }

  dir(at: string, mode = 0o755): this {
    return this.#set(at, { kind: "dir", mode });
  }

  /**
   * A file of this machine at the same path in the image, with every symbolic link on the way
   * to it (Debian's /lib -> usr/lib, libfoo.so.1 -> libfoo.so.1.2.3), so that the name a
   * program asks for resolves in the image as it does here.
   */
  async host(file: string): Promise<this> {
    const parts = path.resolve(file).split("/").filter(Boolean);
    let at = "/";
    for (let i = 0; i < parts.length; i++) {
      const next = path.join(at, parts[i]!);
      const info = await lstat(next).catch(() => null);
      if (!info) throw new Error(`${file} does not exist on this machine (${next} is missing): install the Debian package that has it`);
      if (info.isSymbolicLink()) {
        const target = await readlink(next);
        this.link(next, target);
        return this.host(path.join(path.resolve(at, target), ...parts.slice(i + 1)));
      }
      if (i === parts.length - 1) {
        if (!info.isFile()) throw new Error(`${file} is not a regular file`);
        return this.file(next, next, { mode: info.mode & 0o111 ? 0o755 : 0o644 });
      }
      at = next;
    }
    throw new Error(`${file} is a directory, not a file`);
  }

  /**
   * The entries that `lower` (the layers under this one in an image) does not have already:
   * iptables needs libc too, and a second copy of it in an upper layer only costs space.
   */
  minus(lower: Tree[]): Tree {
    const rest = new Tree();
    for (const [at, entry] of this.entries) {
      if (!lower.some((t) => JSON.stringify(t.entries.get(at)) === JSON.stringify(entry))) rest.entries.set(at, entry);
    }
    return rest;
  }

  /** Every entry, sorted, with the content hash of each file: what the layer is made of. */
  async describe(memo: HashMemo): Promise<string> {
    const lines: string[] = [];
    for (const at of [...this.entries.keys()].sort()) {
      const e = this.entries.get(at)!;
      if (e.kind === "file")
        lines.push(
          `${at} file ${e.mode.toString(8)} ${e.strip ? "stripped " : ""}${await memo.sha256File(e.source).catch(() => {
            throw new Error(`${e.source} (for ${at} in the image) is missing on this machine`);
          })}`,
        );
      else if (e.kind === "data") lines.push(`${at} data ${e.mode.toString(8)} ${JSON.stringify(e.data)}`);
      else if (e.kind === "link") lines.push(`${at} link ${e.target}`);
      else lines.push(`${at} dir ${e.mode.toString(8)}`);
    }
    return lines.join("\n");
  }
}
