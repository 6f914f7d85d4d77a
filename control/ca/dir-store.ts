// A CaStore in a directory, for running without Kubernetes (local mode): the files are named
// as in the Secret (tls.crt, tls.key, ca.crt), so a CA brought along as files works either way.
// Creation is atomic: the files are written to a sibling directory that is then renamed into
// place, which fails when another process got there first; that one's CA is then used.
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import type { CaMaterial, CaStore } from "./authority.ts";

function missing(e: unknown): boolean {
  return (e as NodeJS.ErrnoException).code === "ENOENT";
}

async function readOptional(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, "utf8");
  } catch (e) {
    if (missing(e)) return undefined;
    throw e;
  }
}

export function directoryStore(dir: string): CaStore {
  const location = `directory ${dir}`;
  const load = async (): Promise<CaMaterial | null> => {
    const [certPem, keyPem, caPem] = await Promise.all(["tls.crt", "tls.key", "ca.crt"].map((f) => readOptional(path.join(dir, f))));
    if (certPem === undefined && keyPem === undefined) return null;
    if (certPem === undefined || keyPem === undefined) {
      throw new Error(
        `${location} has ${certPem === undefined ? "tls.key but no tls.crt" : "tls.crt but no tls.key"}: add the missing file, or remove the directory to have a new root generated`,
      );
    }
    return { certPem, keyPem, ...(caPem !== undefined ? { caPem } : {}) };
  };
  return {
    location,
    load,
    async create(material) {
      const parent = path.dirname(path.resolve(dir));
      await mkdir(parent, { recursive: true });
      const staging = await mkdtemp(path.join(parent, `.${path.basename(dir)}-`)); // mode 0700
      try {
        await writeFile(path.join(staging, "tls.key"), material.keyPem, { mode: 0o600 });
        await writeFile(path.join(staging, "tls.crt"), material.certPem, { mode: 0o644 });
        if (material.caPem !== undefined) await writeFile(path.join(staging, "ca.crt"), material.caPem, { mode: 0o644 });
        // Replaces `dir` only when it is absent or empty; a directory with files stays as it is.
        await rename(staging, dir);
        return material;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== "ENOTEMPTY" && code !== "EEXIST") throw e;
        const existing = await load();
        if (!existing) throw new Error(`${location} exists but holds neither tls.crt nor tls.key: remove it or put the CA's files there`);
        return existing;
      } finally {
        await rm(staging, { recursive: true, force: true });
      }
    },
  };
}
