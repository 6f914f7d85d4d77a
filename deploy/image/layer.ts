// One image layer from a Tree: the files are put in a staging folder, archived by GNU tar in
// a reproducible form (names sorted, every time 0, owner root, no user or group names) and
// compressed by `gzip -n` (no name or time in the header), so the same tree gives the same
// bytes and digests on every build. Layers are cached by a hash of their description and the
// tools' versions: an unchanged layer is not archived again.
import { spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { chmod, copyFile, mkdir, mkdtemp, readdir, readFile, rename, rm, stat, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import process from "node:process";
import { pipeline } from "node:stream/promises";
import { Transform } from "node:stream";
import { sha256, type HashMemo } from "./hash.ts";
import { run, toolVersion, ToolError } from "./run.ts";
import type { Tree } from "./tree.ts";

/** Bumped when the way layers are made changes, so cached layers made the old way are not reused. */
const FORMAT = "weft-layer-1";
const TAR_FLAGS = [
  "--format=gnu",
  "--sort=name",
  "--mtime=@0",
  "--owner=0",
  "--group=0",
  "--numeric-owner",
  "--no-acls",
  "--no-xattrs",
  "--no-selinux",
];

export interface Layer {
  /** What the layer is, for the image history and the build's log. */
  name: string;
  /** sha256:... of the gzip blob, as the manifest names it. */
  digest: string;
  /** sha256:... of the uncompressed tar, as the config's rootfs.diff_ids names it. */
  diffId: string;
  /** Bytes of the gzip blob. */
  size: number;
  /** Bytes of the uncompressed tar. */
  tarSize: number;
  /** Taken from the cache rather than built. */
  cached?: boolean;
}

let tools: Promise<string> | undefined;
/** tar's, gzip's and strip's versions: a different version may write different bytes. */
const toolVersions = () => (tools ??= Promise.all(["tar", "gzip", "strip"].map(toolVersion)).then((v) => v.join("\n")));

/** The layer for `tree`, from the cache (`cacheDir`/layers) or built; its blob is in `blobsDir`. */
export async function buildLayer(name: string, tree: Tree, cacheDir: string, blobsDir: string, memo: HashMemo): Promise<Layer> {
  const key = sha256(`${FORMAT}\n${await toolVersions()}\n${await tree.describe(memo)}`);
  const record = path.join(cacheDir, "layers", `${key}.json`);
  const known = await readFile(record, "utf8").then(
    (t) => JSON.parse(t) as Layer,
    () => null,
  );
  if (known && (await stat(path.join(blobsDir, known.digest.slice("sha256:".length))).catch(() => null))?.size === known.size) {
    return { ...known, name, cached: true };
  }
  await mkdir(path.join(cacheDir, "layers"), { recursive: true });
  await mkdir(blobsDir, { recursive: true });
  const work = await mkdtemp(path.join(cacheDir, "staging-"));
  try {
    const root = path.join(work, "root");
    await stage(tree, root);
    const layer = { name, ...(await archive(root, work, blobsDir)) };
    await writeFile(`${record}.${process.pid}.tmp`, JSON.stringify(layer));
    await rename(`${record}.${process.pid}.tmp`, record);
    return layer;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Writes the tree's files into `root`, every mode set explicitly so the umask does not matter. */
async function stage(tree: Tree, root: string): Promise<void> {
  await mkdir(root, { recursive: true });
  const dirs = new Map<string, number>([[root, 0o755]]);
  const parents = async (file: string) => {
    for (let dir = path.dirname(file); !dirs.has(dir); dir = path.dirname(dir)) dirs.set(dir, 0o755);
    await mkdir(path.dirname(file), { recursive: true });
  };
  for (const at of [...tree.entries.keys()].sort()) {
    const entry = tree.entries.get(at)!;
    const to = path.join(root, at);
    if (entry.kind === "dir") {
      await mkdir(to, { recursive: true });
      await parents(to);
      dirs.set(to, entry.mode);
      continue;
    }
    await parents(to);
    if (entry.kind === "link") await symlink(entry.target, to);
    else {
      if (entry.kind === "data") await writeFile(to, entry.data);
      // Without symbols and debug sections the program runs the same; only a native crash's
      // stack trace loses its function names.
      else if (entry.strip) await run("strip", ["--strip-all", "-o", to, entry.source]);
      else await copyFile(entry.source, to);
      await chmod(to, entry.mode);
    }
  }
  for (const [dir, mode] of dirs) await chmod(dir, mode);
}

/** Counts and hashes the bytes going through, for the tar's diff_id and the blob's digest. */
function meter(): Transform & { bytes: number; hex: () => string } {
  const hash = createHash("sha256");
  const t = new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      t.bytes += chunk.length;
      done(null, chunk);
    },
  }) as Transform & { bytes: number; hex: () => string };
  t.bytes = 0;
  t.hex = () => hash.digest("hex");
  return t;
}

async function archive(root: string, work: string, blobsDir: string): Promise<Omit<Layer, "name">> {
  // Top-level names rather than ".", so no "./" prefix and no entry for the image's root.
  const names = (await readdir(root)).sort();
  const tar = spawn("tar", ["--create", "--file=-", ...TAR_FLAGS, "-C", root, "--", ...names], { stdio: ["ignore", "pipe", "pipe"] });
  const gzip = spawn("gzip", ["-n", "-6", "-c"], { stdio: ["pipe", "pipe", "pipe"] });
  const failed = (name: string, child: ChildProcess) =>
    new Promise<void>((resolve, reject) => {
      let stderr = "";
      child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
      child.on("error", (e: NodeJS.ErrnoException) =>
        reject(
          new ToolError(e.code === "ENOENT" ? `${name} is missing: install it with "apt-get install ${name}"` : `${name}: ${e.message}`),
        ),
      );
      child.on("close", (code) =>
        code === 0 ? resolve() : reject(new ToolError(`${name} failed (exit ${code}) while archiving a layer: ${stderr.trim()}`)),
      );
    });
  const tarMeter = meter();
  const gzMeter = meter();
  const partial = path.join(work, "layer.tar.gz");
  await Promise.all([
    failed("tar", tar),
    failed("gzip", gzip),
    pipeline(tar.stdout!, tarMeter, gzip.stdin!),
    pipeline(gzip.stdout!, gzMeter, createWriteStream(partial)),
  ]);
  const hex = gzMeter.hex();
  await rename(partial, path.join(blobsDir, hex));
  return { digest: `sha256:${hex}`, diffId: `sha256:${tarMeter.hex()}`, size: gzMeter.bytes, tarSize: tarMeter.bytes };
}
