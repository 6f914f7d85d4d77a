// Which part of weft may import which (CONTRIBUTING.md, "Where things live"; docs/architecture.md):
// every relative import between the top-level folders, `import type` and dynamic `import("...")`
// too, checked against ALLOWED. Types count: a type-only import is erased at run time, but the
// importing part still cannot be read, changed or moved without the other. `npm test` runs this
// before the type check (test/run.ts); alone:
//   node test/boundaries.ts [ROOT]     # exit 1 with a line per forbidden import
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import process from "node:process";
import { importedSpecifiers } from "./imports.ts";

/**
 * Each part and the other parts it may import (besides itself and npm packages). One direction
 * only, so the parts form layers: shared <- proxy <- sdk <- control <- bin, deploy <- test, bench.
 */
export const ALLOWED: Readonly<Record<string, readonly string[]>> = {
  // Code every part may use (the logger, the OCI registry client, the filter config schema,
  // what a command returns): it imports nothing of weft, so any part may take it.
  shared: [],
  // The sidecar: its bundle chunk must not pull in the SDK's compiler or the control plane.
  proxy: ["shared"],
  // Builds and tests filters with the proxy's own filter runtime, so a filter behaves as it will in the sidecar.
  sdk: ["proxy", "shared"],
  // Computes the proxy's configuration, checks modules as the proxy loads them, and builds
  // marketplace filters from source with the SDK in local mode.
  control: ["sdk", "proxy", "shared"],
  // The command line and the image builder: entry points over the parts.
  bin: ["control", "sdk", "proxy", "shared"],
  deploy: ["control", "sdk", "proxy", "shared"],
  // Filter sources and the demo's services: they import only the SDK by its package name (@weft/sdk) and npm packages.
  plugins: [],
  examples: [],
  // Suites and benchmarks drive every part; bench starts what test/support starts.
  test: ["bin", "control", "sdk", "proxy", "shared", "deploy", "plugins", "examples", "bench"],
  bench: ["bin", "control", "sdk", "proxy", "shared", "deploy", "plugins", "examples", "test"],
};

/** Not sources: npm's, esbuild's output, and dot-folders (.git, .ci's scripts are shell, a local .weft state). */
const SKIP = new Set(["node_modules", "dist"]);
const SOURCE = /\.(?:[cm]?ts|[cm]?js)$/;

export interface Violation {
  file: string;
  line: number;
  specifier: string;
  /** The imported file, relative to the root. */
  target: string;
  rule: string;
}

function sources(root: string, dir = ""): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(path.join(root, dir), { withFileTypes: true })) {
    if (SKIP.has(entry.name) || entry.name.startsWith(".")) continue;
    const rel = dir ? `${dir}/${entry.name}` : entry.name;
    if (entry.isDirectory()) found.push(...sources(root, rel));
    else if (dir && SOURCE.test(entry.name)) found.push(rel);
  }
  return found;
}

// A unit test beside the code it tests (proxy/forwarder/stages/route.test.ts) is part of the
// suites, not of the code: it may use test/support's fakes.
const partOf = (file: string) => (file.endsWith(".test.ts") ? "test" : file.split("/")[0]);
const mayImport = (part: string, parts: readonly string[]) =>
  parts.length ? `${part}/ may import only ${parts.map((p) => `${p}/`).join(", ")}` : `${part}/ may import nothing of weft`;

/** Every import in the sources under `root` that crosses into a part its own part may not import. */
export function checkBoundaries(root: string): Violation[] {
  const violations: Violation[] = [];
  for (const file of sources(root)) {
    const part = partOf(file);
    const allowed = ALLOWED[part];
    if (!allowed) {
      const rule = `${part}/ is not in ALLOWED (test/boundaries.ts): add it, with the parts it may import, there and in CONTRIBUTING.md's table`;
      violations.push({ file, line: 1, specifier: "", target: "", rule });
      continue;
    }
    for (const { text, line } of importedSpecifiers(readFileSync(path.join(root, file), "utf8"))) {
      if (!text.startsWith("./") && !text.startsWith("../")) continue; // npm packages, node: and the SDK's package names
      const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), text));
      if (target.startsWith("../")) {
        violations.push({ file, line, specifier: text, target, rule: "it leaves the repository: import a package instead" });
        continue;
      }
      const to = partOf(target);
      // A file at the root (package.json, for the version) belongs to no part.
      if (to === part || !target.includes("/") || allowed.includes(to)) continue;
      const fix = ALLOWED[to]
        ? "move what both need to shared/, or turn the dependency around"
        : `${to}/ is not a part (ALLOWED in test/boundaries.ts)`;
      violations.push({ file, line, specifier: text, target, rule: `${mayImport(part, allowed)}: ${fix}` });
    }
  }
  return violations;
}

/** One line per violation: where, what, and which rule. */
export const explain = (v: Violation) =>
  v.specifier ? `${v.file}:${v.line}: imports "${v.specifier}" (${v.target}): ${v.rule}` : `${v.file}: ${v.rule}`;

if (import.meta.main) {
  const root = path.resolve(process.argv[2] ?? path.join(import.meta.dirname ?? ".", ".."));
  const violations = checkBoundaries(root);
  if (violations.length) {
    process.stderr.write(
      `imports across the parts' boundaries that CONTRIBUTING.md ("Where things live") forbids:\n${violations.map((v) => `  ${explain(v)}\n`).join("")}`,
    );
    process.exit(1);
  }
  process.stdout.write(`import boundaries: ok (${Object.keys(ALLOWED).length} parts)\n`);
}
