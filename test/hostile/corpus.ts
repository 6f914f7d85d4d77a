// The frame of every hostile-input case: a real sidecar in front of a real upstream that
// records what reaches it; after each case's own assertions, the proxy must still serve
// HTTP/1.1 and HTTP/2 on fresh connections, and nothing marked as smuggled may have reached
// the upstream.
import { before, after } from "node:test";
import assert from "node:assert/strict";
import http2 from "node:http2";
import { startUpstream, type Upstream } from "../support/upstream.ts";
import { startProxy, simpleConfig, type RunningProxy } from "../support/proxy.ts";
import { request } from "../support/client.ts";
import { h2request } from "../support/h2client.ts";
import type { ProxyConfigInput } from "../../proxy/config/schema.ts";
import { Recorder } from "./record.ts";

/** Put in the path of any request that must never reach the upstream. */
export const SMUGGLED = "/smuggled";

export interface Target {
  upstream: Upstream;
  proxy: RunningProxy;
  /** The proxy's listener (HTTP/1.1 and h2c on one port). */
  port: number;
}

/** A well-behaved client gets a normal answer on a fresh connection, over HTTP/1.1 and over HTTP/2. */
export async function assertServing(port: number): Promise<void> {
  const h1 = await request(port, { path: "/", host: "app" });
  assert.equal(h1.status, 200, `HTTP/1.1 request after the case: ${h1.status} ${h1.body}`);
  const session = http2.connect(`http://127.0.0.1:${port}`);
  try {
    const h2 = await h2request(session, { ":method": "GET", ":path": "/", ":authority": "app" });
    assert.equal(h2.status, 200, `HTTP/2 request after the case: ${h2.status} ${h2.body}`);
  } finally {
    session.close();
  }
}

export interface Corpus {
  /** Registers a case of `category`; call inside the suite's describe. */
  case(category: string, name: string, body: (target: Target) => Promise<void>): void;
}

/** Starts the target before the suite (call inside describe) and records its cases as `suite`. */
export function hostileCorpus(suite: string, limits: NonNullable<ProxyConfigInput["limits"]>): Corpus {
  const recorder = new Recorder(suite);
  let target: Target | null = null;
  before(async () => {
    const upstream = await startUpstream("app");
    const proxy = await startProxy(simpleConfig([upstream.port], { limits }));
    target = { upstream, proxy, port: proxy.outbound };
  });
  after(async () => {
    await target?.proxy.stop();
    await target?.upstream.close();
  });
  return {
    case(category, name, body) {
      recorder.case("hostile input", category, name, async () => {
        assert.ok(target, "the proxy under test did not start");
        const seen = target.upstream.received.length;
        await body(target);
        await assertServing(target.port);
        // Checked last, so that a request the proxy forwarded late has had time to arrive.
        const smuggled = target.upstream.received.slice(seen).filter((r) => r.url.includes(SMUGGLED));
        assert.deepEqual(
          smuggled.map((r) => `${r.method} ${r.url}`),
          [],
          "requests the proxy should have refused reached the upstream",
        );
      });
    },
  };
}
