// runtimes: node deno bun
// mTLS through the runtime adapter (proxy/runtime/node.ts -> node-tls.ts) with real TLS peers and
// certificates issued in the test. Runs unchanged on Node, Deno and Bun.
import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import tls from "node:tls";
import { Buffer } from "node:buffer";
import { nodeRuntime } from "../proxy/runtime/node.ts";
import { assertTlsSupported, currentRuntime, type TlsGap } from "../proxy/runtime/node-tls.ts";
import type { ClientTlsOptions, Conn, Server, ServerTlsOptions } from "../proxy/runtime/types.ts";
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
  mode: ServerTlsOptions["mode"] = "STRICT",
  trust: TestCa = ca,
  alpn = ["h2", "http/1.1"],
): ServerTlsOptions {
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
  const listen = (t: ServerTlsOptions) => nodeRuntime.listen({ address: "127.0.0.1", port: 0, tls: t }, () => {});
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
  await assert.rejects(listen({ ...serverTls(server), mode: "MUTUAL" as ServerTlsOptions["mode"] }), /mode must be STRICT or PERMISSIVE/);
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
