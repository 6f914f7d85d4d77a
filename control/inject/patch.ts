// Sidecar injection as a pure function: a Pod (or a pod template: metadata and spec) and the
// injector's settings in; the injected pod and the RFC 6902 JSON Patch that makes it out, or why
// the pod is left alone, or why it is refused. The admission webhook (webhook.ts) answers with the
// patch; `weft inject -f` (cli.ts) writes the injected pod.
//
// What is injected, as a Kubernetes native sidecar (restartPolicy: Always in initContainers, so it
// starts before and stops after the app): `weft-init`, which runs `weft init` to redirect the
// pod's traffic through the proxy, then `weft-proxy`, which runs `weft proxy` configured by the
// control plane, and two volumes: the projected ServiceAccount token the proxy authenticates with
// and an emptyDir for /tmp (the root filesystem is read-only). Of the app's containers, only the
// kubelet probes change: they go through the sidecar (probes.ts), as Istio's do.
import type { V1Container, V1EnvVar, V1Probe, V1Volume } from "@kubernetes/client-node";
import * as v from "valibot";
import { parseResource } from "../resources/parse.ts";
import {
  EXCLUDE_OUTBOUND_PORTS,
  EXCLUDE_INBOUND_PORTS,
  INJECT,
  PROMETHEUS_PATH,
  PROMETHEUS_PORT,
  PROMETHEUS_SCRAPE,
  PROXY_CPU,
  PROXY_MEMORY,
  PROXY_MEMORY_LIMIT,
  RUNTIME,
  STATUS,
  readAnnotations,
  type PodAnnotations,
} from "./annotations.ts";
import { quantityValue } from "./quantity.ts";
import { sidecarImage, WEFT_VERSION, type InjectSettings } from "./settings.ts";
import { rewriteProbes } from "./probes.ts";
import { runtimeEnv } from "./runtime-env.ts";
import { MAX_CAPTURED_PORT } from "../init/rules.ts";
import { APP_PROBES_ENV } from "../../proxy/admin/app-health.ts";

export const INIT_CONTAINER = "weft-init";
export const PROXY_CONTAINER = "weft-proxy";
export const TOKEN_VOLUME = "weft-token";
export const TMP_VOLUME = "weft-tmp";
const TOKEN_DIR = "/var/run/secrets/weft";
/** Where the proxy reads its token (weft proxy's default for --token-file and WEFT_TOKEN_FILE, bin/commands/proxy.ts). */
const TOKEN_FILE = `${TOKEN_DIR}/token`;
/** The ConfigMap the control plane keeps in every injected namespace with the mesh's root (control/kubernetes/ca-bundle.ts). */
export const CA_CONFIG_MAP = "weft-ca-root";
/** Where the proxy reads the roots that the control plane's certificate chains to. */
const CA_FILE = `${TOKEN_DIR}/ca.crt`;

/** The value of weft.dev/status on an injected pod. */
export interface InjectionStatus {
  version: string;
  initContainers: string[];
  volumes: string[];
}

export interface AddOperation {
  op: "add";
  path: string;
  value: unknown;
}

export type Injection =
  | { outcome: "injected"; pod: Record<string, unknown>; patch: AddOperation[] }
  /** Left as it is; `warn` when the user probably expected a sidecar (hostNetwork). */
  | { outcome: "skipped"; reason: string; warn: boolean }
  | { outcome: "refused"; problems: string[] };

// The parts of a pod the injector reads; everything else passes through untouched. Kubernetes
// reads a null list or map as an absent one, so these do too.
const Port = v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(65535));
const Named = v.looseObject({ name: v.string() });
// valibot's object and record schemas take a list too, and the patch goes to the pod as sent:
// "add /metadata/annotations" into a list is a patch the API server refuses, so is the pod.
const map = <T extends v.GenericSchema>(schema: T) =>
  v.pipe(
    v.unknown(),
    v.check((x) => !Array.isArray(x), "must be a map, not a list"),
    schema,
  );
const PodView = v.looseObject({
  metadata: v.nullish(
    map(
      v.looseObject({
        labels: v.nullish(map(v.record(v.string(), v.string()))),
        annotations: v.nullish(map(v.record(v.string(), v.string('must be a string: quote the value, like weft.dev/inject: "false"')))),
      }),
    ),
  ),
  spec: v.looseObject({
    containers: v.pipe(
      v.array(
        v.looseObject({
          name: v.string(),
          ports: v.nullish(v.array(v.looseObject({ containerPort: Port, protocol: v.nullish(v.string()) }))),
        }),
      ),
      v.minLength(1, "a pod needs at least one container"),
    ),
    initContainers: v.nullish(v.array(Named)),
    volumes: v.nullish(v.array(Named)),
    hostNetwork: v.nullish(v.boolean()),
  }),
});
type PodView = v.InferOutput<typeof PodView>;

const skipped = (reason: string, warn = false): Injection => ({ outcome: "skipped", reason, warn });
const refused = (problems: string[]): Injection => ({ outcome: "refused", problems });

export function injectPod(input: unknown, settings: InjectSettings): Injection {
  const parsed = parseResource(PodView, input);
  if (!parsed.ok) return refused(parsed.problems);
  const pod = parsed.value;
  const annotations = pod.metadata?.annotations ?? {};
  const read = readAnnotations(annotations);
  if (!read.ok) return refused(read.problems);
  const wanted = read.value;

  // The label opts out too: the webhook's objectSelector matches it, so such a pod is created
  // even while the webhook is down.
  if (wanted[INJECT] === "false" || pod.metadata?.labels?.[INJECT] === "false") return skipped(`${INJECT} is "false"`);
  if (annotations[STATUS] !== undefined) return skipped(`already injected (${STATUS}: ${annotations[STATUS]})`);
  if (pod.spec.hostNetwork) {
    return skipped(
      "hostNetwork is true: the pod shares its node's network, and redirecting it to a sidecar would capture the node's traffic too",
      true,
    );
  }
  const conflicts = [
    ...nameConflicts(pod),
    ...portConflicts(pod, settings),
    ...uncapturablePorts(pod, wanted[EXCLUDE_INBOUND_PORTS] ?? []),
  ];
  if (conflicts.length > 0) return refused(conflicts);

  const resources = proxyResources(wanted, settings);
  if ("problems" in resources) return refused(resources.problems);
  const runtime = wanted[RUNTIME] ?? settings.runtime;
  const command = settings.commands[runtime];
  const image = sidecarImage(settings, runtime);
  if ("problem" in image) return refused([image.problem]);
  // Every inbound port is captured, so a port the app did not declare cannot bypass the sidecar;
  // the admin port stays the kubelet's and Prometheus's, and annotated ports stay the app's.
  const excludedInbound = [...new Set([settings.ports.admin, ...(wanted[EXCLUDE_INBOUND_PORTS] ?? [])])].sort((a, b) => a - b);
  const excludedOutbound = [...new Set(wanted[EXCLUDE_OUTBOUND_PORTS] ?? [])].sort((a, b) => a - b);

  // The init container runs iptables, which only the Node image carries (docs/images.md).
  const init: V1Container = {
    name: INIT_CONTAINER,
    image: settings.image,
    command: settings.commands.node,
    args: [
      "init",
      "--proxy-uid",
      String(settings.proxyUid),
      "--inbound-port",
      String(settings.ports.inbound),
      "--outbound-port",
      String(settings.ports.outbound),
      "--include-inbound-ports",
      "*",
      "--exclude-inbound-ports",
      excludedInbound.join(","),
      ...(excludedOutbound.length > 0 ? ["--exclude-outbound-ports", excludedOutbound.join(",")] : []),
      ...(settings.serviceCidrs.length > 0 ? ["--service-cidr", settings.serviceCidrs.join(",")] : []),
    ],
    resources,
    // iptables needs root with NET_ADMIN and NET_RAW, and nothing else
    securityContext: {
      runAsUser: 0,
      runAsGroup: 0,
      runAsNonRoot: false,
      privileged: false,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { add: ["NET_ADMIN", "NET_RAW"], drop: ["ALL"] },
    },
  };
  const probes = rewriteProbes(pod.spec.containers as V1Container[], settings.ports.admin);
  const ready: V1Probe = { httpGet: { path: "/ready", port: settings.ports.admin } };
  const proxy: V1Container = {
    name: PROXY_CONTAINER,
    image: image.image,
    command,
    args: ["proxy"],
    restartPolicy: "Always",
    env: [
      ...proxyEnv(settings),
      ...Object.entries(runtimeEnv(runtime, quantityValue(resources.limits.memory!))).map(([name, value]) => ({ name, value })),
      ...(Object.keys(probes.probes).length > 0 ? [{ name: APP_PROBES_ENV, value: JSON.stringify(probes.probes) }] : []),
    ],
    ports: [{ name: "weft-admin", containerPort: settings.ports.admin, protocol: "TCP" }],
    // The kubelet starts the app only once a native sidecar's startup probe passes, so the app
    // never sends a request before the proxy can carry it (Istio's holdApplicationUntilProxyStarts).
    startupProbe: { ...ready, periodSeconds: 1, timeoutSeconds: 3, failureThreshold: 600 },
    readinessProbe: { ...ready, periodSeconds: 5, timeoutSeconds: 3, failureThreshold: 3 },
    resources,
    securityContext: {
      runAsUser: settings.proxyUid,
      runAsGroup: settings.proxyUid,
      runAsNonRoot: true,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ["ALL"] },
    },
    volumeMounts: [
      { name: TOKEN_VOLUME, mountPath: TOKEN_DIR, readOnly: true },
      { name: TMP_VOLUME, mountPath: "/tmp" },
    ],
  };
  const volumes: V1Volume[] = [
    {
      name: TOKEN_VOLUME,
      projected: {
        sources: [
          {
            serviceAccountToken: { audience: settings.token.audience, expirationSeconds: settings.token.expirationSeconds, path: "token" },
          },
          { configMap: { name: CA_CONFIG_MAP, items: [{ key: "ca.crt", path: "ca.crt" }] } },
        ],
      },
    },
    { name: TMP_VOLUME, emptyDir: {} },
  ];
  const status: InjectionStatus = {
    version: WEFT_VERSION,
    initContainers: [INIT_CONTAINER, PROXY_CONTAINER],
    volumes: volumes.map((x) => x.name),
  };

  const patch: AddOperation[] = [];
  const add = (path: string, value: unknown) => patch.push({ op: "add", path, value });
  // First in initContainers: the app's own init containers then already run in the mesh.
  if (pod.spec.initContainers) {
    add("/spec/initContainers/0", init);
    add("/spec/initContainers/1", proxy);
  } else {
    add("/spec/initContainers", [init, proxy]);
  }
  for (const { path, value } of probes.replaced) add(path, value);
  if (pod.spec.volumes) for (const volume of volumes) add("/spec/volumes/-", volume);
  else add("/spec/volumes", volumes);
  const written = { [STATUS]: JSON.stringify(status), ...scrapeAnnotations(annotations, settings.ports.admin) };
  if (!pod.metadata) add("/metadata", { annotations: written });
  else if (!pod.metadata.annotations) add("/metadata/annotations", written);
  else for (const [key, value] of Object.entries(written)) add(`/metadata/annotations/${pointerToken(key)}`, value);

  return { outcome: "injected", pod: applyPatch(input as Record<string, unknown>, patch), patch };
}

/**
 * Where Prometheus finds the sidecar's metrics (its admin port's /metrics, which answers the pod's
 * network). A pod that already says where to scrape it keeps that: those are its app's metrics,
 * and a pod has one set of these annotations (docs/observability.md shows the scrape job by port
 * name that finds the sidecar then).
 */
function scrapeAnnotations(annotations: Record<string, string>, adminPort: number): Record<string, string> {
  if ([PROMETHEUS_SCRAPE, PROMETHEUS_PORT, PROMETHEUS_PATH].some((key) => annotations[key] !== undefined)) return {};
  return { [PROMETHEUS_SCRAPE]: "true", [PROMETHEUS_PORT]: String(adminPort), [PROMETHEUS_PATH]: "/metrics" };
}

function proxyEnv(settings: InjectSettings): V1EnvVar[] {
  const field = (name: string, fieldPath: string): V1EnvVar => ({ name, valueFrom: { fieldRef: { fieldPath } } });
  return [
    field("POD_NAME", "metadata.name"),
    field("POD_NAMESPACE", "metadata.namespace"),
    field("SERVICE_ACCOUNT", "spec.serviceAccountName"),
    { name: "WEFT_CONTROL_PLANE", value: settings.controlPlane },
    { name: "WEFT_TRUST_DOMAIN", value: settings.trustDomain },
    { name: "WEFT_TOKEN_FILE", value: TOKEN_FILE },
    { name: "WEFT_CA_FILE", value: CA_FILE },
    // the ports `weft init` redirects to, so the proxy listens where the traffic arrives
    { name: "WEFT_ADMIN_PORT", value: String(settings.ports.admin) },
    { name: "WEFT_OUTBOUND_PORT", value: String(settings.ports.outbound) },
    { name: "WEFT_INBOUND_PORT", value: String(settings.ports.inbound) },
    ...(settings.otlpEndpoint ? [{ name: "OTEL_EXPORTER_OTLP_ENDPOINT", value: settings.otlpEndpoint }] : []),
  ];
}

function nameConflicts(pod: PodView): string[] {
  const problems: string[] = [];
  const taken = (what: string, names: string[]) => {
    for (const name of names) {
      problems.push(
        `the pod already has ${what} named "${name}" but no ${STATUS} annotation, so weft cannot tell whether it injected it: ` +
          `remove weft's containers and volumes to inject again, or set ${INJECT}: "false"`,
      );
    }
  };
  const ours = (list: { name: string }[] | null | undefined, names: string[]) =>
    (list ?? []).map((x) => x.name).filter((n) => names.includes(n));
  taken("a container", ours([...pod.spec.containers, ...(pod.spec.initContainers ?? [])], [INIT_CONTAINER, PROXY_CONTAINER]));
  taken("a volume", ours(pod.spec.volumes, [TOKEN_VOLUME, TMP_VOLUME]));
  return problems;
}

function portConflicts(pod: PodView, settings: InjectSettings): string[] {
  const { admin, outbound, inbound } = settings.ports;
  const proxyPorts = new Set([admin, outbound, inbound]);
  return pod.spec.containers.flatMap((c) =>
    (c.ports ?? [])
      .filter((p) => proxyPorts.has(p.containerPort))
      .map(
        (p) =>
          `container "${c.name}" declares port ${p.containerPort}, which the weft proxy uses (${admin} admin, ${outbound} outbound, ${inbound} inbound): ` +
          `move the app to another port, or set ${INJECT}: "false"`,
      ),
  );
}

/** Declared ports the sidecar cannot capture (control/init/rules.ts): refused, unless the pod leaves them out of the mesh. */
function uncapturablePorts(pod: PodView, excluded: number[]): string[] {
  return pod.spec.containers.flatMap((c) =>
    (c.ports ?? [])
      .filter((p) => (p.protocol ?? "TCP") === "TCP" && p.containerPort > MAX_CAPTURED_PORT && !excluded.includes(p.containerPort))
      .map(
        (p) =>
          `container "${c.name}" declares port ${p.containerPort}, above ${MAX_CAPTURED_PORT}, the highest port weft's sidecar can capture: ` +
          `move the app to a lower port, or leave this one out of the mesh with the annotation ${EXCLUDE_INBOUND_PORTS}: "${p.containerPort}"`,
      ),
  );
}

type Resources = { requests: Record<string, string>; limits: Record<string, string> };

/** The proxy's requests and limits: the settings, overridden by the pod's annotations; a request above its limit is refused here. */
function proxyResources(wanted: PodAnnotations, settings: InjectSettings): Resources | { problems: string[] } {
  const { requests: r, limits: l } = settings.resources;
  const setting = (value: string) => ({ value, source: "the injector's setting" });
  const annotated = (annotation: string, value: string | undefined, fallback: string) =>
    value === undefined ? setting(fallback) : { value, source: `annotation ${annotation}` };
  const requests = { cpu: annotated(PROXY_CPU, wanted[PROXY_CPU], r.cpu), memory: annotated(PROXY_MEMORY, wanted[PROXY_MEMORY], r.memory) };
  const limits = {
    cpu: l.cpu === undefined ? undefined : setting(l.cpu),
    memory: annotated(PROXY_MEMORY_LIMIT, wanted[PROXY_MEMORY_LIMIT], l.memory),
  };
  const problems: string[] = [];
  for (const resource of ["cpu", "memory"] as const) {
    const request = requests[resource];
    const limit = limits[resource];
    if (limit && quantityValue(request.value) > quantityValue(limit.value)) {
      const fix = resource === "memory" ? `raise ${PROXY_MEMORY_LIMIT} too` : "lower the request";
      problems.push(
        `the proxy's ${resource} request ${request.value} (${request.source}) is above its ${resource} limit ${limit.value} (${limit.source}): ${fix}`,
      );
    }
  }
  if (problems.length > 0) return { problems };
  return {
    requests: { cpu: requests.cpu.value, memory: requests.memory.value },
    limits: { ...(limits.cpu ? { cpu: limits.cpu.value } : {}), memory: limits.memory.value },
  };
}

/** A JSON Pointer reference token (RFC 6901): "~" and "/" escaped. */
const pointerToken = (key: string) => key.replaceAll("~", "~0").replaceAll("/", "~1");

/** Applies "add" operations to a copy of `document`, as the API server applies the webhook's patch. */
function applyPatch(document: Record<string, unknown>, patch: AddOperation[]): Record<string, unknown> {
  const root = structuredClone(document);
  for (const { path, value } of patch) {
    const tokens = path
      .slice(1)
      .split("/")
      .map((t) => t.replaceAll("~1", "/").replaceAll("~0", "~"));
    const last = tokens.pop()!;
    let parent = root as Record<string, unknown> | unknown[];
    for (const token of tokens) parent = (parent as Record<string, unknown>)[token] as Record<string, unknown> | unknown[];
    if (Array.isArray(parent)) parent.splice(last === "-" ? parent.length : Number(last), 0, structuredClone(value));
    else parent[last] = structuredClone(value);
  }
  return root;
}
