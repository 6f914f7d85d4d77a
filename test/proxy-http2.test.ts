// runtimes: node deno bun
// HTTP/2 downstream: h2c with prior knowledge on a plaintext listener and ALPN h2 on an
// mTLS listener, with real node:http2 and curl clients.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import http2 from "node:http2";
import { execFile } from "node:child_process";
import { startUpstream, type Upstream } from "./support/upstream.ts";
import { startProxy, simpleConfig, type RunningProxy } from "./support/proxy.ts";
import { request } from "./support/client.ts";
import { h2request } from "./support/h2client.ts";
import { createCa, issueWorkload } from "./support/pki.ts";

describe("HTTP/2 downstream", () => {
  let upstream: Upstream;
  let proxy: RunningProxy;
  let session: http2.ClientHttp2Session;

  before(async () => {
    upstream = await startUpstream("app");
    const config = simpleConfig([upstream.port]) as { listeners: { virtualHosts: { domains: string[] }[] }[] };
    config.listeners[0].virtualHosts[0].domains = ["app", "app.test", "127.0.0.1"];
    proxy = await startProxy(config as Parameters<typeof startProxy>[0]);
    session = http2.connect(`http://127.0.0.1:${proxy.outbound}`);
  });
  after(async () => {
    session.close();
    await proxy.stop();
    await upstream.close();
  });

  it("serves h2c with prior knowledge and routes by :authority", async () => {
    const reply = await h2request(session, { ":method": "GET", ":path": "/echo?x=1", ":authority": "app.test:80", "x-custom": "yes" });
    assert.equal(reply.status, 200);
    const seen = JSON.parse(reply.body);
    assert.equal(seen.url, "/echo?x=1");
    assert.equal(seen.headers.host, "app.test:80");
    assert.equal(seen.headers["x-custom"], "yes");
    assert.match(seen.headers["x-request-id"], /^[0-9a-f-]{36}$/);
  });

  it("streams request bodies, with and without content-length", async () => {
    const body = "y".repeat(200_000);
    const a = JSON.parse(
      (await h2request(session, { ":method": "POST", ":path": "/echo", ":authority": "app", "content-length": String(body.length) }, body))
        .body,
    );
    assert.equal(a.body.length, body.length);
    const b = JSON.parse((await h2request(session, { ":method": "POST", ":path": "/echo", ":authority": "app" }, body)).body);
    assert.equal(b.body.length, body.length);
    assert.equal(b.headers["transfer-encoding"], "chunked");
  });

  it("turns HTTP/1.1 chunked trailers into HTTP/2 trailers", async () => {
    const reply = await h2request(session, { ":method": "GET", ":path": "/chunked", ":authority": "app" });
    assert.equal(reply.body, "first,second");
    assert.equal(reply.trailers["x-checksum"], "abc123");
  });

  it("multiplexes concurrent streams on one connection", async () => {
    const replies = await Promise.all(
      Array.from({ length: 50 }, (_, i) => h2request(session, { ":method": "GET", ":path": `/echo?i=${i}`, ":authority": "app" })),
    );
    replies.forEach((r, i) => assert.equal(JSON.parse(r.body).url, `/echo?i=${i}`));
  });

  it("answers local errors over HTTP/2 (no route) and keeps the session", async () => {
    const miss = await h2request(session, { ":method": "GET", ":path": "/", ":authority": "nowhere" });
    assert.equal(miss.status, 404);
    assert.match(String(miss.headers["x-weft-error"]), /no route for host "nowhere"/);
    const ok = await h2request(session, { ":method": "GET", ":path": "/", ":authority": "app" });
    assert.equal(ok.status, 200);
  });

  it("still serves HTTP/1.1 on the same port", async () => {
    assert.equal((await request(proxy.outbound, { path: "/", host: "app" })).body, "hello from app\n");
  });

  it("works with curl --http2-prior-knowledge", async () => {
    const out = await new Promise<string>((resolve, reject) =>
      execFile(
        "curl",
        ["-sS", "--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_version} %{http_code}", `http://127.0.0.1:${proxy.outbound}/`],
        (e, stdout, stderr) => (e ? reject(new Error(`curl failed: ${stderr}`)) : resolve(stdout)),
      ),
    );
    assert.equal(out, "2 200");
  });
});

describe("HTTP/2 over mTLS (ALPN h2) on an inbound listener", () => {
  it("negotiates h2 and tells the app the caller's identity", async () => {
    const app = await startUpstream("app");
    const ca = await createCa();
    const server = await issueWorkload(ca, { spiffeId: "spiffe://cluster.local/ns/shop/sa/catalog" });
    const client = await issueWorkload(ca, { spiffeId: "spiffe://cluster.local/ns/shop/sa/frontend" });
    const proxy = await startProxy({
      version: "h2-tls",
      node: { namespace: "shop", serviceAccount: "catalog" },
      identity: { certificateChain: server.certificateChain, privateKey: server.privateKey, trustBundle: ca.certificate },
      listeners: [
        {
          name: "inbound",
          direction: "Inbound",
          address: "127.0.0.1",
          port: 0,
          tls: "STRICT",
          virtualHosts: [{ name: "app", domains: ["*"], routes: [{ backends: [{ cluster: "app" }] }] }],
        },
      ],
      clusters: [{ name: "app", endpoints: [{ address: "127.0.0.1", port: app.port }] }],
    });
    const session = http2.connect(`https://127.0.0.1:${proxy.inbound}`, {
      cert: client.certificateChain,
      key: client.privateKey,
      ca: ca.certificate,
      checkServerIdentity: () => undefined,
    });
    try {
      const alpn = await new Promise<string | false | null | undefined>((resolve, reject) => {
        session.once("connect", () => resolve((session.socket as import("node:tls").TLSSocket).alpnProtocol));
        session.once("error", reject);
      });
      assert.equal(alpn, "h2");
      const reply = await h2request(session, { ":method": "GET", ":path": "/echo", ":authority": "catalog" });
      assert.equal(reply.status, 200);
      assert.equal(
        JSON.parse(reply.body).headers["x-forwarded-client-cert"],
        "By=spiffe://cluster.local/ns/shop/sa/catalog;URI=spiffe://cluster.local/ns/shop/sa/frontend",
      );
    } finally {
      session.close();
      await proxy.stop();
      await app.close();
    }
  });
});
