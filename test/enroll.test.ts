// runtimes: node deno bun
// The proxy's certificate enrollment (proxy/identity/enroll.ts) against the real enrollment
// handler and a real CA (control/ca/, root in a directory), served over real HTTPS with a
// serving certificate from that CA: a fresh key and CSR, the control plane's CA bundle as the
// only trust, the token re-read per request, renewal inside 50-80% of the lifetime with retries,
// and renewed certificates that work in the proxy's own mTLS. Only the TokenReview is a function
// here (the real one is proven against kube-apiserver in test/control/ca.test.ts).
// Runs on Node, Deno and Bun.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import https from "node:https";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { openAuthority, type CertificateAuthority } from "../control/ca/authority.ts";
import { directoryStore } from "../control/ca/dir-store.ts";
import { enrollmentHandler } from "../control/ca/enrollment.ts";
import type { TokenReview } from "../control/ca/token-review.ts";
import { ControlHttpError, type ControlEndpoint } from "../proxy/control/http.ts";
import { enroll, startRenewal, type EnrolledIdentity } from "../proxy/identity/enroll.ts";
import { spiffeIdFromCertificate, verifyPeerIdentity } from "../proxy/identity/spiffe.ts";
import { x509 } from "../proxy/identity/x509.ts";
import { createLogger } from "../shared/log.ts";
import { selectRuntime } from "../proxy/runtime/select.ts";
import type { Conn } from "../proxy/runtime/types.ts";
import { createCa } from "./support/pki.ts";

// Bun gives each test 5 s unless told otherwise; the renewal tests wait for certificates to expire.
if ("Bun" in globalThis) (await import("bun:test" as string)).setDefaultTimeout(30_000);

const WEB = "spiffe://cluster.local/ns/shop/sa/web";
const CATALOG = "spiffe://cluster.local/ns/shop/sa/catalog";
const USERS: Record<string, string> = {
  "token-web": "system:serviceaccount:shop:web",
  "token-catalog": "system:serviceaccount:shop:catalog",
};
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Enroller {
  base: string;
  /** Requests that reached the handler. */
  requests: number;
  /** Answer the next N requests 503 (the TokenReview is "unavailable"). */
  failNext: number;
  close(): Promise<void>;
}

/** The real enrollment handler behind node:https, with a certificate from the CA itself. */
async function serveEnrollment(ca: CertificateAuthority, ttlMs: number): Promise<Enroller> {
  const serving = await ca.issueServing(["localhost"], ["127.0.0.1"], 3600_000);
  const state = { requests: 0, failNext: 0 };
  const reviewToken = async (token: string): Promise<TokenReview> => {
    if (state.failNext > 0) {
      state.failNext--;
      throw new Error("the API server is unreachable (test)");
    }
    const username = USERS[token];
    return username
      ? { authenticated: true, username }
      : { authenticated: false, reason: "InvalidToken", message: "the token is not valid (test reviewer)" };
  };
  const handler = enrollmentHandler({ authority: ca, reviewToken, ttlMs, log: createLogger({}, "error", () => {}) });
  const server = https.createServer({ cert: serving.certificateChain, key: serving.privateKey }, async (req, res) => {
    state.requests++;
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const headers = new Headers();
    for (const [name, value] of Object.entries(req.headers)) if (typeof value === "string") headers.set(name, value);
    const response = await handler(
      new Request(`https://127.0.0.1${req.url}`, {
        method: req.method,
        headers,
        body: req.method === "POST" ? Buffer.concat(chunks) : undefined,
      }),
    );
    res.writeHead(response.status, Object.fromEntries(response.headers));
    res.end(Buffer.from(await response.arrayBuffer()));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return Object.assign(state, {
    base: `https://127.0.0.1:${(server.address() as { port: number }).port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  });
}

/**
 * A STRICT mTLS listener of the proxy's runtime with `server`'s identity and a handshake to it
 * with `client`'s: the SPIFFE ID the server saw, or null when it let no connection through. TLS
 * 1.3 clients finish before the server has checked their certificate, so the answer is what the
 * server did; either way it closes the connection, which is when the answer is in.
 */
async function mtlsPeer(server: EnrolledIdentity, client: EnrolledIdentity): Promise<string | null> {
  const runtime = selectRuntime();
  const peers: string[] = [];
  const listener = await runtime.listen({ address: "127.0.0.1", port: 0, tls: { ...server, mode: "STRICT", alpn: [] } }, (conn: Conn) => {
    peers.push(spiffeIdFromCertificate(conn.tls!.peerCertificate!));
    conn.destroy();
  });
  try {
    const tls = { ...client, alpn: [], verifyPeer: verifyPeerIdentity([server.spiffeId]) };
    const conn = await runtime.connect({ address: "127.0.0.1", port: listener.port, timeoutMs: 5000, tls }).catch(() => null);
    if (conn) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 5000);
        conn.onClose = () => {
          clearTimeout(timer);
          resolve();
        };
        if (conn.closed) conn.onClose();
      });
      conn.destroy();
    }
    return peers[0] ?? null;
  } finally {
    await listener.close();
  }
}

describe("proxy enrollment with the mesh CA over HTTPS", () => {
  let dir: string;
  let ca: CertificateAuthority;
  let daily: Enroller;
  let tokenFile: string;
  let endpoint: ControlEndpoint;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "weft-enroll-"));
    ca = await openAuthority({ store: directoryStore(path.join(dir, "ca")), log: createLogger({}, "error", () => {}) });
    daily = await serveEnrollment(ca, 24 * 3600_000);
    tokenFile = path.join(dir, "token");
    writeFileSync(tokenFile, "token-web\n");
    // As the sidecar does: the bundle given at start, the projected token re-read per request.
    endpoint = { base: daily.base, ca: ca.trustBundle(), token: async () => (await readFile(tokenFile, "utf8")).trim() };
  });

  after(async () => {
    await daily?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("gets a certificate for its own key, with the token's identity, a day long", async () => {
    const before = Date.now();
    // It asks for another identity; the token decides.
    const identity = await enroll({ endpoint, spiffeId: "spiffe://cluster.local/ns/shop/sa/admin" });
    assert.equal(identity.spiffeId, WEB);
    assert.equal(spiffeIdFromCertificate(identity.certificateChain), WEB);
    assert.equal(identity.trustBundle, ca.trustBundle());
    assert.match(identity.privateKey, /^-----BEGIN PRIVATE KEY-----\n/);
    const after = Date.now();
    // Issued between `before` and `after` for 24 h; X.509 times drop the milliseconds.
    const notAfter = identity.notAfter.getTime();
    assert.ok(
      notAfter > before + 24 * 3600_000 - 1000 && notAfter <= after + 24 * 3600_000,
      `notAfter ${identity.notAfter.toISOString()}, requested ${new Date(before).toISOString()}`,
    );
    // The key is P-256 and is the certificate's (the leaf's SPKI is the private key's public half).
    const leaf = new x509.X509Certificate(identity.certificateChain);
    assert.deepEqual(leaf.publicKey.algorithm, { name: "ECDSA", namedCurve: "P-256" });
    const key = await crypto.subtle.importKey(
      "pkcs8",
      x509.PemConverter.decodeFirst(identity.privateKey),
      { name: "ECDSA", namedCurve: "P-256" },
      false,
      ["sign"],
    );
    const message = new TextEncoder().encode("proof");
    const signature = await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, key, message);
    assert.ok(await crypto.subtle.verify({ name: "ECDSA", hash: "SHA-256" }, await leaf.publicKey.export(), signature, message));
  });

  it("re-reads the token for every request (the kubelet rotates it)", async () => {
    writeFileSync(tokenFile, "token-catalog\n");
    try {
      assert.equal((await enroll({ endpoint })).spiffeId, CATALOG);
    } finally {
      writeFileSync(tokenFile, "token-web\n");
    }
    assert.equal((await enroll({ endpoint })).spiffeId, WEB);
  });

  it("trusts only the CA bundle it was given: another CA's bundle fails the handshake and sends nothing", async () => {
    const other = await createCa({ commonName: "not the mesh CA" });
    const seen = daily.requests;
    await assert.rejects(
      enroll({ endpoint: { ...endpoint, ca: other.certificate } }),
      /UNABLE_TO_VERIFY_LEAF_SIGNATURE|unable to verify|certificate/i,
    );
    assert.equal(daily.requests, seen, "the request reached the server");
  });

  it("reports the control plane's refusal with its status and reason", async () => {
    await assert.rejects(enroll({ endpoint: { ...endpoint, token: async () => "stolen" } }), (e: unknown) => {
      assert.ok(e instanceof ControlHttpError);
      assert.equal(e.status, 401);
      assert.match(e.message, /the token is not valid \(test reviewer\)/);
      return true;
    });
  });

  describe("renewal of 4-second certificates", () => {
    let short: Enroller;
    before(async () => {
      short = await serveEnrollment(ca, 4000);
    });
    after(async () => {
      await short?.close();
    });

    it("renews between 50% and 80% of the lifetime, and the renewed certificates work in mTLS after the first expired", async () => {
      const shortEndpoint = { ...endpoint, base: short.base };
      const server = await enroll({ endpoint: { ...endpoint, token: async () => "token-catalog" } });
      const first = await enroll({ endpoint: shortEndpoint });
      const start = Date.now();
      const remaining = first.notAfter.getTime() - start;
      const renewed: { at: number; identity: EnrolledIdentity }[] = [];
      const renewal = startRenewal({
        endpoint: shortEndpoint,
        current: first,
        onRenewed: (identity) => void renewed.push({ at: Date.now(), identity }),
        log: createLogger({}, "error", () => {}),
      });
      try {
        assert.equal(await mtlsPeer(server, first), WEB, "the first certificate works while it is valid");
        while (renewed.length === 0 && Date.now() < first.notAfter.getTime()) await sleep(20);
        assert.equal(renewed.length, 1, "no renewal before the certificate expired");
        const elapsed = renewed[0].at - start;
        // The request itself takes a little after the chosen moment.
        assert.ok(elapsed >= 0.5 * remaining && elapsed <= 0.8 * remaining + 500, `renewed after ${elapsed} ms of ${remaining} ms`);
        assert.ok(renewed[0].identity.notAfter > first.notAfter);
        assert.notEqual(renewed[0].identity.privateKey, first.privateKey, "a renewal makes a new key");
        assert.equal(renewal.current, renewed[0].identity);

        // Past the first certificate's expiry (X.509 times are whole seconds): it is refused, the renewed one accepted.
        await sleep(first.notAfter.getTime() - Date.now() + 1100);
        assert.equal(await mtlsPeer(server, first), null);
        assert.equal(await mtlsPeer(server, renewal.current), WEB);
        assert.equal(await mtlsPeer(renewal.current, server), CATALOG);
      } finally {
        renewal.stop();
      }
    });

    it("retries a failed renewal with backoff until it succeeds, before the certificate expires", async () => {
      const shortEndpoint = { ...endpoint, base: short.base };
      const first = await enroll({ endpoint: shortEndpoint });
      const logs: { msg: string; retryInMs?: number; failures?: number }[] = [];
      const renewed: EnrolledIdentity[] = [];
      short.failNext = 2;
      const renewal = startRenewal({
        endpoint: shortEndpoint,
        current: first,
        onRenewed: (identity) => void renewed.push(identity),
        minBackoffMs: 200,
        random: () => 0, // renew at 50%, retry after half the backoff: 100 ms, then 200 ms
        log: createLogger({}, "debug", (line) => void logs.push(JSON.parse(line))),
      });
      try {
        while (renewed.length === 0 && Date.now() < first.notAfter.getTime()) await sleep(20);
        assert.equal(renewed.length, 1, `no renewal before expiry; logs: ${JSON.stringify(logs)}`);
        assert.deepEqual(
          logs.map((l) => [l.msg, l.failures, l.retryInMs]),
          [
            ["workload certificate renewal failed", 1, 100],
            ["workload certificate renewal failed", 2, 200],
            ["renewed workload certificate", undefined, undefined],
          ],
        );
        assert.equal(renewed[0].spiffeId, WEB);
      } finally {
        renewal.stop();
      }
    });

    it("stops: no request after stop()", async () => {
      const shortEndpoint = { ...endpoint, base: short.base };
      const first = await enroll({ endpoint: shortEndpoint });
      const seen = short.requests;
      const renewal = startRenewal({
        endpoint: shortEndpoint,
        current: first,
        onRenewed: () => assert.fail("renewed after stop()"),
        random: () => 0,
      });
      renewal.stop();
      await sleep(0.6 * (first.notAfter.getTime() - Date.now()));
      assert.equal(short.requests, seen);
    });
  });
});
