// An OCI image layout (image-spec 1.1, "image-layout.md"): oci-layout, index.json naming each
// image by org.opencontainers.image.ref.name, and blobs/sha256/ with every layer, config and
// manifest. skopeo, podman, buildah and containerd read it as "oci:DIR:NAME".
import { Buffer } from "node:buffer";
import { mkdir, readFile, rename, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import process from "node:process";
import { sha256 } from "./hash.ts";
import type { Layer } from "./layer.ts";

const MEDIA = {
  index: "application/vnd.oci.image.index.v1+json",
  manifest: "application/vnd.oci.image.manifest.v1+json",
  config: "application/vnd.oci.image.config.v1+json",
  layer: "application/vnd.oci.image.layer.v1.tar+gzip",
};
const REF_NAME = "org.opencontainers.image.ref.name";
// Every time in the image is the epoch, as in the layers' tar entries: a build's date would
// make each build's digest different.
const CREATED = "1970-01-01T00:00:00Z";

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

/** The runtime part of the image config (image-spec config.md, "config"). */
export interface RunConfig {
  User: string;
  Env: string[];
  Cmd: string[];
  WorkingDir: string;
  ExposedPorts?: Record<string, Record<string, never>>;
  Labels: Record<string, string>;
}

export interface WrittenImage {
  /** The ref name in index.json: "weft:0.1.0". */
  ref: string;
  manifest: Descriptor;
  layers: Layer[];
}

export const blobsDir = (layout: string) => path.join(layout, "blobs", "sha256");

async function writeBlob(layout: string, mediaType: string, json: unknown): Promise<Descriptor> {
  const bytes = Buffer.from(JSON.stringify(json));
  const hex = sha256(bytes);
  const file = path.join(blobsDir(layout), hex);
  // Named by its content: present means complete (written to a temporary name, then renamed).
  if ((await stat(file).catch(() => null))?.size !== bytes.length) {
    await mkdir(blobsDir(layout), { recursive: true });
    await writeFile(`${file}.${process.pid}.tmp`, bytes);
    await rename(`${file}.${process.pid}.tmp`, file);
  }
  return { mediaType, digest: `sha256:${hex}`, size: bytes.length };
}

/** Writes the config and the manifest of one image whose layers are in the layout already. */
export async function writeImage(layout: string, ref: string, layers: Layer[], config: RunConfig): Promise<WrittenImage> {
  const configDescriptor = await writeBlob(layout, MEDIA.config, {
    created: CREATED,
    architecture: "amd64",
    os: "linux",
    config: config,
    rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffId) },
    history: layers.map((l) => ({ created: CREATED, created_by: `weft deploy/image: ${l.name}` })),
  });
  const manifest = await writeBlob(layout, MEDIA.manifest, {
    schemaVersion: 2,
    mediaType: MEDIA.manifest,
    config: configDescriptor,
    layers: layers.map((l) => ({ mediaType: MEDIA.layer, digest: l.digest, size: l.size })),
  });
  return { ref, manifest, layers };
}

/** index.json lists exactly `images`; written last and renamed into place, so a reader never sees it half-written. */
export async function writeIndex(layout: string, images: WrittenImage[]): Promise<void> {
  await writeFile(path.join(layout, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  const index = {
    schemaVersion: 2,
    mediaType: MEDIA.index,
    manifests: images.map((i) => ({ ...i.manifest, annotations: { [REF_NAME]: i.ref } })),
  };
  await writeFile(path.join(layout, `index.json.${process.pid}.tmp`), JSON.stringify(index, null, 2));
  await rename(path.join(layout, `index.json.${process.pid}.tmp`), path.join(layout, "index.json"));
}

/** The manifest digest of `ref` in the layout's index.json, or null. */
export async function digestOf(layout: string, ref: string): Promise<string | null> {
  const index = JSON.parse(await readFile(path.join(layout, "index.json"), "utf8")) as { manifests: Descriptor[] };
  return index.manifests.find((m) => m.annotations?.[REF_NAME] === ref)?.digest ?? null;
}
