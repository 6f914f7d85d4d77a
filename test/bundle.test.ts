// runtimes: node deno bun
// The distributed form of weft (`npm run build`: dist/weft.mjs and the chunks it loads on demand) runs a sidecar on the
// runtime running this test.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import process from "node:process";
import { startUpstream, deadPort, type Upstream } from "./support/upstream.ts";
import { simpleConfig } from "./support/proxy.ts";
import { request } from "./support/client.ts";

const root = path.resolve(import.meta.dirname ?? ".", "..");

describe("the bundle (npm run build)", () => {
  let upstream: Upstream;
  let child: ChildProcess;
  const ports = { outbound: 0, admin: 0 };

  before(async () => {
    upstream = await startUpstream("bundled");
    const dir = mkdtempSync(path.join(tmpdir(), "weft-bundle-"));
    execFileSync("npm", ["run", "--silent", "build"], { cwd: root, stdio: "ignore" });
    const bundle = path.join(root, "dist", "weft.mjs");
    ports.outbound = await deadPort();
    ports.admin = await deadPort();
    const config = simpleConfig([upstream.port], { admin: { address: "127.0.0.1", port: ports.admin }, accessLog: "off" });
    (config.listeners as { port: number }[])[0].port = ports.outbound;
    const configPath = path.join(dir, "proxy.json");
    writeFileSync(configPath, JSON.stringify(config));
    const args = "Deno" in globalThis ? ["run", "-A", bundle, "proxy", "--config", configPath] : [bundle, "proxy", "--config", configPath];
    child = spawn(process.execPath, args, { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr!.on("data", (d) => (stderr += d));
    const deadline = Date.now() + 10000;
    for (;;) {
      try {
        if ((await fetch(`http://127.0.0.1:${ports.admin}/ready`)).status === 200) break;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`the bundled proxy did not become ready:\n${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  });
  after(async () => {
    child.kill("SIGKILL");
    await upstream.close();
  });

  it("serves traffic", async () => {
    const reply = await request(ports.outbound, { path: "/" });
    assert.equal(reply.body, "hello from bundled\n");
  });
});
