// The images `npm run image` builds: what goes in each, layer by layer, and how each runs.
// Layers shared between images (the base, Node's runtime, the bundle) are the same blobs, so a
// registry or a node stores them once.
import { readdir } from "node:fs/promises";
import path from "node:path";
import pkg from "../../package.json" with { type: "json" };
import { WEFT_UID, baseTree } from "./base.ts";
import type { HashMemo } from "./hash.ts";
import { initToolsTree } from "./init-tools.ts";
import { marketplaceTree } from "./marketplace.ts";
import { runtimePath, runtimeTree, type RuntimeName } from "./runtime.ts";
import { quantityValue } from "../../control/inject/quantity.ts";
import { runtimeEnv } from "../../control/inject/runtime-env.ts";
import { DEFAULT_SETTINGS } from "../../control/inject/settings.ts";
import { Tree } from "./tree.ts";
import type { RunConfig } from "./oci.ts";

export const VERSION: string = pkg.version;
/** Where the injector and the control plane's manifest run the bundle from (control/inject/settings.ts). */
export const BUNDLE_DIR = "/opt/weft";
export const SHOP_DIR = "/opt/shop";
/** The shop's apps, each an examples/shop/<name>.ts. */
export const SHOP_APPS = ["catalog", "frontend", "inventory"];

/** A layer still to be built: its name and how to make its tree. */
export interface LayerPlan {
  name: string;
  tree: (memo: HashMemo) => Promise<Tree>;
}

export interface ImagePlan {
  ref: string;
  layers: LayerPlan[];
  config: RunConfig;
}

/** The bundled files of `dir` under `at`, read-only for everyone. */
async function filesTree(dir: string, at: string, tree = new Tree()): Promise<Tree> {
  for (const e of await readdir(dir, { withFileTypes: true })) {
    if (e.isDirectory()) await filesTree(path.join(dir, e.name), path.join(at, e.name), tree);
    else tree.file(path.join(at, e.name), path.join(dir, e.name), { mode: 0o644 });
  }
  return tree;
}

// /usr/sbin for iptables and ip; nothing else is on PATH.
const PATH = "PATH=/usr/local/bin:/usr/sbin:/usr/bin";
const CERTS = "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt";
const labels = (title: string, description: string) => ({
  "org.opencontainers.image.title": title,
  "org.opencontainers.image.description": description,
  "org.opencontainers.image.version": VERSION,
  "org.opencontainers.image.licenses": "Apache-2.0",
});
const PROXY_PORTS = { "15000/tcp": {}, "15001/tcp": {}, "15006/tcp": {} };

// How each runtime starts the bundle, as control/inject/settings.ts's default commands do.
const START: Record<RuntimeName, string[]> = {
  node: ["node", `${BUNDLE_DIR}/weft.mjs`],
  deno: ["deno", "run", "--allow-all", `${BUNDLE_DIR}/weft.mjs`],
  bun: ["bun", `${BUNDLE_DIR}/weft.mjs`],
};
// Each runtime's writes go to /tmp (the injected pod's emptyDir), since the root filesystem is read-only.
const RUNTIME_ENV: Record<RuntimeName, string[]> = {
  node: [],
  // Deno keeps its module and code caches in DENO_DIR, and checks for updates unless told not to.
  deno: ["DENO_DIR=/tmp/deno", "DENO_NO_UPDATE_CHECK=1"],
  // Bun caches transpiled files of 50 KB and more under ~/.bun; 0 turns that off.
  bun: ["BUN_RUNTIME_TRANSPILER_CACHE_PATH=0"],
};

/**
 * The sidecar's runtime settings (its heap's, and Node's --disable-sigusr1: runtime-env.ts) for
 * the injector's default memory limit; the injector sets them again from each pod's own limit.
 * The control plane's Deployment, which runs the Node image too, gives its own NODE_OPTIONS.
 */
const sidecarEnv = (name: RuntimeName) =>
  Object.entries(runtimeEnv(name, quantityValue(DEFAULT_SETTINGS.resources.limits.memory))).map(([k, v]) => `${k}=${v}`);

/**
 * The four images. `bundles`: the folders made by bundle.ts. The weft bundle's chunks find
 * the marketplace index at ../../plugins/index.json from chunks/ (sdk/cli/marketplace.ts,
 * which the control plane reads to resolve marketplace:// URLs), so it goes to /opt/plugins; the
 * Node image adds the built modules there.
 */
export function imagePlans(bundles: { weft: string; shop: string }): ImagePlan[] {
  const root = path.resolve(import.meta.dirname ?? ".", "..", "..");
  const base: LayerPlan = { name: "base: /etc, CA certificates", tree: async () => baseTree() };
  const runtime = (name: RuntimeName): LayerPlan => ({
    name: `${name} runtime and its libraries`,
    tree: (memo) => runtimeTree(name, memo),
  });
  const weft: LayerPlan = {
    name: "weft bundle (npm run build)",
    tree: async () =>
      (await filesTree(bundles.weft, BUNDLE_DIR)).file("/opt/plugins/index.json", path.join(root, "plugins", "index.json"), {
        mode: 0o644,
      }),
  };
  const weftImage = (name: RuntimeName, suffix: string, extra: LayerPlan[]): ImagePlan => ({
    ref: `weft:${VERSION}${suffix}`,
    layers: [base, runtime(name), ...extra, weft],
    config: {
      User: `${WEFT_UID}:${WEFT_UID}`,
      Env: [PATH, CERTS, ...RUNTIME_ENV[name], ...sidecarEnv(name)],
      Cmd: [...START[name], "--help"],
      WorkingDir: "/",
      ExposedPorts: PROXY_PORTS,
      Labels: labels(`weft${suffix}`, `weft sidecar and CLI on ${name} (${runtimePath(name)})`),
    },
  });
  return [
    // The Node image is also the control plane's: it serves the marketplace's modules (marketplace.ts).
    weftImage("node", "", [
      { name: "iptables (nft and legacy) and ip for weft init", tree: initToolsTree },
      { name: "marketplace modules /opt/plugins/NAME/VERSION.wasm", tree: marketplaceTree },
    ]),
    weftImage("deno", "-deno", []),
    weftImage("bun", "-bun", []),
    {
      ref: `weft-shop:${VERSION}`,
      layers: [base, runtime("node"), { name: "shop demo apps", tree: () => filesTree(bundles.shop, SHOP_DIR) }],
      config: {
        // Not the proxy's 1337: weft init lets that user's traffic out unredirected, and the
        // apps' calls must go through their sidecar.
        User: "65534:65534",
        // The apps listen on $HOST:$PORT (examples/shop/mesh.ts); in a pod, on every address.
        Env: [PATH, CERTS, "HOST=0.0.0.0", "PORT=8080"],
        Cmd: ["node", `${SHOP_DIR}/frontend.mjs`],
        WorkingDir: "/",
        ExposedPorts: { "8080/tcp": {} },
        Labels: labels("weft-shop", `the shop demo's apps: node ${SHOP_DIR}/{${SHOP_APPS.join(",")}}.mjs`),
      },
    },
  ];
}
