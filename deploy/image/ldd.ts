// The shared libraries and the dynamic loader binaries need, as ldd finds them on this
// machine: the image gets exactly those files instead of a distribution's base image.
import { execFile } from "node:child_process";
import type { HashMemo } from "./hash.ts";

/** ldd's answer for each binary: the absolute paths of its libraries and loader (none when static). */
async function ldd(binaries: string[]): Promise<Map<string, string[]>> {
  // ldd exits 1 when one of the files is static ("not a dynamic executable"); its output still lists the rest.
  const output = await new Promise<string>((resolve, reject) =>
    execFile("ldd", binaries, { encoding: "utf8", maxBuffer: 16 * 1024 * 1024 }, (e, stdout, stderr) => {
      if ((e as NodeJS.ErrnoException | null)?.code === "ENOENT")
        reject(new Error('ldd is missing: install it with "apt-get install libc-bin"'));
      else if (e && !stdout) reject(new Error(`ldd ${binaries.join(" ")} failed: ${stderr.trim() || e.message}`));
      else resolve(stdout);
    }),
  );
  const found = new Map<string, string[]>(binaries.map((b) => [b, []]));
  // Given several files, ldd heads each one's list with "FILE:".
  let current = binaries[0]!;
  for (const line of output.split("\n")) {
    if (binaries.length > 1 && line.endsWith(":") && found.has(line.slice(0, -1))) {
      current = line.slice(0, -1);
      continue;
    }
    const missing = /^\s*(\S+) => not found/.exec(line);
    if (missing)
      throw new Error(
        `${current} needs ${missing[1]}, which this machine does not have: install the Debian package with it (apt-file search ${missing[1]})`,
      );
    // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)", or the loader: "/lib64/ld-linux-x86-64.so.2 (0x...)".
    // linux-vdso.so.1 has no file: the kernel maps it into every process.
    const resolved = /=> (\/\S+) \(/.exec(line) ?? /^\s+(\/\S+) \(/.exec(line);
    if (resolved) found.get(current)!.push(resolved[1]!);
  }
  return found;
}

/**
 * Every library any of `binaries` needs, and the loader. ldd runs once for all the binaries
 * the memo has no answer for (iptables has 120 modules, and ldd takes ~10 ms a file).
 */
export async function sharedLibraries(binaries: string[], memo: HashMemo): Promise<string[]> {
  const all = new Set<string>();
  const unknown: string[] = [];
  for (const binary of binaries) {
    const known = await memo.libraries(binary);
    if (known) known.forEach((l) => all.add(l));
    else unknown.push(binary);
  }
  if (unknown.length) {
    for (const [binary, libraries] of await ldd(unknown)) {
      await memo.rememberLibraries(binary, libraries);
      libraries.forEach((l) => all.add(l));
    }
  }
  return [...all].sort();
}
