// runtimes: node deno bun
// The sidecar's requests to the control plane give up a silent peer: a control plane that
// vanished without closing its connections must not hold an enrollment, an acknowledgement
// or the configuration stream forever.
import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { getBytes, postJson, readEventStream } from "../proxy/control/http.ts";

/** A TCP server that reads everything and answers `reply` (or nothing) once the request arrives. */
async function silentPeer(reply = ""): Promise<{ base: string; close(): void }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.once("data", () => reply && s.write(reply));
    s.on("error", () => {});
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    base: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

describe("control plane requests and a silent peer", () => {
  const peers: { close(): void }[] = [];
  after(() => peers.forEach((p) => p.close()));

  it("a request that gets no answer fails after the idle timeout, naming the cause", async () => {
    const peer = await silentPeer();
    peers.push(peer);
    const endpoint = { base: peer.base, token: async () => "t", idleTimeoutMs: 300 };
    await assert.rejects(
      getBytes(endpoint, "/v1/filters/x"),
      /GET http:\/\/127\.0\.0\.1:\d+\/v1\/filters\/x: nothing received for 0\.3 s; the control plane is gone or hung/,
    );
    await assert.rejects(postJson(endpoint, "/v1/proxies/ack", {}), /nothing received for 0\.3 s/);
  });

  it("a configuration stream that goes silent ends, so the client reconnects", async () => {
    const peer = await silentPeer("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\nevent: config\ndata: {}\n\n");
    peers.push(peer);
    const events: string[] = [];
    const started = Date.now();
    await readEventStream(
      { base: peer.base, token: async () => "t", idleTimeoutMs: 300 },
      "/v1/proxies/config",
      async (e) => void events.push(e.event),
      new AbortController().signal,
    ).catch(() => {});
    assert.deepEqual(events, ["config"], "the event before the silence was delivered");
    assert.ok(Date.now() - started < 10_000, "the silent stream was given up (not held until TCP gives up)");
  });
});
