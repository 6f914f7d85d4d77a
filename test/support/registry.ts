// A real OCI registry for the tests: Debian's docker-registry (CNCF distribution 2.8) as a
// process on 127.0.0.1, with its own storage folder and a generated config; optionally behind
// htpasswd (Basic) or token (Bearer) auth. Its access log is kept, so a test can see which
// requests a client made.
import { execFile } from "node:child_process";
import { access, mkdtemp, rm, writeFile } from "node:fs/promises";
import { constants } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { startServerProcess } from "./server-process.ts";
import { deadPort } from "./upstream.ts";

const BINARY = "/usr/bin/docker-registry";
const INSTALL = "apt-get install -y docker-registry apache2-utils";

export interface RegistryOptions {
  /** htpasswd (Basic) auth with this one user; the entry is made by `htpasswd -Bbn`. */
  htpasswd?: { username: string; password: string };
  /** Bearer-token auth: the registry sends clients to `realm` and trusts tokens signed under `rootCertBundle` (PEM). */
  token?: { realm: string; service: string; issuer: string; rootCertBundle: string };
  /** Upload Locations relative ("/v2/...") instead of absolute URLs. */
  relativeUrls?: boolean;
}

export interface TestRegistry {
  /** 127.0.0.1:PORT, as an oci:// reference names it. */
  host: string;
  /** The storage folder's file holding a blob's bytes (for tests that damage it). */
  blobFile(digest: string): string;
  /** The access log so far, one request a line: `"PUT /v2/.../blobs/uploads/... HTTP/1.1" 201`. */
  accessLog(): string[];
  stop(): Promise<void>;
}

async function needExecutable(file: string, what: string): Promise<void> {
  try {
    await access(file, constants.X_OK);
  } catch {
    throw new Error(`${file} is missing: the OCI tests need ${what}; install it with "${INSTALL}" (.ci/run does)`);
  }
}

async function htpasswdLine(username: string, password: string): Promise<string> {
  await needExecutable("/usr/bin/htpasswd", "htpasswd (apache2-utils) for a bcrypt password entry");
  return new Promise((resolve, reject) =>
    execFile("/usr/bin/htpasswd", ["-Bbn", username, password], { encoding: "utf8" }, (e, stdout, stderr) =>
      e ? reject(new Error(`htpasswd -Bbn failed: ${stderr || e.message}`)) : resolve(stdout.trim()),
    ),
  );
}

// JSON strings are YAML strings, so paths and URLs need no YAML quoting rules.
const q = (s: string) => JSON.stringify(s);

export async function startRegistry(options: RegistryOptions = {}): Promise<TestRegistry> {
  await needExecutable(BINARY, "a real OCI registry (package docker-registry)");
  const dir = await mkdtemp(path.join(tmpdir(), "weft-registry-"));
  const storage = path.join(dir, "storage");
  const port = await deadPort();
  const config = [
    "version: 0.1",
    "log:",
    "  level: error",
    "storage:",
    "  filesystem:",
    `    rootdirectory: ${q(storage)}`,
    "http:",
    `  addr: ${q(`127.0.0.1:${port}`)}`,
    `  relativeurls: ${options.relativeUrls ?? false}`,
  ];
  if (options.htpasswd) {
    await writeFile(path.join(dir, "htpasswd"), `${await htpasswdLine(options.htpasswd.username, options.htpasswd.password)}\n`);
    config.push("auth:", "  htpasswd:", "    realm: weft-test", `    path: ${q(path.join(dir, "htpasswd"))}`);
  }
  if (options.token) {
    await writeFile(path.join(dir, "token-roots.pem"), options.token.rootCertBundle);
    const t = options.token;
    config.push(
      "auth:",
      "  token:",
      `    realm: ${q(t.realm)}`,
      `    service: ${q(t.service)}`,
      `    issuer: ${q(t.issuer)}`,
      `    rootcertbundle: ${q(path.join(dir, "token-roots.pem"))}`,
    );
  }
  await writeFile(path.join(dir, "config.yml"), `${config.join("\n")}\n`);

  const host = `127.0.0.1:${port}`;
  const server = await startServerProcess(`docker-registry on ${host}`, BINARY, ["serve", path.join(dir, "config.yml")], {
    // Ready once /v2/ answers at all (401 included: auth is on).
    ready: () =>
      fetch(`http://${host}/v2/`).then(
        async (r) => (await r.body?.cancel(), true),
        () => false,
      ),
    readyWithinMs: 10_000,
  }).catch(async (e: unknown) => {
    await rm(dir, { recursive: true, force: true });
    throw e;
  });
  const stop = async () => {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  };
  return {
    host,
    blobFile: (digest) => {
      const hex = digest.replace(/^sha256:/, "");
      return path.join(storage, "docker", "registry", "v2", "blobs", "sha256", hex.slice(0, 2), hex, "data");
    },
    accessLog: () =>
      server
        .output()
        .split("\n")
        .filter((l) => l.includes('"') && l.includes(' HTTP/1.1" '))
        .map((l) => l.slice(l.indexOf('"'))),
    stop,
  };
}
