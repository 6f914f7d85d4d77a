// runtimes: node deno bun
// The sidecar as an operator runs it: `weft proxy --config FILE`, the admin API, reloads
// under traffic, rejected configurations, and graceful drain on SIGTERM.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import net from "node:net";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import process from "node:process";
import { deadPort, startUpstream, type Upstream } from "./support/upstream.ts";
import { startProxy, simpleConfig, type RunningProxy } from "./support/proxy.ts";
import { request } from "./support/client.ts";
import { parseConfig } from "../proxy/config/validate.ts";
import { adminApp } from "../proxy/admin/server.ts";

const root = path.resolve(import.meta.dirname ?? ".", "..");

/** Bounded closed-loop traffic: `connections` clients sending until stop() (or the cap). */
function traffic(port: number, connections: number, cap = 5000) {
  let running = true;
  let sent = 0;
  const failures: string[] = [];
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const loops = Array.from({ length: connections }, async () => {
    while (running && sent < cap) {
      sent++;
      try {
        const reply = await request(port, { agent, path: "/" });
        if (reply.status !== 200) failures.push(`status ${reply.status}: ${reply.headers["x-weft-error"] ?? ""}`);
      } catch (e) {
        failures.push((e as Error).message);
      }
    }
  });
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      agent.destroy();
      return { sent, failures };
    },
  };
}

describe("admin API and reload in process", () => {
  let a: Upstream;
  let b: Upstream;
  let proxy: RunningProxy;

  before(async () => {
    a = await startUpstream("a");
    b = await startUpstream("b");
    proxy = await startProxy({
      ...simpleConfig([a.port]),
      identity: undefined,
    });
  });
  after(async () => {
    await proxy.stop();
    await a.close();
    await b.close();
  });

  it("serves /ready, /metrics and /config_dump", async () => {
    const admin = `http://127.0.0.1:${proxy.admin}`;
    assert.equal((await fetch(`${admin}/ready`)).status, 200);
    await request(proxy.outbound);
    const metrics = await (await fetch(`${admin}/metrics`)).text();
    assert.match(metrics, /istio_requests_total\{[^}]*response_code="200"/);
    assert.match(metrics, /weft_config_info\{version="test-1"\} 1/);
    const dump = (await (await fetch(`${admin}/config_dump`)).json()) as { version: string };
    assert.equal(dump.version, "test-1");
    const missing = await fetch(`${admin}/nope`);
    assert.equal(missing.status, 404);
    assert.match(await missing.text(), /serves \/ready, \/metrics/);
  });

  it("as a sidecar managed by a control plane, takes no PUT /config and shows its configuration to loopback peers only", async () => {
    // Its admin port is on the pod's IP then (kubelet probes, metrics): any pod could reach it.
    const managed = adminApp(proxy.sidecar, { managedBy: "https://weft-control.weft-system.svc:15012", appProbes: {} });
    const call = (path: string, address: string, init: RequestInit = {}) =>
      managed.fetch(new Request(`http://pod${path}`, init), { peer: { address } });
    const put = await call("/config", "127.0.0.1", { method: "PUT", body: JSON.stringify(simpleConfig([b.port], { version: "hijack" })) });
    assert.equal(put.status, 405);
    assert.match(
      await put.text(),
      /^this sidecar is configured by the control plane at https:\/\/weft-control\.weft-system\.svc:15012 only/,
    );
    assert.equal(proxy.sidecar.config.version, "test-1", "the configuration stayed");
    const remote = await call("/config_dump", "10.244.0.7");
    assert.equal(remote.status, 403);
    assert.match(await remote.text(), /shown on this pod's loopback only: kubectl port-forward POD 15000/);
    for (const address of ["127.0.0.1", "::1", "::ffff:127.0.0.1"])
      assert.equal((await call("/config_dump", address)).status, 200, address);
    for (const path of ["/ready", "/metrics"]) assert.equal((await call(path, "10.244.0.7")).status, 200, path);
  });

  it("runs the app's rewritten kubelet probes against the app on 127.0.0.1 and answers as the app did", async () => {
    const closed = await deadPort();
    const http = (path: string, port = a.port, timeoutSeconds = 1) => ({
      kind: "http" as const,
      port,
      path,
      scheme: "HTTP" as const,
      headers: [{ name: "X-Probe", value: "1" }],
      timeoutSeconds,
    });
    const admin = adminApp(proxy.sidecar, {
      managedBy: "https://weft-control.weft-system.svc:15012",
      appProbes: {
        "app/readyz": http("/status/204"),
        "app/livez": http("/status/500"),
        "app/startupz": http("/status/302"),
        "slow/readyz": http("/delay/3000", a.port, 1),
        "down/readyz": http("/", closed),
        "tcp/livez": { kind: "tcp", port: a.port, timeoutSeconds: 1 },
        "tcp-down/livez": { kind: "tcp", port: closed, timeoutSeconds: 1 },
      },
    });
    // From the kubelet, on the pod's IP: these paths are for the network.
    const probe = async (key: string) => {
      const res = await admin.fetch(new Request(`http://pod/app-health/${key}`), { peer: { address: "10.244.0.1" } });
      return { status: res.status, text: await res.text() };
    };
    assert.deepEqual(await probe("app/readyz"), { status: 200, text: `the app answered 204 to GET /status/204 on port ${a.port}\n` });
    assert.equal((await probe("app/livez")).status, 500);
    // A redirect passes, as the kubelet counts it, and is not handed to the kubelet to follow.
    assert.equal((await probe("app/startupz")).status, 200);
    const slow = await probe("slow/readyz");
    assert.equal(slow.status, 503);
    assert.match(slow.text, /no answer within 1 s/);
    const down = await probe("down/readyz");
    assert.equal(down.status, 503);
    assert.match(down.text, new RegExp(`GET / on 127\\.0\\.0\\.1:${closed}: .*(ECONNREFUSED|refused)`, "i"));
    assert.equal((await probe("tcp/livez")).status, 200);
    assert.equal((await probe("tcp-down/livez")).status, 503);
    const unknown = await probe("other/readyz");
    assert.equal(unknown.status, 404);
    assert.match(unknown.text, /no app probe other\/readyz: the pod's injected probes are app\/readyz, app\/livez/);
    const seen = a.received.filter((r) => r.url === "/status/204");
    assert.equal(seen.at(-1)?.headers["x-probe"], "1", "the probe's own headers are sent");
  });

  it("rejects an invalid pushed configuration with every problem and keeps the last good one", async () => {
    const bad = simpleConfig([a.port], { version: "bad" }) as {
      listeners: { virtualHosts: { routes: { backends: { cluster: string }[] }[] }[] }[];
    };
    bad.listeners[0].virtualHosts[0].routes[0].backends[0].cluster = "nope";
    (bad.listeners[0] as unknown as { port: number }).port = 70000;
    const res = await fetch(`http://127.0.0.1:${proxy.admin}/config`, { method: "PUT", body: JSON.stringify(bad) });
    assert.equal(res.status, 400);
    const body = (await res.json()) as { problems: string[]; kept: string };
    assert.equal(body.kept, "test-1");
    assert.ok(
      body.problems.some((p) => p.startsWith("listeners[0].port:")),
      JSON.stringify(body.problems),
    );
    assert.equal((await request(proxy.outbound)).status, 200);
  });

  it("applies pushed configurations under load without a failed request", async () => {
    const load = traffic(proxy.outbound, 8);
    const port = proxy.outbound;
    for (let i = 0; i < 10; i++) {
      await new Promise((r) => setTimeout(r, 30));
      const next = simpleConfig([i % 2 ? a.port : b.port], { version: `reload-${i}` });
      (next.listeners as { port: number }[])[0].port = 0;
      await proxy.sidecar.apply(parseConfig({ ...next, admin: { port: 0 }, accessLog: "off" }));
    }
    const { sent, failures } = await load.stop();
    assert.equal(proxy.sidecar.listenerPort("outbound"), port, "the listener kept its socket across reloads");
    assert.ok(sent > 50, `only ${sent} requests were sent`);
    assert.deepEqual(failures, [], `${failures.length} of ${sent} requests failed`);
    assert.ok(a.received.length > 0 && b.received.length > 0, "traffic followed the new endpoints");
  });

  it("moves a listener to another address of its fixed port, and back to the old socket when the new one cannot open", async () => {
    // As the control plane moving the outbound listener from every address to loopback: the new
    // socket needs the port the listener's own old one holds.
    const port = await deadPort();
    const at = (address: string, version: string) => {
      const next = simpleConfig([a.port], { version });
      (next.listeners as { address: string; port: number }[])[0].address = address;
      (next.listeners as { address: string; port: number }[])[0].port = port;
      return parseConfig({ ...next, admin: { port: 0 }, accessLog: "off" });
    };
    const moving = await startProxy({ ...simpleConfig([a.port]), listeners: at("0.0.0.0", "any-address").listeners });
    try {
      assert.equal((await request(port)).status, 200);
      await moving.sidecar.apply(at("127.0.0.1", "loopback"));
      assert.equal(moving.sidecar.config.version, "loopback");
      assert.equal((await request(port)).status, 200, "served on the same port, from the new socket");
      // 127.0.0.2:port held by someone else: the move fails, and the listener keeps serving on its old socket.
      const squatter = net.createServer().listen(port, "127.0.0.2");
      await new Promise((r) => squatter.once("listening", r));
      try {
        await assert.rejects(moving.sidecar.apply(at("0.0.0.0", "blocked")), /EADDRINUSE/);
        assert.equal(moving.sidecar.config.version, "loopback");
        assert.equal((await request(port)).status, 200, "the old socket is back");
      } finally {
        await new Promise((r) => squatter.close(r));
      }
    } finally {
      await moving.stop();
    }
  });

  it("lets a slow in-flight request finish on the configuration it started with", async () => {
    const slow = request(proxy.outbound, { path: "/delay/300" });
    await new Promise((r) => setTimeout(r, 50));
    const next = simpleConfig([a.port], { version: "after-slow" }, { timeoutMs: 1 });
    await proxy.sidecar.apply(parseConfig({ ...next, admin: { port: 0 }, accessLog: "off" }));
    const reply = await slow;
    assert.equal(reply.status, 200, "the old route's timeout still applied to the request in flight");
  });
});

describe("weft proxy --config FILE (the command)", () => {
  let upstream: Upstream;
  let child: ChildProcess;
  let dir: string;
  let configPath: string;
  let output = "";
  const ports = { outbound: 0, admin: 0 };

  const writeConfig = (version: string, extra: Record<string, unknown> = {}) => {
    const config = simpleConfig([upstream.port], { version, admin: { address: "127.0.0.1", port: ports.admin }, accessLog: "stdout" });
    (config.listeners as { port: number }[])[0].port = ports.outbound;
    writeFileSync(configPath, JSON.stringify({ ...config, ...extra }));
  };

  const waitFor = async (what: () => Promise<boolean> | boolean, message: string, ms = 10000) => {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      if (await what()) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`timed out: ${message}\n--- proxy output ---\n${output}`);
  };

  before(async () => {
    upstream = await startUpstream("cli-app");
    dir = mkdtempSync(path.join(tmpdir(), "weft-cli-"));
    configPath = path.join(dir, "proxy.json");
    const { deadPort } = await import("./support/upstream.ts");
    ports.outbound = await deadPort();
    ports.admin = await deadPort();
    writeConfig("file-1");
    // The command runs on the runtime running this test.
    const exec = process.execPath;
    const args =
      "Deno" in globalThis
        ? ["run", "-A", "bin/weft.ts", "proxy", "--config", configPath]
        : ["bin/weft.ts", "proxy", "--config", configPath];
    child = spawn(exec, args, { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
    child.stdout!.on("data", (d) => (output += d));
    child.stderr!.on("data", (d) => (output += d));
    await waitFor(async () => {
      try {
        return (await fetch(`http://127.0.0.1:${ports.admin}/ready`)).status === 200;
      } catch {
        return false;
      }
    }, "the proxy did not become ready");
  });
  after(async () => {
    if (child.exitCode === null) child.kill("SIGKILL");
    await upstream.close();
  });

  it("serves traffic, writes JSON logs and one access-log line per request", async () => {
    const reply = await request(ports.outbound, { path: "/echo", headers: { "x-request-id": "cli-1" } });
    assert.equal(reply.status, 200);
    await waitFor(
      () => output.includes('"x_request_id":"cli-1"') || output.includes('"request_id":"cli-1"'),
      "no access-log line for the request",
    );
    const lines = output.split("\n").filter((l) => l.startsWith("{"));
    for (const line of lines) JSON.parse(line);
    assert.ok(lines.some((l) => JSON.parse(l).msg === "sidecar started"));
  });

  it("reloads when the file changes and keeps the last good configuration on a bad one", async () => {
    writeConfig("file-2");
    await waitFor(
      async () => ((await (await fetch(`http://127.0.0.1:${ports.admin}/config_dump`)).json()) as { version: string }).version === "file-2",
      "file-2 was not applied",
    );
    writeFileSync(configPath, "{ not json");
    await waitFor(() => output.includes("configuration rejected"), "the bad file was not reported");
    assert.match(output, /not valid JSON/);
    assert.equal((await request(ports.outbound)).status, 200);
  });

  it("drains on SIGTERM: the request in flight completes, then the process exits 0", async () => {
    const inFlight = request(ports.outbound, { path: "/delay/400" });
    await new Promise((r) => setTimeout(r, 100));
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    child.kill("SIGTERM");
    const reply = await inFlight;
    assert.equal(reply.status, 200);
    const code = await exited;
    // Deno's node:child_process reports a child that exits after handling SIGTERM as killed
    // by it (code null); the proxy's own "stopped" log line shows it exited by itself.
    if (!("Deno" in globalThis)) assert.equal(code, 0);
    assert.match(output, /"msg":"stopped"/);
    await assert.rejects(request(ports.outbound), "the listener is closed after the drain");
  });

  it("refuses to start on an invalid file, saying where the problem is", async () => {
    const bad = path.join(dir, "bad.json");
    writeFileSync(bad, JSON.stringify({ listeners: [{ name: "x", direction: "Sideways", port: 1 }], clusters: [] }));
    const exec = process.execPath;
    const args = "Deno" in globalThis ? ["run", "-A", "bin/weft.ts", "proxy", "--config", bad] : ["bin/weft.ts", "proxy", "--config", bad];
    const result = await new Promise<{ code: number | null; err: string }>((resolve) => {
      const p = spawn(exec, args, { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
      let err = "";
      p.stderr!.on("data", (d) => (err += d));
      p.on("exit", (code) => resolve({ code, err }));
    });
    assert.equal(result.code, 1);
    assert.match(result.err, /listeners\[0\]\.direction/);
    assert.match(result.err, /listeners\[0\]\.virtualHosts/);
  });
});

describe("weft proxy --control-plane URL (the command)", () => {
  it("stops at once on SIGTERM while its control plane accepts connections and never answers", async () => {
    // A control plane that hangs (a frozen process, a half-open network path) holds each request
    // until the 30 s idle timeout; a stop must not wait for it.
    const held: net.Socket[] = [];
    const silent = net.createServer((socket) => held.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const dir = mkdtempSync(path.join(tmpdir(), "weft-managed-"));
    writeFileSync(path.join(dir, "token"), "token");
    const args = [
      "bin/weft.ts",
      ...["proxy", "--control-plane", `http://127.0.0.1:${(silent.address() as net.AddressInfo).port}`],
      ...["--namespace", "shop", "--pod", "web-0", "--token-file", path.join(dir, "token")],
      ...["--admin-address", "127.0.0.1", "--admin-port", String(await deadPort())],
    ];
    const child = spawn(process.execPath, "Deno" in globalThis ? ["run", "-A", ...args] : args, {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout!.on("data", (d) => (output += d));
    child.stderr!.on("data", (d) => (output += d));
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    try {
      const deadline = Date.now() + 15_000;
      // Both the enrollment and the configuration stream are held.
      while (held.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.ok(held.length >= 2, `the sidecar did not call its control plane within 15 s:\n${output}`);
      child.kill("SIGTERM");
      const late = new Promise<"late">((resolve) => setTimeout(() => resolve("late"), 10_000).unref());
      const code = await Promise.race([exited, late]);
      assert.notEqual(code, "late", `still running 10 s after SIGTERM:\n${output}`);
      if (!("Deno" in globalThis)) assert.equal(code, 0, output);
      assert.doesNotMatch(output, /did not finish within/, "the stop finished by itself, not by its deadline");
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      for (const s of held) s.destroy();
      silent.close();
    }
  });
});
