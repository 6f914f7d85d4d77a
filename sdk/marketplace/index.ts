// Regenerates plugins/index.json (and the digests in the plugins' READMEs) from plugins/*;
// with --check, rebuilds every plugin and fails if the index or a README does not match.
//   node sdk/marketplace/index.ts [--check]
import process from "node:process";
import { fileURLToPath } from "node:url";
import { buildFilter } from "../build/build.ts";
import { checkIndex, writeIndex } from "./catalog.ts";

const pluginsDir = fileURLToPath(new URL("../../plugins/", import.meta.url));
const indexFile = fileURLToPath(new URL("../../plugins/index.json", import.meta.url));

if (process.argv.includes("--check")) {
  const problems = await checkIndex(pluginsDir, indexFile, buildFilter);
  for (const p of problems) process.stderr.write(`${p}\n`);
  process.stdout.write(
    problems.length
      ? `plugins/index.json is out of date; run "node sdk/marketplace/index.ts" and commit the result\n`
      : "plugins/index.json matches every plugin's build\n",
  );
  process.exit(problems.length ? 1 : 0);
} else {
  const index = await writeIndex(pluginsDir, indexFile, buildFilter);
  for (const p of index.plugins) process.stdout.write(`${p.name} ${p.versions[0]!.version} ${p.versions[0]!.sha256}\n`);
}
