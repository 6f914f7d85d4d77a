// The corpus kept in the repository: test/fuzz/corpus/<target>/<sha1 of the content>, one input
// per file. The engine adds and prunes files; the replay suite reads them on every runtime.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";

export const CORPUS = path.resolve(import.meta.dirname ?? ".", "corpus");

export interface CorpusEntry {
  name: string;
  data: Uint8Array;
}

const dirOf = (target: string) => path.join(CORPUS, target);

/** The target's corpus files in name order (so replays are the same everywhere). */
export function readCorpus(target: string): CorpusEntry[] {
  const dir = dirOf(target);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .sort()
    .map((name) => ({ name, data: new Uint8Array(readFileSync(path.join(dir, name))) }));
}

export const entryName = (data: Uint8Array): string => createHash("sha1").update(data).digest("hex");

export function addToCorpus(target: string, data: Uint8Array): string {
  mkdirSync(dirOf(target), { recursive: true });
  const name = entryName(data);
  writeFileSync(path.join(dirOf(target), name), data);
  return name;
}

export function removeFromCorpus(target: string, name: string): void {
  rmSync(path.join(dirOf(target), name), { force: true });
}
