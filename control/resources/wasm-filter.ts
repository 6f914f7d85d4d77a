// WasmFilter: attaches a WebAssembly filter to workloads (PRODUCT.md), modelled on Istio's
// WasmPlugin. The fields the proxy also has (phase, priority, failStrategy, match, limits,
// logLevel) are the proxy's own schemas from proxy/config/filters.ts, defaults included, so a
// resource means exactly what the proxy will run.
import * as v from "valibot";
import { FilterConfig, FilterLimits, Sha256 } from "../../proxy/config/filters.ts";
import { conditions } from "./condition.ts";
import { resource } from "./meta.ts";
import { parseResource } from "./parse.ts";
import { oneWayToTarget, targetEntries } from "./targets.ts";

const proxy = FilterConfig.entries;

/** A filter's config: any JSON object (the CRD keeps its fields as written). */
const JsonObject = v.record(v.string(), v.unknown());

// oci://, https://, file:// (local mode), marketplace://NAME@VERSION (a filter from plugins/,
// pinned to a release), or a bare registry/repository[:tag|@digest], which means oci://.
// http:// is refused on purpose: a filter runs inside every request.
const FILTER_URL = new RegExp(
  "^((oci|https|file)://[^\\s]+" +
    "|marketplace://[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?@(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?" +
    "|[a-z0-9]([-a-z0-9.]*[a-z0-9])?(:[0-9]+)?/[^\\s]+)$",
);

export const WasmFilterSpec = v.pipe(
  v.object({
    ...targetEntries,
    url: v.pipe(
      v.string(),
      v.maxLength(2048),
      v.regex(
        FILTER_URL,
        "must be oci://REGISTRY/REPO:TAG, https://..., file://... or marketplace://NAME@VERSION (no scheme means oci://)",
      ),
      v.description(
        "Where the filter's .wasm comes from: oci://registry/repo:tag (the default scheme: registry/repo:tag means the same), https://..., file://... (local mode only), or marketplace://NAME@VERSION for a filter from weft's marketplace (e.g. marketplace://rate-limit@1.0.0).",
      ),
    ),
    sha256: v.optional(
      v.pipe(
        Sha256,
        v.description(
          "The expected sha256 of the .wasm, 64 lower-case hex digits. A module with another digest is never loaded; the Resolved condition says so.",
        ),
      ),
    ),
    pullPolicy: v.optional(
      v.pipe(
        v.picklist(["IfNotPresent", "Always"]),
        v.description(
          "IfNotPresent uses a cached module with the same digest; Always resolves the url again on every change. Unset: Always for an oci:// url with the tag latest or no tag, else IfNotPresent (as Kubernetes pulls images).",
        ),
      ),
    ),
    pullSecret: v.optional(
      v.pipe(
        proxy.name,
        v.description("A Secret in this namespace with registry credentials (type kubernetes.io/dockerconfigjson) for an oci:// url."),
      ),
    ),
    phase: v.pipe(
      proxy.phase,
      v.description("Where in the chain the filter runs: Authn, Authz or Stats; unset: after those three, just before routing."),
    ),
    priority: v.pipe(
      proxy.priority,
      v.description("Order within a phase: higher runs first; ties are broken by namespace/name, so the order is always the same."),
    ),
    config: v.optional(
      v.pipe(
        JsonObject,
        v.description(
          "Handed to the filter as JSON. Checked against the JSON Schema the filter ships, if it ships one; a rejected config shows in the Accepted condition.",
        ),
      ),
      {},
    ),
    failStrategy: v.pipe(
      proxy.failStrategy,
      v.description(
        "What a request gets when the filter fails (traps, runs out of memory or time): FailClose answers 500, FailOpen skips the filter, FailReload calls a new instance once more, then answers 500.",
      ),
    ),
    match: v.pipe(
      proxy.match,
      v.description(
        "Which requests the filter sees: any entry matching is enough; no entries means every request. Within an entry every field set must match.",
      ),
    ),
    limits: v.pipe(
      proxy.limits,
      v.description(
        "Per-instance ceilings: memory (MiB), the deadline of one call (ms) and the largest body buffered (bytes). A filter over a limit gets its failStrategy; the proxy keeps serving.",
      ),
    ),
    logLevel: v.pipe(proxy.logLevel, v.description("The filter's own log level.")),
  }),
  oneWayToTarget(),
  v.description("The filter's module, the workloads and requests it applies to, where in the chain it runs, its limits and its config."),
);

export const WasmFilterStatus = v.pipe(
  v.object({
    conditions: conditions(
      "Accepted (the spec and config are valid), Resolved (the url was fetched and its digest checked; the message names the digest) and Ready (the selected proxies run it)",
    ),
    sha256: v.optional(v.pipe(Sha256, v.description("The digest the url resolved to."))),
    ready: v.optional(
      v.pipe(
        v.string(),
        v.regex(/^[0-9]+\/[0-9]+$/, "must be RUNNING/SELECTED, like 2/3"),
        v.description("Selected pods running this filter / selected pods (those with a sidecar that it targets), as kubectl get shows it."),
      ),
    ),
    inForce: v.optional(
      v.pipe(
        v.object({
          generation: v.pipe(
            v.number(),
            v.integer(),
            v.minValue(0),
            v.description(
              "The metadata.generation the config and limits were accepted in: this one, or an earlier one while this one's are not accepted.",
            ),
          ),
          config: v.pipe(JsonObject, v.description("The config the sidecars run the module (sha256) with.")),
          limits: v.pipe(FilterLimits, v.description("The limits the sidecars run it with.")),
        }),
        v.description(
          "The last accepted config and limits, which the sidecars run. A control plane that starts (a restart, a new leader) keeps them in force until it accepts others, so an edit that is refused never reaches the sidecars. Unset while nothing of the filter is in force.",
        ),
      ),
    ),
  }),
  v.description(
    "Written by the control plane: whether the spec is valid, the module resolved and the selected proxies run it, and the config they run it with.",
  ),
);

export const WasmFilter = resource("WasmFilter", WasmFilterSpec, WasmFilterStatus);

export type WasmFilter = v.InferOutput<typeof WasmFilter>;
export type WasmFilterSpec = v.InferOutput<typeof WasmFilterSpec>;
export type WasmFilterStatus = v.InferOutput<typeof WasmFilterStatus>;
/** The config and limits the sidecars run a filter's module with, and the generation they were accepted in (status.inForce). */
export type WasmFilterInForce = NonNullable<WasmFilterStatus["inForce"]>;

export const parseWasmFilter = (input: unknown) => parseResource(WasmFilter, input);
