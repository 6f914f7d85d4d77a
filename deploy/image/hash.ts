// SHA-256 of files and strings, hex: the cache keys and the OCI digests are made of them.
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { readFile, rename, stat, writeFile } from "node:fs/promises";
import process from "node:process";

export function sha256(data: string | Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** Streamed, so hashing a 120 MB runtime binary does not hold it in memory. */
async function hashFile(file: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(file)) hash.update(chunk as Uint8Array);
  return hash.digest("hex");
}

/**
 * File hashes remembered by path, size, change time and inode, as git's index does: a build
 * with nothing changed then reads no runtime binary again (300 MB of them: seconds, not ms).
 */
export class HashMemo {
  #known = new Map<string, { stamp: string; sha256: string; libraries?: string[] }>();
  #changed = false;
  readonly file: string | null;
  constructor(file: string | null) {
    this.file = file;
  }

  static async load(file: string): Promise<HashMemo> {
    const memo = new HashMemo(file);
    const saved = await readFile(file, "utf8").then(
      (t) => JSON.parse(t) as Record<string, { stamp: string; sha256: string; libraries?: string[] }>,
      () => ({}),
    );
    for (const [path, entry] of Object.entries(saved)) memo.#known.set(path, entry);
    return memo;
  }

  async #stamp(file: string): Promise<string> {
    const info = await stat(file).catch(() => null);
    if (!info) throw new Error(`${file} is missing`);
    // ctime, not mtime: it changes on every write, even one that sets mtime back (npm does).
    return `${info.size} ${info.ctimeMs} ${info.ino}`;
  }

  async sha256File(file: string): Promise<string> {
    const stamp = await this.#stamp(file);
    const known = this.#known.get(file);
    if (known?.stamp === stamp) return known.sha256;
    const sha256 = await hashFile(file);
    this.#known.set(file, { stamp, sha256 });
    this.#changed = true;
    return sha256;
  }

  /** The shared libraries remembered for an unchanged binary (ldd.ts), or undefined. */
  async libraries(file: string): Promise<string[] | undefined> {
    const known = this.#known.get(file);
    return known?.libraries && known.stamp === (await this.#stamp(file)) ? known.libraries : undefined;
  }

  async rememberLibraries(file: string, libraries: string[]): Promise<void> {
    const sha256 = await this.sha256File(file);
    this.#known.set(file, { ...this.#known.get(file)!, sha256, libraries });
    this.#changed = true;
  }

  async save(): Promise<void> {
    if (!this.file || !this.#changed) return;
    await writeFile(`${this.file}.${process.pid}.tmp`, JSON.stringify(Object.fromEntries(this.#known)));
    await rename(`${this.file}.${process.pid}.tmp`, this.file);
  }
}
