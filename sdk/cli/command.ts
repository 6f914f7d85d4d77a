// `weft filter <new|build|test|search|add>`: the filter author's commands.
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import { createLogger } from "../../proxy/log.ts";
import { buildFilter } from "../build/build.ts";
import { BuildError } from "../build/error.ts";
import { loadFixtures } from "./fixtures.ts";
import { testFilter } from "./filter-test.ts";
import { scaffoldFilter } from "./new.ts";
import { findPlugin, readMarketplace, wasmFilterYaml } from "./marketplace.ts";
import { pushCommand } from "./push.ts";

export const FILTER_USAGE = `usage: weft filter <command>

  new NAME [--dir DIR] [--engine assemblyscript|typescript]
                              scaffold a filter in DIR (default ./NAME): manifest, source, README, sample requests;
                              --engine typescript: full TypeScript with npm packages, run by weft's QuickJS engine
  build [DIR] [--out FILE]    build DIR (default .) to a reproducible .wasm (default DIR/dist/NAME.wasm) and print its sha256
  test [DIR]                  build DIR and run its test/requests.json through weft's filter runtime
  push oci://REF [DIR|FILE.wasm] [--plain-http] [--username U --password-stdin] [--timeout SECONDS]
                              publish DIR (built; default .) or FILE.wasm as a Wasm OCI artifact, print its url and sha256
  search [TERM]               list marketplace filters (plugins/index.json) whose name or description has TERM
  add NAME[@VERSION] [--namespace NS] [--app LABEL]
                              print a WasmFilter for a marketplace filter, ready for kubectl apply
  mirror REGISTRY[/PATH] [--plain-http]
                              push every marketplace release to oci://REGISTRY[/PATH]/plugins/NAME:VERSION

docs: docs/filter-sdk.md (writing filters), docs/filter-abi.md (the ABI), docs/filters.md (running them)
`;

const out = (text: string) => process.stdout.write(text);
const err = (text: string) => process.stderr.write(text);

async function build(dir: string, outFile: string | undefined): Promise<number> {
  const built = await buildFilter(dir);
  const file = outFile ?? path.join(dir, "dist", `${built.manifest.name}.wasm`);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, built.wasm);
  await writeFile(`${file}.sha256`, `${built.sha256}  ${path.basename(file)}\n`);
  out(`${file}\nsha256 ${built.sha256}\n${built.wasm.length} bytes\n`);
  return 0;
}

async function test(dir: string): Promise<number> {
  const built = await buildFilter(dir);
  const fixtures = await loadFixtures(path.join(dir, "test", "requests.json"));
  const results = await testFilter(built.wasm, fixtures, createLogger({ filter: built.manifest.name }, "warn"));
  let failed = 0;
  for (const r of results) {
    if (r.problems.length === 0) out(`ok    ${r.name}\n`);
    else {
      failed++;
      out(`FAIL  ${r.name}\n${r.problems.map((p) => `      ${p}\n`).join("")}`);
    }
  }
  out(`${results.length - failed} passed, ${failed} failed (${built.manifest.name} ${built.manifest.version}, sha256 ${built.sha256.slice(0, 12)})\n`);
  return failed === 0 ? 0 : 1;
}

export async function filterCommand(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case "new": {
        const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { dir: { type: "string" }, engine: { type: "string" } } });
        const name = positionals[0];
        if (!name) {
          err(`weft filter new: give the filter a name, e.g. "weft filter new my-auth"\n`);
          return 2;
        }
        const engine = values.engine ?? "assemblyscript";
        if (engine !== "assemblyscript" && engine !== "typescript") {
          err(`weft filter new: --engine must be assemblyscript (the default) or typescript, not "${engine}"\n`);
          return 2;
        }
        const written = await scaffoldFilter(values.dir ?? name, name, engine);
        out(`${written.join("\n")}\nnext: cd ${values.dir ?? name} && weft filter test\n`);
        return 0;
      }
      case "build": {
        const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { out: { type: "string" } } });
        return await build(positionals[0] ?? ".", values.out);
      }
      case "test": {
        const { positionals } = parseArgs({ args: rest, allowPositionals: true });
        return await test(positionals[0] ?? ".");
      }
      case "push":
        return await pushCommand(rest);
      case "mirror":
        return await (await import("./mirror.ts")).mirrorCommand(rest);
      case "search": {
        const { positionals } = parseArgs({ args: rest, allowPositionals: true });
        const term = (positionals[0] ?? "").toLowerCase();
        const found = (await readMarketplace()).plugins.filter((p) => p.name.includes(term) || p.description.toLowerCase().includes(term));
        if (found.length === 0) out(`no marketplace filter matches "${term}"\n`);
        for (const p of found) out(`${p.name.padEnd(16)} ${p.versions[0]!.version.padEnd(8)} ${p.description}\n`);
        return 0;
      }
      case "add": {
        const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { namespace: { type: "string" }, app: { type: "string" } } });
        const ref = positionals[0];
        if (!ref) {
          err(`weft filter add: name a marketplace filter, e.g. "weft filter add rate-limit" (see "weft filter search")\n`);
          return 2;
        }
        const { plugin, version } = findPlugin(await readMarketplace(), ref);
        out(wasmFilterYaml(plugin, version, { namespace: values.namespace, app: values.app }));
        return 0;
      }
      case undefined:
      case "help":
      case "--help":
        out(FILTER_USAGE);
        return command === undefined ? 2 : 0;
      default:
        err(`weft filter: unknown command "${command}"\n\n${FILTER_USAGE}`);
        return 2;
    }
  } catch (e) {
    if (e instanceof BuildError) {
      err(`${e.message}\n`);
      return 1;
    }
    throw e;
  }
}
