// The JavaScript the images run, bundled by esbuild: weft itself with exactly the flags of
// `npm run build` (read from package.json, so the image and dist/ never differ), and the shop's
// demo apps. Each goes to its own folder under the cache, never to dist/, which other builds
// (test/bundle.test.ts runs `npm run build`) delete and rewrite meanwhile.
//
// Cached by esbuild's own list of what it read (its metafile): a bundle is reused while the
// command, package.json, package-lock.json and every file it read last time are unchanged.
// Changing which files are read means changing one that was read, so nothing is missed.
import { execFile } from "node:child_process";
import { mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import process from "node:process";
import { sha256, type HashMemo } from "./hash.ts";

const ROOT = path.resolve(import.meta.dirname ?? ".", "..", "..");
const ESBUILD = path.join(ROOT, "node_modules", ".bin", "esbuild");

export interface Bundle {
  /** The folder with the output files (weft.mjs and chunks/, or one .mjs a shop app). */
  dir: string;
  cached: boolean;
}

interface BundleRecord {
  command: string;
  inputs: string[];
  key: string;
}

async function inputsKey(command: string, inputs: string[], memo: HashMemo): Promise<string> {
  const parts = [command];
  for (const file of ["package.json", "package-lock.json", ...inputs]) {
    parts.push(`${file} ${await memo.sha256File(path.join(ROOT, file)).catch(() => "missing")}`);
  }
  return sha256(parts.join("\n")).slice(0, 32);
}

/** Runs `command` (a shell command line whose output goes to --outdir=OUT) unless the cache has its result. */
async function cachedBundle(name: string, command: string, cacheDir: string, memo: HashMemo): Promise<Bundle> {
  const dir = path.join(cacheDir, "bundles");
  const recordFile = path.join(dir, `${name}.json`);
  const last = await readFile(recordFile, "utf8").then(
    (t) => JSON.parse(t) as BundleRecord,
    () => null,
  );
  if (last && last.command === command && (await stat(path.join(dir, `${name}-${last.key}`)).catch(() => null))) {
    if ((await inputsKey(command, last.inputs, memo)) === last.key) return { dir: path.join(dir, `${name}-${last.key}`), cached: true };
  }
  const work = path.join(dir, `${name}.${process.pid}.tmp`);
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  const out = path.join(work, "out");
  const meta = path.join(work, "meta.json");
  await new Promise<void>((resolve, reject) =>
    execFile(
      "sh",
      ["-c", `${command} --outdir=${JSON.stringify(out)} --metafile=${JSON.stringify(meta)} --log-level=warning`],
      { cwd: ROOT, env: { ...process.env, PATH: `${path.dirname(ESBUILD)}:${process.env.PATH}` } },
      (e, _stdout, stderr) =>
        e
          ? reject(
              new Error(
                `bundling ${name} failed: ${stderr.trim() || e.message}\n(the command was: ${command}; run "npm install" if esbuild is missing)`,
              ),
            )
          : resolve(),
    ),
  );
  // Inputs as esbuild names them, relative to the repository; "(disabled):..." and the like are not files.
  const inputs = Object.keys((JSON.parse(await readFile(meta, "utf8")) as { inputs: object }).inputs)
    .filter((f) => !f.includes(":"))
    .sort();
  const key = await inputsKey(command, inputs, memo);
  const final = path.join(dir, `${name}-${key}`);
  await rm(final, { recursive: true, force: true });
  await rename(out, final);
  await rm(work, { recursive: true, force: true });
  await writeFile(`${recordFile}.${process.pid}.tmp`, JSON.stringify({ command, inputs, key } satisfies BundleRecord));
  await rename(`${recordFile}.${process.pid}.tmp`, recordFile);
  return { dir: final, cached: false };
}

/** `npm run build`'s esbuild command, without its "rm -rf dist &&" and with the output elsewhere (a later --outdir wins). */
async function buildScript(): Promise<string> {
  const pkg = JSON.parse(await readFile(path.join(ROOT, "package.json"), "utf8")) as { scripts?: { build?: string } };
  const script = pkg.scripts?.build ?? "";
  const esbuild = /(?:^|&&\s*)(esbuild\s.*)$/.exec(script);
  if (!esbuild)
    throw new Error(
      `package.json's "build" script is not an esbuild command ("${script}"): deploy/image/bundle.ts reads its flags; update it to the new build`,
    );
  return esbuild[1]!;
}

/** weft: weft.mjs and chunks/, as `npm run build` makes them. */
export async function weftBundle(cacheDir: string, memo: HashMemo): Promise<Bundle> {
  return cachedBundle("weft", await buildScript(), cacheDir, memo);
}

/** The shop's apps, one self-contained .mjs each: catalog.mjs, frontend.mjs, inventory.mjs. */
export async function shopBundle(cacheDir: string, apps: string[], memo: HashMemo): Promise<Bundle> {
  const entries = apps.map((a) => `examples/shop/${a}.ts`).join(" ");
  return cachedBundle(
    "shop",
    `esbuild ${entries} --bundle --platform=node --format=esm --target=node22 --out-extension:.js=.mjs`,
    cacheDir,
    memo,
  );
}
