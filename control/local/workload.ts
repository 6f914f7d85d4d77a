// LocalWorkload: how `weft up` starts a workload on this machine, in place of a Deployment.
// Local mode only; everything else in the directory is what `kubectl apply -f` would take.
import * as v from "valibot";
import { FilterConfig } from "../../proxy/config/filters.ts";
import type { Kind } from "../crd/crds.ts";
import { resource } from "../resources/meta.ts";
import { parseResource } from "../resources/parse.ts";

export const LocalWorkloadSpec = v.object({
  command: v.pipe(
    v.array(v.pipe(v.string(), v.minLength(1))),
    v.minLength(1, "give the program and its arguments, e.g. [node, catalog.ts]"),
    v.description(
      'The program and its arguments. Relative paths are resolved against the directory of the YAML file; "node", "deno" and "bun" are the ones weft runs on.',
    ),
  ),
  port: v.optional(
    v.pipe(
      v.number(),
      v.integer(),
      v.minValue(1),
      v.maxValue(65535),
      v.description("The port the app listens on. Unset: weft picks one and passes it as $PORT (needed for more than one replica)."),
    ),
  ),
  serviceAccount: v.optional(
    v.pipe(
      FilterConfig.entries.name,
      v.description("The identity of the workload: spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT."),
    ),
    "default",
  ),
  replicas: v.optional(
    v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(16), v.description("How many copies to run, each with its own sidecar.")),
    1,
  ),
  env: v.optional(v.pipe(v.record(v.string(), v.string()), v.description("More environment variables for the app.")), {}),
});

const LocalWorkloadStatus = v.object({});

export const LocalWorkload = resource("LocalWorkload", LocalWorkloadSpec, LocalWorkloadStatus);

/** For the field table in docs/local-mode.md (control/crd/generate.ts); never installed as a CRD. */
export const LOCAL_WORKLOAD_KIND: Kind = {
  kind: "LocalWorkload",
  plural: "localworkloads",
  singular: "localworkload",
  shortNames: [],
  description: "LocalWorkload says how weft up starts a workload on this machine: its command, port, identity and replicas.",
  spec: LocalWorkloadSpec,
  status: LocalWorkloadStatus,
  columns: [],
};

export type LocalWorkload = v.InferOutput<typeof LocalWorkload>;

export const parseLocalWorkload = (input: unknown) => parseResource(LocalWorkload, input);
