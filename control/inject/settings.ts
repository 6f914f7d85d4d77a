// The injector's settings: what every injected sidecar gets unless a pod annotation says otherwise
// (annotations.ts). One schema holds the fields, their checks and their defaults, which are the
// ones docs/injection.md documents; parse `{}` to get them.
import * as v from "valibot";
import pkg from "../../package.json" with { type: "json" };
import { isSpiffeId } from "../../proxy/identity/spiffe.ts";
import { parseResource } from "../resources/parse.ts";
import { Quantity } from "./quantity.ts";
import { MAX_SERVICE_CIDRS } from "../init/rules.ts";
import { isIpv4Cidr } from "../../shared/ipv4.ts";

/** The weft release that injects, recorded in each pod's weft.dev/status. */
export const WEFT_VERSION: string = pkg.version;

export const RUNTIMES = ["node", "deno", "bun"] as const;
export type Runtime = (typeof RUNTIMES)[number];

const Port = v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(65535));
const Command = v.pipe(v.array(v.pipe(v.string(), v.minLength(1))), v.minLength(1));
// Where the image keeps the bundle (`npm run build`), run by whichever runtime the pod asks for.
const BUNDLE = "/opt/weft/weft.mjs";

export const InjectSettings = v.object({
  image: v.optional(
    v.pipe(
      v.string(),
      v.minLength(1),
      v.description(
        "The Node image (docs/images.md): the init container's and Node sidecars'. Deno and Bun sidecars run the same name with -deno / -bun after the tag, unless runtimeImages names theirs.",
      ),
    ),
    `ghcr.io/weft-dev/weft:${WEFT_VERSION}`,
  ),
  runtimeImages: v.optional(
    v.pipe(
      v.object({ deno: v.optional(v.pipe(v.string(), v.minLength(1))), bun: v.optional(v.pipe(v.string(), v.minLength(1))) }),
      v.description(
        "The Deno and Bun sidecars' images, when they are not the image's name with -deno / -bun after its tag (an image pinned by digest).",
      ),
    ),
    {},
  ),
  runtime: v.optional(
    v.pipe(
      v.picklist(RUNTIMES, `must be one of ${RUNTIMES.join(", ")}`),
      v.description("The runtime of a pod without the weft.dev/runtime annotation."),
    ),
    "node",
  ),
  commands: v.optional(
    v.pipe(
      v.object({
        node: v.optional(Command, ["node", BUNDLE]),
        deno: v.optional(Command, ["deno", "run", "--allow-all", BUNDLE]),
        bun: v.optional(Command, ["bun", BUNDLE]),
      }),
      v.description("The command that starts weft on each runtime; `proxy` or `init ...` follows as arguments."),
    ),
    {},
  ),
  controlPlane: v.optional(
    v.pipe(
      v.string(),
      v.url("must be a URL"),
      v.startsWith("https://", "must be an https:// URL"),
      v.description("The control plane the proxies connect to."),
    ),
    "https://weft-control.weft-system.svc:15012",
  ),
  trustDomain: v.optional(
    v.pipe(
      v.string(),
      v.check((td) => isSpiffeId(`spiffe://${td}`), "must be a SPIFFE trust domain: lower-case a-z, 0-9, '.', '-' and '_'"),
      v.description("The trust domain of the workloads' SPIFFE IDs."),
    ),
    "cluster.local",
  ),
  otlpEndpoint: v.optional(
    v.pipe(
      v.string(),
      v.regex(/^https?:\/\/[^/]/, "must be an http:// or https:// URL, like http://jaeger-collector.observability:4318"),
      v.description(
        "Where the sidecars export their spans: an OTLP/HTTP receiver, given to them as OTEL_EXPORTER_OTLP_ENDPOINT (docs/observability.md). Unset: no spans are exported.",
      ),
    ),
  ),
  resources: v.optional(
    v.pipe(
      v.object({
        // Memory: the request is what a Node sidecar holds at 1000 requests/s, the limit about twice
        // its peak under load; the runtime's heap is sized from the limit (runtime-env.ts,
        // docs/design/sidecar-memory.md).
        requests: v.optional(v.object({ cpu: v.optional(Quantity("50m"), "50m"), memory: v.optional(Quantity("128Mi"), "128Mi") }), {}),
        // No CPU limit by default: a throttled sidecar adds latency to every request of its pod.
        limits: v.optional(v.object({ cpu: v.optional(Quantity("1")), memory: v.optional(Quantity("256Mi"), "256Mi") }), {}),
      }),
      v.description(
        "The proxy's requests and limits; the weft.dev/proxy-cpu, proxy-memory and proxy-memory-limit annotations override them per pod.",
      ),
    ),
    {},
  ),
  proxyUid: v.optional(
    v.pipe(
      v.number(),
      v.integer(),
      v.minValue(1),
      v.description("The proxy's user ID; `weft init` lets this user's traffic out unredirected."),
    ),
    1337,
  ),
  serviceCidrs: v.optional(
    v.pipe(
      v.array(v.pipe(v.string(), v.check(isIpv4Cidr, "must be an IPv4 range like 10.96.0.0/12"))),
      v.maxLength(MAX_SERVICE_CIDRS),
      v.description(
        "The cluster's IPv4 Service ranges (the API server's --service-cluster-ip-range): the app's TCP to a Service port goes through its sidecar, over mTLS to meshed endpoints (docs/tcp.md). Empty: only ports 80 and 8080 do.",
      ),
    ),
    [],
  ),
  ports: v.optional(v.object({ admin: v.optional(Port, 15000), outbound: v.optional(Port, 15001), inbound: v.optional(Port, 15006) }), {}),
  token: v.optional(
    v.pipe(
      v.object({
        audience: v.optional(v.pipe(v.string(), v.minLength(1)), "weft"),
        // the kubelet refuses projected tokens shorter than 10 minutes
        expirationSeconds: v.optional(v.pipe(v.number(), v.integer(), v.minValue(600)), 3600),
      }),
      v.description("The projected ServiceAccount token the proxy shows the control plane."),
    ),
    {},
  ),
});

export type InjectSettings = v.InferOutput<typeof InjectSettings>;

/** Settings from partial input (defaults fill the rest); problems name the field. */
export const parseInjectSettings = (input: unknown) => parseResource(InjectSettings, input);

export const DEFAULT_SETTINGS: InjectSettings = v.parse(InjectSettings, {});

/**
 * The image a runtime's sidecar runs: the Node image itself, or its -deno / -bun variant (the
 * same repository, the tag suffixed, as `npm run image` tags them). An image pinned by digest has
 * no tag to derive from, so the variant must be named in runtimeImages.
 */
export function sidecarImage(settings: InjectSettings, runtime: Runtime): { image: string } | { problem: string } {
  if (runtime === "node") return { image: settings.image };
  const named = settings.runtimeImages[runtime];
  if (named) return { image: named };
  const image = settings.image;
  if (image.includes("@"))
    return {
      problem: `the ${runtime} sidecar's image cannot be derived from ${image}, which is pinned by digest: name it in the injector's runtimeImages.${runtime}`,
    };
  // A tag is what follows the last ":" after the last "/" (a registry's port comes before a "/").
  const tagged = image.lastIndexOf(":") > image.lastIndexOf("/");
  return { image: tagged ? `${image}-${runtime}` : `${image}:${WEFT_VERSION}-${runtime}` };
}
