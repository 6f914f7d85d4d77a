// runtimes: node deno bun
// The configuration stream's client (client.ts) against a real HTTP server that plays the
// control plane: it pushes versions as server-sent events and records each acknowledgement. A
// version rejected because a listener's port is held (EADDRINUSE, which an injected pod's own
// outgoing connections can cause: docs/injection.md, "Why P + 32768") is applied again with
// backoff until it takes, and acknowledged then; any other rejection is final; a newer version
// ends the retries of an older one. Real timers, about 4 s in all.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { createLogger } from "../../shared/log.ts";
import { ControlClient, type ConfigPush } from "./client.ts";
import { sleep, within } from "../../test/support/within.ts";

interface Ack {
  version: string;
  accepted: boolean;
  at: number;
}

const portHeld = (version: string) =>
  new Error(`cannot apply configuration ${version}: listen EADDRINUSE: address already in use 0.0.0.0:40848`, {
    cause: Object.assign(new Error("listen EADDRINUSE"), { code: "EADDRINUSE" }),
  });

describe("ControlClient: a rejected configuration", () => {
  const acks: Ack[] = [];
  const applied: { version: string; at: number }[] = [];
  let stream: http.ServerResponse | null = null;
  let server: http.Server;
  let client: ControlClient;
  /** What apply does with each version: throw (the error) or take it. */
  const outcome = new Map<string, () => Error | null>();

  const push = (version: string) => stream!.write(`event: config\ndata: ${JSON.stringify({ version, config: {} })}\n\n`);

  before(async () => {
    server = http.createServer((req, res) => {
      if (req.url?.startsWith("/v1/proxies/config")) {
        res.writeHead(200, { "content-type": "text/event-stream" });
        res.flushHeaders();
        stream = res;
        return;
      }
      let body = "";
      req.on("data", (d: Buffer) => (body += d.toString()));
      req.on("end", () => {
        const ack = JSON.parse(body) as { version: string; accepted: boolean };
        acks.push({ version: ack.version, accepted: ack.accepted, at: performance.now() });
        res.writeHead(200, { "content-type": "application/json" }).end("{}");
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    client = new ControlClient({
      endpoint: { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, token: async () => "token" },
      namespace: "shop",
      pod: "web-0",
      log: createLogger({}, "info", () => {}),
      apply: async (p: ConfigPush) => {
        applied.push({ version: p.version, at: performance.now() });
        const error = outcome.get(p.version)?.() ?? null;
        if (error) throw error;
      },
    });
    client.start();
    await within(5_000, "the client to open the stream", () => stream !== null);
  });

  after(async () => {
    await client.stop();
    stream?.destroy();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  it("is applied again with backoff while a listener's port is held, and acknowledged once it takes", async () => {
    let tries = 0;
    outcome.set("v1", () => (++tries <= 2 ? portHeld("v1") : null));
    push("v1");
    await within(6_000, "v1 accepted", () => acks.some((a) => a.version === "v1" && a.accepted));
    const v1 = acks.filter((a) => a.version === "v1");
    assert.deepEqual(
      v1.map((a) => a.accepted),
      [false, false, true],
      "each try acknowledged: the control plane shows the rejection while it lasts",
    );
    const gaps = applied
      .filter((a) => a.version === "v1")
      .map((a, i, all) => (i === 0 ? 0 : a.at - all[i - 1]!.at))
      .slice(1);
    assert.ok(gaps[0]! >= 950 && gaps[1]! >= 1_950, `backoff of 1 s, then 2 s: ${gaps.map(Math.round).join(", ")} ms`);
    assert.equal(client.applied, "v1");
  });

  it("that cannot pass by itself (an invalid configuration) is not tried again", async () => {
    outcome.set("v2", () => new Error("cannot apply configuration v2: cluster outbound|80|| has no endpoints"));
    push("v2");
    await within(2_000, "v2 rejected", () => acks.some((a) => a.version === "v2"));
    await sleep(1_300);
    assert.equal(applied.filter((a) => a.version === "v2").length, 1);
    assert.equal(client.applied, "v1", "the last good one stays");
  });

  it("is not tried again once a newer version came", async () => {
    outcome.set("v3", () => portHeld("v3"));
    push("v3");
    await within(2_000, "v3 rejected", () => acks.some((a) => a.version === "v3"));
    push("v4");
    await within(2_000, "v4 accepted", () => acks.some((a) => a.version === "v4" && a.accepted));
    await sleep(1_300);
    assert.equal(applied.filter((a) => a.version === "v3").length, 1, "v3's retry was dropped");
    assert.equal(client.applied, "v4");
  });
});
