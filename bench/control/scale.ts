// The control plane at scale, on a real kube-apiserver: N simulated sidecars (bench/control/
// fleet.ts) connected to one control plane process; a WasmFilter's config is changed and the
// time until every sidecar has received the new configuration is measured, with the control
// plane's memory and CPU. Bounded: each size runs 3 changes, each waited for at most 60 s.
//   node bench/control/scale.ts [--sizes 100,1000,2000] [--no-write]
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { networkInterfaces, tmpdir, cpus } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { createInterface } from "node:readline";
import { startCluster, freePorts } from "../../test/k8s/cluster.ts";
import { startRegistry } from "../../test/support/registry.ts";
import { builtFilter } from "../../sdk/build/cache.ts";
import { serviceYaml } from "../../test/support/service.ts";
import { RegistryClient } from "../../shared/oci-registry.ts";
import { CLK_TCK } from "../lib/proc.ts";
import { CONTROL_NODE_OPTIONS } from "../../control/install/manifests.ts";

const root = path.resolve(import.meta.dirname ?? ".", "..", "..");
const node = path.join(root, "node_modules", ".bin", "node");
const { values: opt } = parseArgs({
  options: { sizes: { type: "string", default: "100,1000,2000" }, "no-write": { type: "boolean", default: false } },
});
const sizes = opt.sizes.split(",").map(Number);
const CHANGES = 3;
const SERVICES = 20;
const log = (s: string) => process.stderr.write(`${s}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function procStats(pid: number): { rssMB: number; cpuSeconds: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const rssKB = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return { rssMB: rssKB / 1024, cpuSeconds: (Number(stat[11]) + Number(stat[12])) / CLK_TCK };
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;

// The control plane runs as it ships: the esbuild bundle.
execFileSync("npm", ["run", "--silent", "build"], { cwd: root, stdio: ["ignore", "ignore", "inherit"] });
const k8s = await startCluster({ controllerManager: false });
const registry = await startRegistry();
const scratch = mkdtempSync(path.join(tmpdir(), "weft-scale-"));
const results: unknown[] = [];
const children: ChildProcess[] = [];
try {
  const kubectl = (args: string[], input?: string) => k8s.kubectl(args, input);
  for (const f of ["weft.dev_wasmfilters.yaml", "weft.dev_trafficpolicies.yaml", "weft.dev_accesspolicies.yaml"])
    await kubectl(["apply", "-f", path.join(root, "deploy", "crds", f)]);
  await kubectl(["wait", "--for=condition=Established", "crd/wasmfilters.weft.dev", "--timeout=30s"]);
  const filter = await builtFilter("header-rewrite");
  const url = `oci://${registry.host}/filters/header-rewrite:1.0.0`;
  await new RegistryClient().pushWasm(url, filter.wasm, { plainHttp: true, annotations: {} });
  const host =
    Object.values(networkInterfaces())
      .flat()
      .find((a) => a?.family === "IPv4" && !a.internal)?.address ?? "10.0.0.10";
  const services = Array.from({ length: SERVICES }, (_, i) =>
    serviceYaml({ namespace: "scale", name: `svc-${i}`, targetPort: 8080, address: host }),
  );
  await kubectl(
    ["apply", "-f", "-"],
    [
      "apiVersion: v1\nkind: Namespace\nmetadata: { name: scale }\n",
      "apiVersion: v1\nkind: ServiceAccount\nmetadata: { name: sim, namespace: scale }\n",
      ...services,
    ].join("---\n"),
  );
  await kubectl(
    ["apply", "-f", "-"],
    `apiVersion: weft.dev/v1alpha1
kind: WasmFilter
metadata: { name: bench, namespace: scale }
spec:
  selector: { matchLabels: { app: sim } }
  url: ${url}
  sha256: "${filter.sha256}"
  config: { response: { set: [{ name: x-marker, value: m0 }] } }
`,
  );
  const tokenFile = path.join(scratch, "token");
  writeFileSync(tokenFile, (await kubectl(["create", "token", "sim", "-n", "scale", "--audience", "weft", "--duration", "2h"])).trim());

  let pods = 0;
  let change = 0;
  for (const size of sizes) {
    // Pods are only objects here (no kubelet): what the control plane needs to know a sidecar.
    while (pods < size) {
      const chunk = Array.from(
        { length: Math.min(250, size - pods) },
        (_, i) => `apiVersion: v1
kind: Pod
metadata: { name: sim-${pods + i}, namespace: scale, labels: { app: sim }, annotations: { weft.dev/status: '{"version":"bench"}' } }
spec: { serviceAccountName: sim, containers: [{ name: app, image: example.com/app:1 }] }`,
      );
      await kubectl(["apply", "-f", "-"], chunk.join("\n---\n"));
      pods += chunk.length;
    }
    log(`size ${size}: ${pods} pods`);
    const [port] = (await freePorts(1)) as [number];
    const control: ChildProcess = spawn(
      node,
      [
        "dist/weft.mjs",
        "control",
        "--kubeconfig",
        k8s.kubeconfig,
        "--namespace",
        "scale",
        "--plain-http",
        "--address",
        "127.0.0.1",
        "--port",
        String(port),
        "--insecure-registries",
        registry.host,
        "--no-leader-election",
      ],
      {
        cwd: root,
        // As weft install's Deployment runs it.
        env: { ...process.env, WEFT_LOG_LEVEL: "warn", NODE_ENV: "production", NODE_OPTIONS: CONTROL_NODE_OPTIONS },
        stdio: ["ignore", "ignore", "inherit"],
      },
    );
    children.push(control);
    const base = `http://127.0.0.1:${port}`;
    for (let i = 0; i < 300; i++) {
      if (
        await fetch(`${base}/healthz`).then(
          (r) => r.ok,
          () => false,
        )
      )
        break;
      await sleep(100);
    }
    const fleet = spawn(node, ["bench/control/fleet.ts", base, tokenFile, "scale", "sim-", String(size), '"x-marker","value":"(m\\d+)"'], {
      cwd: root,
      stdio: ["ignore", "pipe", "inherit"],
    });
    children.push(fleet);
    const latest = new Map<string, { marker: string | null; at: number }>();
    let connected = false;
    const errors: string[] = [];
    createInterface({ input: fleet.stdout! }).on("line", (line) => {
      const m = JSON.parse(line) as { connected?: number; pod?: string; marker?: string | null; at?: number; error?: string };
      if (m.connected) connected = true;
      else if (m.error) errors.push(`${m.pod}: ${m.error}`);
      else if (m.pod) latest.set(m.pod, { marker: m.marker ?? null, at: m.at! });
    });
    const waitAll = async (marker: string, timeoutMs: number) => {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        let n = 0;
        for (const v of latest.values()) if (v.marker === marker) n++;
        if (n === size) return true;
        await sleep(10);
      }
      return false;
    };
    for (let i = 0; i < 600 && !connected; i++) await sleep(100);
    const initial = `m${change}`;
    if (!(await waitAll(initial, 60_000)))
      throw new Error(`size ${size}: not every simulated sidecar got the initial configuration (${errors.slice(0, 3).join("; ")})`);
    const idle = procStats(control.pid!);
    const runs: { allMs: number; p50Ms: number; p99Ms: number }[] = [];
    let peak = idle.rssMB;
    const cpuBefore = procStats(control.pid!).cpuSeconds;
    for (let c = 0; c < CHANGES; c++) {
      const marker = `m${++change}`;
      const t0 = Date.now();
      await kubectl([
        "patch",
        "wasmfilter",
        "bench",
        "-n",
        "scale",
        "--type=merge",
        "-p",
        JSON.stringify({ spec: { config: { response: { set: [{ name: "x-marker", value: marker }] } } } }),
      ]);
      const sampler = setInterval(() => (peak = Math.max(peak, procStats(control.pid!).rssMB)), 50);
      const ok = await waitAll(marker, 60_000);
      clearInterval(sampler);
      if (!ok) throw new Error(`size ${size}: not every simulated sidecar got change ${marker} within 60 s`);
      const delays = [...latest.values()].map((v) => v.at - t0).sort((a, b) => a - b);
      runs.push({ allMs: delays.at(-1)!, p50Ms: percentile(delays, 50), p99Ms: percentile(delays, 99) });
      await sleep(500);
    }
    const after = procStats(control.pid!);
    const result = {
      sidecars: size,
      services: SERVICES,
      changes: runs,
      medianAllMs: [...runs.map((r) => r.allMs)].sort((a, b) => a - b)[1],
      medianP99Ms: [...runs.map((r) => r.p99Ms)].sort((a, b) => a - b)[1],
      controlRssIdleMB: Math.round(idle.rssMB),
      controlRssPeakMB: Math.round(peak),
      controlCpuSecondsPerChange: Number(((after.cpuSeconds - cpuBefore) / CHANGES).toFixed(3)),
      errors: errors.length,
    };
    log(JSON.stringify(result));
    results.push(result);
    fleet.kill();
    control.kill("SIGTERM");
    await sleep(1000);
  }
} finally {
  for (const c of children) c.kill("SIGKILL");
  await registry.stop();
  await k8s.stop();
}

const md = [
  "# Control plane at scale: latest run",
  "",
  `Generated by \`node bench/control/scale.ts --sizes ${sizes.join(",")}\` on ${new Date().toISOString()}: one control plane process (Node ${process.versions.node}, the esbuild bundle, NODE_OPTIONS=${CONTROL_NODE_OPTIONS} as weft install sets it), a real kube-apiserver ${k8s.version} and etcd on the same ${cpus().length}-core machine, simulated sidecars (bench/control/fleet.ts) in a separate process, ${SERVICES} Services, one WasmFilter selecting every sidecar. A change is \`kubectl patch\` of the WasmFilter's config; the time is until each sidecar has received the configuration carrying it (each acknowledges at once).`,
  "",
  "| sidecars | all received (median of 3 changes), ms | p99, ms | p50, ms | control plane RSS idle / peak, MB | control plane CPU per change, s |",
  "|--:|--:|--:|--:|--:|--:|",
  ...(
    results as {
      sidecars: number;
      medianAllMs: number;
      medianP99Ms: number;
      changes: { p50Ms: number }[];
      controlRssIdleMB: number;
      controlRssPeakMB: number;
      controlCpuSecondsPerChange: number;
    }[]
  ).map(
    (r) =>
      `| ${r.sidecars} | ${r.medianAllMs} | ${r.medianP99Ms} | ${[...r.changes.map((c) => c.p50Ms)].sort((a, b) => a - b)[1]} | ${r.controlRssIdleMB} / ${r.controlRssPeakMB} | ${r.controlCpuSecondsPerChange} |`,
  ),
  "",
  "Targets (issue 4): every one of 2,000 sidecars acknowledges within 2 s at p99; the control plane stays under 300 MB.",
  "",
].join("\n");
process.stdout.write(md);
if (!opt["no-write"]) {
  const dir = path.join(root, "bench", "results");
  mkdirSync(dir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19);
  writeFileSync(path.join(dir, `control-scale-${stamp}Z.json`), `${JSON.stringify({ sizes, results }, null, 2)}\n`);
  writeFileSync(path.join(dir, "control-scale.md"), md);
  log(`wrote bench/results/control-scale-${stamp}Z.json and bench/results/control-scale.md`);
}
