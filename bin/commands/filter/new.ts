// `weft filter new NAME`: a folder with a working filter to start from.
import { UsageError } from "../../../shared/command.ts";
import { choice, path, type Values } from "../../cli/options.ts";
import type { Engine } from "../../../sdk/cli/new.ts";

export const usage = `usage: weft filter new NAME [--dir DIR] [--engine assemblyscript|typescript]

Scaffolds a filter in DIR (default ./NAME, which must be empty or absent): its manifest, its
source, a README with a WasmFilter to copy, and sample requests for "weft filter test".
--engine typescript: full TypeScript with npm packages, run by weft's QuickJS engine (default
assemblyscript). See docs/filter-sdk.md.
`;

export const positionals = ["NAME"];

const ENGINES: readonly Engine[] = ["assemblyscript", "typescript"];

export const options = {
  dir: path(),
  engine: choice(ENGINES, { default: "assemblyscript" }),
};

export async function run(o: Values<typeof options>, [name]: string[]): Promise<number> {
  if (!name) throw new UsageError(`give the filter a name, e.g. "weft filter new my-auth"`);
  const { newFilter } = await import("../../../sdk/cli/command.ts");
  return newFilter(name, o.dir ?? name, o.engine);
}
