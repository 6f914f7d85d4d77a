// Filter modules the control plane names by digest: fetched once from it, checked, and kept
// on disk by digest, so a restarted proxy does not fetch them again and a module is never
// used unless its bytes have the digest the configuration asks for.
import { createHash } from "node:crypto";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import path from "node:path";
import process from "node:process";
import type { ModuleFetcher } from "../filters/module.ts";
import { getBytes, type ControlEndpoint } from "./http.ts";

const digestOf = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

export function controlPlaneFilters(endpoint: ControlEndpoint, cacheDir: string): ModuleFetcher {
  return async (sha256) => {
    const file = path.join(cacheDir, `${sha256}.wasm`);
    const cached = await readFile(file).catch(() => null);
    if (cached && digestOf(cached) === sha256) return cached;
    const bytes = await getBytes(endpoint, `/v1/filters/${sha256}`);
    const got = digestOf(bytes);
    if (got !== sha256) throw new Error(`the control plane sent a module with sha256 ${got} for ${sha256}; not loaded`);
    await mkdir(cacheDir, { recursive: true });
    // Written under a temporary name and renamed, so a crash never leaves half a module.
    const partial = `${file}.${process.pid}.partial`;
    await writeFile(partial, bytes);
    await rename(partial, file);
    return bytes;
  };
}
