// runtimes: node deno bun
// Hostile TLS peers, one recorded case each, against two real sidecars: a server sidecar
// whose inbound listener is STRICT (mTLS only) and a client sidecar whose outbound clusters
// originate mTLS. Callers with certificates that are expired, not yet valid, from another CA
// or absent, and plaintext, are refused by the server sidecar; servers with such certificates,
// the wrong SPIFFE ID or none, or no TLS at all, are refused by the client sidecar with a 503
// naming why. After each case a request from the client sidecar's app to the server
// sidecar's app must go through, over mTLS, with the caller's identity. The same ground,
// checked in passing elsewhere: test/tls.test.ts (the runtime adapter alone) and
// test/mesh-mtls.test.ts (two sidecars: wrong SPIFFE ID, another CA, STRICT and plaintext).
import { describe, before, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import tls from "node:tls";
import { Buffer } from "node:buffer";
import { startUpstream, type Upstream } from "../support/upstream.ts";
import { startProxy, type RunningProxy } from "../support/proxy.ts";
import { request } from "../support/client.ts";
import { createCa, issueWorkload, type TestCa, type WorkloadCertificate } from "../support/pki.ts";
import type { ProxyConfigInput } from "../../proxy/config/schema.ts";
import { Recorder } from "./record.ts";
import { currentRuntime } from "../../proxy/runtime/current.ts";

const CLIENT_ID = "spiffe://cluster.local/ns/shop/sa/frontend";
const SERVER_ID = "spiffe://cluster.local/ns/shop/sa/catalog";
const STRANGER_ID = "spiffe://cluster.local/ns/shop/sa/someone-else";
const HOUR = 3600_000;
const expiredDates = () => ({ notBefore: new Date(Date.now() - 48 * HOUR), notAfter: new Date(Date.now() - HOUR) });
const futureDates = () => ({ notBefore: new Date(Date.now() + HOUR), notAfter: new Date(Date.now() + 48 * HOUR) });
/** Marks a request that must never reach an app. */
const REFUSED = "/refused";
/** How long a refused peer may take to be closed; far above any handshake on a loaded machine. */
const CLOSE_WAIT_MS = 10_000;

const rec = new Recorder("tls");

let ca: TestCa;
let rogue: TestCa;
let app: Upstream;
let server: RunningProxy;
let client: RunningProxy;
let clientCert: WorkloadCertificate;
const badServers: { close(): Promise<void>; answered: number }[] = [];

const identity = (cert: WorkloadCertificate) => ({
  certificateChain: cert.certificateChain,
  privateKey: cert.privateKey,
  trustBundle: ca.certificate,
});

function serverConfig(cert: WorkloadCertificate): ProxyConfigInput {
  return {
    version: "server-1",
    node: { workload: "catalog", namespace: "shop", serviceAccount: "catalog", service: "catalog.shop.svc.cluster.local" },
    identity: identity(cert),
    listeners: [
      {
        name: "inbound",
        direction: "Inbound",
        address: "127.0.0.1",
        port: 0,
        tls: "STRICT",
        virtualHosts: [{ name: "app", domains: ["*"], routes: [{ backends: [{ cluster: "local-app" }] }] }],
      },
    ],
    clusters: [{ name: "local-app", endpoints: [{ address: "127.0.0.1", port: app.port }] }],
  };
}

/** A sidecar whose outbound listener sends host `name` to the mTLS cluster `name` (at `port`, expecting `expected`). */
function clientConfig(cert: WorkloadCertificate, clusters: { name: string; port: number; expected: string }[]): ProxyConfigInput {
  return {
    version: "client-1",
    node: { workload: "frontend", namespace: "shop", serviceAccount: "frontend" },
    identity: identity(cert),
    listeners: [
      {
        name: "outbound",
        direction: "Outbound",
        address: "127.0.0.1",
        port: 0,
        virtualHosts: clusters.map((c) => ({ name: c.name, domains: [c.name], routes: [{ backends: [{ cluster: c.name }] }] })),
      },
    ],
    clusters: clusters.map((c) => ({
      name: c.name,
      namespace: "shop",
      endpoints: [{ address: "127.0.0.1", port: c.port }],
      tls: { identities: [c.expected] },
    })),
  };
}

/** A TLS server presenting `cert` that answers any request with 200: a sidecar that reached it through a refusal would say so. */
async function tlsServer(cert: WorkloadCertificate): Promise<number> {
  const state = { answered: 0, close: async () => {} };
  const srv = tls.createServer(
    {
      cert: cert.certificateChain,
      key: cert.privateKey,
      ca: ca.certificate,
      requestCert: true,
      rejectUnauthorized: false,
      ALPNProtocols: ["http/1.1"],
    },
    (socket) => {
      socket.on("error", () => {});
      socket.once("data", () => {
        state.answered++;
        socket.end("HTTP/1.1 200 OK\r\ncontent-length: 16\r\nconnection: close\r\n\r\nbad server here\n");
      });
    },
  );
  srv.on("tlsClientError", () => {});
  await new Promise<void>((resolve) => srv.listen(0, "127.0.0.1", () => resolve()));
  state.close = () => new Promise<void>((resolve) => srv.close(() => resolve()));
  badServers.push(state);
  return (srv.address() as net.AddressInfo).port;
}

/** The mesh still works: the client sidecar's app reaches the server sidecar's app over mTLS, as itself. */
async function assertMeshServes(): Promise<void> {
  const reply = await request(client.outbound, { host: "catalog", path: "/echo" });
  assert.equal(reply.status, 200, `the mesh after the case: ${reply.status} ${reply.headers["x-weft-error"] ?? ""}`);
  const seen = JSON.parse(reply.body) as { headers: Record<string, string> };
  assert.equal(seen.headers["x-forwarded-client-cert"], `By=${SERVER_ID};URI=${CLIENT_ID}`);
}

function assertNothingReachedAnApp(): void {
  assert.deepEqual(
    app.received.filter((r) => r.url.startsWith(REFUSED)).map((r) => r.url),
    [],
    "a refused peer's request reached the app",
  );
  assert.deepEqual(
    badServers.map((s) => s.answered),
    badServers.map(() => 0),
    "a server with a refused certificate was sent a request",
  );
}

/** The server sidecar's count of connections refused at the TLS layer, by reason. */
async function refusedByReason(): Promise<Record<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${server.admin}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^weft_tls_refused_total\{[^}]*reason="([a-z_]+)"[^}]*\} (\d+)$/gm))
    out[m[1]] = (out[m[1]] ?? 0) + Number(m[2]);
  return out;
}

/** Runs `body`; what the server sidecar added to weft_tls_refused_total meanwhile, by reason. */
async function refusalsDuring(body: () => Promise<void>): Promise<Record<string, number>> {
  const before = await refusedByReason();
  await body();
  const after = await refusedByReason();
  return Object.fromEntries(
    Object.keys(after)
      .filter((k) => after[k] !== (before[k] ?? 0))
      .map((k) => [k, after[k] - (before[k] ?? 0)]),
  );
}

// Deno (rustls) reports an expired or future client certificate as UNABLE_TO_VERIFY_LEAF_SIGNATURE.
const onDeno = currentRuntime().name === "deno";
const expiredReason = onDeno ? "untrusted_certificate" : "certificate_expired";
const notYetValidReason = onDeno ? "untrusted_certificate" : "certificate_not_yet_valid";

/** Every case ends with the mesh serving and nothing of the refused peer delivered. */
function tlsCase(name: string, body: () => Promise<void>): void {
  rec.case("hostile input", "TLS", name, async () => {
    await body();
    assertNothingReachedAnApp();
    await assertMeshServes();
  });
}

interface CallerOutcome {
  /** The client saw its handshake complete. */
  secured: boolean;
  data: string;
  error: string;
}

/** A node:tls client with `options` sends a request to the server sidecar; what came back, and how the connection ended. */
function tlsCaller(options: tls.ConnectionOptions): Promise<CallerOutcome> {
  return new Promise((resolve) => {
    const outcome: CallerOutcome = { secured: false, data: "", error: "" };
    const socket = tls.connect(
      { host: "127.0.0.1", port: server.inbound, ca: ca.certificate, checkServerIdentity: () => undefined, ...options },
      () => {
        outcome.secured = true;
        socket.write(`GET ${REFUSED} HTTP/1.1\r\nHost: catalog\r\n\r\n`);
      },
    );
    socket.setTimeout(CLOSE_WAIT_MS, () => socket.destroy(new Error(`still open after ${CLOSE_WAIT_MS} ms`)));
    socket.on("data", (d: Buffer) => (outcome.data += d.toString("latin1")));
    socket.on("error", (e: Error & { code?: string }) => (outcome.error ||= `${e.code ?? ""} ${e.message}`));
    socket.on("close", () => resolve(outcome));
  });
}

/**
 * A caller presenting `cert` is refused, over TLS 1.2 and 1.3. The sidecar checks a client
 * certificate once the handshake is done and closes the connection without an alert: over
 * TLS 1.2 the caller's handshake never completes; over TLS 1.3 the client considers itself
 * connected after its Finished, and the connection closes before any response.
 */
async function assertCertificateRefused(cert: WorkloadCertificate): Promise<void> {
  const presented = { cert: cert.certificateChain, key: cert.privateKey };
  const tls12 = await tlsCaller({ ...presented, maxVersion: "TLSv1.2" });
  assert.equal(tls12.secured, false, "over TLS 1.2 the handshake must not complete");
  assert.match(tls12.error, /ECONNRESET .*disconnected before secure TLS connection was established/);
  const tls13 = await tlsCaller({ ...presented, minVersion: "TLSv1.3" });
  assert.equal(tls13.data, "", "over TLS 1.3 the connection must close before any response");
  assert.doesNotMatch(tls13.error, /still open/);
}

/** Plaintext bytes to the server sidecar's STRICT port: what came back before it closed. */
function plaintextCaller(bytes: string | Buffer): Promise<{ data: Buffer; closed: boolean }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const socket = net.connect(server.inbound, "127.0.0.1", () => socket.write(bytes));
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ data: Buffer.concat(chunks), closed: false });
    }, CLOSE_WAIT_MS);
    socket.on("data", (d: Buffer) => chunks.push(d));
    socket.on("error", () => {});
    socket.on("close", () => {
      clearTimeout(timer);
      resolve({ data: Buffer.concat(chunks), closed: true });
    });
  });
}

/** What a sidecar answers when its peer refused its certificate (TLS 1.3: the peer closes after the handshake). */
const REFUSED_BY_PEER = /closed a new mTLS connection before answering \(was our certificate refused\?\)/;

async function sidecarWith(cert: WorkloadCertificate, trustBundle = ca.certificate): Promise<RunningProxy> {
  const config = clientConfig(cert, [{ name: "catalog", port: server.inbound, expected: SERVER_ID }]);
  return startProxy({ ...config, version: "client-x", identity: { ...identity(cert), trustBundle } });
}

describe("hostile TLS peers", () => {
  before(async () => {
    ca = await createCa();
    rogue = await createCa({ commonName: "rogue CA" });
    app = await startUpstream("catalog-app");
    clientCert = await issueWorkload(ca, { spiffeId: CLIENT_ID });
    server = await startProxy(serverConfig(await issueWorkload(ca, { spiffeId: SERVER_ID })));
    const bad = {
      expired: await tlsServer(await issueWorkload(ca, { spiffeId: SERVER_ID, ...expiredDates() })),
      "not-yet-valid": await tlsServer(await issueWorkload(ca, { spiffeId: SERVER_ID, ...futureDates() })),
      untrusted: await tlsServer(await issueWorkload(rogue, { spiffeId: SERVER_ID })),
      "no-spiffe-id": await tlsServer(await issueWorkload(ca, { dns: ["catalog.shop.svc.cluster.local"] })),
    };
    client = await startProxy(
      clientConfig(clientCert, [
        { name: "catalog", port: server.inbound, expected: SERVER_ID },
        { name: "impostor", port: server.inbound, expected: STRANGER_ID },
        { name: "plaintext", port: app.port, expected: SERVER_ID },
        ...Object.entries(bad).map(([name, port]) => ({ name, port, expected: SERVER_ID })),
      ]),
    );
  });
  after(async () => {
    await client?.stop();
    await server?.stop();
    for (const s of badServers) await s.close();
    await app?.close();
  });

  describe("callers the STRICT inbound listener refuses", () => {
    tlsCase("a client without a certificate: alert certificate required, counted as no_certificate", async () => {
      const counted = await refusalsDuring(async () => {
        const tls13 = await tlsCaller({ minVersion: "TLSv1.3" });
        assert.equal(tls13.data, "");
        assert.match(tls13.error, /ALERT_CERTIFICATE_REQUIRED/);
        const tls12 = await tlsCaller({ maxVersion: "TLSv1.2" });
        assert.equal(tls12.secured, false);
        assert.match(tls12.error, /ALERT_HANDSHAKE_FAILURE/);
      });
      assert.deepEqual(counted, { no_certificate: 2 });
    });
    // Named alike on every runtime, so the report lines the runtimes up; the reason differs on Deno.
    tlsCase("a client certificate that has expired, counted as certificate_expired (Deno: untrusted_certificate)", async () => {
      const counted = await refusalsDuring(async () =>
        assertCertificateRefused(await issueWorkload(ca, { spiffeId: CLIENT_ID, ...expiredDates() })),
      );
      assert.deepEqual(counted, { [expiredReason]: 2 });
    });
    tlsCase("a client certificate that is not yet valid, counted as certificate_not_yet_valid (Deno: untrusted_certificate)", async () => {
      const counted = await refusalsDuring(async () =>
        assertCertificateRefused(await issueWorkload(ca, { spiffeId: CLIENT_ID, ...futureDates() })),
      );
      assert.deepEqual(counted, { [notYetValidReason]: 2 });
    });
    tlsCase("a client certificate from an untrusted CA, counted as untrusted_certificate", async () => {
      const counted = await refusalsDuring(async () => assertCertificateRefused(await issueWorkload(rogue, { spiffeId: CLIENT_ID })));
      assert.deepEqual(counted, { untrusted_certificate: 2 });
    });
    tlsCase("plaintext HTTP/1.1 to the STRICT port, counted as plaintext", async () => {
      const counted = await refusalsDuring(async () => {
        const outcome = await plaintextCaller(`GET ${REFUSED} HTTP/1.1\r\nHost: catalog\r\n\r\n`);
        assert.equal(outcome.closed, true, "the STRICT port must close a plaintext connection");
        assert.equal(
          outcome.data.length,
          0,
          `a plaintext caller must get nothing back: ${JSON.stringify(outcome.data.toString("latin1"))}`,
        );
      });
      assert.deepEqual(counted, { plaintext: 1 });
    });
    tlsCase("plaintext HTTP/2 (prior knowledge) to the STRICT port, counted as plaintext", async () => {
      const counted = await refusalsDuring(async () => {
        const preface = Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]);
        const outcome = await plaintextCaller(preface);
        assert.equal(outcome.closed, true, "the STRICT port must close a plaintext connection");
        assert.equal(outcome.data.length, 0, "a plaintext caller must get nothing back (no SETTINGS)");
      });
      assert.deepEqual(counted, { plaintext: 1 });
    });
    tlsCase("a sidecar whose own certificate has expired: its peer refuses it, it answers 503", async () => {
      const stale = await sidecarWith(await issueWorkload(ca, { spiffeId: CLIENT_ID, ...expiredDates() }));
      try {
        const reply = await request(stale.outbound, { host: "catalog", path: REFUSED });
        assert.equal(reply.status, 503);
        assert.match(String(reply.headers["x-weft-error"]), REFUSED_BY_PEER);
      } finally {
        await stale.stop();
      }
    });
    tlsCase("a sidecar whose certificate comes from an untrusted CA: its peer refuses it, it answers 503", async () => {
      const foreign = await sidecarWith(await issueWorkload(rogue, { spiffeId: CLIENT_ID }), rogue.certificate + ca.certificate);
      try {
        const reply = await request(foreign.outbound, { host: "catalog", path: REFUSED });
        assert.equal(reply.status, 503);
        assert.match(String(reply.headers["x-weft-error"]), REFUSED_BY_PEER);
      } finally {
        await foreign.stop();
      }
    });
  });

  describe("servers the outbound cluster refuses", () => {
    const escapeRe = (id: string) => id.replace(/[/.]/g, "\\$&");
    const refused: { name: string; host: string; error: RegExp }[] = [
      {
        name: "a server with the wrong SPIFFE ID",
        host: "impostor",
        error: new RegExp(
          `server identity rejected: peer SPIFFE ID ${escapeRe(SERVER_ID)} is not the expected identity \\(${escapeRe(STRANGER_ID)}\\)`,
        ),
      },
      {
        name: "a server certificate without a SPIFFE ID",
        host: "no-spiffe-id",
        error: /server identity rejected: peer certificate has no usable SPIFFE ID: the certificate has no spiffe:\/\/ URI SAN/,
      },
      // Deno (rustls) reports an expired or future leaf as UNABLE_TO_VERIFY_LEAF_SIGNATURE.
      {
        name: "a server certificate that has expired",
        host: "expired",
        error: /failed: (CERT_HAS_EXPIRED: certificate has expired|UNABLE_TO_VERIFY_LEAF_SIGNATURE)/,
      },
      {
        name: "a server certificate that is not yet valid",
        host: "not-yet-valid",
        error: /failed: (CERT_NOT_YET_VALID: certificate is not yet valid|UNABLE_TO_VERIFY_LEAF_SIGNATURE)/,
      },
      {
        name: "a server certificate from an untrusted CA",
        host: "untrusted",
        error: /failed: (UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)/,
      },
      { name: "a plaintext server behind an mTLS cluster", host: "plaintext", error: /failed: ERR_SSL_WRONG_VERSION_NUMBER/ },
    ];
    for (const r of refused) {
      tlsCase(`${r.name}: 503 naming why`, async () => {
        const reply = await request(client.outbound, { host: r.host, path: REFUSED });
        const error = String(reply.headers["x-weft-error"] ?? "");
        assert.equal(reply.status, 503, `${reply.status} ${error} ${reply.body}`);
        assert.match(error, new RegExp(`cannot connect to 127\\.0\\.0\\.1:\\d+ in cluster "${r.host}": TLS connect`));
        assert.match(error, r.error);
      });
    }
  });
});
