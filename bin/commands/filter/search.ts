// `weft filter search [TERM]`: the marketplace's filters.
export const usage = `usage: weft filter search [TERM]

Lists the marketplace filters (plugins/index.json) whose name or description has TERM (every
one without TERM), each with its newest version.
`;

export const positionals = ["[TERM]"];

export const options = {};

export async function run(_: object, [term = ""]: string[]): Promise<number> {
  const { search } = await import("../../../sdk/cli/command.ts");
  return search(term.toLowerCase());
}
