// `weft filter add NAME[@VERSION]`: a WasmFilter for a marketplace filter.
import { UsageError } from "../../../shared/command.ts";
import { text, type Values } from "../../cli/options.ts";

export const usage = `usage: weft filter add NAME[@VERSION] [--namespace NS] [--app LABEL]

Prints a WasmFilter that attaches the marketplace filter NAME (its newest version without
@VERSION) with its example config, ready for kubectl apply -f -; --namespace is the
WasmFilter's namespace, --app selects the pods labelled app=LABEL. "weft filter search" lists
the marketplace.
`;

export const positionals = ["NAME[@VERSION]"];

export const options = {
  namespace: text(),
  app: text(),
};

export async function run(o: Values<typeof options>, [ref]: string[]): Promise<number> {
  if (!ref) throw new UsageError(`name a marketplace filter, e.g. "weft filter add rate-limit" (see "weft filter search")`);
  const { add } = await import("../../../sdk/cli/command.ts");
  return add(ref, o);
}
