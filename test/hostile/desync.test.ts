// runtimes: node deno bun
// Desynchronisation: a client or an upstream making the proxy and the next hop disagree on
// where a message ends, so that one peer's bytes become another request or another client's
// response. Each case asserts the invariants a mesh owes its callers: the upstream sees
// exactly one request per client request, no response goes to the wrong client, and an
// inbound AccessPolicy judges every request that reaches the app.
import { describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { SMUGGLED, hostileCorpus } from "./corpus.ts";
import { Recorder } from "./record.ts";
import { sendRaw, parseResponses, type RawReply } from "./wire.ts";
import { startUpstream, type Upstream } from "../support/upstream.ts";
import { startRawUpstream, type RawUpstream, type Script, type WireRequest } from "../support/raw-upstream.ts";
import { startProxy, simpleConfig, type RunningProxy } from "../support/proxy.ts";
import { request } from "../support/client.ts";

const LIMITS = { maxRequestHeadBytes: 8192, maxHeaderCount: 50, maxRequestBodyBytes: 65536, headerTimeoutMs: 1000, idleTimeoutMs: 1500 };

/** Stop reading once `n` complete responses have arrived (the connection may stay open). */
const responses = (n: number) => ({ until: (text: string) => parseResponses(text).length >= n });

interface Echo {
  method: string;
  url: string;
  headers: Record<string, string>;
  rawHeaders: string[];
  body: string;
}

function echoed(reply: RawReply, i = 0): Echo {
  return JSON.parse(reply.responses[i].body);
}

/** A POST to /echo whose body is itself a request, with `fields` added to its head. */
function requestInBody(
  fields: string,
  path = "/echo",
  inner = `GET ${SMUGGLED} HTTP/1.1\r\nHost: app\r\n\r\n`,
): { bytes: string; inner: string } {
  return { bytes: `POST ${path} HTTP/1.1\r\nHost: app\r\n${fields}Content-Length: ${inner.length}\r\n\r\n${inner}`, inner };
}

describe("hostile HTTP/1.1: desynchronisation", () => {
  describe("what a client names in Connection", () => {
    const corpus = hostileCorpus("desync-client", LIMITS);
    const category = "Hop-by-hop headers";
    for (const tokens of ["Content-Length", "content-length", "keep-alive, content-length", "close, Content-Length, Host"]) {
      corpus.case(category, `Connection: ${tokens} keeps Content-Length: the body stays a body`, async ({ port, upstream }) => {
        const seen = upstream.received.length;
        const { bytes, inner } = requestInBody(`Connection: ${tokens}\r\n`);
        const reply = await sendRaw(port, bytes, responses(1));
        assert.deepEqual(reply.statuses, [200]);
        const echo = echoed(reply);
        assert.equal(echo.body, inner);
        assert.equal(echo.headers["content-length"], String(inner.length));
        assert.equal(echo.headers.host, "app");
        assert.deepEqual(
          upstream.received.slice(seen).map((r) => r.url),
          ["/echo"],
          "one request upstream per client request",
        );
      });
    }
    corpus.case(
      category,
      "Connection: Host keeps Host: the upstream sees the authority the request was routed by",
      async ({ port, upstream }) => {
        const seen = upstream.received.length;
        const reply = await sendRaw(port, "GET /echo HTTP/1.1\r\nHost: app\r\nConnection: Host, close\r\n\r\n");
        assert.deepEqual(reply.statuses, [200]);
        assert.deepEqual(fieldsNamed(echoed(reply).rawHeaders, "host"), ["app"]);
        assert.equal(upstream.received.length, seen + 1);
      },
    );
    corpus.case(
      category,
      "responses are never shifted between clients: each of 6 clients smuggling in turn gets its own",
      async ({ port, upstream }) => {
        const seen = upstream.received.length;
        for (let i = 0; i < 6; i++) {
          const { bytes } = requestInBody(
            "Connection: Content-Length\r\n",
            `/echo?client=${i}`,
            `GET /echo?victim=${i}${SMUGGLED} HTTP/1.1\r\nHost: app\r\n\r\n`,
          );
          const reply = await sendRaw(port, bytes, responses(1));
          assert.deepEqual(reply.statuses, [200]);
          assert.equal(echoed(reply).url, `/echo?client=${i}`, `client ${i} got another client's response`);
          const plain = await request(port, { path: `/echo?plain=${i}`, host: "app" });
          assert.equal(JSON.parse(plain.body).url, `/echo?plain=${i}`, `the client after smuggler ${i} got another response`);
        }
        assert.equal(upstream.received.length, seen + 12, "one request upstream per client request");
      },
    );
    corpus.case(category, "two identical Content-Length fields reach the upstream as one", async ({ port }) => {
      const reply = await sendRaw(
        port,
        "POST /echo HTTP/1.1\r\nHost: app\r\nContent-Length: 5\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
      );
      assert.deepEqual(reply.statuses, [200]);
      assert.deepEqual(fieldsNamed(echoed(reply).rawHeaders, "content-length"), ["5"]);
      assert.equal(echoed(reply).body, "hello");
    });
    corpus.case(category, "names with an underscore are dropped (Transfer_Encoding, X_Forwarded_For), as nginx does", async ({ port }) => {
      const reply = await sendRaw(
        port,
        "POST /echo HTTP/1.1\r\nHost: app\r\nTransfer_Encoding: chunked\r\nX_Forwarded_For: 10.0.0.1\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
      );
      assert.deepEqual(reply.statuses, [200]);
      const echo = echoed(reply);
      assert.deepEqual(
        echo.rawHeaders.filter((_, i) => i % 2 === 0 && echo.rawHeaders[i].includes("_")),
        [],
      );
      assert.equal(echo.body, "hello");
      assert.equal(echo.headers["x-forwarded-for"], "127.0.0.1");
    });
    corpus.case("Upgrades", "an Upgrade request with a body is forwarded as a plain request, without Upgrade", async ({ port }) => {
      const reply = await sendRaw(
        port,
        "POST /echo HTTP/1.1\r\nHost: app\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nContent-Length: 5\r\n\r\nhello",
        responses(1),
      );
      assert.deepEqual(reply.statuses, [200]);
      const echo = echoed(reply);
      assert.equal(echo.body, "hello");
      assert.equal(echo.headers.upgrade, undefined);
    });
    corpus.case("Upgrades", "Upgrade: h2c is never forwarded: no HTTP/2 tunnel to the app past this proxy's checks", async ({ port }) => {
      const reply = await sendRaw(
        port,
        "GET /echo HTTP/1.1\r\nHost: app\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nConnection: Upgrade, HTTP2-Settings\r\n\r\n",
        responses(1),
      );
      assert.deepEqual(reply.statuses, [200]);
      const echo = echoed(reply);
      assert.equal(echo.headers.upgrade, undefined);
      assert.equal(echo.headers["http2-settings"], undefined);
    });
  });

  describe("what an upstream sends after its response", () => {
    const rec = new Recorder("desync-upstream");
    const EVIL = "HTTP/1.1 302 Found\r\nLocation: https://evil.example/\r\nContent-Length: 0\r\n\r\n";
    const ok = (body: string) => `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
    const scripts: Record<string, Script> = {
      "/extra-after-length": { writes: [ok("ok") + EVIL] },
      "/length-shorter-than-data": { writes: [`HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokay${EVIL}`] },
      "/head-with-body": { writes: [`HTTP/1.1 200 OK\r\nContent-Length: ${EVIL.length}\r\n\r\n${EVIL}`] },
      "/204-with-body": { writes: [`HTTP/1.1 204 No Content\r\n\r\n${EVIL}`] },
      "/304-with-body": { writes: [`HTTP/1.1 304 Not Modified\r\n\r\n${EVIL}`] },
      // The chunk comes in a later read: the announced framing alone must keep the connection out of the pool.
      "/204-chunked": { writes: ["HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n", "0\r\n\r\n"], delayMs: 20 },
      "/extra-later": { writes: [ok("ok"), EVIL], delayMs: 50 },
      "/status-099": { writes: ["HTTP/1.1 099 Odd\r\nContent-Length: 2\r\n\r\nhi"] },
      "/status-600": { writes: ["HTTP/1.1 600 Odd\r\nContent-Length: 2\r\n\r\nhi"] },
      "/reason-with-nul": { writes: ["HTTP/1.1 200 O\x00K\x01\r\nContent-Length: 2\r\n\r\nhi"] },
      "/unrequested-101": { writes: ["HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"] },
      "/declined-upgrade": { writes: [ok("no")] },
    };
    let upstream: RawUpstream;
    let proxy: RunningProxy;
    before(async () => {
      upstream = await startRawUpstream((r: WireRequest) => scripts[r.target] ?? { writes: [ok(`you asked for ${r.target}`)] });
      proxy = await startProxy(simpleConfig([upstream.port], { limits: LIMITS }));
    });
    after(async () => {
      await proxy?.stop();
      await upstream?.close();
    });

    /** Three clients after the case, each on its own connection, must get their own answers. */
    async function assertNextClientsServed(tag: string): Promise<void> {
      for (let i = 0; i < 3; i++) {
        const path = `/next-${tag}-${i}`;
        const reply = await request(proxy.outbound, { path, host: "app" });
        assert.equal(reply.status, 200, `${path}: ${reply.status} ${reply.body}`);
        assert.equal(reply.body, `you asked for ${path}`, "a client got bytes the upstream sent after another response");
      }
    }

    const cases: { path: string; method?: string; status: number; body?: string; error?: RegExp; pause?: number }[] = [
      { path: "/extra-after-length", status: 200, body: "ok" },
      { path: "/length-shorter-than-data", status: 200, body: "ok" },
      { path: "/head-with-body", method: "HEAD", status: 200, body: "" },
      { path: "/204-with-body", status: 204, body: "" },
      { path: "/304-with-body", status: 304, body: "" },
      { path: "/204-chunked", status: 204, body: "" },
      // Bytes that come after the connection went back to the pool: it is closed, not reused.
      { path: "/extra-later", status: 200, body: "ok", pause: 200 },
      { path: "/status-099", status: 502, error: /invalid status code 099 \(expected 100-599\)/ },
      { path: "/status-600", status: 502, error: /invalid status code 600 \(expected 100-599\)/ },
      // Found by the fuzzer (docs/fuzzing.md): the reason phrase went to the client as it came.
      { path: "/reason-with-nul", status: 502, error: /invalid character in the status line's reason phrase/ },
      { path: "/unrequested-101", status: 502, error: /switched protocols without an upgrade request/ },
    ];
    for (const c of cases) {
      const name = `${c.method ?? "GET"} ${c.path}: the client gets ${c.status}${c.error ? " with the reason" : ""}, the next clients get their own responses`;
      rec.case("hostile input", "Upstream framing", name, async () => {
        const seen = upstream.received.length;
        const reply = await request(proxy.outbound, { path: c.path, host: "app", method: c.method ?? "GET" });
        assert.equal(reply.status, c.status, reply.body);
        assert.equal(reply.headers.location, undefined);
        if (c.body !== undefined) assert.equal(reply.body, c.body);
        if (c.error) assert.match(String(reply.headers["x-weft-error"]), c.error);
        if (c.pause) await new Promise((r) => setTimeout(r, c.pause));
        await assertNextClientsServed(c.path.slice(1));
        assert.deepEqual(
          upstream.received.slice(seen).map((r) => r.target),
          [c.path, ...[0, 1, 2].map((i) => `/next-${c.path.slice(1)}-${i}`)],
          "one request upstream per client request",
        );
      });
    }
    rec.case(
      "hostile input",
      "Upstream framing",
      "an upgrade the upstream declines: what the client sent after it is never parsed as requests",
      async () => {
        const seen = upstream.received.length;
        const reply = await sendRaw(
          proxy.outbound,
          `GET /declined-upgrade HTTP/1.1\r\nHost: app\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nGET ${SMUGGLED} HTTP/1.1\r\nHost: app\r\n\r\n`,
        );
        assert.deepEqual(reply.statuses, [200]);
        assert.ok(reply.closed, "the proxy closes the connection after a declined upgrade");
        assert.deepEqual(
          upstream.received.slice(seen).map((r) => r.target),
          ["/declined-upgrade"],
        );
        await assertNextClientsServed("declined");
      },
    );
  });

  describe("AccessPolicy and smuggling", () => {
    const rec = new Recorder("desync-access-policy");
    let app: Upstream;
    let proxy: RunningProxy;
    before(async () => {
      app = await startUpstream("app");
      proxy = await startProxy({
        node: { workload: "app", namespace: "shop" },
        listeners: [
          {
            name: "inbound",
            direction: "Inbound",
            address: "127.0.0.1",
            port: 0,
            authorization: {
              policies: [
                {
                  name: "shop/no-admin",
                  action: "DENY",
                  rules: [{ to: [{ methods: [], paths: [{ type: "PathPrefix", value: "/admin" }] }] }],
                },
              ],
            },
            virtualHosts: [{ name: "app", domains: ["*"], routes: [{ backends: [{ cluster: "app" }] }] }],
          },
        ],
        clusters: [{ name: "app", endpoints: [{ address: "127.0.0.1", port: app.port }] }],
        limits: LIMITS,
      });
    });
    after(async () => {
      await proxy?.stop();
      await app?.close();
    });
    for (const tokens of ["Content-Length", "keep-alive, content-length"]) {
      rec.case(
        "security",
        "AccessPolicy and smuggling",
        `a GET /admin hidden in a body behind Connection: ${tokens} never reaches the app`,
        async () => {
          const seen = app.received.length;
          const inner = "GET /admin/secret HTTP/1.1\r\nHost: app\r\n\r\n";
          const reply = await sendRaw(
            proxy.inbound,
            `POST /public HTTP/1.1\r\nHost: app\r\nConnection: ${tokens}\r\nContent-Length: ${inner.length}\r\n\r\n${inner}`,
            responses(1),
          );
          assert.deepEqual(reply.statuses, [200]);
          const direct = await request(proxy.inbound, { path: "/admin/secret", host: "app" });
          assert.equal(direct.status, 403);
          assert.match(String(direct.headers["x-weft-error"]), /shop\/no-admin/);
          const reached = app.received.slice(seen);
          assert.deepEqual(
            reached.map((r) => `${r.method} ${r.url}`),
            ["POST /public"],
            "only the allowed request reached the app",
          );
          assert.equal(reached[0].body, inner);
        },
      );
    }
  });
});

/** Values of the fields named `lower` in a rawHeaders list. */
function fieldsNamed(raw: string[], lower: string): string[] {
  return raw.filter((_, i) => i % 2 === 1 && raw[i - 1].toLowerCase() === lower);
}
