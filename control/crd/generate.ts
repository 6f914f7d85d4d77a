// Writes what is generated from the valibot schemas in control/resources/ and the install
// manifests: the CRDs in deploy/crds/, the field tables in docs/resources.md and the Helm
// chart in deploy/helm/weft.
//   node_modules/.bin/node control/crd/generate.ts           # write them
//   node_modules/.bin/node control/crd/generate.ts --check   # exit 1 if a file in the repository differs
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import process from "node:process";
import { GROUP } from "../resources/meta.ts";
import { customResourceDefinition, KINDS } from "./crds.ts";
import { withFieldTables } from "./docs.ts";
import { toYaml } from "./yaml.ts";
import { helmChart } from "../install/helm.ts";
import { LOCAL_WORKLOAD_KIND } from "../local/workload.ts";

export const ROOT = path.resolve(import.meta.dirname ?? path.dirname(new URL(import.meta.url).pathname), "..", "..");
const DOCS = "docs/resources.md";
const LOCAL_DOCS = "docs/local-mode.md";
const HEADER =
  "# Generated from control/resources/*.ts by control/crd/generate.ts: do not edit; run\n# node_modules/.bin/node control/crd/generate.ts\n";

/** Repository-relative path -> the content the schemas give it. */
export function generatedFiles(root = ROOT): Map<string, string> {
  const files = new Map<string, string>();
  for (const k of KINDS) files.set(`deploy/crds/${GROUP}_${k.plural}.yaml`, HEADER + toYaml(customResourceDefinition(k)));
  files.set(DOCS, withFieldTables(readFileSync(path.join(root, DOCS), "utf8"), DOCS));
  // LocalWorkload has no CRD (only weft up reads it), but its reference is generated the same way.
  files.set(LOCAL_DOCS, withFieldTables(readFileSync(path.join(root, LOCAL_DOCS), "utf8"), LOCAL_DOCS, [LOCAL_WORKLOAD_KIND]));
  for (const [file, text] of helmChart()) files.set(file, text);
  return files;
}

const differs = (root: string, file: string, text: string) => {
  const at = path.join(root, file);
  return !existsSync(at) || readFileSync(at, "utf8") !== text;
};

/** The generated files that are missing under root or differ from what the schemas give. */
export function staleFiles(root = ROOT): string[] {
  return [...generatedFiles(root)].filter(([file, text]) => differs(root, file, text)).map(([file]) => file);
}

if (import.meta.main ?? process.argv[1] === new URL(import.meta.url).pathname) {
  if (process.argv.includes("--check")) {
    const stale = staleFiles();
    if (stale.length) {
      process.stderr.write(
        `out of date with control/resources/*.ts and control/install/manifests.ts: ${stale.join(", ")}\nrun node_modules/.bin/node control/crd/generate.ts and commit the result\n`,
      );
      process.exit(1);
    }
    process.stdout.write("deploy/crds, deploy/helm and docs/resources.md match the schemas\n");
  } else {
    for (const [file, text] of generatedFiles()) {
      if (!differs(ROOT, file, text)) continue;
      mkdirSync(path.dirname(path.join(ROOT, file)), { recursive: true });
      writeFileSync(path.join(ROOT, file), text);
      process.stdout.write(`wrote ${file}\n`);
    }
  }
}
