// TrafficPolicy: how clients in the mesh talk to a Service (PRODUCT.md): timeout, retries,
// circuit breaking, load balancing, outlier detection. Every field is the proxy's own schema
// from proxy/config/schema.ts under the proxy's name (timeoutMs, retry, ...), defaults
// included, so the controller copies it into each client's cluster and route unchanged.
import * as v from "valibot";
import { Cluster, Route } from "../../proxy/config/schema.ts";
import { conditions } from "./condition.ts";
import { resource } from "./meta.ts";
import { parseResource } from "./parse.ts";
import { ServiceRefs } from "./targets.ts";

export const TrafficPolicySpec = v.pipe(
  v.object({
    targetRefs: v.pipe(
      ServiceRefs,
      v.description("The Services this policy applies to (at most 16), for every client in the mesh that calls them."),
    ),
    timeoutMs: v.pipe(
      Route.entries.timeoutMs,
      v.description("How long a request may take, retries included, in milliseconds (0: no limit); then the client gets 504."),
    ),
    retry: v.optional(
      v.pipe(
        Route.entries.retry.wrapped,
        v.description(
          "Retries of failed requests: attempts (0-10), perTryTimeoutMs, retryOn (connect-failure, reset, 5xx, gateway-error, retriable-status-codes), backoff and a retry budget. Unset: no retries.",
        ),
      ),
    ),
    circuitBreaker: v.pipe(
      Cluster.entries.circuitBreaker,
      v.description(
        "Ceilings on connections, queued requests and requests in flight to the Service; over them, requests fail at once with 503.",
      ),
    ),
    loadBalancer: v.pipe(
      Cluster.entries.loadBalancer,
      v.description(
        "How an endpoint is picked: RoundRobin, LeastRequest, or ConsistentHash on the value of a request header (set header).",
      ),
    ),
    outlierDetection: v.optional(
      v.pipe(
        Cluster.entries.outlierDetection.wrapped,
        v.description("Ejects endpoints that keep failing for a growing time. Unset: no ejection."),
      ),
    ),
  }),
  v.description("How clients in the mesh call the targeted Services. Fields left out take the defaults shown."),
);

export const TrafficPolicyStatus = v.pipe(
  v.object({
    conditions: conditions(
      "Accepted (False, reason Conflicted, where an older TrafficPolicy targets the same Service and wins there; the message names it), " +
        "ResolvedRefs (False, reason TargetNotFound, while a targetRef names a Service that does not exist) and " +
        "Ready (True when the policy is in force for the clients of at least one Service; the message names them)",
    ),
  }),
  v.description("Written by the control plane: whether the policy is valid, its targets exist, and where it is in force."),
);

export const TrafficPolicy = resource("TrafficPolicy", TrafficPolicySpec, TrafficPolicyStatus);

export type TrafficPolicy = v.InferOutput<typeof TrafficPolicy>;
export type TrafficPolicySpec = v.InferOutput<typeof TrafficPolicySpec>;
export type TrafficPolicyStatus = v.InferOutput<typeof TrafficPolicyStatus>;

export const parseTrafficPolicy = (input: unknown) => parseResource(TrafficPolicy, input);
