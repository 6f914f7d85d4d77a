// runtimes: node deno bun
// The client side of an upstream HTTP/1.1 connection, against a real server: reuse after
// a response that was read with back-pressure.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import type { Buffer } from "node:buffer";
import { startUpstream, type Upstream } from "./support/upstream.ts";
import { selectRuntime } from "../proxy/runtime/select.ts";
import { UpstreamHttp1 } from "../proxy/upstream/http1-client.ts";

function exchange(upstream: UpstreamHttp1, path: string, onData: (chunk: Buffer) => void = () => {}): Promise<number> {
  return new Promise((resolve, reject) => {
    let status = 0;
    upstream.start(
      { method: "GET", target: path, authority: "app", headers: ["host", "app"], chunked: false, hasBody: false },
      {
        head: (h) => (status = h.status),
        data: onData,
        end: () => resolve(status),
        error: reject,
      },
    );
  });
}

describe("upstream HTTP/1.1 connection", () => {
  let server: Upstream;
  before(async () => (server = await startUpstream("app")));
  after(() => server.close());

  it("reads the next response after the previous one ended while reading was paused", async () => {
    const conn = await selectRuntime().connect({ address: "127.0.0.1", port: server.port, timeoutMs: 1000 });
    const upstream = new UpstreamHttp1(conn);
    let released = 0;
    upstream.onRelease = () => released++;
    // The forwarder pauses the upstream when its client cannot keep up; here the last chunk
    // pauses it and nothing resumes it before the connection goes back to the pool.
    assert.equal(await exchange(upstream, "/bytes/1000", () => conn.pause()), 200);
    assert.equal(released, 1);
    const next = await Promise.race([
      exchange(upstream, "/"),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error("the reused connection never read its response")), 2000)),
    ]);
    assert.equal(next, 200);
    assert.equal(server.connections, 1, "both requests used one connection");
    conn.destroy();
  });
});
