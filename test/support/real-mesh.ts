// weft as a user installs it on a real node (test/k8s/node.ts): the images `npm run image`
// builds, pushed to the node's registry; `weft install --image`; the shop's plain manifests with
// the image from that registry (a kustomize overlay's images:). For test/control/real-pods.test.ts
// and bench/k8s/pods.ts. Root only: the node needs network namespaces, iptables and cgroups.
import { execFile } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import process from "node:process";
import { startCluster, type Cluster } from "../k8s/cluster.ts";
import { gatewayApiCrd } from "../k8s/gateway-api.ts";
import { buildImages } from "../../deploy/image/build.ts";
import { VERSION } from "../../deploy/image/images.ts";
import { pushImage } from "../../deploy/image/push.ts";

const root = path.resolve(import.meta.dirname ?? ".", "..", "..");
const NODE = path.join(root, "node_modules", ".bin", "node");
const SHOP = path.join(root, "examples", "shop");
export const SHOP_DEPLOYMENTS = ["frontend", "catalog-v1", "catalog-v2", "inventory"];

/** A container's status, as far as the tests read it. */
interface ContainerStatusJson {
  name: string;
  ready: boolean;
  started?: boolean;
  restartCount: number;
  state: { running?: unknown; terminated?: { exitCode: number; reason: string } };
  lastState?: { terminated?: { reason?: string } };
}

/** A pod (kubectl get pod -o json), as far as the tests read it. */
export interface PodJson {
  metadata: { name: string; labels: Record<string, string> };
  status: { phase: string; initContainerStatuses?: ContainerStatusJson[]; containerStatuses?: ContainerStatusJson[] };
}

export interface RealMesh {
  k8s: Cluster;
  kubectl(args: string[], input?: string): Promise<string>;
  /** The pods of namespace `ns`. */
  pods(ns: string): Promise<PodJson[]>;
  /** `weft ARGS` (this checkout's CLI) against the cluster. */
  weft(args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  /** The Node image's reference in the node's registry. */
  weftImage: string;
  shopImage: string;
  /** `weft install --image ... [extra]` applied, waiting for the control plane's rollout. */
  install(extra?: string[]): Promise<void>;
  stop(): Promise<void>;
}

export async function startRealMesh(): Promise<RealMesh> {
  if (process.getuid?.() !== 0) throw new Error("weft on a real node needs root (network namespaces, iptables, cgroups): run it as root");
  const [k8s, built] = await Promise.all([startCluster({ node: true }), buildImages()]);
  const node = k8s.node!;
  for (const ref of [`weft:${VERSION}`, `weft-shop:${VERSION}`])
    await pushImage(built.layout, ref, { registry: node.registry, insecure: true });
  const kubectl = (args: string[], input?: string) => k8s.kubectl(args, input);
  await kubectl(["apply", "-f", await gatewayApiCrd("httproutes")]);
  const weft = (args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
      execFile(
        NODE,
        ["bin/weft.ts", ...args],
        { cwd: root, encoding: "utf8", env: { ...process.env, KUBECONFIG: k8s.kubeconfig } },
        (e, stdout, stderr) => resolve({ code: e ? (typeof e.code === "number" ? e.code : 1) : 0, stdout, stderr }),
      ),
    );
  const weftImage = node.image(`weft:${VERSION}`);
  const install = async (extra: string[] = []) => {
    const out = await weft(["install", "--image", weftImage, ...extra]);
    if (out.code !== 0) throw new Error(`weft install failed: ${out.stderr}`);
    await kubectl(["apply", "-f", "-"], out.stdout);
    await kubectl(["rollout", "status", "deployment/weft-control", "-n", "weft-system", "--timeout=180s"]);
  };
  return {
    k8s,
    kubectl,
    pods: async (ns) => (JSON.parse(await kubectl(["get", "pods", "-n", ns, "-o", "json"])) as { items: PodJson[] }).items,
    weft,
    weftImage,
    shopImage: node.image(`weft-shop:${VERSION}`),
    install,
    stop: () => k8s.stop(),
  };
}

/** The shop as a user applies it (kubectl apply -k examples/shop), its image from the node's registry; waits for every rollout. */
export async function applyShop(mesh: RealMesh): Promise<void> {
  const overlay = await mkdtemp(path.join(tmpdir(), "weft-shop-overlay-"));
  try {
    await writeFile(
      path.join(overlay, "kustomization.yaml"),
      `resources: [${path.relative(overlay, SHOP)}]
images:
  - name: ghcr.io/weft-dev/weft-shop
    newName: ${mesh.shopImage.slice(0, mesh.shopImage.lastIndexOf(":"))}
    newTag: "${VERSION}"
`,
    );
    await mesh.kubectl(["apply", "-k", overlay]);
  } finally {
    await rm(overlay, { recursive: true, force: true });
  }
  for (const d of SHOP_DEPLOYMENTS) await mesh.kubectl(["rollout", "status", `deployment/${d}`, "-n", "shop", "--timeout=240s"]);
}

/** The weft proxies running on this machine (host PID namespace), with the pod each serves, from its environment. */
export async function sidecarProcesses(): Promise<{ pid: number; pod: string }[]> {
  const found: { pid: number; pod: string }[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = (await readFile(`/proc/${entry}/cmdline`, "utf8")).split("\0");
      if (!cmdline.includes("/opt/weft/weft.mjs") || !cmdline.includes("proxy")) continue;
      const env = Object.fromEntries(
        (await readFile(`/proc/${entry}/environ`, "utf8"))
          .split("\0")
          .map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
      );
      found.push({ pid: Number(entry), pod: `${env.POD_NAMESPACE}/${env.POD_NAME}` });
    } catch {
      // the process ended meanwhile
    }
  }
  return found;
}

/** Resident memory (KiB) of each sidecar, by pod. */
export async function sidecarRss(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const { pid, pod } of await sidecarProcesses()) {
    const kib = /VmRSS:\s+(\d+)/.exec(await readFile(`/proc/${pid}/status`, "utf8").catch(() => ""))?.[1];
    if (kib) out[pod] = Number(kib);
  }
  return out;
}
