// The three weft CustomResourceDefinitions, built from the valibot schemas in
// control/resources/. deploy/crds/ holds them as YAML, written by control/crd/generate.ts.
import type * as v from "valibot";
import { AccessPolicySpec, AccessPolicyStatus } from "../resources/access-policy.ts";
import { GROUP, VERSION } from "../resources/meta.ts";
import { TrafficPolicySpec, TrafficPolicyStatus } from "../resources/traffic-policy.ts";
import { WasmFilterSpec, WasmFilterStatus } from "../resources/wasm-filter.ts";
import { toStructural, type StructuralSchema } from "./openapi.ts";

interface PrinterColumn {
  name: string;
  type: "string" | "integer" | "number" | "boolean" | "date";
  jsonPath: string;
  description: string;
  /** 1: only in `kubectl get -o wide`. */
  priority?: number;
}

export interface Kind {
  kind: string;
  plural: string;
  singular: string;
  shortNames: string[];
  description: string;
  spec: v.GenericSchema;
  status: v.GenericSchema;
  columns: PrinterColumn[];
}

const condition = (type: string, description: string): PrinterColumn => ({
  name: type,
  type: "string",
  jsonPath: `.status.conditions[?(@.type=="${type}")].status`,
  description,
});
// Ready's reason (InForce, or Conflicted, TargetNotFound, NoPodsSelected, ...), so kubectl get
// says what is wrong without describe.
const REASON: PrinterColumn = {
  name: "Reason",
  type: "string",
  jsonPath: '.status.conditions[?(@.type=="Ready")].reason',
  description: "Why the policy is or is not in force.",
};
const AGE: PrinterColumn = { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp", description: "Time since creation." };
// With -o wide, the generation written and the one in force, which differ while an edit cannot be applied.
const GENERATION: PrinterColumn = {
  name: "Generation",
  type: "integer",
  jsonPath: ".metadata.generation",
  description: "The generation of the spec.",
  priority: 1,
};
const inForce = (description: string): PrinterColumn => ({
  name: "InForce",
  type: "integer",
  jsonPath: ".status.inForce.generation",
  description,
  priority: 1,
});

export const KINDS: Kind[] = [
  {
    kind: "WasmFilter",
    plural: "wasmfilters",
    singular: "wasmfilter",
    shortNames: ["wf"],
    description:
      "WasmFilter attaches a WebAssembly filter to the workloads it selects: where the module comes from, where in the chain it runs, for which requests, with what limits and configuration.",
    spec: WasmFilterSpec,
    status: WasmFilterStatus,
    columns: [
      {
        name: "Phase",
        type: "string",
        jsonPath: ".spec.phase",
        description: "Where in the chain the filter runs (empty: just before routing).",
      },
      condition(
        "Accepted",
        "Whether this generation's spec and config are valid (False: the last accepted one stays in force, or failStrategy applies).",
      ),
      condition("Resolved", "Whether the url was fetched and its digest checked."),
      { name: "Ready", type: "string", jsonPath: ".status.ready", description: "Selected pods running the filter / selected pods." },
      {
        name: "Reason",
        type: "string",
        jsonPath: `.status.conditions[?(@.type=="Ready")].reason`,
        description: "Why Ready is what it is: Running, Updating, LoadFailed, Quarantined, NotInForce, NoPodsSelected, TargetNotFound.",
      },
      AGE,
      { name: "URL", type: "string", jsonPath: ".spec.url", description: "Where the module comes from.", priority: 1 },
      { name: "Digest", type: "string", jsonPath: ".status.sha256", description: "The sha256 the url resolved to.", priority: 1 },
      GENERATION,
      inForce("The generation whose config the sidecars run: an earlier one while this one's is not accepted."),
    ],
  },
  {
    kind: "TrafficPolicy",
    plural: "trafficpolicies",
    singular: "trafficpolicy",
    shortNames: ["tp"],
    description:
      "TrafficPolicy sets how clients in the mesh call the Services it targets: timeout, retries, circuit breaking, load balancing and outlier detection.",
    spec: TrafficPolicySpec,
    status: TrafficPolicyStatus,
    columns: [
      condition("Accepted", "False when an older TrafficPolicy on the same Service wins (Conflicted)."),
      condition("ResolvedRefs", "False while a targetRef names a Service that does not exist."),
      condition("Ready", "Whether the policy is in force for the clients of at least one Service."),
      REASON,
      AGE,
      { name: "Timeout(ms)", type: "number", jsonPath: ".spec.timeoutMs", description: "Request timeout in milliseconds.", priority: 1 },
      { name: "Retries", type: "integer", jsonPath: ".spec.retry.attempts", description: "Retry attempts.", priority: 1 },
      {
        name: "LoadBalancer",
        type: "string",
        jsonPath: ".spec.loadBalancer.policy",
        description: "How an endpoint is picked.",
        priority: 1,
      },
    ],
  },
  {
    kind: "AccessPolicy",
    plural: "accesspolicies",
    singular: "accesspolicy",
    shortNames: ["ap"],
    description:
      "AccessPolicy allows or denies requests to the workloads it selects by the caller's identity (SPIFFE ID, namespace), method and path.",
    spec: AccessPolicySpec,
    status: AccessPolicyStatus,
    columns: [
      { name: "Action", type: "string", jsonPath: ".spec.action", description: "ALLOW or DENY." },
      {
        name: "DefaultDeny",
        type: "boolean",
        jsonPath: ".spec.defaultDeny",
        description: "Whether requests no ALLOW rule allows are refused.",
      },
      condition("Accepted", "Whether the policy is valid."),
      condition("ResolvedRefs", "False while a targetRef names a Service that does not exist."),
      condition("Ready", "Whether every pod it selects has a sidecar that enforces it."),
      REASON,
      AGE,
      GENERATION,
      inForce("The generation enforced while a targetRef names a Service that does not exist: the last whose Services all existed."),
    ],
  },
];

/** The schema of a whole object of the kind (what `openAPIV3Schema` holds). */
export function objectSchema(k: Kind): StructuralSchema {
  return {
    type: "object",
    description: k.description,
    properties: {
      apiVersion: { type: "string", description: `${GROUP}/${VERSION}` },
      kind: { type: "string", description: k.kind },
      // nothing but type: the API server refuses more, and kubectl explain describes ObjectMeta itself
      metadata: { type: "object" },
      spec: toStructural(k.spec, "spec"),
      status: toStructural(k.status, "status"),
    },
    required: ["spec"],
  };
}

export function customResourceDefinition(k: Kind) {
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: `${k.plural}.${GROUP}`, labels: { "app.kubernetes.io/part-of": "weft" } },
    spec: {
      group: GROUP,
      names: {
        kind: k.kind,
        listKind: `${k.kind}List`,
        plural: k.plural,
        singular: k.singular,
        shortNames: k.shortNames,
        categories: ["weft"],
      },
      scope: "Namespaced",
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: k.columns,
          schema: { openAPIV3Schema: objectSchema(k) },
        },
      ],
    },
  };
}
