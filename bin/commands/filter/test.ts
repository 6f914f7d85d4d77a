// `weft filter test [DIR]`: a filter against its sample requests, with no cluster.
export const usage = `usage: weft filter test [DIR]

Builds the filter in DIR (default .) and runs its sample requests, DIR/test/requests.json,
through weft's filter runtime; prints each one's outcome and exits 1 if any failed. See
docs/filter-sdk.md.
`;

export const positionals = ["[DIR]"];

export const options = {};

export async function run(_: object, [dir = "."]: string[]): Promise<number> {
  const { test, reportingBuildErrors } = await import("../../../sdk/cli/command.ts");
  return reportingBuildErrors(() => test(dir));
}
