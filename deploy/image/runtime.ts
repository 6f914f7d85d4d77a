// A JavaScript runtime's layer: its binary from node_modules (the versions package.json pins)
// on PATH under /usr/local/bin, and the shared libraries and loader ldd says it needs.
import { existsSync } from "node:fs";
import path from "node:path";
import type { HashMemo } from "./hash.ts";
import { sharedLibraries } from "./ldd.ts";
import { Tree } from "./tree.ts";

const ROOT = path.resolve(import.meta.dirname ?? ".", "..", "..");

export type RuntimeName = "node" | "deno" | "bun";

interface Runtime {
  /** In the repository, as npm installs it. */
  binary: string;
  /**
   * Node's binary carries its symbols and debug sections (126 MB; 108 MB without them). Deno's
   * is stripped already, and Bun's symbols are a few KB that its crash reports use.
   */
  strip: boolean;
}

const RUNTIMES: Record<RuntimeName, Runtime> = {
  node: { binary: "node_modules/node/bin/node", strip: true },
  deno: { binary: "node_modules/deno/deno", strip: false },
  bun: { binary: "node_modules/bun/bin/bun.exe", strip: false },
};

/** Where the runtime is in the image: on PATH under its own name, as the injector's commands call it. */
export const runtimePath = (name: RuntimeName) => `/usr/local/bin/${name}`;

export async function runtimeTree(name: RuntimeName, memo: HashMemo): Promise<Tree> {
  const runtime = RUNTIMES[name];
  const binary = path.join(ROOT, runtime.binary);
  if (!existsSync(binary)) throw new Error(`${binary} is missing: run "npm install" (package.json pins ${name} as a devDependency)`);
  const tree = new Tree().file(runtimePath(name), binary, { strip: runtime.strip });
  for (const lib of await sharedLibraries([binary], memo)) await tree.host(lib);
  return tree;
}
