// The Gateway API conformance suite's MESH-HTTP profile against weft on the real node, end to
// end: the cached suite (build-conformance.sh), the node and weft as a user installs it
// (startRealMesh), every standard-channel Gateway API CRD of the suite's version, the suite's
// rebuilt images in the node's registry, then the suite binary; its ConformanceReport goes into
// docs/conformance/. Before the node is stopped, what explains a failure is saved: the weft pods'
// logs and each sidecar's /config_dump. Root only (the node). See docs/design/conformance.md.
//
//   node_modules/.bin/node test/k8s/conformance/run.ts
//   node_modules/.bin/node test/k8s/conformance/run.ts --run-test MeshHTTPRouteWeight --no-report
//   node_modules/.bin/node test/k8s/conformance/run.ts -- -skip-tests MeshFrontend   # more suite flags
import { execFile, spawn } from "node:child_process";
import { createWriteStream } from "node:fs";
import { copyFile, mkdir, mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import { VERSION } from "../../../deploy/image/images.ts";
import { pushImage } from "../../../deploy/image/push.ts";
import { type RealMesh, sidecarProcesses, startRealMesh } from "../../support/real-mesh.ts";
import { GATEWAY_API_VERSION, gatewayApiCrdDir } from "../gateway-api.ts";
import { waitEstablished } from "../cluster.ts";

const root = path.resolve(import.meta.dirname ?? ".", "..", "..", "..");
const BUILD = path.join(root, "test", "k8s", "build-conformance.sh");
const PROFILE = "MESH-HTTP";
// What weft claims beyond the profile's core: every feature whose tests passed here with all
// features claimed (docs/design/conformance.md, "Results"). A claimed feature whose test fails
// makes the report a failure, so claim only what passes. Not claimed, and why (its test fails):
// MeshClusterIPMatching (routes follow Host).
const FEATURES = [
  "Mesh",
  "HTTPRoute",
  "MeshConsumerRoute",
  "MeshHTTPRouteBackendRequestHeaderModification",
  "MeshHTTPRouteNamedRouteRule",
  "MeshHTTPRouteQueryParamMatching",
  "MeshHTTPRouteRedirectPath",
  "MeshHTTPRouteRedirectPort",
  "MeshHTTPRouteSchemeRedirect",
  "MeshHTTPRouteRewritePath",
  // Gateway API features that only run mesh tests outside the profile here (MeshFrontend,
  // MeshPorts, MeshHTTPRoute30xRedirect); the report counts them in no profile.
  "HTTPRouteResponseHeaderModification",
  "HTTPRouteParentRefPort",
  "HTTPRoute303RedirectStatusCode",
  "HTTPRoute307RedirectStatusCode",
  "HTTPRoute308RedirectStatusCode",
];
// The namespaces the suite's mesh manifests create.
const MESH_NAMESPACES = ["gateway-conformance-mesh", "gateway-conformance-mesh-consumer"];

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    "run-test": { type: "string" },
    features: { type: "string", default: FEATURES.join(",") },
    "timeout-minutes": { type: "string", default: "40" },
    report: { type: "string", default: path.join(root, "docs", "conformance", `weft-${GATEWAY_API_VERSION}-mesh-http.yaml`) },
    "no-report": { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (values.help) {
  process.stdout.write(
    "usage: run.ts [--run-test NAME] [--features A,B] [--timeout-minutes N] [--report FILE | --no-report] [-- SUITE FLAGS]\n",
  );
  process.exit(0);
}
const timeoutMinutes = Number(values["timeout-minutes"]);
if (!(timeoutMinutes > 0)) throw new Error(`--timeout-minutes must be a positive number, got "${values["timeout-minutes"]}"`);

const started = Date.now();
const say = (s: string) => process.stderr.write(`[conformance ${((Date.now() - started) / 1000).toFixed(0).padStart(4)}s] ${s}\n`);

/** Runs a command to completion; rejects with its stderr. */
function exec(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(cmd, args, { encoding: "utf8", env, maxBuffer: 256 * 1024 * 1024 }, (e, stdout, stderr) =>
      e ? reject(new Error(`${cmd} ${args.join(" ")} failed: ${(stderr || e.message).trim()}`)) : resolve(stdout),
    ),
  );
}

/** build-conformance.sh (instant when cached); its output directory, the last line on stdout. */
async function buildSuite(): Promise<string> {
  const child = spawn(BUILD, [], { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  child.stdout.on("data", (d: Buffer) => {
    out += d;
  });
  const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
  const dir = out.trim().split("\n").pop();
  if (code !== 0 || !dir) throw new Error(`${BUILD} failed (exit ${code}): its log is above`);
  return dir;
}

/** The suite's images (images.txt: upstream repository, layout tag, name) into the node's registry. */
async function pushSuiteImages(mesh: RealMesh, out: string): Promise<void> {
  const list = await readFile(path.join(out, "images", "images.txt"), "utf8");
  for (const line of list.split("\n")) {
    const fields = line.trim().split(/\s+/);
    if (fields.length !== 3 || fields[0].startsWith("#")) continue;
    await pushImage(path.join(out, "images", "oci"), fields[1], { registry: mesh.k8s.node!.registry, insecure: true, as: fields[2] });
  }
}

/** The suite binary, its output teed to `log`; resolves with its exit code, killed after the deadline. */
async function runSuite(mesh: RealMesh, out: string, args: string[], log: string): Promise<number | null> {
  const file = createWriteStream(log);
  const child = spawn(path.join(out, "bin", "gateway-api-conformance.test"), args, {
    cwd: out,
    env: { ...process.env, KUBECONFIG: mesh.k8s.kubeconfig },
    stdio: ["ignore", "pipe", "pipe"],
  });
  for (const stream of [child.stdout, child.stderr])
    stream.on("data", (d: Buffer) => {
      process.stdout.write(d);
      file.write(d);
    });
  // -test.timeout makes the binary panic with every goroutine's stack; this is the backstop for
  // a binary that does not get that far, a minute later.
  const backstop = setTimeout(() => child.kill("SIGKILL"), (timeoutMinutes + 1) * 60_000);
  const stop = () => child.kill("SIGTERM");
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  const code = await new Promise<number | null>((resolve) =>
    child.on("close", (exit, signal) => {
      if (signal) say(`the suite was killed by ${signal} (past --timeout-minutes, or interrupted): it prints no results then`);
      resolve(exit);
    }),
  );
  clearTimeout(backstop);
  process.off("SIGINT", stop);
  process.off("SIGTERM", stop);
  await new Promise((resolve) => file.end(resolve));
  return code;
}

/** What explains a failure, before the node goes: pods, weft's logs, each sidecar's config. */
async function saveDiagnostics(mesh: RealMesh, dir: string): Promise<void> {
  const save = async (name: string, fn: () => Promise<string>) =>
    writeFile(path.join(dir, name), await fn().catch((e: Error) => `(failed: ${e.message})\n`));
  await save("pods.txt", () => mesh.kubectl(["get", "pods", "-A", "-o", "wide"]));
  await save("httproutes.yaml", () => mesh.kubectl(["get", "httproutes", "-A", "-o", "yaml"]));
  await save("events.txt", () => mesh.kubectl(["get", "events", "-A", "--sort-by=.lastTimestamp"]));
  await save("weft-control.log", () =>
    mesh.kubectl(["logs", "-n", "weft-system", "-l", "app.kubernetes.io/name=weft-control", "--prefix", "--tail=-1"]),
  );
  for (const ns of MESH_NAMESPACES)
    for (const pod of await mesh.pods(ns).catch(() => []))
      await save(`${ns}.${pod.metadata.name}.weft-proxy.log`, () =>
        mesh.kubectl(["logs", "-n", ns, pod.metadata.name, "-c", "weft-proxy"]),
      );
  for (const { pid, pod } of await sidecarProcesses())
    await save(`${pod.replace("/", ".")}.config_dump.json`, () =>
      exec("nsenter", ["-t", String(pid), "-n", "curl", "-sS", "--max-time", "10", "http://127.0.0.1:15000/config_dump"]),
    );
}

/** Each subtest's result from `go test -v` output: name -> PASS | FAIL | SKIP. */
function results(output: string): Map<string, string> {
  const found = new Map<string, string>();
  for (const m of output.matchAll(/^\s*--- (PASS|FAIL|SKIP): TestConformance\/(\w+) /gm)) found.set(m[2], m[1]);
  return found;
}

let mesh: RealMesh | undefined;
let code: number | null = null;
const scratch = await mkdtemp(path.join(tmpdir(), "weft-conformance-"));
const diagnostics = path.join(scratch, "diagnostics");
const suiteReport = path.join(scratch, "report.yaml");
const suiteLog = path.join(scratch, "suite.log");
try {
  say("building (or finding) the conformance suite");
  const out = await buildSuite();
  say("starting the node and building weft's images");
  mesh = await startRealMesh();
  say(`installing the standard-channel Gateway API ${GATEWAY_API_VERSION} CRDs`);
  // Server-side: the HTTPRoute CRD is too big for client-side apply's last-applied annotation,
  // and startRealMesh has applied that one already (hence --force-conflicts).
  const crds = await gatewayApiCrdDir();
  await mesh.kubectl(["apply", "--server-side", "--force-conflicts", "-f", crds]);
  // Every CRD there is now (weft's come with the install below); not `-f crds`, whose
  // ValidatingAdmissionPolicy has no Established condition.
  await waitEstablished(mesh.kubectl, ["crd", "--all"], 60);
  say("weft install");
  await mesh.install();
  say("pushing the suite's images to the node's registry");
  await pushSuiteImages(mesh, out);
  const args = [
    "-test.run",
    "^TestConformance$",
    "-test.v",
    "-test.timeout",
    `${timeoutMinutes}m`,
    "-weft.images",
    path.join(out, "images", "images.txt"),
    "-weft.registry",
    "registry.weft.test",
    "-conformance-profiles",
    PROFILE,
    "-supported-features",
    values.features,
    "-namespace-labels",
    "weft.dev/inject=enabled",
    // The echo pods stay for the diagnostics below; the node goes anyway.
    "-cleanup-base-resources=false",
    ...(values["run-test"] ? ["-run-test", values["run-test"]] : []),
    ...(values["no-report"]
      ? []
      : [
          "-organization",
          "weft",
          "-project",
          "weft",
          "-url",
          "https://github.com/weft-dev/weft",
          "-version",
          VERSION,
          "-contact",
          "weft maintainers",
          "-report-output",
          suiteReport,
        ]),
    ...positionals,
  ];
  say(`running the suite: gateway-api-conformance.test ${args.join(" ")}`);
  code = await runSuite(mesh, out, args, suiteLog);
  say(`the suite ended${code === null ? "" : ` with exit code ${code}`}; saving diagnostics in ${diagnostics}`);
  await mkdir(diagnostics, { recursive: true });
  await saveDiagnostics(mesh, diagnostics);
} finally {
  if (mesh) {
    say("stopping the node");
    await mesh.stop();
  }
}

const output = await readFile(suiteLog, "utf8").catch(() => "");
for (const [name, result] of results(output)) process.stdout.write(`${result.padEnd(4)} ${name}\n`);
if (!values["no-report"]) {
  const report = await readFile(suiteReport, "utf8").catch(() => undefined);
  if (report === undefined) say(`the suite wrote no report (it writes one only when it gets to the end): see ${suiteLog}`);
  else {
    await mkdir(path.dirname(values.report), { recursive: true });
    await copyFile(suiteReport, values.report);
    say(`report: ${path.relative(root, values.report)}`);
  }
}
say(`suite log ${suiteLog}, diagnostics ${diagnostics}; wall time ${((Date.now() - started) / 1000).toFixed(0)} s, start to report`);
process.exitCode = code === 0 ? 0 : 1;
