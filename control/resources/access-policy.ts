// AccessPolicy: which peers may call a workload, by identity, method and path (PRODUCT.md).
// Shaped like Istio's AuthorizationPolicy with one thing made explicit: an ALLOW policy only
// grants; requests no rule allows are refused only where a policy sets defaultDeny.
import * as v from "valibot";
import { FilterMatch } from "../../proxy/config/filters.ts";
import { PolicyStatus } from "./condition.ts";
import { resource } from "./meta.ts";
import { parseResource } from "./parse.ts";
import { oneWayToTarget, targetEntries } from "./targets.ts";

export const Source = v.object({
  principals: v.optional(v.pipe(
    v.array(v.pipe(
      v.string(),
      v.regex(/^spiffe:\/\/[a-z0-9._-]+(\/[^\s*]*)?\*?$/, "must be a SPIFFE ID such as spiffe://cluster.local/ns/shop/sa/web, optionally ending in * to match a prefix"),
    )),
    v.description("Peer identities (SPIFFE IDs from the peer's mTLS certificate), e.g. spiffe://cluster.local/ns/shop/sa/web; a trailing * matches a prefix. Any one matches."),
  ), []),
  namespaces: v.optional(v.pipe(
    v.array(v.pipe(v.string(), v.maxLength(63), v.regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, "must be a namespace name"))),
    v.description("Namespaces of the peer's identity. Any one matches."),
  ), []),
});

export const PathMatch = v.object({
  type: v.optional(v.pipe(v.picklist(["Exact", "PathPrefix"]), v.description("Exact or PathPrefix (whole segments: /api matches /api and /api/x, not /apix).")), "PathPrefix"),
  value: v.pipe(v.string(), v.startsWith("/"), v.maxLength(1024), v.description("The path, starting with /.")),
});

export const Operation = v.object({
  methods: v.pipe(FilterMatch.entries.methods, v.description("HTTP methods in upper case. Any one matches; none: any method.")),
  paths: v.optional(v.pipe(v.array(PathMatch), v.description("Request paths. Any one matches; none: any path.")), []),
});

export const AccessRule = v.object({
  from: v.optional(v.pipe(v.array(Source), v.description("Who is calling: any entry matches; none: anyone. Within an entry every field set must match.")), []),
  to: v.optional(v.pipe(v.array(Operation), v.description("What is called: any entry matches; none: anything.")), []),
});

export const AccessPolicySpec = v.pipe(
  v.object({
    ...targetEntries,
    action: v.optional(v.pipe(v.picklist(["ALLOW", "DENY"]), v.description("What happens to a request that one of the rules matches. DENY policies are checked first.")), "ALLOW"),
    rules: v.optional(v.pipe(v.array(AccessRule), v.description("A request matches the policy if any rule matches; a rule with no from and no to matches every request; no rules matches nothing.")), []),
    defaultDeny: v.optional(v.pipe(v.boolean(), v.description("Refuse (403) requests to the selected workloads that no ALLOW rule allows. Without any policy setting it, requests not denied are allowed.")), false),
  }),
  oneWayToTarget(),
);

export const AccessPolicy = resource("AccessPolicy", AccessPolicySpec, PolicyStatus);

export type AccessPolicy = v.InferOutput<typeof AccessPolicy>;
export type AccessPolicySpec = v.InferOutput<typeof AccessPolicySpec>;

export const parseAccessPolicy = (input: unknown) => parseResource(AccessPolicy, input);
