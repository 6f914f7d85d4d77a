// Who may call the workload behind an inbound listener, by peer identity, method and path.
// The AccessPolicy resource (control/resources/access-policy.ts) is made of these pieces, so
// what a user writes is what the proxy enforces.
import * as v from "valibot";
import { FilterMatch } from "./filters.ts";

export const Source = v.object({
  principals: v.optional(
    v.pipe(
      v.array(
        v.pipe(
          v.string(),
          v.regex(
            /^spiffe:\/\/[a-z0-9._-]+(\/[^\s*]*)?\*?$/,
            "must be a SPIFFE ID such as spiffe://cluster.local/ns/shop/sa/web, optionally ending in * to match a prefix",
          ),
        ),
      ),
      v.description(
        "Peer identities (SPIFFE IDs from the peer's mTLS certificate), e.g. spiffe://cluster.local/ns/shop/sa/web; a trailing * matches a prefix. Any one matches.",
      ),
    ),
    [],
  ),
  namespaces: v.optional(
    v.pipe(
      v.array(v.pipe(v.string(), v.maxLength(63), v.regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, "must be a namespace name"))),
      v.description("Namespaces of the peer's identity. Any one matches."),
    ),
    [],
  ),
});

export const AccessPathMatch = v.object({
  type: v.optional(
    v.pipe(
      v.picklist(["Exact", "PathPrefix"]),
      v.description("Exact or PathPrefix (whole segments: /api matches /api and /api/x, not /apix)."),
    ),
    "PathPrefix",
  ),
  value: v.pipe(v.string(), v.startsWith("/"), v.maxLength(1024), v.description("The path, starting with /.")),
});

export const Operation = v.object({
  methods: v.pipe(FilterMatch.entries.methods, v.description("HTTP methods in upper case. Any one matches; none: any method.")),
  paths: v.optional(v.pipe(v.array(AccessPathMatch), v.description("Request paths. Any one matches; none: any path.")), []),
});

export const AccessRule = v.object({
  from: v.optional(
    v.pipe(v.array(Source), v.description("Who is calling: any entry matches; none: anyone. Within an entry every field set must match.")),
    [],
  ),
  to: v.optional(v.pipe(v.array(Operation), v.description("What is called: any entry matches; none: anything.")), []),
});

export const AccessAction = v.picklist(["ALLOW", "DENY"]);

/** One AccessPolicy as the proxy gets it: named for the 403 and the logs. */
export const AuthorizationPolicy = v.object({
  name: v.string(),
  action: v.optional(AccessAction, "ALLOW"),
  rules: v.optional(v.array(AccessRule), []),
});

export const Authorization = v.object({
  policies: v.optional(v.array(AuthorizationPolicy), []),
  /** Refuse what no ALLOW policy allows; otherwise only DENY policies refuse. */
  defaultDeny: v.optional(v.boolean(), false),
});

export type Authorization = v.InferOutput<typeof Authorization>;
export type AuthorizationPolicy = v.InferOutput<typeof AuthorizationPolicy>;
export type AccessRule = v.InferOutput<typeof AccessRule>;
