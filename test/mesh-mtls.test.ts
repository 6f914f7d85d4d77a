// runtimes: node deno bun
// Two sidecars as in a mesh: the client's outbound listener originates mTLS to the
// server's inbound listener, which verifies the caller's SPIFFE ID and tells the app.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { startUpstream, type Upstream } from "./support/upstream.ts";
import { startProxy, type RunningProxy } from "./support/proxy.ts";
import { request, rawExchange } from "./support/client.ts";
import { createCa, issueWorkload, type TestCa, type WorkloadCertificate } from "./support/pki.ts";

const CLIENT_ID = "spiffe://cluster.local/ns/shop/sa/frontend";
const SERVER_ID = "spiffe://cluster.local/ns/shop/sa/catalog";

function identity(ca: TestCa, cert: WorkloadCertificate) {
  return { certificateChain: cert.certificateChain, privateKey: cert.privateKey, trustBundle: ca.certificate };
}

describe("mTLS between two sidecars", () => {
  let app: Upstream;
  let ca: TestCa;
  let serverSide: RunningProxy;
  let permissive: RunningProxy;
  let clientCert: WorkloadCertificate;

  const serverConfig = (tls: "STRICT" | "PERMISSIVE", cert: WorkloadCertificate) => ({
    version: "server-1",
    node: { workload: "catalog", namespace: "shop", serviceAccount: "catalog", service: "catalog.shop.svc.cluster.local" },
    identity: identity(ca, cert),
    listeners: [
      {
        name: "inbound",
        direction: "Inbound" as const,
        address: "127.0.0.1",
        port: 0,
        tls,
        virtualHosts: [{ name: "app", domains: ["*"], routes: [{ backends: [{ cluster: "local-app" }] }] }],
      },
    ],
    clusters: [{ name: "local-app", endpoints: [{ address: "127.0.0.1", port: app.port }] }],
  });

  const clientProxy = (inboundPort: number, expected: string, cert = clientCert) =>
    startProxy({
      version: "client-1",
      node: { workload: "frontend", namespace: "shop", serviceAccount: "frontend" },
      identity: identity(ca, cert),
      listeners: [
        {
          name: "outbound",
          direction: "Outbound",
          address: "127.0.0.1",
          port: 0,
          virtualHosts: [
            { name: "catalog", domains: ["catalog", "catalog.shop.svc.cluster.local"], routes: [{ backends: [{ cluster: "catalog" }] }] },
          ],
        },
      ],
      clusters: [
        {
          name: "catalog",
          service: "catalog.shop.svc.cluster.local",
          namespace: "shop",
          endpoints: [{ address: "127.0.0.1", port: inboundPort }],
          tls: { identities: [expected] },
        },
      ],
    });

  before(async () => {
    app = await startUpstream("catalog-app");
    ca = await createCa();
    clientCert = await issueWorkload(ca, { spiffeId: CLIENT_ID });
    const serverCert = await issueWorkload(ca, { spiffeId: SERVER_ID });
    serverSide = await startProxy(serverConfig("STRICT", serverCert));
    permissive = await startProxy(serverConfig("PERMISSIVE", serverCert));
  });
  after(async () => {
    await serverSide.stop();
    await permissive.stop();
    await app.close();
  });

  it("carries a request over mTLS and gives the app the caller's SPIFFE ID", async () => {
    const client = await clientProxy(serverSide.inbound, SERVER_ID);
    try {
      const reply = await request(client.outbound, {
        host: "catalog",
        path: "/echo",
        headers: { "x-forwarded-client-cert": "By=forged;URI=spiffe://evil/ns/x/sa/y" },
      });
      assert.equal(reply.status, 200);
      const seen = JSON.parse(reply.body);
      assert.equal(seen.headers["x-forwarded-client-cert"], `By=${SERVER_ID};URI=${CLIENT_ID}`);
      // The scheme the calling app used is kept: mTLS between sidecars is the mesh's business.
      assert.equal(seen.headers["x-forwarded-proto"], "http");
    } finally {
      await client.stop();
    }
  });

  it("labels metrics on both sides with the peer identity and mutual_tls", async () => {
    const client = await clientProxy(serverSide.inbound, SERVER_ID);
    try {
      assert.equal((await request(client.outbound, { host: "catalog" })).status, 200);
      const serverMetrics = await (await fetch(`http://127.0.0.1:${serverSide.admin}/metrics`)).text();
      const line = serverMetrics
        .split("\n")
        .find((l) => l.startsWith("istio_requests_total{") && l.includes(`source_principal="${CLIENT_ID}"`));
      assert.ok(line, `no inbound istio_requests_total for ${CLIENT_ID}:\n${serverMetrics.slice(0, 2000)}`);
      assert.match(line, /reporter="destination"/);
      assert.match(line, /connection_security_policy="mutual_tls"/);
      const clientMetrics = await (await fetch(`http://127.0.0.1:${client.admin}/metrics`)).text();
      assert.ok(
        clientMetrics
          .split("\n")
          .some(
            (l) =>
              l.startsWith("istio_requests_total{") &&
              l.includes('reporter="source"') &&
              l.includes(`destination_principal="${SERVER_ID}"`),
          ),
        "outbound metrics name the destination principal",
      );
    } finally {
      await client.stop();
    }
  });

  // A certificate names only the ServiceAccount: the callee learns the caller's workload, and the
  // caller the callee's, from each other's sidecar, so that Istio's dashboards group by workload
  // (`sum by (source_workload, destination_workload)`) on either reporter.
  it("names the workloads on both ends in both sidecars' metrics, and no app sees how", async () => {
    const client = await clientProxy(serverSide.inbound, SERVER_ID);
    const received = app.received.length;
    try {
      // What an app writes is never believed: the sidecars replace it.
      const reply = await request(client.outbound, { host: "catalog", path: "/echo", headers: { "x-weft-peer-workload": "forged" } });
      assert.equal(reply.status, 200);
      assert.equal(reply.headers["x-weft-peer-workload"], undefined, "the calling app does not see the callee's claim");
      assert.equal(app.received[received]!.headers["x-weft-peer-workload"], undefined, "the called app does not see the caller's claim");
      const series = async (admin: number, reporter: string) =>
        (await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text())
          .split("\n")
          .filter((l) => l.startsWith("istio_requests_total{") && l.includes(`reporter="${reporter}"`) && l.includes("source_principal"));
      const inbound = (await series(serverSide.admin, "destination")).find((l) => l.includes(`source_principal="${CLIENT_ID}"`));
      assert.match(inbound ?? "", /source_workload="frontend",/, "the callee names the caller's workload, not unknown");
      assert.match(inbound ?? "", /source_workload_namespace="shop",/);
      assert.doesNotMatch((await series(serverSide.admin, "destination")).join("\n"), /forged/);
      // The client's cluster names no workload: the answer says which one it was.
      const outbound = await series(client.admin, "source");
      assert.equal(outbound.length, 1, outbound.join("\n"));
      assert.match(outbound[0]!, /destination_workload="catalog",/);
      assert.match(outbound[0]!, /source_workload="frontend",/);
    } finally {
      await client.stop();
    }
  });

  it("refuses a server whose SPIFFE ID is not the expected one", async () => {
    const client = await clientProxy(serverSide.inbound, "spiffe://cluster.local/ns/shop/sa/someone-else");
    try {
      const reply = await request(client.outbound, { host: "catalog" });
      assert.equal(reply.status, 503);
      assert.match(String(reply.headers["x-weft-error"]), /SPIFFE ID spiffe:\/\/cluster\.local\/ns\/shop\/sa\/catalog is not the expected/);
    } finally {
      await client.stop();
    }
  });

  it("refuses a caller whose certificate comes from another CA", async () => {
    const stranger = await createCa({ commonName: "stranger" });
    const foreign = await issueWorkload(stranger, { spiffeId: CLIENT_ID });
    const client = await startProxy({
      version: "client-x",
      identity: { certificateChain: foreign.certificateChain, privateKey: foreign.privateKey, trustBundle: ca.certificate },
      listeners: [
        {
          name: "outbound",
          direction: "Outbound",
          address: "127.0.0.1",
          port: 0,
          virtualHosts: [{ name: "c", domains: ["*"], routes: [{ backends: [{ cluster: "catalog" }] }] }],
        },
      ],
      clusters: [{ name: "catalog", endpoints: [{ address: "127.0.0.1", port: serverSide.inbound }], tls: { identities: [SERVER_ID] } }],
    });
    try {
      const before = app.received.length;
      const reply = await request(client.outbound, { host: "catalog" });
      assert.equal(reply.status, 503);
      assert.match(String(reply.headers["x-weft-error"]), /mTLS|certificate|TLS/i);
      assert.equal(app.received.length, before, "nothing reached the app");
    } finally {
      await client.stop();
    }
  });

  it("STRICT refuses plaintext; PERMISSIVE serves plaintext and mTLS on one port", async () => {
    // Refused before HTTP: the connection closes with nothing sent back.
    assert.equal(await rawExchange(serverSide.inbound, "GET / HTTP/1.1\r\nHost: catalog\r\n\r\n"), "");
    const both = await rawExchange(permissive.inbound, "GET /echo HTTP/1.1\r\nHost: catalog\r\nConnection: close\r\n\r\n");
    assert.match(both, /^HTTP\/1\.1 200 /);
    assert.doesNotMatch(both, /x-forwarded-client-cert/);
    const client = await clientProxy(permissive.inbound, SERVER_ID);
    try {
      const seen = JSON.parse((await request(client.outbound, { host: "catalog", path: "/echo" })).body);
      assert.equal(seen.headers["x-forwarded-client-cert"], `By=${SERVER_ID};URI=${CLIENT_ID}`);
    } finally {
      await client.stop();
    }
  });

  it("an AccessPolicy's STRICT takes effect on a running listener's own port: plaintext is refused from the next connection", async () => {
    // A fixed port, as the control plane configures: switching mode must not need the port rebound.
    const { parseConfig } = await import("../proxy/config/validate.ts");
    const net = await import("node:net");
    const port = await new Promise<number>((resolve) => {
      const probe = net.createServer().listen(0, "127.0.0.1", () => {
        const { port } = probe.address() as { port: number };
        probe.close(() => resolve(port));
      });
    });
    const fixed = (tls: "STRICT" | "PERMISSIVE", version: string) => {
      const config = serverConfig(tls, clientCert);
      return { ...config, version, listeners: config.listeners.map((l) => ({ ...l, port })) };
    };
    const proxy = await startProxy(fixed("PERMISSIVE", "fixed-1"));
    try {
      const plaintext = "GET /echo HTTP/1.1\r\nHost: catalog\r\nConnection: close\r\n\r\n";
      assert.match(await rawExchange(port, plaintext), /^HTTP\/1\.1 200 /, "PERMISSIVE serves plaintext");
      await proxy.sidecar.apply(parseConfig({ ...fixed("STRICT", "fixed-2"), admin: { port: 0 }, accessLog: "off" }));
      assert.equal(proxy.sidecar.config.version, "fixed-2");
      assert.equal(await rawExchange(port, plaintext), "", "STRICT refuses it, on the same port");
      await proxy.sidecar.apply(parseConfig({ ...fixed("PERMISSIVE", "fixed-3"), admin: { port: 0 }, accessLog: "off" }));
      assert.match(await rawExchange(port, plaintext), /^HTTP\/1\.1 200 /, "and back");
    } finally {
      await proxy.stop();
    }
  });

  it("rotates the server certificate without a restart", async () => {
    const rotated = await issueWorkload(ca, { spiffeId: SERVER_ID });
    const next = serverConfig("STRICT", rotated);
    const { parseConfig } = await import("../proxy/config/validate.ts");
    const port = serverSide.inbound;
    await serverSide.sidecar.apply(parseConfig({ ...next, admin: { port: 0 }, accessLog: "off", version: "server-2" }));
    assert.equal(serverSide.sidecar.listenerPort("inbound"), port, "the listener kept its socket");
    const tls = await import("node:tls");
    const served = await new Promise<Uint8Array>((resolve, reject) => {
      const socket = tls.connect(
        {
          host: "127.0.0.1",
          port,
          cert: clientCert.certificateChain,
          key: clientCert.privateKey,
          ca: ca.certificate,
          checkServerIdentity: () => undefined,
        },
        () => {
          resolve(new Uint8Array(socket.getPeerCertificate(true).raw));
          socket.destroy();
        },
      );
      socket.on("error", reject);
    });
    assert.deepEqual(served, new Uint8Array(rotated.der), "new handshakes present the rotated certificate");
    const client = await clientProxy(port, SERVER_ID);
    try {
      assert.equal((await request(client.outbound, { host: "catalog" })).status, 200);
    } finally {
      await client.stop();
    }
  });
});
