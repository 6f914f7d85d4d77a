// Pod start-to-ready on the real node with and without weft's sidecar, median of --count each,
// and the sidecars' resident memory once idle. A pod is the shop's catalog (weft-shop image,
// HTTP readiness probe on /products); "ready" is its Ready condition as kubectl sees it, polled
// every 100 ms from the moment `kubectl apply` returns. Root only.
//   node bench/k8s/pods.ts [--count 10]
import { parseArgs } from "node:util";
import { sidecarRss, startRealMesh, type RealMesh } from "../../test/support/real-mesh.ts";

const { values } = parseArgs({ options: { count: { type: "string", default: "10" } } });
const COUNT = Number(values.count);

const pod = (mesh: RealMesh, namespace: string, name: string) =>
  JSON.stringify({
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace, labels: { app: "bench" } },
    spec: {
      terminationGracePeriodSeconds: 1,
      containers: [
        {
          name: "catalog",
          image: mesh.shopImage,
          command: ["node", "/opt/shop/catalog.mjs"],
          ports: [{ containerPort: 8080 }],
          readinessProbe: { httpGet: { path: "/products", port: 8080 }, periodSeconds: 1 },
        },
      ],
    },
  });

/** Milliseconds from apply to Ready. */
async function startToReady(mesh: RealMesh, namespace: string, name: string): Promise<number> {
  await mesh.kubectl(["apply", "-f", "-"], pod(mesh, namespace, name));
  const started = performance.now();
  for (;;) {
    const ready = await mesh.kubectl([
      "get",
      "pod",
      name,
      "-n",
      namespace,
      "-o",
      `jsonpath={.status.conditions[?(@.type=="Ready")].status}`,
    ]);
    if (ready.trim() === "True") return performance.now() - started;
    if (performance.now() - started > 120_000) throw new Error(`pod ${namespace}/${name} not Ready in 120 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const mesh = await startRealMesh();
try {
  await mesh.install();
  await mesh.kubectl(["create", "namespace", "bench-plain"]);
  await mesh.kubectl(["create", "namespace", "bench-mesh"]);
  await mesh.kubectl(["label", "namespace", "bench-mesh", "weft.dev/inject=enabled"]);
  // The images are on the node after one pod of each kind: what is measured is start, not pull.
  for (const ns of ["bench-plain", "bench-mesh"]) await startToReady(mesh, ns, "warm");
  const times: Record<string, number[]> = { "without sidecar": [], "with sidecar": [] };
  for (let i = 0; i < COUNT; i++) {
    times["without sidecar"]!.push(await startToReady(mesh, "bench-plain", `p${i}`));
    times["with sidecar"]!.push(await startToReady(mesh, "bench-mesh", `m${i}`));
  }
  for (const [what, xs] of Object.entries(times))
    console.log(
      `${what}: median ${(median(xs) / 1000).toFixed(2)} s, min ${(Math.min(...xs) / 1000).toFixed(2)} s, max ${(Math.max(...xs) / 1000).toFixed(2)} s (${xs.length} pods)`,
    );
  // Idle: nothing calls them; let start-up garbage go first.
  await new Promise((r) => setTimeout(r, 10_000));
  const rss = Object.entries(await sidecarRss())
    .filter(([p]) => p.startsWith("bench-mesh/"))
    .map(([, kib]) => kib / 1024);
  console.log(
    `idle sidecar RSS: median ${median(rss).toFixed(0)} MiB, min ${Math.min(...rss).toFixed(0)}, max ${Math.max(...rss).toFixed(0)} (${rss.length} sidecars)`,
  );
} finally {
  await mesh.stop();
}
