// runtimes: node deno bun
// Wasm OCI artifacts against a real registry (Debian's docker-registry, test/support/registry.ts):
// `weft filter push` run as the real CLI, and the RegistryClient the control plane pulls with.
// Media types and annotations as stored, reproducible manifest digests, pulls by tag and by
// digest, Basic auth (htpasswd), the bearer-token flow (the registry's own token auth, trusting a
// token server written here), size limits, blobs damaged in the registry's storage, and a blob
// served by redirect from another origin that must not get the registry's credentials.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { spawn } from "node:child_process";
import { createPrivateKey, randomBytes, sign } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { Buffer } from "node:buffer";
import path from "node:path";
import process from "node:process";
import {
  MANIFEST_MEDIA_TYPE,
  RegistryClient,
  RegistryError,
  WASM_CONFIG_MEDIA_TYPE,
  WASM_LAYER_MEDIA_TYPE,
  OciReferenceError,
  parseOciReference,
} from "../shared/oci-registry.ts";
import { appendCustomSection } from "../sdk/build/custom-section.ts";
import { builtFilter } from "../sdk/build/cache.ts";
import { startRegistry, type TestRegistry } from "./support/registry.ts";
import { createCa, issueWorkload } from "./support/pki.ts";
import { deadPort } from "./support/upstream.ts";

const root = path.resolve(import.meta.dirname ?? ".", "..");
const NODE = path.join(root, "node_modules", ".bin", "node");
const USER = { username: "weft", password: "s3cret pass" };
const SERVICE = "weft-test-registry";
const ISSUER = "weft-test-tokens";
const MAX = 1024 * 1024;

let filter: { path: string; sha256: string; wasm: Uint8Array };
let open: TestRegistry;
let basic: TestRegistry;
let bearer: TestRegistry;
let scratch: string;
const servers: http.Server[] = [];
/** Scopes the token server was asked for, in order. */
const tokenRequests: string[] = [];
let tokenField: "token" | "access_token" = "token";

/** A node:http server on 127.0.0.1 (test peers: a token server, a redirecting front, blob storage). */
async function serve(handler: http.RequestListener): Promise<number> {
  const server = http.createServer(handler);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  return (server.address() as AddressInfo).port;
}

const basicAuth = (c: { username: string; password: string }) => `Basic ${Buffer.from(`${c.username}:${c.password}`).toString("base64")}`;
const b64url = (data: string | Uint8Array) => Buffer.from(data).toString("base64url");

/**
 * A Docker token server: Basic credentials in, an ES256 JWT out whose x5c leaf chains to the CA
 * the registry trusts (distribution's `auth: token` checks issuer, audience, times, chain and
 * signature), granting the scope asked for.
 */
async function startTokenServer(): Promise<{ realm: string; roots: string }> {
  const ca = await createCa({ commonName: "weft test token CA" });
  const signer = await issueWorkload(ca, { commonName: "weft test token signer" });
  const key = createPrivateKey(signer.privateKey);
  const header = b64url(JSON.stringify({ alg: "ES256", typ: "JWT", x5c: [Buffer.from(signer.der).toString("base64")] }));
  const port = await serve((req, res) => {
    const scope = new URL(req.url ?? "/", "http://x").searchParams.get("scope") ?? "";
    tokenRequests.push(scope);
    if (req.headers.authorization !== basicAuth(USER)) {
      res.writeHead(401, { "content-type": "application/json" });
      res.end(JSON.stringify({ errors: [{ code: "UNAUTHORIZED", message: "these credentials are not known here" }] }));
      return;
    }
    const [type, name, actions] = scope.split(":");
    const now = Math.floor(Date.now() / 1000);
    const claims = {
      iss: ISSUER,
      sub: USER.username,
      aud: SERVICE,
      exp: now + 300,
      nbf: now - 5,
      iat: now,
      jti: randomBytes(8).toString("hex"),
      access: [{ type, name, actions: actions.split(",") }],
    };
    const input = `${header}.${b64url(JSON.stringify(claims))}`;
    const jwt = `${input}.${b64url(sign("sha256", Buffer.from(input), { key, dsaEncoding: "ieee-p1363" }))}`;
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ [tokenField]: jwt, expires_in: 300 }));
  });
  return { realm: `http://127.0.0.1:${port}/token`, roots: ca.certificate };
}

/** Runs `node bin/weft.ts ARGS` (the real CLI, on Node 24) with no registry credentials in its environment but `env`. */
function weft(
  args: string[],
  input: { stdin?: string; env?: Record<string, string> } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const env: Record<string, string | undefined> = {
    ...process.env,
    WEFT_REGISTRY_USERNAME: undefined,
    WEFT_REGISTRY_PASSWORD: undefined,
    ...input.env,
  };
  for (const k of Object.keys(env)) if (env[k] === undefined) delete env[k];
  return new Promise((resolve, reject) => {
    const child = spawn(NODE, ["bin/weft.ts", ...args], { cwd: root, env, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (d) => (stdout += d));
    child.stderr!.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? 1, stdout, stderr }));
    child.stdin!.end(input.stdin ?? "");
  });
}

async function registryError(promise: Promise<unknown>): Promise<RegistryError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  assert.ok(error instanceof RegistryError, `expected a RegistryError, got ${String(error)}`);
  return error;
}

/** The header-rewrite module plus a custom section of random bytes: a blob no other test has pushed. */
const uniqueWasm = () => appendCustomSection(filter.wasm, "weft.test", randomBytes(16));

before(async () => {
  scratch = await mkdtemp(path.join(tmpdir(), "weft-oci-"));
  const tokens = await startTokenServer();
  [filter, open, basic, bearer] = await Promise.all([
    // As plain bytes (the cache reads a Buffer), to compare with what a pull returns.
    builtFilter("header-rewrite").then((f) => ({ ...f, wasm: new Uint8Array(f.wasm) })),
    startRegistry(),
    // Relative upload Locations here, absolute ones from `open`: the client must handle both.
    startRegistry({ htpasswd: USER, relativeUrls: true }),
    startRegistry({ token: { realm: tokens.realm, service: SERVICE, issuer: ISSUER, rootCertBundle: tokens.roots } }),
  ]);
});
after(async () => {
  await Promise.all([open, basic, bearer].map((r) => r?.stop()));
  for (const s of servers) s.closeAllConnections();
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  await rm(scratch, { recursive: true, force: true });
});

describe("parseOciReference", () => {
  const digest = `sha256:${"ab".repeat(32)}`;
  it("reads registry, repository, tag and digest", () => {
    assert.deepEqual(parseOciReference("oci://127.0.0.1:5000/filters/header-rewrite:1.0.0"), {
      registry: "127.0.0.1:5000",
      repository: "filters/header-rewrite",
      tag: "1.0.0",
      digest: null,
    });
    assert.deepEqual(parseOciReference("oci://ghcr.io/weft-dev/plugins/rate-limit"), {
      registry: "ghcr.io",
      repository: "weft-dev/plugins/rate-limit",
      tag: null,
      digest: null,
    });
    assert.deepEqual(parseOciReference(`oci://localhost:5000/my_org/a.b/c__d@${digest}`), {
      registry: "localhost:5000",
      repository: "my_org/a.b/c__d",
      tag: null,
      digest,
    });
    assert.deepEqual(parseOciReference(`oci://[::1]:5000/x:v1.0.0-rc.1@${digest}`), {
      registry: "[::1]:5000",
      repository: "x",
      tag: "v1.0.0-rc.1",
      digest,
    });
  });
  const bad: [string, RegExp][] = [
    ["ghcr.io/weft-dev/x:1.0.0", /must start with oci:\/\//],
    ["https://ghcr.io/weft-dev/x", /the scheme must be oci:\/\//],
    ["oci://ghcr.io", /the repository is missing/],
    ["oci://ghcr.io/", /the repository is missing/],
    ["oci:///filters/x", /the registry host is missing/],
    ["oci://bad_host/x", /the registry "bad_host" is not a host name/],
    ["oci://ghcr.io:99999/x", /port .* is not 1-65535/],
    ["oci://ghcr.io/Weft/x", /"Weft" .* must be lower-case/],
    ["oci://ghcr.io/a//b", /"" in the repository/],
    ["oci://ghcr.io/x:-1", /the tag "-1"/],
    ["oci://ghcr.io/x@sha256:abc", /the digest "sha256:abc" is not sha256: followed by 64/],
    ["oci://ghcr.io/x y", /must be lower-case/],
  ];
  for (const [input, why] of bad) {
    it(`refuses ${input}, saying why and showing a good one`, () => {
      assert.throws(
        () => parseOciReference(input),
        (e: unknown) =>
          e instanceof OciReferenceError &&
          why.test(e.message) &&
          e.message.includes("oci://registry.example.com/filters/my-auth:1.0.0") &&
          e.message.includes(JSON.stringify(input)),
      );
    });
  }
});

describe("weft filter push and RegistryClient.pullWasm against a real registry", () => {
  let manifestDigest: string;

  it("pushes a marketplace filter with the CLI as a Wasm OCI artifact, tagged with its version", async () => {
    const { code, stdout, stderr } = await weft([
      "filter",
      "push",
      `oci://${open.host}/filters/header-rewrite`,
      filter.path,
      "--plain-http",
    ]);
    assert.equal(code, 0, stderr);
    const reference = `oci://${open.host}/filters/header-rewrite:1.0.0`;
    assert.match(stdout, new RegExp(`^pushed ${reference}$`, "m"));
    assert.match(stdout, new RegExp(`^wasm sha256 ${filter.sha256} \\(${filter.wasm.length} bytes\\)$`, "m"));
    assert.match(stdout, new RegExp(`^  url: ${reference}\\n  sha256: "${filter.sha256}"$`, "m"));
    manifestDigest = /^manifest (sha256:[0-9a-f]{64})$/m.exec(stdout)![1];

    // What the registry stores, fetched raw.
    const res = await fetch(`http://${open.host}/v2/filters/header-rewrite/manifests/1.0.0`, { headers: { accept: MANIFEST_MEDIA_TYPE } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), MANIFEST_MEDIA_TYPE);
    assert.equal(res.headers.get("docker-content-digest"), manifestDigest);
    const manifest = (await res.json()) as {
      mediaType: string;
      config: { mediaType: string; digest: string; size: number };
      layers: { mediaType: string; digest: string; size: number }[];
      annotations: Record<string, string>;
    };
    assert.equal(manifest.mediaType, MANIFEST_MEDIA_TYPE);
    assert.equal(manifest.config.mediaType, WASM_CONFIG_MEDIA_TYPE);
    assert.deepEqual(manifest.layers, [{ mediaType: WASM_LAYER_MEDIA_TYPE, digest: `sha256:${filter.sha256}`, size: filter.wasm.length }]);
    assert.deepEqual(manifest.annotations, {
      "org.opencontainers.image.title": "header-rewrite",
      "org.opencontainers.image.version": "1.0.0",
    });
    const config = await (await fetch(`http://${open.host}/v2/filters/header-rewrite/blobs/${manifest.config.digest}`)).text();
    assert.equal(config.length, manifest.config.size);
    assert.deepEqual(JSON.parse(config), { architecture: "wasm", os: "wasip1", layerDigests: [`sha256:${filter.sha256}`] });
  });

  it("pulls the same bytes back by tag and by manifest digest", async () => {
    const client = new RegistryClient();
    const byTag = await client.pullWasm(`oci://${open.host}/filters/header-rewrite:1.0.0`, { plainHttp: true, maxBytes: MAX });
    assert.deepEqual(byTag.wasm, filter.wasm);
    assert.equal(byTag.layerDigest, `sha256:${filter.sha256}`);
    assert.equal(byTag.manifestDigest, manifestDigest);
    const byDigest = await client.pullWasm(`oci://${open.host}/filters/header-rewrite@${manifestDigest}`, {
      plainHttp: true,
      maxBytes: MAX,
    });
    assert.deepEqual(byDigest, byTag);
  });

  it("pushing the same bytes again gives the same manifest digest and uploads nothing", async () => {
    const uploads = () => open.accessLog().filter((l) => l.startsWith('"POST /v2/filters/header-rewrite/blobs/uploads/')).length;
    const before = uploads();
    assert.equal(before, 2, "the first push uploaded the config and the .wasm");
    const { code, stdout, stderr } = await weft([
      "filter",
      "push",
      `oci://${open.host}/filters/header-rewrite:1.0.0`,
      filter.path,
      "--plain-http",
    ]);
    assert.equal(code, 0, stderr);
    assert.match(stdout, new RegExp(`^manifest ${manifestDigest}$`, "m"));
    assert.equal(uploads(), before, "the blobs were there (HEAD), so none was uploaded");
  });

  it("says when a tag does not exist", async () => {
    const e = await registryError(
      new RegistryClient().pullWasm(`oci://${open.host}/filters/header-rewrite:9.9.9`, { plainHttp: true, maxBytes: MAX }),
    );
    assert.equal(e.status, 404);
    assert.ok(e.codes.includes("MANIFEST_UNKNOWN"), e.message);
    assert.match(e.message, new RegExp(`oci://${open.host}/filters/header-rewrite:9\\.9\\.9 does not exist: check the repository and tag`));
  });

  it("refuses a .wasm larger than maxBytes by the manifest's size, without downloading it", async () => {
    const blobGets = () =>
      open.accessLog().filter((l) => l.startsWith(`"GET /v2/filters/header-rewrite/blobs/sha256:${filter.sha256}`)).length;
    const before = blobGets();
    const e = await registryError(
      new RegistryClient().pullWasm(`oci://${open.host}/filters/header-rewrite:1.0.0`, {
        plainHttp: true,
        maxBytes: filter.wasm.length - 1,
      }),
    );
    assert.match(
      e.message,
      new RegExp(`the \\.wasm is ${filter.wasm.length} bytes by its manifest, more than the ${filter.wasm.length - 1} allowed`),
    );
    assert.equal(blobGets(), before);
  });

  it("refuses a blob damaged in the registry's storage: a digest mismatch, or more bytes than allowed", async () => {
    const client = new RegistryClient();
    const ref = `oci://${open.host}/filters/damaged:1`;
    const wasm = uniqueWasm();
    const pushed = await client.pushWasm(ref, wasm, { annotations: {}, plainHttp: true });
    const file = open.blobFile(pushed.layerDigest);
    const stored = await readFile(file);
    assert.deepEqual(new Uint8Array(stored), wasm, "the test damages the right file");

    stored[stored.length - 1] ^= 0xff; // same size, other bytes
    await writeFile(file, stored);
    const mismatch = await registryError(client.pullWasm(ref, { plainHttp: true, maxBytes: MAX }));
    assert.match(
      mismatch.message,
      new RegExp(`digest mismatch: the bytes received have sha256:[0-9a-f]{64}, the manifest says ${pushed.layerDigest}: refused`),
    );

    await writeFile(file, Buffer.concat([stored, Buffer.alloc(4096)]));
    const tooBig = await registryError(client.pullWasm(ref, { plainHttp: true, maxBytes: wasm.length + 100 }));
    assert.match(
      tooBig.message,
      new RegExp(
        `the registry's answer is ${wasm.length + 4096} bytes or more, more than the ${wasm.length + 100} allowed \\(the manifest said ${wasm.length}\\): refused`,
      ),
    );
  });

  it("refuses an artifact without a wasm layer, naming the media types it has", async () => {
    const blobs = (await (
      await fetch(`http://${open.host}/v2/filters/header-rewrite/manifests/1.0.0`, { headers: { accept: MANIFEST_MEDIA_TYPE } })
    ).json()) as { config: object; layers: object[] };
    const image = {
      schemaVersion: 2,
      mediaType: MANIFEST_MEDIA_TYPE,
      config: { ...blobs.config, mediaType: "application/vnd.oci.image.config.v1+json" },
      layers: [{ ...blobs.layers[0], mediaType: "application/vnd.oci.image.layer.v1.tar" }],
    };
    const put = await fetch(`http://${open.host}/v2/filters/header-rewrite/manifests/not-wasm`, {
      method: "PUT",
      headers: { "content-type": MANIFEST_MEDIA_TYPE },
      body: JSON.stringify(image),
    });
    assert.equal(put.status, 201, await put.text());
    const e = await registryError(
      new RegistryClient().pullWasm(`oci://${open.host}/filters/header-rewrite:not-wasm`, { plainHttp: true, maxBytes: MAX }),
    );
    assert.match(
      e.message,
      /has no application\/vnd\.wasm\.content\.layer\.v1\+wasm layer \(it has config application\/vnd\.oci\.image\.config\.v1\+json, layer application\/vnd\.oci\.image\.layer\.v1\.tar\)/,
    );
  });

  it("says to add --plain-http when HTTPS meets a plain-HTTP registry, and names the URL when nothing listens", async () => {
    const https = await registryError(new RegistryClient().pullWasm(`oci://${open.host}/filters/header-rewrite:1.0.0`, { maxBytes: MAX }));
    assert.equal(https.status, null);
    assert.match(
      https.message,
      new RegExp(`https://${open.host}/v2/filters/header-rewrite/manifests/1\\.0\\.0 did not answer in TLS: .*add --plain-http`),
    );
    const port = await deadPort();
    const refused = await registryError(
      new RegistryClient().pullWasm(`oci://127.0.0.1:${port}/filters/x:1`, { plainHttp: true, maxBytes: MAX }),
    );
    assert.match(
      refused.message,
      new RegExp(`nothing answers at http://127\\.0\\.0\\.1:${port}/v2/filters/x/manifests/1 \\(connection refused\\)`),
    );
  });
});

it("stops a push at its deadline when the registry takes the upload and never answers, naming the step", async () => {
  // A registry front that starts uploads but never answers the blob's PUT: a stalled uplink.
  const uploads: string[] = [];
  const port = await serve((req, res) => {
    if (req.method === "HEAD") return void res.writeHead(404).end();
    if (req.method === "POST") return void res.writeHead(202, { location: "/v2/filters/stalled/blobs/uploads/1" }).end();
    uploads.push(`${req.method} ${req.url}`);
  });
  const cli = await weft(["filter", "push", `oci://127.0.0.1:${port}/filters/stalled:1`, filter.path, "--plain-http", "--timeout", "1"]);
  assert.equal(cli.code, 1, cli.stderr);
  assert.match(
    cli.stderr,
    new RegExp(
      `^weft filter push: uploading the blob sha256:[0-9a-f]{12} \\(\\d+ bytes\\) in 127\\.0\\.0\\.1:${port}/filters/stalled failed: no complete answer within 1 s: the registry is too slow or does not answer, so the push was stopped`,
    ),
  );
  assert.equal(uploads.length, 1, `the upload was sent once: ${uploads.join(", ")}`);
  assert.match(uploads[0], /^PUT \/v2\/filters\/stalled\/blobs\/uploads\/1\?digest=sha256%3A[0-9a-f]{64}$/);
  const bad = await weft(["filter", "push", `oci://127.0.0.1:${port}/filters/stalled:1`, filter.path, "--plain-http", "--timeout", "0"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--timeout 0: give the push's deadline in whole seconds, 1 to 86400 \(default 120\)/);
});

describe("a registry with Basic auth (htpasswd)", () => {
  it("refuses a push without credentials with HTTP 401 and says how to give them", async () => {
    const ref = `oci://${basic.host}/filters/header-rewrite`;
    const cli = await weft(["filter", "push", ref, filter.path, "--plain-http"]);
    assert.equal(cli.code, 1);
    assert.match(
      cli.stderr,
      /^weft filter push: checking for the blob sha256:[0-9a-f]{12} in 127\.0\.0\.1:\d+\/filters\/header-rewrite failed: HTTP 401/,
    );
    assert.match(cli.stderr, /give credentials with --username and --password-stdin, or WEFT_REGISTRY_USERNAME and WEFT_REGISTRY_PASSWORD/);
    const e = await registryError(new RegistryClient().pushWasm(`${ref}:1.0.0`, filter.wasm, { annotations: {}, plainHttp: true }));
    assert.equal(e.status, 401);
    assert.equal(e.registry, basic.host);
    assert.equal(e.repository, "filters/header-rewrite");
  });

  it("pushes with --username and --password-stdin or the environment, and pulls with credentials", async () => {
    const stdin = await weft(
      [
        "filter",
        "push",
        `oci://${basic.host}/filters/header-rewrite`,
        filter.path,
        "--plain-http",
        "--username",
        USER.username,
        "--password-stdin",
      ],
      { stdin: `${USER.password}\n` },
    );
    assert.equal(stdin.code, 0, stdin.stderr);
    const wasm = uniqueWasm();
    const file = path.join(scratch, "env.wasm");
    await writeFile(file, wasm);
    const env = await weft(["filter", "push", `oci://${basic.host}/filters/env:2.0.0`, file, "--plain-http"], {
      env: { WEFT_REGISTRY_USERNAME: USER.username, WEFT_REGISTRY_PASSWORD: USER.password },
    });
    assert.equal(env.code, 0, env.stderr);
    const pulled = await new RegistryClient().pullWasm(`oci://${basic.host}/filters/env:2.0.0`, {
      credentials: USER,
      plainHttp: true,
      maxBytes: MAX,
    });
    assert.deepEqual(pulled.wasm, wasm);
  });

  it("says the credentials were refused when the password is wrong", async () => {
    const e = await registryError(
      new RegistryClient().pullWasm(`oci://${basic.host}/filters/header-rewrite:1.0.0`, {
        credentials: { ...USER, password: "wrong" },
        plainHttp: true,
        maxBytes: MAX,
      }),
    );
    assert.equal(e.status, 401);
    assert.match(e.message, /the registry refused the credentials of "weft": check the username and password/);
  });

  it("follows a blob redirect to storage elsewhere without the registry's credentials, and counts bytes as they stream", async () => {
    const wasm = uniqueWasm();
    const client = new RegistryClient();
    const pushed = await client.pushWasm(`oci://${basic.host}/filters/redirected:1`, wasm, {
      annotations: {},
      credentials: USER,
      plainHttp: true,
    });
    // Storage answering a presigned URL, as S3 does for a registry that redirects blob reads;
    // chunked, with no Content-Length, so only counting the bytes as they come can stop a big one.
    const storageSaw: (string | undefined)[] = [];
    let extra = 0;
    const storage = await serve((req, res) => {
      storageSaw.push(req.headers.authorization);
      res.write(wasm);
      res.end(Buffer.alloc(extra));
    });
    // In front of the real registry: blob reads are redirected to storage, the rest is passed on.
    const front = await serve(async (req, res) => {
      if (req.url!.includes("/blobs/")) {
        res.writeHead(307, { location: `http://127.0.0.1:${storage}/presigned?sig=abc` });
        res.end();
        return;
      }
      const upstream = await fetch(`http://${basic.host}${req.url}`, {
        headers: {
          accept: req.headers.accept ?? "*/*",
          ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}),
        },
      });
      res.writeHead(
        upstream.status,
        Object.fromEntries([...upstream.headers].filter(([k]) => k !== "content-length" && k !== "transfer-encoding")),
      );
      res.end(Buffer.from(await upstream.arrayBuffer()));
    });
    const pulled = await client.pullWasm(`oci://127.0.0.1:${front}/filters/redirected:1`, {
      credentials: USER,
      plainHttp: true,
      maxBytes: MAX,
    });
    assert.deepEqual(pulled.wasm, wasm);
    assert.equal(pulled.layerDigest, pushed.layerDigest);
    assert.deepEqual(storageSaw, [undefined]);

    extra = 64 * 1024;
    const tooBig = await registryError(
      client.pullWasm(`oci://127.0.0.1:${front}/filters/redirected:1`, { credentials: USER, plainHttp: true, maxBytes: wasm.length + 100 }),
    );
    assert.match(tooBig.message, new RegExp(`the registry's answer is \\d+ bytes or more, more than the ${wasm.length + 100} allowed`));
  });
});

describe("a registry with bearer-token auth", () => {
  it("pushes and pulls with tokens from the token server, fetching one per scope for the client's life", async () => {
    tokenRequests.length = 0;
    const client = new RegistryClient();
    const ref = `oci://${bearer.host}/filters/header-rewrite:1.0.0`;
    const pushed = await client.pushWasm(ref, filter.wasm, {
      annotations: { "org.opencontainers.image.title": "header-rewrite" },
      credentials: USER,
      plainHttp: true,
    });
    assert.equal(pushed.layerDigest, `sha256:${filter.sha256}`);
    for (let i = 0; i < 2; i++) {
      const pulled = await client.pullWasm(ref, { credentials: USER, plainHttp: true, maxBytes: MAX });
      assert.deepEqual(pulled.wasm, filter.wasm);
    }
    assert.deepEqual(tokenRequests, ["repository:filters/header-rewrite:pull,push", "repository:filters/header-rewrite:pull"]);
  });

  it("takes a token answered as access_token", async () => {
    tokenField = "access_token";
    try {
      const pulled = await new RegistryClient().pullWasm(`oci://${bearer.host}/filters/header-rewrite:1.0.0`, {
        credentials: USER,
        plainHttp: true,
        maxBytes: MAX,
      });
      assert.deepEqual(pulled.wasm, filter.wasm);
    } finally {
      tokenField = "token";
    }
  });

  it("says the token server wants credentials when none are given", async () => {
    const e = await registryError(
      new RegistryClient().pullWasm(`oci://${bearer.host}/filters/header-rewrite:1.0.0`, { plainHttp: true, maxBytes: MAX }),
    );
    assert.equal(e.status, 401);
    assert.deepEqual(e.codes, ["UNAUTHORIZED"]);
    assert.match(
      e.message,
      /getting a token for repository:filters\/header-rewrite:pull from http:\/\/127\.0\.0\.1:\d+\/token .*HTTP 401.*the registry needs credentials: give credentials with --username/,
    );
  });
});
