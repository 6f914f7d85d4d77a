// runtimes: node deno bun
// Opaque TCP between sidecars (proxy/tcp/): a client's sidecar carries a raw TCP connection over
// mTLS to the server's sidecar, which judges the peer's identity by its AccessPolicies and
// carries the bytes on to the app: a real TCP server that speaks a line protocol of its own
// (server-first: it greets before the client says anything, as MySQL and SMTP do). A listener
// that detects HTTP sends HTTP requests to its routes and anything else on as TCP.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import type { Authorization } from "../proxy/config/authorization.ts";
import type { ProxyConfigInput } from "../proxy/config/schema.ts";
import { detect } from "../proxy/tcp/detect.ts";
import { Buffer } from "node:buffer";
import { startProxy, type RunningProxy } from "./support/proxy.ts";
import { metricSeries } from "./support/metrics.ts";
import { request } from "./support/client.ts";
import { startUpstream, type Upstream } from "./support/upstream.ts";
import { createCa, workloadIdentity, type TestCa } from "./support/pki.ts";

const ORDERS = "spiffe://cluster.local/ns/shop/sa/orders";
const CATALOG = "spiffe://cluster.local/ns/shop/sa/catalog";
const DATABASE = "spiffe://cluster.local/ns/shop/sa/database";

/** A server-first line protocol: "hello" on connect, then "echo: LINE" per line, "bye" and half-close on "quit". */
async function startLineServer(): Promise<{ port: number; close: () => Promise<void> }> {
  const server = net.createServer((s) => {
    s.write("hello\n");
    let buffered = "";
    s.on("data", (d) => {
      buffered += d.toString();
      for (let nl = buffered.indexOf("\n"); nl >= 0; nl = buffered.indexOf("\n")) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (line === "quit") s.end("bye\n");
        else s.write(`echo: ${line}\n`);
      }
    });
    s.on("error", () => {});
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

/** Connects, sends `lines` once greeted, and returns all it received until the server closed (or "closed: ERROR"). */
function session(port: number, lines: string[], greeted = true): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1");
    let got = "";
    let sent = false;
    const send = () => {
      if (sent) return;
      sent = true;
      for (const l of lines) s.write(`${l}\n`);
    };
    if (!greeted) s.on("connect", send);
    s.on("data", (d) => {
      got += d.toString();
      if (greeted && got.includes("hello\n")) send();
    });
    s.on("end", () => resolve(got));
    s.on("error", (e) => resolve(`${got}closed: ${e.message}`));
    s.setTimeout(5_000, () => {
      s.destroy();
      resolve(`${got}timed out`);
    });
  });
}

describe("opaque TCP between sidecars over mTLS", () => {
  let ca: TestCa;
  let app: Awaited<ReturnType<typeof startLineServer>>;
  let http: Upstream;
  let server: RunningProxy;
  const clients = new Map<string, RunningProxy>();

  const identityOf = (spiffeId: string) => workloadIdentity(ca, spiffeId);

  /** The database's sidecar: one TCP listener in front of the app, another detecting HTTP; clients start anew. */
  const serve = async (authorization?: Authorization) => {
    await server?.stop();
    const config: ProxyConfigInput = {
      node: { workload: "database", namespace: "shop", serviceAccount: "database" },
      identity: await identityOf(DATABASE),
      listeners: [
        {
          name: "inbound|5432",
          direction: "Inbound",
          address: "127.0.0.1",
          port: 0,
          tls: "PERMISSIVE",
          ...(authorization ? { authorization } : {}),
          virtualHosts: [],
          tcp: { cluster: "inbound|5432||" },
        },
        {
          name: "inbound|8080",
          direction: "Inbound",
          address: "127.0.0.1",
          port: 0,
          tls: "PERMISSIVE",
          virtualHosts: [{ name: "inbound", domains: ["*"], routes: [{ backends: [{ cluster: "inbound|8080||" }] }] }],
          tcp: { cluster: "inbound|5432||", detectHttpMs: 300 },
        },
      ],
      clusters: [
        { name: "inbound|5432||", endpoints: [{ address: "127.0.0.1", port: app.port }] },
        { name: "inbound|8080||", endpoints: [{ address: "127.0.0.1", port: http.port }] },
      ],
    };
    server = await startProxy(config);
    // The clients' clusters name the old server's ports.
    for (const c of clients.values()) await c.stop();
    clients.clear();
    // The clients' clusters name the old server's ports.
  };
  const port = (proxy: RunningProxy, listener: string) => proxy.sidecar.listenerPort(listener);

  /** A client workload's sidecar: an outbound TCP listener whose cluster is the database's sidecar's `listener`, over mTLS. */
  const client = async (id: string, listener = "inbound|5432") => {
    const running = await startProxy({
      identity: await identityOf(id),
      listeners: [
        { name: "outbound|5432", direction: "Outbound", address: "127.0.0.1", port: 0, virtualHosts: [], tcp: { cluster: "db" } },
      ],
      clusters: [{ name: "db", endpoints: [{ address: "127.0.0.1", port: port(server, listener) }], tls: { identities: [DATABASE] } }],
    });
    await clients.get(id)?.stop();
    clients.set(id, running);
    return running;
  };

  before(async () => {
    ca = await createCa();
    app = await startLineServer();
    http = await startUpstream("database-http");
    await serve();
  });
  after(async () => {
    for (const c of clients.values()) await c.stop();
    await server.stop();
    await app.close();
    await http.close();
  });

  it("carries a server-first protocol both ways, with its half-close, from a client's sidecar over mTLS", async () => {
    const orders = await client(ORDERS);
    assert.equal(await session(port(orders, "outbound|5432"), ["one", "two", "quit"]), "hello\necho: one\necho: two\nbye\n");
    const opened = await metricSeries(`http://127.0.0.1:${server.admin}/metrics`, "istio_tcp_connections_opened_total");
    assert.ok(
      opened.some((l) => l.includes(`source_principal="${ORDERS}"`) && l.includes('connection_security_policy="mutual_tls"')),
      "the server's sidecar counts the connection with the client's identity",
    );
    // The app's bytes, each way, on both sidecars: 13 from the client ("one\ntwo\nquit\n"), 30 back.
    for (const [proxy, reporter] of [
      [server, "destination"],
      [orders, "source"],
    ] as const) {
      for (const [metric, bytes] of [
        ["istio_tcp_received_bytes_total", 13],
        ["istio_tcp_sent_bytes_total", 30],
      ] as const) {
        const series = (await metricSeries(`http://127.0.0.1:${proxy.admin}/metrics`, metric)).filter((l) =>
          l.includes(`reporter="${reporter}"`),
        );
        assert.ok(
          series.some((l) => l.includes('connection_security_policy="mutual_tls"') && l.endsWith(` ${bytes}`)),
          `${reporter}: ${metric} ${bytes}: ${series.join("\n")}`,
        );
      }
    }
  });

  it("a client that half-closes after its request still gets the whole reply (as `printf 'PING' | nc -N` does)", async () => {
    // Over mTLS from a client's sidecar, and in plaintext straight to the server's sidecar, on
    // its TCP port and on the one that detects HTTP (the end comes while it is still undecided).
    const orders = await client(ORDERS);
    for (const at of [port(orders, "outbound|5432"), port(server, "inbound|5432"), port(server, "inbound|8080")]) {
      const got = await new Promise<string>((resolve) => {
        const s = net.connect(at, "127.0.0.1");
        let text = "";
        s.on("connect", () => s.end("one\ntwo\n"));
        s.on("data", (d) => (text += d.toString()));
        s.on("close", () => resolve(text));
        s.on("error", (e) => resolve(`${text}closed: ${e.message}`));
        s.setTimeout(5_000, () => s.destroy());
      });
      assert.equal(got, "hello\necho: one\necho: two\n", `port ${at}`);
    }
  });

  it("a peer that half-closes before saying anything is closed, not held open (every listener accepts half-open)", async () => {
    const orders = await client(ORDERS);
    const ports = [port(orders, "outbound|5432"), port(server, "inbound|5432"), port(server, "inbound|8080")];
    for (const at of ports) {
      const outcome = await new Promise<string>((resolve) => {
        const s = net.connect(at, "127.0.0.1");
        s.on("connect", () => s.end());
        s.on("data", () => {});
        s.on("close", () => resolve("closed"));
        s.on("error", () => {});
        // Longer than the PERMISSIVE peek (5 s): a socket left half-open would still be open.
        s.setTimeout(8_000, () => {
          resolve("held open");
          s.destroy();
        });
      });
      assert.equal(outcome, "closed", `port ${at}`);
    }
  });

  it("AccessPolicy allows one identity and refuses another, and a plaintext caller under default deny", async () => {
    await serve({
      defaultDeny: true,
      policies: [{ name: "shop/orders-only", action: "ALLOW", rules: [{ from: [{ principals: [ORDERS], namespaces: [] }], to: [] }] }],
    });
    const orders = await client(ORDERS);
    const catalog = await client(CATALOG);
    assert.equal(await session(port(orders, "outbound|5432"), ["quit"]), "hello\nbye\n");
    assert.doesNotMatch(await session(port(catalog, "outbound|5432"), ["quit"]), /hello/, "the refused peer never reaches the app");
    // (Sending first: PERMISSIVE waits up to 5 s for a first byte to tell TLS from plaintext.)
    assert.doesNotMatch(await session(port(server, "inbound|5432"), ["quit"], false), /hello/, "nor does a plaintext caller");
  });

  it("a rule naming HTTP methods or paths never allows a TCP connection, and denies it by its sources alone", async () => {
    await serve({
      defaultDeny: false,
      policies: [
        {
          name: "shop/no-catalog-admin",
          action: "DENY",
          rules: [{ from: [{ principals: [CATALOG], namespaces: [] }], to: [{ methods: ["POST"], paths: [] }] }],
        },
        {
          name: "shop/orders-get",
          action: "ALLOW",
          rules: [{ from: [{ principals: [ORDERS], namespaces: [] }], to: [{ methods: ["GET"], paths: [] }] }],
        },
      ],
    });
    const catalog = await client(CATALOG);
    assert.doesNotMatch(await session(port(catalog, "outbound|5432"), ["quit"]), /hello/, "DENY with an HTTP condition still denies TCP");
    await serve({
      defaultDeny: true,
      policies: [
        {
          name: "shop/orders-get",
          action: "ALLOW",
          rules: [{ from: [{ principals: [ORDERS], namespaces: [] }], to: [{ methods: ["GET"], paths: [] }] }],
        },
      ],
    });
    const orders = await client(ORDERS);
    assert.doesNotMatch(await session(port(orders, "outbound|5432"), ["quit"]), /hello/, "ALLOW with an HTTP condition never allows TCP");
  });

  it("with detection, an HTTP request goes to the routes, a client-first protocol and a silent client go on as TCP", async () => {
    await serve();
    const detecting = port(server, "inbound|8080");
    const reply = await request(detecting, { host: "database", path: "/health" });
    assert.equal(reply.status, 200);
    assert.equal(http.received.at(-1)?.url, "/health");
    assert.equal(await session(detecting, ["select 1", "quit"], false), "hello\necho: select 1\nbye\n", "client-first, not HTTP");
    const meshed = await client(ORDERS, "inbound|8080");
    assert.equal(
      await session(port(meshed, "outbound|5432"), ["quit"]),
      "hello\nbye\n",
      "server-first, over mTLS: carried once the client stayed silent",
    );
  });

  it("a client's Service listener that detects: HTTP is routed by Host, anything else goes on as TCP, both over mTLS", async () => {
    await serve();
    const mtls = { tls: { identities: [DATABASE] } };
    const running = await startProxy({
      identity: await identityOf(ORDERS),
      listeners: [
        {
          name: "outbound|10.96.3.7:9000",
          direction: "Outbound",
          address: "127.0.0.1",
          port: 0,
          virtualHosts: [{ name: "database:9000", domains: ["database:9000"], routes: [{ backends: [{ cluster: "db-http" }] }] }],
          tcp: { cluster: "db", detectHttpMs: 300 },
        },
      ],
      clusters: [
        { name: "db", endpoints: [{ address: "127.0.0.1", port: port(server, "inbound|5432") }], ...mtls },
        { name: "db-http", endpoints: [{ address: "127.0.0.1", port: port(server, "inbound|8080") }], ...mtls },
      ],
    });
    clients.set("service-listener", running);
    const at = port(running, "outbound|10.96.3.7:9000");
    const reply = await request(at, { host: "database:9000", path: "/orders" });
    assert.equal(reply.status, 200);
    assert.equal(http.received.at(-1)?.url, "/orders");
    assert.equal(await session(at, ["select 1", "quit"], false), "hello\necho: select 1\nbye\n", "client-first, not HTTP");
    const opened = await metricSeries(`http://127.0.0.1:${server.admin}/metrics`, "istio_tcp_connections_opened_total");
    assert.ok(
      opened.some(
        (l) => l.includes(`source_principal="${ORDERS}"`) && l.includes('connection_security_policy="mutual_tls"') && l.endsWith(" 1"),
      ),
      `the server's sidecar got the TCP connection over mTLS, with the client's identity: ${opened.join("\n")}`,
    );
  });

  it("detects by the first bytes: an HTTP method token and a space, or the HTTP/2 preface", () => {
    const said = (s: string) => detect(Buffer.from(s, "latin1"));
    assert.equal(said("GET / HTTP/1.1\r\n"), "http");
    assert.equal(said("M-SEARCH * HTTP/1.1"), "http");
    assert.equal(said("PRI * HTTP/2.0\r\n\r\nSM"), "http");
    assert.equal(said("PRI * HT"), "undecided");
    assert.equal(said("GE"), "undecided");
    assert.equal(said("\u0000\u0000\u0000\u0008\u0004\u00d2\u0016/"), "tcp", "the PostgreSQL start-up message");
    assert.equal(said("*1\r\n$4\r\nPING\r\n"), "tcp", "Redis");
    assert.equal(said("get / HTTP/1.1"), "tcp", "methods are upper case");
    assert.equal(said(" GET"), "tcp");
    assert.equal(said("ABCDEFGHIJKLMNOPQRSTUVWXYZ "), "tcp", "no method is that long");
  });
});
