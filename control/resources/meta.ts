// What every weft resource shares: the API group and version, the object metadata weft reads,
// and the envelope (apiVersion, kind, metadata, spec, status) around a kind's spec and status.
import * as v from "valibot";
import { FilterConfig } from "../../proxy/config/filters.ts";

export const GROUP = "weft.dev";
export const VERSION = "v1alpha1";
export const API_VERSION = `${GROUP}/${VERSION}`;

// The proxy's own checks of object names and namespaces; other metadata (uid,
// resourceVersion, ...) passes through untouched.
const ObjectMeta = v.looseObject({
  name: FilterConfig.entries.name,
  namespace: FilterConfig.entries.namespace,
  labels: v.optional(v.record(v.string(), v.string())),
  annotations: v.optional(v.record(v.string(), v.string())),
});

/** A whole resource as `kubectl get -o json` returns it; status is optional (the controller writes it). */
export function resource<const TKind extends string, TSpec extends v.GenericSchema, TStatus extends v.GenericSchema>(
  kind: TKind,
  spec: TSpec,
  status: TStatus,
) {
  return v.object({
    apiVersion: v.literal(API_VERSION),
    kind: v.literal(kind),
    metadata: ObjectMeta,
    spec,
    status: v.optional(status),
  });
}
