// `weft filter mirror REGISTRY[/PATH]`: every marketplace release, copied to a registry of your own.
import { UsageError } from "../../../shared/command.ts";
import { duration, flag, path, type Values } from "../../cli/options.ts";

export const usage = `usage: weft filter mirror REGISTRY[/PATH] [--plain-http] [--marketplace DIR] [--timeout SECONDS]

Pushes every release in the marketplace index to oci://REGISTRY[/PATH]/plugins/NAME:VERSION and
prints each url with its sha256 (checked against the index before the push). Credentials:
WEFT_REGISTRY_USERNAME and WEFT_REGISTRY_PASSWORD. --plain-http for a registry without TLS.
--marketplace: the folder with index.json and NAME/VERSION.wasm (default: the one shipped with weft).
--timeout: each push's deadline.
`;

export const positionals = ["REGISTRY[/PATH]"];

export const options = {
  "plain-http": flag(),
  marketplace: path(),
  timeout: duration("each push's deadline", 86_400),
};

export async function run(o: Values<typeof options>, [registry]: string[]): Promise<number> {
  const target = registry?.replace(/^oci:\/\//, "").replace(/\/+$/, "");
  if (!target)
    throw new UsageError(
      `give the registry to mirror to, e.g. "weft filter mirror registry.example.com:5000" or "weft filter mirror ghcr.io/acme"`,
    );
  const { mirror } = await import("../../../sdk/cli/mirror.ts");
  return mirror(o, target);
}
