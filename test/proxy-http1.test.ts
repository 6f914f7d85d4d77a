// runtimes: node deno bun
// HTTP/1.1 through the sidecar with real clients and servers: keep-alive, bodies in both
// framings, trailers, 100-continue, upgrades, heads without bodies, and refused requests.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import net from "node:net";
import { Buffer } from "node:buffer";
import { startUpstream, type Upstream } from "./support/upstream.ts";
import { startProxy, simpleConfig, type RunningProxy } from "./support/proxy.ts";
import { request, rawExchange } from "./support/client.ts";

describe("HTTP/1.1 through the outbound listener", () => {
  let upstream: Upstream;
  let proxy: RunningProxy;

  before(async () => {
    upstream = await startUpstream("app");
    proxy = await startProxy(simpleConfig([upstream.port]));
  });
  after(async () => {
    await proxy.stop();
    await upstream.close();
  });

  it("forwards a GET and adds x-request-id and x-forwarded-*", async () => {
    const reply = await request(proxy.outbound, { path: "/echo?q=1", host: "app.test:8080", headers: { "x-forwarded-for": "10.0.0.9" } });
    assert.equal(reply.status, 200);
    const seen = JSON.parse(reply.body);
    assert.equal(seen.url, "/echo?q=1");
    assert.equal(seen.headers.host, "app.test:8080");
    assert.match(seen.headers["x-request-id"], /^[0-9a-f-]{36}$/);
    assert.equal(seen.headers["x-forwarded-for"], "10.0.0.9, 127.0.0.1");
    assert.equal(seen.headers["x-forwarded-proto"], "http");
  });

  it("propagates W3C trace context with the proxy's own span as parent", async () => {
    const incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const seen = JSON.parse(
      (await request(proxy.outbound, { path: "/echo", headers: { traceparent: incoming, tracestate: "vendor=1" } })).body,
    );
    const [version, traceId, spanId, flags] = String(seen.headers.traceparent).split("-");
    assert.deepEqual([version, traceId, flags], ["00", "4bf92f3577b34da6a3ce929d0e0e4736", "01"]);
    assert.notEqual(spanId, "00f067aa0ba902b7");
    assert.equal(seen.headers.tracestate, "vendor=1");
    const fresh = JSON.parse((await request(proxy.outbound, { path: "/echo" })).body);
    assert.match(String(fresh.headers.traceparent), /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/);
  });

  it("keeps a client-supplied x-request-id", async () => {
    const reply = await request(proxy.outbound, { path: "/echo", headers: { "x-request-id": "abc-123" } });
    assert.equal(JSON.parse(reply.body).headers["x-request-id"], "abc-123");
  });

  it("reuses upstream connections across requests (keep-alive pool)", async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const before = upstream.connections;
    for (let i = 0; i < 20; i++) assert.equal((await request(proxy.outbound, { agent })).status, 200);
    agent.destroy();
    assert.ok(upstream.connections - before <= 1, `opened ${upstream.connections - before} upstream connections for 20 requests`);
  });

  it("streams a request body with Content-Length and with chunked framing", async () => {
    const body = "x".repeat(100_000);
    const a = JSON.parse((await request(proxy.outbound, { method: "POST", path: "/echo", body })).body);
    assert.equal(a.body.length, body.length);
    assert.equal(a.headers["content-length"], String(body.length));
    const b = JSON.parse((await request(proxy.outbound, { method: "POST", path: "/echo", body, chunked: true })).body);
    assert.equal(b.body.length, body.length);
    assert.equal(b.headers["transfer-encoding"], "chunked");
  });

  it("moves a large response with back-pressure intact: a client that stops reading stops the upstream", async () => {
    // The upstream writes 64 MiB as fast as its socket takes them; the client reads nothing
    // for a while. With back-pressure the proxy stops reading, so the upstream can only fill
    // the socket buffers between them; without it the proxy would buffer the whole body.
    const total = 64 * 1024 * 1024;
    const chunk = Buffer.alloc(64 * 1024, 120);
    let written = 0;
    const source = http.createServer((_req, res) => {
      res.writeHead(200, { "content-length": String(total) });
      const more = () => {
        while (written < total) {
          written += chunk.length;
          if (!res.write(chunk)) return void res.once("drain", more);
        }
        res.end();
      };
      more();
    });
    await new Promise<void>((resolve) => source.listen(0, "127.0.0.1", () => resolve()));
    const relay = await startProxy(simpleConfig([(source.address() as net.AddressInfo).port]));
    try {
      const client = net.connect(relay.outbound, "127.0.0.1");
      let received = 0;
      const done = new Promise<void>((resolve, reject) => {
        client.on("data", (d: Buffer) => {
          received += d.length;
          if (received >= total) resolve();
        });
        client.on("error", reject);
      });
      client.write("GET /big HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n");
      client.pause();
      await new Promise((r) => setTimeout(r, 1500));
      const whilePaused = written;
      assert.ok(
        whilePaused < 24 * 1024 * 1024,
        `the upstream wrote ${whilePaused} bytes to a client that read ${received}: the proxy kept reading`,
      );
      client.resume();
      await done;
      client.destroy();
      assert.equal(written, total);
      assert.ok(received >= total, `${received} of ${total} bytes arrived`);
    } finally {
      await relay.stop();
      await new Promise<void>((resolve) => source.close(() => resolve()));
    }
  });

  it("passes chunked responses and their trailers", async () => {
    const reply = await request(proxy.outbound, { path: "/chunked" });
    assert.equal(reply.body, "first,second");
    assert.equal(reply.headers["transfer-encoding"], "chunked");
    assert.equal(reply.trailers["x-checksum"], "abc123");
  });

  it("passes request trailers", async () => {
    const seen = await new Promise<Record<string, string>>((resolve, reject) => {
      const req = http.request(
        { port: proxy.outbound, host: "127.0.0.1", method: "POST", path: "/echo", headers: { trailer: "x-sum" } },
        (res) => {
          let text = "";
          res.on("data", (d) => (text += d));
          res.on("end", () => resolve(JSON.parse(text).trailers));
        },
      );
      req.on("error", reject);
      req.write("data");
      req.addTrailers({ "x-sum": "42" });
      req.end();
    });
    assert.equal(seen["x-sum"], "42");
  });

  it("relays 100 Continue so the client sends its body", async () => {
    const result = await new Promise<{ continued: boolean; body: string }>((resolve, reject) => {
      let continued = false;
      const req = http.request(
        {
          port: proxy.outbound,
          host: "127.0.0.1",
          method: "POST",
          path: "/echo",
          headers: { expect: "100-continue", "content-length": "5" },
        },
        (res) => {
          let text = "";
          res.on("data", (d) => (text += d));
          res.on("end", () => resolve({ continued, body: JSON.parse(text).body }));
        },
      );
      req.on("error", reject);
      req.on("continue", () => {
        continued = true;
        req.end("hello");
      });
    });
    assert.deepEqual(result, { continued: true, body: "hello" });
  });

  it("answers HEAD, 204 and 304 without a body and keeps the connection usable", async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const head = await request(proxy.outbound, { method: "HEAD", path: "/bytes/500", agent });
    assert.equal(head.status, 200);
    assert.equal(head.headers["content-length"], "500");
    assert.equal(head.body, "");
    assert.equal((await request(proxy.outbound, { path: "/status/204", agent })).status, 204);
    assert.equal((await request(proxy.outbound, { path: "/status/304", agent })).status, 304);
    assert.equal((await request(proxy.outbound, { path: "/", agent })).body, "hello from app\n");
    agent.destroy();
  });

  it("tunnels an upgraded connection (WebSocket handshake) both ways", async () => {
    const echoed = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(proxy.outbound, "127.0.0.1");
      let text = "";
      socket.on("data", (d) => {
        text += d.toString();
        if (text.includes("\r\n\r\n") && !text.includes("ping")) socket.write("ping");
        if (text.endsWith("ping")) {
          socket.end();
          resolve(text);
        }
      });
      socket.on("error", reject);
      socket.write("GET /chat HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
    });
    assert.match(echoed, /^HTTP\/1\.1 101 /);
    assert.match(echoed, /upgrade: websocket/i);
    assert.ok(echoed.endsWith("ping"));
  });

  it("serves pipelined requests in order", async () => {
    const out = await rawExchange(proxy.outbound, "GET /status/201 HTTP/1.1\r\nHost: a\r\n\r\nGET /status/202 HTTP/1.1\r\nHost: a\r\n\r\n");
    const statuses = [...out.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => m[1]);
    assert.deepEqual(statuses, ["201", "202"]);
  });

  it("routes absolute-form requests (explicit HTTP proxy) by their authority", async () => {
    const out = await rawExchange(
      proxy.outbound,
      "GET http://catalog.test:9090/echo HTTP/1.1\r\nHost: ignored\r\nConnection: close\r\n\r\n",
    );
    assert.match(out, /^HTTP\/1\.1 200 /);
    assert.match(out, /"url":"\/echo"/);
  });

  it("refuses ambiguous framing (Content-Length with Transfer-Encoding) with 400 and a reason", async () => {
    const out = await rawExchange(
      proxy.outbound,
      "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    );
    assert.match(out, /^HTTP\/1\.1 400 /);
    assert.match(out, /x-weft-error: both Content-Length and Transfer-Encoding/);
  });

  it("refuses an oversized head with 431 and keeps serving others", async () => {
    const out = await rawExchange(proxy.outbound, `GET / HTTP/1.1\r\nHost: a\r\nX-Big: ${"a".repeat(70_000)}\r\n\r\n`);
    assert.match(out, /^HTTP\/1\.1 431 /);
    assert.equal((await request(proxy.outbound)).status, 200);
  });

  it("answers 408 to a client that does not finish its head in time (slowloris) and closes", async () => {
    const slow = await startProxy(simpleConfig([upstream.port], { limits: { headerTimeoutMs: 300 } }));
    try {
      // Resolves only when the proxy closes the connection: the header timeout must fire.
      const out = await new Promise<string>((resolve, reject) => {
        const socket = net.connect(slow.outbound, "127.0.0.1");
        let text = "";
        socket.on("data", (d) => (text += d));
        socket.on("close", () => resolve(text));
        socket.on("error", reject);
        socket.write("GET / HTTP/1.1\r\nHost: app\r\nX-Slow: ");
        // keep trickling bytes without ever ending the head
        const trickle = setInterval(() => socket.writable && socket.write("a"), 50);
        socket.on("close", () => clearInterval(trickle));
      });
      assert.match(out, /^HTTP\/1\.1 408 /);
    } finally {
      await slow.stop();
    }
  });

  it("answers an HTTP/1.0 client with a delimited body", async () => {
    const out = await rawExchange(proxy.outbound, "GET /chunked HTTP/1.0\r\nHost: a\r\n\r\n");
    assert.match(out, /^HTTP\/1\.1 200 /);
    assert.doesNotMatch(out, /transfer-encoding/i);
    assert.ok(out.endsWith("first,second"), out);
  });

  it("works with curl", async () => {
    const { execFile } = await import("node:child_process");
    const out = await new Promise<string>((resolve, reject) =>
      execFile(
        "curl",
        ["-sS", "-H", "Host: app", "--data-binary", "from-curl", `http://127.0.0.1:${proxy.outbound}/echo`],
        (e, stdout, stderr) =>
          e ? reject(new Error(`curl failed (is curl installed? apt-get install curl): ${stderr}`)) : resolve(stdout),
      ),
    );
    assert.equal(JSON.parse(out).body, "from-curl");
  });

  it("works with undici", async () => {
    const { request: undiciRequest } = await import("undici");
    const res = await undiciRequest(`http://127.0.0.1:${proxy.outbound}/echo`, { method: "PUT", body: Buffer.from("from-undici") });
    assert.equal(res.statusCode, 200);
    assert.equal((JSON.parse(await res.body.text()) as { body: string }).body, "from-undici");
  });
});
