// What the suites need besides npm's packages, brought up by `npm test` (test/run.ts) before it
// runs them, so that a fresh machine needs nothing but `npm install && npm test`: Debian's
// packages (apt-get, as root), and what a suite declares on its `// needs:` line (CONTRIBUTING.md):
// weft's TypeScript filter engine, Kubernetes, the real node's binaries, helm and Jaeger, built
// once and cached in ~/.cache/weft. Each step looks first and installs or builds only what is
// missing, so with everything in place this takes about a second. To get ready ahead of the tests:
//   node_modules/.bin/node test/setup.ts [NEED...]     # default: every need
import { spawn, spawnSync } from "node:child_process";
import { accessSync, constants, existsSync } from "node:fs";
import { homedir } from "node:os";
import path from "node:path";
import process from "node:process";

const root = path.resolve(import.meta.dirname ?? ".", "..");
const node = path.join(root, "node_modules", ".bin", "node");

/** What a suite may declare on its `// needs:` line: the prerequisites that take minutes to build. */
export const NEEDS = ["ts-engine", "rust-filters", "k8s", "k8s-node", "helm", "jaeger", "conformance"] as const;
export type Need = (typeof NEEDS)[number];
export const isNeed = (name: string): name is Need => (NEEDS as readonly string[]).includes(name);

type Check = () => boolean;
const executable = (file: string) => {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
};
const onPath =
  (command: string): Check =>
  () =>
    (process.env.PATH ?? "").split(path.delimiter).some((dir) => dir && executable(path.join(dir, command)));
const isExecutable =
  (file: string): Check =>
  () =>
    executable(file);
const isFile =
  (file: string): Check =>
  () =>
    existsSync(file);
// biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own format, not a template
const DPKG_STATUS = "-f=${Status}";
const dpkgInstalled =
  (pkg: string): Check =>
  () =>
    spawnSync("dpkg-query", ["-W", DPKG_STATUS, pkg], { encoding: "utf8" }).stdout === "install ok installed";

// Debian packages the tests use as real peers, each with what shows it is installed.
const DEBIAN: [pkg: string, installed: Check][] = [
  ["curl", onPath("curl")],
  ["openssl", onPath("openssl")],
  // A real OCI registry (CNCF distribution) and htpasswd for its Basic-auth users (test/oci.test.ts).
  ["docker-registry", onPath("docker-registry")],
  ["apache2-utils", onPath("htpasswd")],
  // clang and llvm-ar compile QuickJS into weft's TypeScript filter engine (sdk/typescript/engine.ts).
  ["clang", onPath("clang")],
  ["llvm", onPath("llvm-ar")],
  // Network namespaces, iptables and a second user for weft init's suite (test/control/init.test.ts).
  ["iproute2", onPath("ip")],
  ["iptables", onPath("iptables-restore")],
  ["util-linux", onPath("setpriv")],
  // The dashboard's browser test drives Debian's Chromium with playwright-core.
  ["chromium", isExecutable("/usr/bin/chromium")],
  // A real node for the Kubernetes test cluster (test/k8s/node.ts, docs/k8s-test-env.md): runc
  // (below) runs the pods, CNI plugins wire them, busybox-static and umoci make its test images,
  // skopeo (below) pushes them.
  ["containernetworking-plugins", isExecutable("/usr/lib/cni/bridge")],
  ["busybox-static", dpkgInstalled("busybox-static")],
  ["umoci", onPath("umoci")],
  // kube-proxy clears conntrack entries of Services that change (a missing tool is only logged).
  ["conntrack", onPath("conntrack")],
  // The container images (npm run image, deploy/image/): strip slims Node's binary, ca-certificates
  // and netbase give the images /etc files; podman with Debian's runc runs them and skopeo loads
  // and pushes them (test/images.test.ts).
  ["binutils", onPath("strip")],
  ["ca-certificates", isFile("/etc/ssl/certs/ca-certificates.crt")],
  ["netbase", isFile("/etc/protocols")],
  ["podman", onPath("podman")],
  ["runc", isExecutable("/usr/sbin/runc")],
  ["skopeo", onPath("skopeo")],
  // A real Prometheus scrapes the sidecars and answers Istio's dashboard queries (test/telemetry-backends.test.ts).
  ["prometheus", isExecutable("/usr/bin/prometheus")],
];

const say = (line: string) => process.stdout.write(`--- ${line}\n`);
const elapsed = (since: number) => {
  const ms = Date.now() - since;
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
};

/** A step still running after this is installing or building, not finding things cached. */
const QUIET_MS = 5000;

/**
 * Runs one command of the setup. A check that finds everything cached is quick and prints
 * nothing: its stderr is held back until it has run for QUIET_MS (or `announce`), then `what`
 * says what is being built and how long that takes cold, its output follows live, and a line
 * every minute shows it is still going. Rejects, with its output shown, when it fails.
 */
function step(
  what: string,
  command: string,
  args: string[],
  options: { announce?: boolean; env?: Record<string, string> } = {},
): Promise<void> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: root, env: { ...process.env, ...options.env }, stdio: ["ignore", "ignore", "pipe"] });
    let held: Buffer[] | null = [];
    let ticker: ReturnType<typeof setInterval> | undefined;
    const announce = () => {
      say(what);
      for (const chunk of held ?? []) process.stdout.write(chunk);
      held = null;
      ticker = setInterval(() => say(`still at it after ${elapsed(started)}: ${what}`), 60_000);
    };
    const timer = options.announce ? undefined : setTimeout(announce, QUIET_MS);
    if (options.announce) announce();
    child.stderr.on("data", (chunk: Buffer) => (held ? held.push(chunk) : process.stdout.write(chunk)));
    let ended = false;
    // "close" may follow "error" (a command that could not start): the first one counts.
    const done = (problem: string | null) => {
      if (ended) return;
      ended = true;
      clearTimeout(timer);
      clearInterval(ticker);
      if (problem === null) {
        if (!held) say(`done in ${elapsed(started)}`);
        resolve();
        return;
      }
      for (const chunk of held ?? []) process.stdout.write(chunk);
      reject(new Error(`${what}: ${problem}`));
    };
    child.on("error", (e) => done(`cannot run ${command}: ${e.message}`));
    child.on("close", (code, signal) => done(code === 0 ? null : `failed (${signal ?? `exit ${code}`}; its output is above)`));
  });
}

async function debianPackages(): Promise<void> {
  const missing = DEBIAN.filter(([, installed]) => !installed()).map(([pkg]) => pkg);
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0) {
    // Only root can install them; the suites that use them fail and say what is missing.
    say(
      `missing Debian packages ${missing.join(" ")}: the suites that use them will fail. Install them with: sudo apt-get update && sudo apt-get install -y ${missing.join(" ")}`,
    );
    return;
  }
  await step(`apt-get update, for the missing Debian packages ${missing.join(" ")}`, "apt-get", ["update", "-qq"], { announce: true });
  await step(
    `installing ${missing.join(" ")} (apt-get: a few minutes on a fresh machine)`,
    "apt-get",
    ["install", "-y", "-qq", ...missing],
    { announce: true, env: { DEBIAN_FRONTEND: "noninteractive" } },
  );
}

/**
 * Rust's wasm32 target, for the TypeScript engine and the Rust example filters (Rust itself comes
 * with the machine, by rustup in ~/.cargo/bin, which a non-login shell may not have on its PATH).
 * Without rustup, their builds fail and say how to get Rust.
 */
async function wasmTarget(): Promise<void> {
  const rustup = [
    ...(process.env.PATH ?? "").split(path.delimiter),
    path.join(process.env.CARGO_HOME ?? path.join(homedir(), ".cargo"), "bin"),
  ]
    .map((dir) => path.join(dir, "rustup"))
    .find(executable);
  const target = "wasm32-unknown-unknown";
  if (rustup && !(spawnSync(rustup, ["target", "list", "--installed"], { encoding: "utf8" }).stdout ?? "").split("\n").includes(target)) {
    await step(`adding Rust's ${target} target (rustup: under a minute)`, rustup, ["target", "add", target], { announce: true });
  }
}

async function tsEngine(): Promise<void> {
  await wasmTarget();
  // Built once per version of its sources, ~1 min on a cold machine, and cached in
  // ~/.cache/weft/ts-engine, so that the suites (test/ts-filters.test.ts) find it built.
  await step(
    "building weft's TypeScript filter engine (sdk/typescript/engine: about 1 min cold, then cached in ~/.cache/weft/ts-engine)",
    node,
    [
      "--input-type=module",
      "-e",
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a script for node -e, with a template literal of its own
      'import("./sdk/typescript/engine.ts").then((m) => m.engineWasm()).catch((e) => { process.stderr.write(`${e.message}\\n`); process.exit(1); })',
    ],
  );
}

// WEFT_K8S_VERSION picks another Kubernetes version, as test/k8s/cluster.ts does.
const k8sVersion = process.env.WEFT_K8S_VERSION ? [process.env.WEFT_K8S_VERSION] : [];

/** Installs and builds what is missing for `needs` (and the Debian packages every run uses); throws saying what failed. */
export async function setUp(needs: ReadonlySet<Need>): Promise<void> {
  await debianPackages();
  if (needs.has("ts-engine")) await tsEngine();
  // The Rust example filters (examples/filters/rust-pdk with crates.io's extism-pdk, rust-raw),
  // for the reference-host suite: about a minute cold (crates fetched, then compiled), well under
  // a second once built; cached in ~/.cache/weft/rust-filters by Cargo.lock. Without cargo or the
  // wasm32 target it fails, saying how to get them.
  if (needs.has("rust-filters")) {
    await wasmTarget();
    await step(
      "building the Rust example filters (test/support/rust-filters.ts: about a minute cold, then cached in ~/.cache/weft/rust-filters)",
      node,
      [path.join(root, "test/support/rust-filters.ts")],
    );
  }
  // A real etcd, kube-apiserver and kubectl for the tests that need a Kubernetes API server
  // (test/crds.test.ts), built from the Go module proxy (needs Go >= 1.26) and cached by version
  // in ~/.cache/weft/k8s: ~6 min on a cold machine, instant once cached (docs/k8s-test-env.md).
  // build-node.sh would build them too, but first on its own they get their own progress line.
  if (needs.has("k8s") || needs.has("k8s-node")) {
    await step(
      "building etcd, kube-apiserver, kube-controller-manager and kubectl (test/k8s/build.sh: about 6 min cold, then cached in ~/.cache/weft/k8s)",
      path.join(root, "test/k8s/build.sh"),
      k8sVersion,
    );
  }
  // The real node's binaries (kubelet, kube-scheduler, kube-proxy, containerd, CoreDNS) and its test
  // images, cached the same way: ~19 min on a cold machine, 43 s with a warm Go cache.
  if (needs.has("k8s-node")) {
    await step(
      "building the real node: kubelet, kube-scheduler, kube-proxy, containerd, CoreDNS and its test images (test/k8s/build-node.sh: about 19 min cold, 43 s with a warm Go cache)",
      path.join(root, "test/k8s/build-node.sh"),
      k8sVersion,
    );
  }
  // helm for the chart's test (test/control/install.test.ts), from the Go module proxy, cached.
  if (needs.has("helm"))
    await step("building helm (test/k8s/helm.ts, go install: a few minutes cold, then cached in ~/.cache/weft/helm)", node, [
      path.join(root, "test/k8s/helm.ts"),
    ]);
  // The Gateway API conformance suite and its echo images (test/control/conformance.test.ts), from
  // the Go module proxy, cached by version.
  if (needs.has("conformance"))
    await step(
      "building the Gateway API conformance suite and its images (test/k8s/build-conformance.sh: about 8 min CPU cold, 20 s with a warm Go cache)",
      path.join(root, "test/k8s/build-conformance.sh"),
      [],
    );
  // Jaeger all-in-one, the OTLP backend of the telemetry backends' suite, from the Go module proxy, cached.
  if (needs.has("jaeger"))
    await step("building Jaeger all-in-one (test/support/jaeger-build.ts: about 12 min cold, then cached in ~/.cache/weft/jaeger)", node, [
      path.join(root, "test/support/jaeger-build.ts"),
    ]);
}

if (import.meta.main) {
  const args = process.argv.slice(2);
  const unknown = args.filter((a) => !isNeed(a));
  if (unknown.length) {
    process.stderr.write(`unknown need ${unknown.join(", ")}: the needs are ${NEEDS.join(", ")}\n`);
    process.exit(2);
  }
  const started = Date.now();
  await setUp(new Set(args.length ? (args as Need[]) : NEEDS)).catch((e: Error) => {
    process.stderr.write(`setup failed: ${e.message}\n`);
    process.exit(1);
  });
  process.stdout.write(`setup: ready in ${elapsed(started)}\n`);
}
