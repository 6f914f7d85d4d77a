// runtimes: node deno bun
// The container images of `npm run image` (deploy/image/, docs/images.md), run for real by
// podman (with Debian's runc) as the cluster runs them: as user 1337 on a read-only root
// filesystem with /tmp writable. Each runtime's run of the suites checks its own image: Node's
// run the weft image (with iptables, weft init and the control plane), the shop's image, that
// the same inputs give the same digests and the push to a registry; Deno's and Bun's runs the
// -deno and -bun images. The images are built once and cached (~/.cache/weft/images).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { accessSync, chmodSync, constants, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import process from "node:process";
import { BUNDLE_DIR, SHOP_DIR, VERSION } from "../deploy/image/images.ts";
import { quantityValue } from "../control/inject/quantity.ts";
import { DEFAULT_SETTINGS } from "../control/inject/settings.ts";
import { WEFT_UID } from "../deploy/image/base.ts";
import { digestOf } from "../deploy/image/oci.ts";
import { startRegistry, type TestRegistry } from "./support/registry.ts";
import { simpleConfig } from "./support/proxy.ts";
import { request } from "./support/client.ts";
import { deadPort, startUpstream, type Upstream } from "./support/upstream.ts";

// Bun gives tests and hooks 5 s; a cold image build takes ~45 s, a second one for the digests as long.
if ("Bun" in globalThis) (await import("bun:test" as string)).setDefaultTimeout(600_000);

const root = path.resolve(import.meta.dirname ?? ".", "..");
const runtime = "Deno" in globalThis ? "deno" : "Bun" in globalThis ? "bun" : "node";
const WEFT = `weft:${VERSION}${runtime === "node" ? "" : `-${runtime}`}`;
const SHOP = `weft-shop:${VERSION}`;
// As control/inject/settings.ts starts weft on each runtime.
const START = { node: ["node"], deno: ["deno", "run", "--allow-all"], bun: ["bun"] }[runtime];

const INSTALL = "apt-get install -y podman runc skopeo";
const RUNC = "/usr/sbin/runc";

function needTools(): void {
  for (const tool of ["/usr/bin/podman", "/usr/bin/skopeo", RUNC]) {
    try {
      accessSync(tool, constants.X_OK);
    } catch {
      throw new Error(
        `${tool} is missing: the image tests run the images with podman (runtime runc) and load them with skopeo; install them with "${INSTALL}" (.ci/run does)`,
      );
    }
  }
}

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

function exec(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Ran> {
  return new Promise((resolve) =>
    execFile(command, args, { cwd: root, env, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 }, (e, stdout, stderr) =>
      resolve({
        code: e ? (typeof e.code === "number" ? e.code : 1) : 0,
        stdout,
        stderr: stderr || (e && typeof e.code !== "number" ? e.message : ""),
      }),
    ),
  );
}

/** `npm run image` (its script, with the pinned Node), returning the layout; `env` may move its cache. */
async function buildImages(args: string[] = [], env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const ran = await exec(path.join(root, "node_modules", ".bin", "node"), ["deploy/image/cli.ts", "--quiet", ...args], env);
  assert.equal(ran.code, 0, `npm run image failed:\n${ran.stderr}${ran.stdout}`);
  return ran.stdout.trim().split("\n")[0]!;
}

// crun refuses to start containers on this CI machine; Debian's runc works. The ulimits stay
// under the container's hard limit, which podman would otherwise ask above.
const RUN = ["run", "--runtime", RUNC, "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", "--read-only"];
const containers: string[] = [];
let serial = 0;

/** podman run of `image` (locked down: read-only root, user 1337 unless `options.user`) to the end. */
function podmanRun(image: string, command: string[], options: { user?: string; flags?: string[] } = {}): Promise<Ran> {
  const name = `weft-images-test-${process.pid}-${serial++}`;
  containers.push(name);
  return exec("podman", [
    ...RUN,
    "--rm",
    "--name",
    name,
    "--user",
    options.user ?? String(WEFT_UID),
    ...(options.flags ?? []),
    `localhost/${image}`,
    ...command,
  ]);
}

/** podman run -d: a container that keeps running until after() removes it. */
async function podmanStart(image: string, command: string[], flags: string[]): Promise<string> {
  const name = `weft-images-test-${process.pid}-${serial++}`;
  containers.push(name);
  const ran = await exec("podman", [...RUN, "-d", "--name", name, "--user", String(WEFT_UID), ...flags, `localhost/${image}`, ...command]);
  assert.equal(ran.code, 0, `podman run -d ${image} failed:\n${ran.stderr}`);
  return name;
}

/** Copies `ref` from the layout into podman's storage as localhost/REF (podman 4.3's pull would name it after the layout's path). */
async function load(layout: string, ref: string): Promise<void> {
  const ran = await exec("skopeo", ["copy", "--quiet", `oci:${layout}:${ref}`, `containers-storage:localhost/${ref}`]);
  assert.equal(ran.code, 0, `skopeo copy of ${ref} into podman's storage failed:\n${ran.stderr}`);
}

const logsOf = async (name: string) => {
  const ran = await exec("podman", ["logs", name]);
  return ran.stdout + ran.stderr;
};

/** Waits for `check` to pass while container `name` runs; says why it did not. */
async function waitFor(what: string, name: string, check: () => Promise<boolean>): Promise<void> {
  for (const deadline = Date.now() + 20_000; ; ) {
    if (await check().catch(() => false)) return;
    const running = (await exec("podman", ["inspect", "--format", "{{.State.Running}}", name])).stdout.trim() === "true";
    if (!running || Date.now() > deadline)
      throw new Error(`${what} ${running ? "within 20 s" : "before it exited"}; the container's output:\n${await logsOf(name)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The bundles' input keys (deploy/image/bundle.ts): equal when both builds bundled the same sources. */
const bundleKeys = (cacheDir: string) =>
  ["weft", "shop"]
    .map((b) => (JSON.parse(readFileSync(path.join(cacheDir, "bundles", `${b}.json`), "utf8")) as { key: string }).key)
    .join(" ");

describe("the images of npm run image (deploy/image/, docs/images.md)", () => {
  let layout = "";

  before(async () => {
    needTools();
    layout = await buildImages();
    await load(layout, WEFT);
    if (runtime === "node") await load(layout, SHOP);
  });

  after(async () => {
    if (containers.length) await exec("podman", ["rm", "-f", "--ignore", ...containers]);
  });

  describe(`the ${WEFT} image (npm run image)`, () => {
    it("runs weft as user 1337 on a read-only root filesystem: its default command prints the usage", async () => {
      const inspect = await exec("podman", ["image", "inspect", `localhost/${WEFT}`, "--format", "{{.Config.User}} {{json .Config.Cmd}}"]);
      assert.equal(inspect.stdout.trim(), `${WEFT_UID}:${WEFT_UID} ${JSON.stringify([...START, `${BUNDLE_DIR}/weft.mjs`, "--help"])}`);
      const ran = await podmanRun(WEFT, []);
      assert.equal(ran.code, 0, ran.stderr);
      assert.match(ran.stdout, /^usage: weft <command>/);
    });

    it("starts its runtime with the sidecar's memory settings for the injector's default limit (control/inject/runtime-env.ts)", async () => {
      // What the runtime reports, so that a setting it does not take up (a misspelt variable, a
      // flag it refuses) fails here rather than as a sidecar that grows past its limit.
      const script = `import("node:v8").then(({ default: v8 }) => console.log(JSON.stringify({ limit: v8.getHeapStatistics().heap_size_limit, execArgv: process.execArgv })))`;
      const ran = await podmanRun(
        WEFT,
        { node: ["node", "-e", script], deno: ["deno", "eval", script], bun: ["bun", "-e", script] }[runtime],
      );
      assert.equal(ran.code, 0, ran.stderr);
      const { limit, execArgv } = JSON.parse(ran.stdout) as { limit: number; execArgv: string[] };
      if (runtime === "bun") assert.ok(execArgv.includes("--smol"), `bun runs without --smol: ${JSON.stringify(execArgv)}`);
      else {
        // V8's heap limit is the old generation (half the container's limit) plus the young one
        // (three semi-spaces of a few MB), where V8 left alone takes gigabytes here.
        const oldSpace = quantityValue(DEFAULT_SETTINGS.resources.limits.memory) / 2;
        assert.ok(limit >= oldSpace && limit < oldSpace + 32 * 2 ** 20, `V8's heap limit is ${limit} bytes, not about ${oldSpace}`);
      }
    });

    describe("a proxy started by the injector's command, on the host's network", () => {
      let upstream: Upstream;
      let dir: string;
      let container: string;
      const ports = { admin: 0, outbound: 0 };

      before(async () => {
        upstream = await startUpstream("imaged");
        ports.admin = await deadPort();
        ports.outbound = await deadPort();
        const config = simpleConfig([upstream.port], { admin: { address: "127.0.0.1", port: ports.admin }, accessLog: "off" });
        (config.listeners as { port: number }[])[0]!.port = ports.outbound;
        dir = mkdtempSync(path.join(tmpdir(), "weft-images-"));
        writeFileSync(path.join(dir, "proxy.json"), JSON.stringify(config));
        // mkdtemp's folder is the test user's alone; the proxy in the container runs as 1337.
        chmodSync(dir, 0o755);
        chmodSync(path.join(dir, "proxy.json"), 0o644);
        container = await podmanStart(
          WEFT,
          [...START, `${BUNDLE_DIR}/weft.mjs`, "proxy", "--config", "/config/proxy.json"],
          ["--network", "host", "-v", `${dir}:/config:ro`],
        );
        await waitFor(
          "the proxy in the image did not answer /ready",
          container,
          async () => (await fetch(`http://127.0.0.1:${ports.admin}/ready`)).status === 200,
        );
      });
      after(async () => {
        await exec("podman", ["rm", "-f", "--ignore", container]);
        await upstream.close();
        rmSync(dir, { recursive: true, force: true });
      });

      it("is ready and forwards a request to its upstream", async () => {
        const reply = await request(ports.outbound, { path: "/" });
        assert.equal(reply.body, "hello from imaged\n");
        const log = await logsOf(container);
        assert.match(log, new RegExp(`"msg":"sidecar started".*"runtime":"${runtime}"`));
      });
    });
  });

  describe(`the weft:${VERSION} image's other uses: init container and control plane`, {
    skip: runtime === "node" ? undefined : "Node's run checks the Node image's init and control-plane uses",
  }, () => {
    it("has iptables-restore, nft backend by default and legacy beside it", async () => {
      const nft = await podmanRun(WEFT, ["iptables-restore", "--version"]);
      assert.equal(nft.code, 0, nft.stderr);
      assert.match(nft.stdout, /^iptables-restore v[\d.]+ \(nf_tables\)/);
      const legacy = await podmanRun(WEFT, ["ip6tables-legacy-restore", "--version"]);
      assert.equal(legacy.code, 0, legacy.stderr);
      assert.match(legacy.stdout, /^ip6tables-restore v[\d.]+ \(legacy\)/);
    });

    it("does not open Node's inspector on SIGUSR1, for the sidecar and the control plane alike", async () => {
      // Without --disable-sigusr1 Node prints "Debugger listening on ws://127.0.0.1:9229/..." and serves it.
      const script = `process.kill(process.pid, "SIGUSR1"); setTimeout(() => fetch("http://127.0.0.1:9229/json/list").then(() => console.log("inspector open"), () => console.log("no inspector")), 500);`;
      const ran = await podmanRun(WEFT, ["node", "-e", script]);
      assert.equal(ran.code, 0, ran.stderr);
      assert.equal(ran.stdout.trim(), "no inspector");
      assert.doesNotMatch(ran.stderr, /Debugger listening/);
    });

    it("runs weft init as the injected init container does (root, NET_ADMIN and NET_RAW only): the rules are in the container's tables, the Service range is routed", async () => {
      // No shell in the image: node runs weft init, then iptables-save and ip show what it installed.
      const script = `const { execFileSync } = require("node:child_process");
  execFileSync("node", ["${BUNDLE_DIR}/weft.mjs", "init", "--include-inbound-ports", "*", "--exclude-inbound-ports", "15000", "--service-cidr", "10.96.0.0/12"], { stdio: ["ignore", "ignore", "inherit"] });
  process.stdout.write(execFileSync("iptables-save"));
  process.stdout.write(execFileSync("ip", ["-4", "rule", "show"]));`;
      const ran = await podmanRun(WEFT, ["node", "-e", script], {
        user: "0",
        flags: ["--cap-drop", "ALL", "--cap-add", "NET_ADMIN,NET_RAW"],
      });
      assert.equal(ran.code, 0, ran.stderr);
      assert.match(ran.stdout, /^-A WEFT_INBOUND -p tcp -m tcp --dport 1:32767 -j WEFT_IN_REDIRECT$/m);
      assert.match(ran.stdout, /^-A WEFT_IN_REDIRECT -p tcp -j DNAT --to-destination :32769-65535\/1$/m);
      assert.match(ran.stdout, /^-A WEFT_OUTPUT -m owner --uid-owner 1337 -j RETURN$/m);
      assert.match(
        ran.stdout,
        /^-A WEFT_SERVICES -d 10\.96\.0\.0\/12 -p tcp -m tcp --dport 1:32767 -j MARK --set-xmark 0x539\/0xffffffff$/m,
      );
      assert.match(ran.stdout, /^5:\s+from all fwmark 0x539 lookup local$/m);
      assert.match(ran.stdout, /^10:\s+from all lookup local$/m);
    });

    it("runs the control plane's command, and finds the marketplace index the control plane resolves marketplace:// with", async () => {
      const help = await podmanRun(WEFT, ["node", `${BUNDLE_DIR}/weft.mjs`, "control", "--help"]);
      assert.equal(help.code, 0, help.stderr);
      assert.match(help.stdout, /^usage: weft control/);
      const search = await podmanRun(WEFT, ["node", `${BUNDLE_DIR}/weft.mjs`, "filter", "search", "jwt"]);
      assert.equal(search.code, 0, search.stderr);
      assert.match(search.stdout, /^jwt-auth /m);
    });

    it("ships every marketplace release's module beside the index, each with the digest the index lists", async () => {
      // What the control plane serves for marketplace:// without a registry (control/distribution/marketplace.ts).
      const script = `const { createHash } = require("node:crypto"); const { readFileSync } = require("node:fs");
  const index = JSON.parse(readFileSync("/opt/plugins/index.json", "utf8"));
  for (const p of index.plugins) for (const v of p.versions) {
    const sha = createHash("sha256").update(readFileSync("/opt/plugins/" + p.name + "/" + v.version + ".wasm")).digest("hex");
    console.log(p.name + "@" + v.version + " " + (sha === v.sha256 ? "ok" : "differs: " + sha));
  }`;
      const ran = await podmanRun(WEFT, ["node", "-e", script]);
      assert.equal(ran.code, 0, ran.stderr);
      const index = JSON.parse(readFileSync(path.join(root, "plugins", "index.json"), "utf8")) as {
        plugins: { name: string; versions: { version: string }[] }[];
      };
      const expected = index.plugins.flatMap((p) => p.versions.map((v) => `${p.name}@${v.version} ok`));
      assert.deepEqual(ran.stdout.trim().split("\n"), expected);
    });
  });

  describe(`the ${SHOP} image`, { skip: runtime === "node" ? undefined : "Node's run checks the shop's Node image" }, () => {
    it("serves the catalog on port 8080 of every address, as a user other than the proxy's", async () => {
      const port = await deadPort();
      const container = await podmanStart(SHOP, ["node", `${SHOP_DIR}/catalog.mjs`], ["--user", "65534", "-p", `127.0.0.1:${port}:8080`]);
      let reply = { status: 0, body: "" };
      await waitFor(
        "the catalog in the image did not answer on its published port",
        container,
        async () => (reply = await request(port, { path: "/products" })).status === 200,
      );
      assert.equal(JSON.parse(reply.body).version, "v1");
      const inspect = await exec("podman", ["image", "inspect", `localhost/${SHOP}`, "--format", "{{.Config.User}}"]);
      assert.equal(inspect.stdout.trim(), "65534:65534");
    });
  });

  describe("building the images", { skip: runtime === "node" ? undefined : "built and compared once, by Node's run" }, () => {
    it("gives the same digests from a cold build of the same inputs", async () => {
      // A checkout being edited meanwhile changes the inputs between the two builds: the
      // bundles' input keys tell, and the comparison is made again.
      for (let attempt = 1; ; attempt++) {
        const cache = mkdtempSync(path.join(tmpdir(), "weft-images-cold-"));
        try {
          const cold = await buildImages([], { ...process.env, WEFT_IMAGE_CACHE: cache });
          const warm = await buildImages();
          if (bundleKeys(cache) !== bundleKeys(path.dirname(warm))) {
            if (attempt < 3) continue;
            assert.fail("the sources changed during each of three pairs of builds: run the test again on a checkout nobody is editing");
          }
          for (const ref of [`weft:${VERSION}`, `weft:${VERSION}-deno`, `weft:${VERSION}-bun`, SHOP]) {
            assert.equal(await digestOf(cold, ref), await digestOf(warm, ref), `${ref} differs between two builds of the same inputs`);
          }
          return;
        } finally {
          rmSync(cache, { recursive: true, force: true });
        }
      }
    });

    describe("npm run image -- --push to a registry", () => {
      let registry: TestRegistry;
      before(async () => (registry = await startRegistry()));
      after(async () => registry?.stop());

      it("pushes every image with the layout's digests", async () => {
        await buildImages(["--push", registry.host, "--insecure"]);
        for (const ref of [`weft:${VERSION}`, `weft:${VERSION}-deno`, `weft:${VERSION}-bun`, SHOP]) {
          const [repository, tag] = ref.split(":");
          const reply = await fetch(`http://${registry.host}/v2/${repository}/manifests/${tag}`, {
            method: "HEAD",
            headers: { accept: "application/vnd.oci.image.manifest.v1+json" },
          });
          assert.equal(reply.status, 200, `${ref} is not in the registry`);
          assert.equal(reply.headers.get("docker-content-digest"), await digestOf(layout, ref));
        }
      });
    });
  });
});
