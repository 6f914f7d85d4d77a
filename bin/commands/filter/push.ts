// `weft filter push oci://REF [DIR|FILE.wasm]`: a filter published as a Wasm OCI artifact.
import { UsageError } from "../../../shared/command.ts";
import { duration, flag, text, type Values } from "../../cli/options.ts";
import { PUSH_TIMEOUT_MS } from "../../../shared/oci-registry.ts";

export const usage = `usage: weft filter push oci://REF [DIR|FILE.wasm] [--plain-http] [--username U --password-stdin] [--timeout SECONDS]

Publishes the filter in DIR (built first; default .) or FILE.wasm as a Wasm OCI artifact and
prints what a WasmFilter needs to run it: its url and sha256. Without a tag in REF, the
filter's version is the tag. Credentials: --username with the password on stdin
(--password-stdin), or WEFT_REGISTRY_USERNAME and WEFT_REGISTRY_PASSWORD; none for an anonymous
push. --plain-http for a registry without TLS; --timeout is the whole push's deadline.
`;

export const positionals = ["oci://REF", "[DIR|FILE.wasm]"];

export const options = {
  "plain-http": flag(),
  username: text(),
  "password-stdin": flag(),
  timeout: duration("the push's deadline", 86_400, { default: PUSH_TIMEOUT_MS }),
};

export async function run(o: Values<typeof options>, [ref, from = "."]: string[]): Promise<number> {
  if (!ref)
    throw new UsageError(
      `give the artifact's reference, e.g. "weft filter push oci://localhost:5000/filters/my-auth --plain-http" in the filter's folder`,
    );
  const [{ push }, { reportingBuildErrors }] = await Promise.all([
    import("../../../sdk/cli/push.ts"),
    import("../../../sdk/cli/command.ts"),
  ]);
  return reportingBuildErrors(() => push(o, ref, from));
}
