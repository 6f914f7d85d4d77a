// `weft filter test [DIR]`: a filter against its sample requests, with no cluster.
import { choice, path, type Values } from "../../cli/options.ts";
import type { FilterHost } from "../../../sdk/cli/filter-test.ts";

export const usage = `usage: weft filter test [DIR] [--host weft|extism] [--wasm FILE]

Builds the filter in DIR (default .) and runs its sample requests, DIR/test/requests.json,
through weft's filter runtime; prints each one's outcome and exits 1 if any failed. See
docs/filter-sdk.md.
--host extism: run them under the official Extism JS SDK (@extism/extism) instead, to check
  the filter is an ordinary Extism plug-in (default weft). See docs/filter-pdks.md.
--wasm FILE: test this built module (one made with any Extism PDK, its manifest embedded)
  instead of building DIR, which then only holds test/requests.json.
`;

export const positionals = ["[DIR]"];

const HOSTS: readonly FilterHost[] = ["weft", "extism"];

export const options = {
  host: choice(HOSTS, { default: "weft" }),
  wasm: path(),
};

export async function run(o: Values<typeof options>, [dir = "."]: string[]): Promise<number> {
  const { test, reportingBuildErrors } = await import("../../../sdk/cli/command.ts");
  return reportingBuildErrors(() => test(dir, o));
}
