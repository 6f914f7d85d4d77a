// Copies images from the OCI layout to a registry with skopeo (Debian package skopeo), which
// reads credentials from `skopeo login` / `podman login` (auth.json) like the other tools.
import { run } from "./run.ts";

export interface PushOptions {
  /** Registry host[:port] and optional repository prefix: "localhost:5000", "ghcr.io/me". */
  registry: string;
  /** Plain HTTP or a certificate skopeo does not trust (a registry on localhost). */
  insecure?: boolean;
  /** The name:tag in the registry, when it is not `ref` (a layout tagged by role, not by name). */
  as?: string;
}

/** Pushes `ref` ("weft:0.1.0") from `layout` to REGISTRY/weft:0.1.0 (or REGISTRY/`as`); returns where it went. */
export async function pushImage(layout: string, ref: string, options: PushOptions): Promise<string> {
  const destination = `${options.registry.replace(/\/+$/, "")}/${options.as ?? ref}`;
  await run("skopeo", [
    "copy",
    "--quiet",
    // The layout's gzip blobs go as they are, so the registry's digests are the layout's.
    "--preserve-digests",
    ...(options.insecure ? ["--dest-tls-verify=false"] : []),
    `oci:${layout}:${ref}`,
    `docker://${destination}`,
  ]);
  return destination;
}
