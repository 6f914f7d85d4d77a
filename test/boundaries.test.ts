// runtimes: node
// The check of which part may import which (test/boundaries.ts, a step of npm test): it finds
// imports the way tsc does and nothing in strings or comments, and it fails, naming the file, the
// import and the rule, on a tree that breaks a rule.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import process from "node:process";
import { importedSpecifiers } from "./imports.ts";
import { checkBoundaries, explain } from "./boundaries.ts";

const checker = path.join(import.meta.dirname ?? ".", "boundaries.ts");

/** A scratch tree of `files` (path -> content); removed after `use`. */
function tree<T>(files: Record<string, string>, use: (root: string) => T): T {
  const root = mkdtempSync(path.join(tmpdir(), "weft-boundaries-"));
  try {
    for (const [file, text] of Object.entries(files)) {
      mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
      writeFileSync(path.join(root, file), text);
    }
    return use(root);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

describe("import boundaries", () => {
  it("finds every form of import, type-only and dynamic ones too", () => {
    const source = [
      'import { a } from "./a.ts";',
      'import type { B } from "./b.ts";',
      'import "./c.ts";',
      'export { d } from "./d.ts";',
      'export type * from "./e.ts";',
      'const f = await import("./f.ts");',
      'type G = typeof import("./g.ts");',
      'import H = require("./h.ts");',
      "import {",
      "  i,",
      '} from "./i.ts";',
    ].join("\n");
    const found = importedSpecifiers(source);
    assert.deepEqual(
      found.map((s) => s.text),
      ["./a.ts", "./b.ts", "./c.ts", "./d.ts", "./e.ts", "./f.ts", "./g.ts", "./h.ts", "./i.ts"],
    );
    assert.equal(found.at(-1)?.line, 11);
  });

  it("takes nothing inside strings, templates, comments or regular expressions for an import", () => {
    const source = [
      '// import { x } from "./comment.ts";',
      '/* import("./block.ts") */',
      "const s = 'import { y } from \"./string.ts\"';",
      // biome-ignore lint/suspicious/noTemplateCurlyInString: source text with template literals in it
      'const t = `import { z } from "./template.ts" ${`nested ${"}"}`} import("./template2.ts")`;',
      'const re = /"from "/.test(s) ? /import\\("/ : null;',
      "const n = 4 / 2 / 1;",
      "x.from('./property.ts'); Array.from(\"abc\");",
      'import { real } from "./real.ts";',
      "const dynamic = await import(name);",
    ].join("\n");
    assert.deepEqual(importedSpecifiers(source), [{ text: "./real.ts", line: 8 }]);
  });

  it("fails on a forbidden import, naming the file, the import and the rule", () => {
    const files = {
      "shared/log.ts": "export const log = 1;\n",
      "control/plane.ts": "export const plane = 1;\n",
      "sdk/build.ts": 'import { log } from "../shared/log.ts";\n',
      "proxy/ok.ts": 'import { log } from "../shared/log.ts";\nimport pkg from "../package.json" with { type: "json" };\n',
      "proxy/typed.ts": '// the sidecar\nimport type { Plane } from "../control/plane.ts";\n',
      "proxy/dynamic.ts": 'export const load = () => import("../sdk/build.ts");\n',
      "package.json": "{}\n",
    };
    const lines = tree(files, (root) => checkBoundaries(root).map(explain));
    assert.deepEqual(lines.sort(), [
      'proxy/dynamic.ts:1: imports "../sdk/build.ts" (sdk/build.ts): proxy/ may import only shared/: move what both need to shared/, or turn the dependency around',
      'proxy/typed.ts:2: imports "../control/plane.ts" (control/plane.ts): proxy/ may import only shared/: move what both need to shared/, or turn the dependency around',
    ]);
  });

  it("fails on a folder the rules do not know, and on an import out of the repository", () => {
    const lines = tree({ "tools/x.ts": "export {};\n", "bin/y.ts": 'import "../../elsewhere/z.ts";\n' }, (root) =>
      checkBoundaries(root).map(explain),
    );
    assert.deepEqual(lines.sort(), [
      'bin/y.ts:1: imports "../../elsewhere/z.ts" (../elsewhere/z.ts): it leaves the repository: import a package instead',
      "tools/x.ts: tools/ is not in ALLOWED (test/boundaries.ts): add it, with the parts it may import, there and in CONTRIBUTING.md's table",
    ]);
  });

  it("run as npm test runs it: exit 1 with the violations on stderr, exit 0 when there are none", () => {
    const run = (files: Record<string, string>) =>
      tree(files, (root) => spawnSync(process.execPath, [checker, root], { encoding: "utf8" }));
    const bad = run({ "shared/a.ts": 'import "../proxy/b.ts";\n', "proxy/b.ts": "export {};\n" });
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /shared\/a\.ts:1: imports "\.\.\/proxy\/b\.ts" \(proxy\/b\.ts\): shared\/ may import nothing of weft/);
    const good = run({ "proxy/a.ts": 'import "../shared/b.ts";\n', "shared/b.ts": "export {};\n" });
    assert.equal(good.status, 0, good.stderr);
  });
});
