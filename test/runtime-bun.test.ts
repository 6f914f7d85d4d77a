// runtimes: bun
// The Bun adapter (proxy/runtime/bun.ts) against real node:net peers: what the proxy relies on
// from a Conn, where Bun's own sockets differ from node:net (partial writes, a peer's FIN, end()
// closing both ways, the close callback running inside end()).
import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { Buffer } from "node:buffer";
import type { Duplex } from "node:stream";
import { bunRuntime } from "../proxy/runtime/bun.ts";
import { selectRuntime } from "../proxy/runtime/select.ts";
import type { Conn, Server } from "../proxy/runtime/types.ts";

const CHUNK = 64 * 1024;

/** CHUNK bytes whose every byte says which chunk and offset it is, so that order shows. */
function chunk(n: number): Buffer {
  const b = Buffer.alloc(CHUNK);
  for (let i = 0; i < CHUNK; i++) b[i] = (n * 7 + i) & 0xff;
  return b;
}

function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)),
  ]);
}

/** A listener on the Bun adapter and a node:net client connected to it. */
async function pair(options: { clientHalfOpen?: boolean } = {}): Promise<{ server: Server; conn: Conn; client: net.Socket }> {
  let accepted!: (conn: Conn) => void;
  const connection = new Promise<Conn>((resolve) => (accepted = resolve));
  const server = await bunRuntime.listen({ address: "127.0.0.1", port: 0 }, (conn) => accepted(conn));
  const client = net.connect({ host: "127.0.0.1", port: server.port, allowHalfOpen: options.clientHalfOpen ?? false });
  client.on("error", () => {});
  await new Promise((resolve) => client.once("connect", resolve));
  return { server, conn: await connection, client };
}

function received(client: net.Socket): { bytes: () => Buffer; ended: Promise<void>; closed: Promise<void> } {
  const chunks: Buffer[] = [];
  client.on("data", (d: Buffer) => chunks.push(d));
  return {
    bytes: () => Buffer.concat(chunks),
    ended: new Promise((resolve) => client.once("end", () => resolve())),
    closed: new Promise((resolve) => client.once("close", () => resolve())),
  };
}

describe("Bun adapter", () => {
  const servers: Server[] = [];
  after(async () => {
    for (const s of servers) await s.close();
  });

  it("is the adapter selected on Bun", () => {
    assert.equal(selectRuntime(), bunRuntime);
  });

  it("keeps what the kernel did not take, returns false until it is sent, then drains once, in order", async () => {
    const { server, conn, client } = await pair();
    servers.push(server);
    client.pause();
    let drains = 0;
    conn.onDrain = () => drains++;
    const sent: Buffer[] = [];
    // A client that does not read fills the socket: the write that does not fit is partial.
    while (sent.length < 2000) {
      const c = chunk(sent.length);
      sent.push(c);
      if (!conn.write(c)) break;
    }
    assert.ok(sent.length < 2000, "a peer that does not read must make write() return false");
    // Later writes queue behind the pending bytes, and still report back-pressure.
    sent.push(chunk(sent.length));
    assert.equal(conn.write(sent.at(-1)!), false);
    sent.push(Buffer.from("tail"));
    assert.equal(conn.write("tail"), false);
    const got = received(client);
    client.resume();
    const expected = Buffer.concat(sent);
    await within(5000, "the pending bytes", new Promise<void>((resolve) => (conn.onDrain = () => (drains++, resolve()))));
    await within(
      5000,
      "every byte at the client",
      new Promise<void>((resolve) => {
        const check = () => (got.bytes().length >= expected.length ? resolve() : setTimeout(check, 5));
        check();
      }),
    );
    assert.equal(drains, 1, "onDrain fires once, when everything pending was sent");
    assert.ok(got.bytes().equals(expected), "the client got every byte, in order");
    assert.equal(conn.write("more"), true, "once drained, a write that fits returns true");
    conn.destroy();
  });

  it("stops reading while paused, so that the peer's writes back up, and reads everything after resume", async () => {
    const { server, conn, client } = await pair();
    servers.push(server);
    const got: Buffer[] = [];
    conn.onData = (d) => got.push(d);
    conn.pause();
    const sent: Buffer[] = [];
    while (client.write(chunk(sent.length))) sent.push(chunk(sent.length));
    sent.push(chunk(sent.length));
    await new Promise((resolve) => setTimeout(resolve, 100));
    const whilePaused = Buffer.concat(got).length;
    const total = Buffer.concat(sent).length;
    assert.ok(whilePaused < total, `read ${whilePaused} of ${total} bytes while paused`);
    assert.ok(client.writableLength > 0, "the client's writes back up while the adapter does not read");
    conn.resume();
    conn.resume(); // idempotent, as node:net's
    await within(
      5000,
      "all bytes after resume",
      new Promise<void>((resolve) => {
        const check = () => (Buffer.concat(got).length >= total ? resolve() : setTimeout(check, 5));
        check();
      }),
    );
    assert.ok(Buffer.concat(got).equals(Buffer.concat(sent)));
    conn.destroy();
  });

  it("reports a peer's FIN with onEnd, sends what onEnd writes, then ends its side (node:net without allowHalfOpen)", async () => {
    const { server, conn, client } = await pair({ clientHalfOpen: true });
    servers.push(server);
    const got = received(client);
    const data: string[] = [];
    conn.onData = (d) => data.push(d.toString());
    let closes = 0;
    const closed = new Promise<Error | undefined>((resolve) => (conn.onClose = (e) => (closes++, resolve(e))));
    conn.onEnd = () => {
      assert.equal(conn.write("answer after FIN"), true);
    };
    client.end("request");
    await within(5000, "the client sees our FIN", got.ended);
    assert.equal(data.join(""), "request");
    assert.equal(got.bytes().toString(), "answer after FIN");
    assert.equal(await within(5000, "onClose", closed), undefined);
    assert.equal(closes, 1);
    assert.equal(conn.closed, true);
    assert.equal(conn.write("late"), false, "a closed connection takes no more");
  });

  it("end() sends what is pending first, then a FIN, and reads what a half-closed peer still sends", async () => {
    const { server, conn, client } = await pair({ clientHalfOpen: true });
    servers.push(server);
    client.pause();
    const sent: Buffer[] = [];
    while (sent.length < 2000) {
      const c = chunk(sent.length);
      sent.push(c);
      if (!conn.write(c)) break;
    }
    conn.end();
    assert.equal(conn.closed, false);
    const data: string[] = [];
    conn.onData = (d) => data.push(d.toString());
    const closed = new Promise<void>((resolve) => (conn.onClose = () => resolve()));
    const got = received(client);
    client.resume();
    await within(5000, "the client sees our FIN", got.ended);
    assert.ok(got.bytes().equals(Buffer.concat(sent)), "everything written before end() arrived before the FIN");
    client.write("after your FIN");
    await within(
      5000,
      "data from the half-closed peer",
      new Promise<void>((resolve) => {
        const check = () => (data.join("") === "after your FIN" ? resolve() : setTimeout(check, 5));
        check();
      }),
    );
    client.end();
    await within(5000, "onClose once both sides ended", closed);
  });

  it("calls onClose after destroy() returns, not inside it, and once", async () => {
    const { server, conn, client } = await pair();
    servers.push(server);
    const got = received(client);
    let closes = 0;
    let inside = false;
    conn.onClose = () => {
      closes++;
      assert.equal(inside, false, "onClose ran inside destroy()");
    };
    inside = true;
    conn.destroy();
    inside = false;
    assert.equal(conn.closed, true);
    conn.destroy();
    await within(5000, "the client sees the close", got.closed);
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(closes, 1);
  });

  it("connects upstream: bytes both ways, the peer's FIN, and node:net's error for a refused port", async () => {
    const peer = net.createServer((s) => {
      s.on("data", (d) => s.end(Buffer.concat([Buffer.from("echo:"), d])));
    });
    await new Promise<void>((resolve) => peer.listen(0, "127.0.0.1", () => resolve()));
    const port = (peer.address() as net.AddressInfo).port;
    const conn = await bunRuntime.connect({ address: "127.0.0.1", port, timeoutMs: 1000 });
    assert.equal(conn.remotePort, port);
    const data: string[] = [];
    conn.onData = (d) => data.push(d.toString());
    const ended = new Promise<void>((resolve) => (conn.onEnd = () => resolve()));
    const closed = new Promise<void>((resolve) => (conn.onClose = () => resolve()));
    conn.write("hi");
    await within(5000, "the upstream's FIN", ended);
    assert.equal(data.join(""), "echo:hi");
    await within(5000, "onClose", closed);
    await new Promise<void>((resolve) => peer.close(() => resolve()));
    await assert.rejects(bunRuntime.connect({ address: "127.0.0.1", port, timeoutMs: 1000 }), (e: Error & { code?: string }) => {
      assert.equal(e.code, "ECONNREFUSED");
      assert.match(e.message, new RegExp(`ECONNREFUSED 127\\.0\\.0\\.1:${port}`));
      return true;
    });
  });

  it("close() stops accepting at once and resolves when the accepted connections are gone", async () => {
    const { server, conn, client } = await pair();
    let resolved = false;
    const closing = server.close().then(() => (resolved = true));
    await new Promise((resolve) => setTimeout(resolve, 50));
    await assert.rejects(
      new Promise((resolve, reject) =>
        net.connect({ host: "127.0.0.1", port: server.port }).once("connect", resolve).once("error", reject),
      ),
    );
    assert.equal(resolved, false, "close() waits for the open connection");
    conn.destroy();
    await within(5000, "close() after the last connection", closing);
    client.destroy();
  });

  it("hands over to a stream with the bytes already read first, and carries both directions", async () => {
    const { server, conn, client } = await pair();
    servers.push(server);
    const got = received(client);
    let stream!: Duplex;
    const data: string[] = [];
    conn.onData = (first) => {
      conn.handOver((s) => {
        stream = s;
        s.on("data", (d: Buffer) => {
          data.push(d.toString());
          s.write(`ack:${d}`);
        });
      }, first);
    };
    client.write("leftover");
    await within(
      5000,
      "the leftover",
      new Promise<void>((resolve) => {
        const check = () => (data.length > 0 ? resolve() : setTimeout(check, 5));
        check();
      }),
    );
    client.write("next");
    await within(
      5000,
      "both reads and both writes",
      new Promise<void>((resolve) => {
        const check = () => (got.bytes().toString() === "ack:leftoverack:next" ? resolve() : setTimeout(check, 5));
        check();
      }),
    );
    assert.deepEqual(data, ["leftover", "next"]);
    stream.end();
    await within(5000, "the client sees the stream's end", got.ended);
    client.end();
    await within(5000, "close", got.closed);
  });
});
