// runtimes: node deno bun
// mTLS through the runtime adapter (proxy/runtime/node.ts -> node-tls.ts) with real TLS peers and
// certificates issued in the test. Runs unchanged on Node, Deno and Bun.
import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import tls from "node:tls";
import { Buffer } from "node:buffer";
import path from "node:path";
import process from "node:process";
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";
import { nodeRuntime } from "../proxy/runtime/node.ts";
import { assertTlsSupported, currentRuntime, type TlsGap } from "../proxy/runtime/node-tls.ts";
import type { ClientTlsOptions, Conn, MeshServerTls, Server, ServerTlsOptions } from "../proxy/runtime/types.ts";
import { spiffeIdFromCertificate, verifyPeerIdentity } from "../proxy/identity/spiffe.ts";
import { createCa, issueWorkload, type TestCa, type WorkloadCertificate } from "./support/pki.ts";

const TD = "cluster.local";
const SERVER_ID = `spiffe://${TD}/ns/default/sa/server`;
const CLIENT_ID = `spiffe://${TD}/ns/default/sa/client`;
const HOUR = 3600_000;

const ca = await createCa();
const rogueCa = await createCa({ commonName: "rogue CA" });
// No DNS/IP SANs: nothing here is verified by hostname.
const server = await issueWorkload(ca, { spiffeId: SERVER_ID });
const client = await issueWorkload(ca, { spiffeId: CLIENT_ID });

function serverTls(
  cert: WorkloadCertificate,
  mode: MeshServerTls["mode"] = "STRICT",
  trust: TestCa = ca,
  alpn = ["h2", "http/1.1"],
): MeshServerTls {
  return { certificateChain: cert.certificateChain, privateKey: cert.privateKey, trustBundle: trust.certificate, mode, alpn };
}

function clientTls(cert: WorkloadCertificate, expected: string[] = [SERVER_ID], extra: Partial<ClientTlsOptions> = {}): ClientTlsOptions {
  return {
    certificateChain: cert.certificateChain,
    privateKey: cert.privateKey,
    trustBundle: ca.certificate,
    alpn: ["h2", "http/1.1"],
    verifyPeer: verifyPeerIdentity(expected),
    ...extra,
  };
}

interface Accepted {
  conns: Conn[];
  /** Resolves with the next accepted connection. */
  next(): Promise<Conn>;
}

/** An echo server through the adapter; records accepted connections. */
async function echoServer(tlsOptions: ServerTlsOptions): Promise<{ server: Server } & Accepted> {
  const conns: Conn[] = [];
  const waiting: ((c: Conn) => void)[] = [];
  const srv = await nodeRuntime.listen({ address: "127.0.0.1", port: 0, tls: tlsOptions }, (conn) => {
    conn.onData = (chunk) => conn.write(chunk);
    conn.onEnd = () => conn.end();
    conns.push(conn);
    waiting.shift()?.(conn);
  });
  return { server: srv, conns, next: () => new Promise((resolve) => waiting.push(resolve)) };
}

/** Sends `message` on an adapter Conn and resolves with what comes back before close. */
function exchange(conn: Conn, message: string): Promise<{ data: string; error?: Error }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    conn.onData = (chunk) => {
      chunks.push(chunk);
      if (Buffer.concat(chunks).length >= message.length) conn.end();
    };
    conn.onEnd = () => conn.end();
    conn.onClose = (error) => resolve({ data: Buffer.concat(chunks).toString(), error });
    if (message.length > 0) conn.write(message);
    else conn.end();
  });
}

/** A TLS attempt with a raw node:tls client (to present no certificate, or odd ones). */
function rawAttempt(port: number, options: tls.ConnectionOptions): Promise<{ data: string; error?: string }> {
  return new Promise((resolve) => {
    let data = "";
    let error: string | undefined;
    const s = tls.connect({ host: "127.0.0.1", port, ca: ca.certificate, checkServerIdentity: () => undefined, ...options }, () =>
      s.write("ping"),
    );
    s.on("data", (d) => (data += d));
    s.on("error", (e) => (error = `${(e as { code?: string }).code ?? ""} ${e.message}`));
    s.on("close", () => resolve({ data, error }));
  });
}

/**
 * A refused mesh client: connect may reject, or (TLS 1.3: the server checks the client certificate
 * after the client's Finished) resolve and then close without echo.
 */
async function assertRefused(port: number, options: ClientTlsOptions, accepted: Accepted) {
  let outcome: string;
  try {
    const conn = await nodeRuntime.connect({ address: "127.0.0.1", port, timeoutMs: 3000, tls: options });
    const result = await exchange(conn, "ping");
    assert.equal(result.data, "", "a refused client must not get data through");
    outcome = `closed ${result.error?.message ?? ""}`;
  } catch (e) {
    outcome = `rejected ${(e as Error).message}`;
  }
  assert.equal(accepted.conns.length, 0, "the server must not deliver a refused connection");
  return outcome;
}

test("STRICT accepts a mesh client and exposes its certificate DER, SPIFFE ID and ALPN", async () => {
  const srv = await echoServer(serverTls(server));
  try {
    const accepted = srv.next();
    const conn = await nodeRuntime.connect({ address: "127.0.0.1", port: srv.server.port, timeoutMs: 3000, tls: clientTls(client) });
    const serverSide = await accepted;
    assert.deepEqual(serverSide.tls?.peerCertificate && Buffer.from(serverSide.tls.peerCertificate), Buffer.from(client.der));
    assert.equal(spiffeIdFromCertificate(serverSide.tls!.peerCertificate!), CLIENT_ID);
    assert.equal(serverSide.tls?.alpn, "h2");
    assert.equal(conn.tls?.alpn, "h2");
    assert.deepEqual(conn.tls?.peerCertificate && Buffer.from(conn.tls.peerCertificate), Buffer.from(server.der));
    const { data, error } = await exchange(conn, "hello over mTLS");
    assert.equal(data, "hello over mTLS");
    assert.equal(error, undefined);
  } finally {
    await srv.server.close();
  }
});

test("STRICT refuses a client without a certificate, from another CA, expired or not yet valid", async () => {
  const srv = await echoServer(serverTls(server));
  try {
    const none = await rawAttempt(srv.server.port, {});
    assert.equal(none.data, "");
    assert.match(none.error ?? "", /certificate|alert|handshake|reset|hang up/i);

    const rogue = await issueWorkload(rogueCa, { spiffeId: CLIENT_ID });
    const expired = await issueWorkload(ca, {
      spiffeId: CLIENT_ID,
      notBefore: new Date(Date.now() - 48 * HOUR),
      notAfter: new Date(Date.now() - 24 * HOUR),
    });
    const future = await issueWorkload(ca, {
      spiffeId: CLIENT_ID,
      notBefore: new Date(Date.now() + 24 * HOUR),
      notAfter: new Date(Date.now() + 48 * HOUR),
    });
    for (const bad of [rogue, expired, future]) await assertRefused(srv.server.port, clientTls(bad), srv);

    // Plaintext on a STRICT port never reaches the proxy.
    const plain = await new Promise<string>((resolve) => {
      let data = "";
      const s = net.connect(srv.server.port, "127.0.0.1", () => s.write("GET / HTTP/1.1\r\nhost: x\r\n\r\n"));
      s.on("data", (d) => (data += d));
      s.on("error", () => {});
      s.on("close", () => resolve(data));
    });
    assert.doesNotMatch(plain, /GET/);
    assert.equal(srv.conns.length, 0);
  } finally {
    await srv.server.close();
  }
});

test("PERMISSIVE serves plaintext and mTLS on one port", async () => {
  const srv = await echoServer(serverTls(server, "PERMISSIVE"));
  try {
    // Plaintext: every byte reaches the proxy, including the peeked first one.
    const plainAccepted = srv.next();
    const request = "GET /plain HTTP/1.1\r\nhost: a\r\n\r\n";
    const echoed = await new Promise<string>((resolve, reject) => {
      let data = "";
      const s = net.connect(srv.server.port, "127.0.0.1", () => s.write(request));
      s.on("data", (d) => {
        data += d;
        if (data.length >= request.length) s.end();
      });
      s.on("error", reject);
      s.on("close", () => resolve(data));
    });
    assert.equal(echoed, request);
    assert.equal((await plainAccepted).tls, null);

    // mTLS on the same port.
    const tlsAccepted = srv.next();
    const conn = await nodeRuntime.connect({ address: "127.0.0.1", port: srv.server.port, timeoutMs: 3000, tls: clientTls(client) });
    const serverSide = await tlsAccepted;
    assert.equal(spiffeIdFromCertificate(serverSide.tls!.peerCertificate!), CLIENT_ID);
    assert.equal(serverSide.tls?.alpn, "h2");
    assert.equal((await exchange(conn, "tls on the permissive port")).data, "tls on the permissive port");

    // TLS without a mesh certificate is still refused: PERMISSIVE means plaintext or mTLS.
    srv.conns.length = 0;
    assert.equal((await rawAttempt(srv.server.port, {})).data, "");
    await assertRefused(srv.server.port, clientTls(await issueWorkload(rogueCa, { spiffeId: CLIENT_ID })), srv);
  } finally {
    await srv.server.close();
  }
});

test("client verifies the server by SPIFFE ID, not hostname, and trusts only the bundle", async () => {
  const srv = await echoServer(serverTls(server));
  try {
    const port = srv.server.port;
    // Right identity, a servername that matches nothing in the certificate: accepted.
    const ok = await nodeRuntime.connect({
      address: "127.0.0.1",
      port,
      timeoutMs: 3000,
      tls: clientTls(client, [SERVER_ID], { servername: "not-in-the-cert.example" }),
    });
    assert.equal((await exchange(ok, "x")).data, "x");

    const wrong = `spiffe://${TD}/ns/default/sa/someone-else`;
    await assert.rejects(
      nodeRuntime.connect({ address: "127.0.0.1", port, timeoutMs: 3000, tls: clientTls(client, [wrong]) }),
      (e: Error & { code?: string }) => {
        assert.equal(e.code, "ERR_WEFT_PEER_IDENTITY");
        assert.match(e.message, /server identity rejected/);
        assert.ok(e.message.includes(SERVER_ID) && e.message.includes(wrong), e.message);
        return true;
      },
    );
    // A server from another CA is refused by chain verification (trust bundle only).
    await assert.rejects(
      nodeRuntime.connect({
        address: "127.0.0.1",
        port,
        timeoutMs: 3000,
        tls: clientTls(client, [SERVER_ID], { trustBundle: rogueCa.certificate }),
      }),
      /TLS connect to 127\.0\.0\.1:\d+ failed: .*(self[- ]signed|unable to (get|verify)|certificate)/i,
    );
  } finally {
    await srv.server.close();
  }
});

test("client refuses an expired server certificate and accepts a chain through an intermediate", async () => {
  const expired = await issueWorkload(ca, {
    spiffeId: SERVER_ID,
    notBefore: new Date(Date.now() - 48 * HOUR),
    notAfter: new Date(Date.now() - HOUR),
  });
  const old = await echoServer(serverTls(expired));
  try {
    await assert.rejects(
      nodeRuntime.connect({ address: "127.0.0.1", port: old.server.port, timeoutMs: 3000, tls: clientTls(client) }),
      // Deno reports it as UNABLE_TO_VERIFY_LEAF_SIGNATURE (rustls says CertificateExpired to the server).
      /CERT_HAS_EXPIRED|expired|UNABLE_TO_VERIFY_LEAF_SIGNATURE/i,
    );
  } finally {
    await old.server.close();
  }
  const intermediate = await createCa({ commonName: "weft intermediate", signer: ca });
  const viaIntermediate = await issueWorkload(intermediate, { spiffeId: SERVER_ID });
  const srv = await echoServer(serverTls(viaIntermediate));
  try {
    const conn = await nodeRuntime.connect({ address: "127.0.0.1", port: srv.server.port, timeoutMs: 3000, tls: clientTls(client) });
    assert.equal(spiffeIdFromCertificate(conn.tls!.peerCertificate!), SERVER_ID);
    assert.equal((await exchange(conn, "chain")).data, "chain");
  } finally {
    await srv.server.close();
  }
});

test("client sends servername as SNI and offers its ALPN list", async () => {
  const seen: { servername: string | false | undefined; alpn: string | false | null }[] = [];
  const raw = tls.createServer(
    {
      key: server.privateKey,
      cert: server.certificateChain,
      ca: ca.certificate,
      requestCert: true,
      rejectUnauthorized: true,
      ALPNProtocols: ["http/1.1"],
    },
    (s) => {
      seen.push({ servername: (s as tls.TLSSocket & { servername?: string | false }).servername, alpn: s.alpnProtocol });
      s.end();
    },
  );
  await new Promise<void>((r) => raw.listen(0, "127.0.0.1", () => r()));
  try {
    const port = (raw.address() as net.AddressInfo).port;
    const conn = await nodeRuntime.connect({
      address: "127.0.0.1",
      port,
      timeoutMs: 3000,
      tls: clientTls(client, [SERVER_ID], { servername: "outbound.weft.test" }),
    });
    assert.equal(conn.tls?.alpn, "http/1.1");
    await exchange(conn, "");
    assert.deepEqual(seen, [{ servername: "outbound.weft.test", alpn: "http/1.1" }]);

    // No ALPN offered: none negotiated.
    const bare = await nodeRuntime.connect({
      address: "127.0.0.1",
      port,
      timeoutMs: 3000,
      tls: clientTls(client, [SERVER_ID], { alpn: [] }),
    });
    assert.equal(bare.tls?.alpn, null);
    bare.destroy();
  } finally {
    raw.close();
  }
});

test("client connect times out when the handshake never completes", async () => {
  const silent = net.createServer(() => {}); // accepts TCP, never answers the ClientHello
  const held: net.Socket[] = [];
  silent.on("connection", (s) => held.push(s));
  await new Promise<void>((r) => silent.listen(0, "127.0.0.1", () => r()));
  try {
    const port = (silent.address() as net.AddressInfo).port;
    const started = Date.now();
    await assert.rejects(
      nodeRuntime.connect({ address: "127.0.0.1", port, timeoutMs: 300, tls: clientTls(client) }),
      (e: Error & { code?: string }) => {
        assert.equal(e.code, "ETIMEDOUT");
        assert.match(e.message, /timed out after 300 ms/);
        return true;
      },
    );
    assert.ok(Date.now() - started < 2000);
  } finally {
    for (const s of held) s.destroy();
    silent.close();
  }
});

test("updateTls rotates certificate and trust bundle for new handshakes; the listener and open connections keep running", async () => {
  const srv = await echoServer(serverTls(server));
  try {
    const port = srv.server.port;
    const before = await nodeRuntime.connect({ address: "127.0.0.1", port, timeoutMs: 3000, tls: clientTls(client) });
    assert.equal(spiffeIdFromCertificate(before.tls!.peerCertificate!), SERVER_ID);

    // 1. New certificate and key from the same CA.
    const renewed = await issueWorkload(ca, { spiffeId: SERVER_ID });
    srv.server.updateTls!(serverTls(renewed));
    const after = await nodeRuntime.connect({ address: "127.0.0.1", port, timeoutMs: 3000, tls: clientTls(client) });
    assert.deepEqual(Buffer.from(after.tls!.peerCertificate!), Buffer.from(renewed.der));
    assert.equal(srv.server.port, port);
    assert.equal((await exchange(after, "new")).data, "new");

    // 2. A new mesh CA: the trust bundle is replaced too; clients of the old CA are refused.
    const ca2 = await createCa({ commonName: "weft mesh CA 2" });
    const server2 = await issueWorkload(ca2, { spiffeId: SERVER_ID });
    const client2 = await issueWorkload(ca2, { spiffeId: CLIENT_ID });
    srv.server.updateTls!(serverTls(server2, "STRICT", ca2));
    const rotated = await nodeRuntime.connect({
      address: "127.0.0.1",
      port,
      timeoutMs: 3000,
      tls: clientTls(client2, [SERVER_ID], { trustBundle: ca2.certificate }),
    });
    assert.deepEqual(Buffer.from(rotated.tls!.peerCertificate!), Buffer.from(server2.der));
    assert.equal((await exchange(rotated, "ca2")).data, "ca2");
    // A client of the old CA is refused by the server (its certificate is no longer trusted) ...
    srv.conns.length = 0;
    await assertRefused(port, clientTls(client, [SERVER_ID], { trustBundle: ca2.certificate }), srv);
    // ... and, still trusting only the old CA, refuses the server's new certificate itself.
    await assert.rejects(
      nodeRuntime.connect({ address: "127.0.0.1", port, timeoutMs: 3000, tls: clientTls(client) }),
      /TLS connect to .* failed/,
    );

    // 3. The connection opened before both rotations still works.
    assert.equal((await exchange(before, "still here")).data, "still here");

    // 4. Bad updates are refused and change nothing.
    assert.throws(
      () => srv.server.updateTls!({ ...serverTls(server2, "STRICT", ca2), privateKey: client2.privateKey }),
      /privateKey does not match/,
    );
    assert.throws(() => srv.server.updateTls!({ ...serverTls(server2, "STRICT", ca2), trustBundle: "" }), /trustBundle must be PEM/);
    const stillOk = await nodeRuntime.connect({
      address: "127.0.0.1",
      port,
      timeoutMs: 3000,
      tls: clientTls(client2, [SERVER_ID], { trustBundle: ca2.certificate }),
    });
    assert.equal((await exchange(stillOk, "ok")).data, "ok");
  } finally {
    await srv.server.close();
  }
});

function plaintextEcho(port: number, message: string): Promise<string> {
  return new Promise((resolve) => {
    let data = "";
    const s = net.connect(port, "127.0.0.1", () => s.write(message));
    s.on("data", (d) => {
      data += d;
      if (data.length >= message.length) s.end();
    });
    s.on("error", () => {});
    s.on("close", () => resolve(data));
  });
}

test("updateTls switches PERMISSIVE <-> STRICT and ALPN on the running port", async () => {
  const srv = await echoServer(serverTls(server, "PERMISSIVE"));
  try {
    const port = srv.server.port;
    assert.equal(await plaintextEcho(port, "plain 1"), "plain 1");
    const renewed = await issueWorkload(ca, { spiffeId: SERVER_ID });
    srv.server.updateTls!(serverTls(renewed, "STRICT", ca, ["http/1.1"]));
    // STRICT now: plaintext is closed unanswered, mTLS gets the renewed certificate and new ALPN.
    assert.equal(await plaintextEcho(port, "plain 2"), "");
    const conn = await nodeRuntime.connect({ address: "127.0.0.1", port, timeoutMs: 3000, tls: clientTls(client) });
    assert.deepEqual(Buffer.from(conn.tls!.peerCertificate!), Buffer.from(renewed.der));
    assert.equal(conn.tls?.alpn, "http/1.1");
    srv.server.updateTls!(serverTls(renewed, "PERMISSIVE"));
    assert.equal(await plaintextEcho(port, "plain 3"), "plain 3");
    // The mTLS connection made under STRICT is unaffected.
    assert.equal((await exchange(conn, "still mtls")).data, "still mtls");
    assert.equal(srv.server.port, port);
  } finally {
    await srv.server.close();
  }
});

test("bad TLS material is refused at start-up with a clear message", async () => {
  const listen = (t: MeshServerTls) => nodeRuntime.listen({ address: "127.0.0.1", port: 0, tls: t }, () => {});
  await assert.rejects(listen({ ...serverTls(server), certificateChain: "" }), /server TLS: certificateChain must be PEM/);
  await assert.rejects(listen({ ...serverTls(server), trustBundle: "nope" }), /server TLS: trustBundle must be PEM/);
  await assert.rejects(
    listen({ ...serverTls(server), privateKey: client.privateKey }),
    /server TLS: privateKey does not match the first certificate/,
  );
  const garbage = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
  await assert.rejects(
    listen({ ...serverTls(server), trustBundle: ca.certificate + garbage }),
    /server TLS trustBundle: certificate #2 does not parse/,
  );
  await assert.rejects(
    listen({ ...serverTls(server), certificateChain: garbage }),
    /server TLS certificateChain: certificate #1 does not parse/,
  );
  await assert.rejects(
    listen({ ...serverTls(server), privateKey: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n" }),
    /server TLS: privateKey does not parse/,
  );
  await assert.rejects(listen({ ...serverTls(server), mode: "MUTUAL" as MeshServerTls["mode"] }), /mode must be STRICT or PERMISSIVE/);
  await assert.rejects(
    nodeRuntime.connect({ address: "127.0.0.1", port: 1, timeoutMs: 500, tls: { ...clientTls(client), privateKey: "x" } }),
    /client TLS: privateKey must be a PEM private key/,
  );
});

test("a runtime gap makes the adapter refuse at start-up, naming runtime, feature and workaround", () => {
  const runtime = currentRuntime();
  const gap: TlsGap = {
    runtime: runtime.name,
    side: "server",
    modes: ["PERMISSIVE"],
    feature: "re-emitting a peeked socket into tls.Server",
    workaround: "use STRICT mode",
  };
  assert.throws(
    () => assertTlsSupported("server", "PERMISSIVE", [gap]),
    (e: Error) => {
      assert.ok(e.message.includes(`on ${runtime.name} ${runtime.version}`), e.message);
      assert.ok(e.message.includes(gap.feature) && e.message.includes(gap.workaround), e.message);
      return true;
    },
  );
  assert.doesNotThrow(() => assertTlsSupported("server", "STRICT", [gap]));
  assert.doesNotThrow(() => assertTlsSupported("client", undefined, [gap]));
  // The real table: no gaps on the supported runtimes, so nothing is refused.
  assert.doesNotThrow(() => assertTlsSupported("server", "PERMISSIVE"));
  assert.doesNotThrow(() => assertTlsSupported("client"));
});

// ---- reuse: one secure context per material, resumed sessions (node-tls.ts, "Sessions") ----

/** Deno's node:tls client never resumes (its sessions are placeholders); Node's and Bun's do. */
const RESUMES = currentRuntime().name !== "deno";

const connect = (port: number, options: ClientTlsOptions) =>
  nodeRuntime.connect({ address: "127.0.0.1", port, timeoutMs: 3000, tls: options });

/** Connects, and exchanges a message so that the server's session tickets have arrived before the next connect. */
async function connected(port: number, options: ClientTlsOptions): Promise<Conn> {
  const conn = await connect(port, options);
  assert.equal((await exchange(conn, "ticket")).data, "ticket");
  return conn;
}

/** A verifyPeer that counts its calls and can be told to refuse; one function, so its sessions are kept. */
function countingVerifier() {
  const expected = verifyPeerIdentity([SERVER_ID]);
  const verifier = {
    calls: 0,
    refusal: undefined as string | undefined,
    verifyPeer: (der: Uint8Array) => {
      verifier.calls++;
      return verifier.refusal ?? expected(der);
    },
  };
  return verifier;
}

test("many connects with one identity build one secure context", async () => {
  const srv = await echoServer(serverTls(server));
  const fresh = await issueWorkload(ca, { spiffeId: CLIENT_ID }); // material no other test has built
  const mutable = tls as { createSecureContext: typeof tls.createSecureContext };
  const original = mutable.createSecureContext;
  let built = 0;
  mutable.createSecureContext = (options) => {
    built++;
    return original(options);
  };
  try {
    // Full handshakes (a new verifyPeer each time, so no session to resume) and resumed ones.
    for (let i = 0; i < 10; i++)
      await connected(
        srv.server.port,
        clientTls(fresh, [SERVER_ID], { verifyPeer: verifyPeerIdentity([SERVER_ID, `spiffe://${TD}/ns/n${i}/sa/s`]) }),
      );
    for (let i = 0; i < 10; i++) await connected(srv.server.port, clientTls(fresh));
    // Node's tls.connect builds its own context from cert/key/ca unless given one: it counts here too.
    assert.equal(built, 1, "one tls.createSecureContext for 20 connects with the same certificate, key and trust bundle");
    // The same material in a configuration pushed again: the server keeps its tls.Server (a new one
    // would count here on Node; on every runtime, the next test sees its sessions still resume).
    srv.server.updateTls!({ ...serverTls(server), onRefused: () => {} });
    await connected(srv.server.port, clientTls(fresh));
    assert.equal(built, 1);
  } finally {
    mutable.createSecureContext = original;
    await srv.server.close();
  }
});

test("a client resumes its session to an endpoint, and still checks the server's identity", async () => {
  const srv = await echoServer(serverTls(server));
  const other = await echoServer(serverTls(server));
  const fresh = await issueWorkload(ca, { spiffeId: CLIENT_ID });
  const verifier = countingVerifier();
  const options = clientTls(fresh, [SERVER_ID], { verifyPeer: verifier.verifyPeer });
  const port = srv.server.port;
  try {
    const first = await connected(port, options);
    assert.equal(first.tls?.resumed, false);
    const accepted = srv.next();
    const second = await connected(port, options);
    // Resumed where the runtime's client resumes, and the identity is the one verified at first.
    assert.equal(second.tls?.resumed, RESUMES);
    assert.deepEqual(Buffer.from(second.tls!.peerCertificate!), Buffer.from(server.der));
    assert.equal(verifier.calls, 2, "verifyPeer runs on a resumed connection too");
    // The server side of a resumed connection still knows the client's certificate.
    const serverSide = await accepted;
    assert.equal(serverSide.tls?.resumed, RESUMES);
    assert.deepEqual(Buffer.from(serverSide.tls!.peerCertificate!), Buffer.from(fresh.der));

    // The same server after a configuration pushed again with the same identity: still resumed.
    srv.server.updateTls!({ ...serverTls(server), onRefused: () => {} });
    assert.equal((await connected(port, options)).tls?.resumed, RESUMES);

    // The identity check refuses the session's server: the connect fails, and the session is gone.
    verifier.refusal = "refused by the test";
    await assert.rejects(connect(port, options), (e: Error & { code?: string }) => {
      assert.equal(e.code, "ERR_WEFT_PEER_IDENTITY");
      assert.match(e.message, /server identity rejected: refused by the test/);
      return true;
    });
    verifier.refusal = undefined;
    assert.equal((await connected(port, options)).tls?.resumed, false, "a full handshake after the refusal");

    // Sessions are per endpoint and per expected identity.
    assert.equal((await connected(other.server.port, options)).tls?.resumed, false);
    assert.equal((await connected(port, clientTls(fresh, [SERVER_ID, CLIENT_ID]))).tls?.resumed, false);
  } finally {
    await srv.server.close();
    await other.server.close();
  }
});

test("a resumed connection the server closes unanswered costs its session", async () => {
  // A server that hangs up on every resumed session after the handshake, as a Deno weft server does
  // with a session its trust bundle never verified (node-tls.ts, RESUMES_ACROSS_SERVERS).
  const raw = tls.createServer(
    { key: server.privateKey, cert: server.certificateChain, ca: ca.certificate, requestCert: true, rejectUnauthorized: true },
    (s) => {
      if (s.isSessionReused()) return s.destroy();
      s.on("data", (d) => s.write(d));
      s.on("end", () => s.end());
    },
  );
  await new Promise<void>((r) => raw.listen(0, "127.0.0.1", () => r()));
  try {
    const port = (raw.address() as net.AddressInfo).port;
    const options = clientTls(await issueWorkload(ca, { spiffeId: CLIENT_ID }));
    await connected(port, options);
    const refused = await connect(port, options);
    assert.equal(refused.tls?.resumed, RESUMES);
    if (RESUMES) assert.equal((await exchange(refused, "x")).data, "");
    const again = await connected(port, options);
    assert.equal(again.tls?.resumed, false);
  } finally {
    raw.close();
  }
});

test("a new certificate or trust bundle on the client is not served by the old context or session", async () => {
  const srv = await echoServer(serverTls(server));
  const fresh = await issueWorkload(ca, { spiffeId: CLIENT_ID });
  try {
    const port = srv.server.port;
    await connected(port, clientTls(fresh));
    assert.equal((await connected(port, clientTls(fresh))).tls?.resumed, RESUMES, "a session exists");
    // A renewed certificate: presented at once, in a full handshake.
    const renewed = await issueWorkload(ca, { spiffeId: CLIENT_ID });
    const accepted = srv.next();
    assert.equal((await connected(port, clientTls(renewed))).tls?.resumed, false);
    assert.deepEqual(Buffer.from((await accepted).tls!.peerCertificate!), Buffer.from(renewed.der));
    // Same certificate and key, a trust bundle that does not hold the server's CA: Node and Bun
    // would resume the old session with it (they re-verify nothing); weft verifies the chain again.
    await assert.rejects(
      connect(port, clientTls(fresh, [SERVER_ID], { trustBundle: rogueCa.certificate })),
      /TLS connect to 127\.0\.0\.1:\d+ failed: .*(self[- ]signed|unable to (get|verify)|certificate)/i,
    );
  } finally {
    await srv.server.close();
  }
});

/**
 * weft's client in a Node process (Node's client resumes sessions; Deno's does not), for a server
 * of the runtime under test. Each line on stdin is a number of sequential connects, each sending
 * "ping" and reading until the server closes; it prints one JSON line with what each got.
 */
const NODE_CLIENT = `
import process from "node:process";
import { createInterface } from "node:readline";
const { nodeRuntime } = await import(process.env.WEFT_RUNTIME);
const o = JSON.parse(process.env.WEFT_TEST_CLIENT);
const tls = { certificateChain: o.cert, privateKey: o.key, trustBundle: o.ca, alpn: [], verifyPeer: () => undefined };
const attempt = async () => {
  try {
    const conn = await nodeRuntime.connect({ address: "127.0.0.1", port: o.port, timeoutMs: 3000, tls });
    const data = await new Promise((resolve) => {
      let data = "";
      conn.onData = (d) => { data += d; conn.end(); };
      conn.onEnd = () => conn.end();
      conn.onClose = () => resolve(data);
      conn.write("ping");
    });
    return { resumed: conn.tls.resumed, data };
  } catch (e) {
    return { error: e.message, data: "" };
  }
};
for await (const line of createInterface({ input: process.stdin })) {
  const results = [];
  for (let i = 0; i < Number(line); i++) results.push(await attempt());
  console.log(JSON.stringify(results));
}
`;

test("a server's new trust bundle is not bypassed by a session from before (a Node client, which resumes)", async () => {
  const refusals: string[] = [];
  const onRefused = (reason: string) => refusals.push(reason);
  const srv = await echoServer({ ...serverTls(server), onRefused });
  const here = import.meta.dirname ?? ".";
  const child = spawn(path.resolve(here, "..", "node_modules", ".bin", "node"), ["--input-type=module", "-e", NODE_CLIENT], {
    stdio: ["pipe", "pipe", "inherit"],
    env: {
      ...process.env,
      WEFT_RUNTIME: pathToFileURL(path.resolve(here, "..", "proxy", "runtime", "node.ts")).href,
      WEFT_TEST_CLIENT: JSON.stringify({
        port: srv.server.port,
        key: client.privateKey,
        cert: client.certificateChain,
        ca: ca.certificate,
      }),
    },
  });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const connects = async (n: number) => {
    child.stdin!.write(`${n}\n`);
    return JSON.parse((await lines.next()).value as string) as { resumed?: boolean; data: string; error?: string }[];
  };
  const ping = (resumed: boolean) => ({ resumed, data: "ping" });
  try {
    assert.deepEqual(await connects(2), [ping(false), ping(true)]);

    // A bundle that still trusts the client. Node and Bun: a new tls.Server, whose tickets the old
    // session is not one of, so a full handshake. Deno resumes it anyway; weft refuses it there once,
    // since this bundle never verified the client, and the client then makes a full handshake.
    const ca2 = await createCa({ commonName: "weft mesh CA 2" });
    srv.server.updateTls!({ ...serverTls(server), trustBundle: ca.certificate + ca2.certificate, onRefused });
    if (currentRuntime().name === "deno") {
      assert.deepEqual(await connects(3), [{ resumed: true, data: "" }, ping(false), ping(true)]);
      assert.deepEqual(refusals.splice(0), ["untrusted_certificate"]);
    } else {
      assert.deepEqual(await connects(3), [ping(false), ping(true), ping(true)]);
      assert.deepEqual(refusals.splice(0), []);
    }

    // A bundle that no longer trusts the client's CA: refused, on every runtime, session or not.
    srv.server.updateTls!({ ...serverTls(server, "STRICT", ca2), onRefused });
    srv.conns.length = 0;
    const [refused] = await connects(1);
    assert.equal(refused.data, "", `the refused client got an answer: ${JSON.stringify(refused)}`);
    assert.equal(srv.conns.length, 0, "the server must not deliver the connection");
    assert.deepEqual(refusals, ["untrusted_certificate"]);
  } finally {
    child.kill();
    await srv.server.close();
  }
});
