// `weft filter build [DIR]`: a filter's reproducible .wasm and its sha256.
import { path, type Values } from "../../cli/options.ts";

export const usage = `usage: weft filter build [DIR] [--out FILE]

Builds the filter in DIR (default .) to a reproducible .wasm, FILE (default DIR/dist/NAME.wasm),
writes its sha256 beside it (FILE.sha256) and prints both. See docs/filter-sdk.md.
`;

export const positionals = ["[DIR]"];

export const options = {
  out: path(),
};

export async function run(o: Values<typeof options>, [dir = "."]: string[]): Promise<number> {
  const { build, reportingBuildErrors } = await import("../../../sdk/cli/command.ts");
  return reportingBuildErrors(() => build(dir, o.out));
}
