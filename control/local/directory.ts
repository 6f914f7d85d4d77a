// Reads a directory of Kubernetes YAML as local mode's source of resources: the weft kinds,
// Services, Namespaces, Gateway API HTTPRoutes and LocalWorkloads. Each file is read whole;
// a file with a problem keeps what it held last time it was good, so a half-saved edit
// changes nothing but the error that is reported.
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { Schema, YAML11_SCHEMA, loadAll, timestampTag } from "js-yaml";
import type { V1Service } from "@kubernetes/client-node";
import { parseAccessPolicy, type AccessPolicy } from "../resources/access-policy.ts";
import type { Parsed } from "../resources/parse.ts";
import { parseTrafficPolicy, type TrafficPolicy } from "../resources/traffic-policy.ts";
import { parseWasmFilter, type WasmFilter } from "../resources/wasm-filter.ts";
import { serviceInfo } from "../kubernetes/convert.ts";
import { externalHost } from "../mesh/external-services.ts";
import { httpRouteInfo } from "../kubernetes/httproute.ts";
import type { HttpRouteInfo, ServiceInfo } from "../mesh/world.ts";
import { parseLocalWorkload, type LocalWorkload } from "./workload.ts";

/** What one file holds, by kind, each object with the directory of its file (for relative paths). */
export interface FileContents {
  namespaces: Map<string, Record<string, string>>;
  services: ServiceInfo[];
  httpRoutes: HttpRouteInfo[];
  wasmFilters: WasmFilter[];
  trafficPolicies: TrafficPolicy[];
  accessPolicies: AccessPolicy[];
  workloads: { workload: LocalWorkload; dir: string }[];
}

export interface DirectoryRead {
  /** Repository-relative file -> what it held when last good. */
  files: Map<string, FileContents>;
  /** file -> why it is not read (the file's last good contents are kept). */
  problems: Map<string, string>;
}

const KUBECTL_YAML = new Schema(YAML11_SCHEMA.tags.filter((tag) => tag !== timestampTag));
const YAML_FILE = /\.ya?ml$/;

function emptyContents(): FileContents {
  return { namespaces: new Map(), services: [], httpRoutes: [], wasmFilters: [], trafficPolicies: [], accessPolicies: [], workloads: [] };
}

type Doc = { apiVersion?: unknown; kind?: unknown; metadata?: { name?: unknown; namespace?: unknown; labels?: Record<string, string> } };

function take<T>(result: Parsed<T>, where: string): T {
  if (!result.ok) throw new Error(`${where}: ${result.problems.join("; ")}`);
  return result.value;
}

/** Parses one file's text; throws with the document and field that is wrong. */
export function parseFile(text: string, file: string, defaultNamespace = "default"): FileContents {
  const out = emptyContents();
  const docs = loadAll(text, { schema: KUBECTL_YAML, filename: file }) as unknown[];
  docs.forEach((raw, index) => {
    if (raw === null || raw === undefined) return;
    if (typeof raw !== "object" || Array.isArray(raw))
      throw new Error(`${file}: document ${index + 1} is not a Kubernetes object (apiVersion, kind, metadata, ...)`);
    const doc = { ...(raw as Doc) };
    // Namespaced objects without a namespace go where kubectl would put them: the default one.
    if (doc.kind !== "Namespace")
      doc.metadata = { ...doc.metadata, namespace: (doc.metadata?.namespace as string | undefined) ?? defaultNamespace };
    const where = `${file}: document ${index + 1} (${String(doc.kind)} ${String(doc.metadata?.namespace ?? "")}/${String(doc.metadata?.name ?? "?")})`;
    switch (doc.kind) {
      case "Namespace":
        if (typeof doc.metadata?.name !== "string") throw new Error(`${where}: metadata.name is required`);
        out.namespaces.set(doc.metadata.name, doc.metadata.labels ?? {});
        return;
      case "Service": {
        if (doc.apiVersion !== "v1") throw new Error(`${where}: apiVersion must be v1`);
        if (typeof doc.metadata?.name !== "string") throw new Error(`${where}: metadata.name is required`);
        const spec = (doc as V1Service).spec;
        // What the API server would refuse: an ExternalName Service declares a host outside the mesh.
        if (spec?.type === "ExternalName" && !externalHost(spec.externalName))
          throw new Error(
            `${where}: a Service of type ExternalName needs spec.externalName, the host outside the mesh it declares (a DNS name like api.example.com), not ${JSON.stringify(spec.externalName ?? null)}`,
          );
        out.services.push(serviceInfo(doc as V1Service));
        return;
      }
      case "HTTPRoute": {
        if (typeof doc.apiVersion !== "string" || !doc.apiVersion.startsWith("gateway.networking.k8s.io/"))
          throw new Error(`${where}: apiVersion must be gateway.networking.k8s.io/v1`);
        const route = httpRouteInfo(doc as Parameters<typeof httpRouteInfo>[0]);
        if (!route)
          throw new Error(`${where}: no parentRef names a Service; in the mesh an HTTPRoute attaches to Services (kind: Service)`);
        out.httpRoutes.push(route);
        return;
      }
      case "WasmFilter":
        out.wasmFilters.push(take(parseWasmFilter(doc), where));
        return;
      case "TrafficPolicy":
        out.trafficPolicies.push(take(parseTrafficPolicy(doc), where));
        return;
      case "AccessPolicy":
        out.accessPolicies.push(take(parseAccessPolicy(doc), where));
        return;
      case "LocalWorkload":
        out.workloads.push({ workload: take(parseLocalWorkload(doc), where), dir: path.dirname(file) });
        return;
      // What only a cluster runs (examples/shop/k8s/): local mode runs LocalWorkloads in their place.
      case "Deployment":
      case "ServiceAccount":
        return;
      default:
        throw new Error(
          `${where}: local mode reads Namespace, Service, HTTPRoute, WasmFilter, TrafficPolicy, AccessPolicy and LocalWorkload (and skips a cluster's Deployment and ServiceAccount), not ${String(doc.kind)}`,
        );
    }
  });
  return out;
}

async function yamlFiles(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    // Dot-directories hold state (.weft) and editors' files, not resources.
    if (e.name.startsWith(".") || e.name === "node_modules") continue;
    const full = path.join(dir, e.name);
    if (e.isDirectory()) found.push(...(await yamlFiles(full)));
    else if (YAML_FILE.test(e.name)) found.push(full);
  }
  return found.sort();
}

/** Reads every YAML file under `dir`, keeping `previous` contents for files that are now broken. */
export async function readDirectory(dir: string, previous?: DirectoryRead): Promise<DirectoryRead> {
  const read: DirectoryRead = { files: new Map(), problems: new Map() };
  for (const file of await yamlFiles(dir)) {
    try {
      read.files.set(file, parseFile(await readFile(file, "utf8"), file));
    } catch (e) {
      read.problems.set(file, (e as Error).message);
      const last = previous?.files.get(file);
      if (last) read.files.set(file, last);
    }
  }
  return read;
}
