// `weft inject -f FILE|-` (its command line: bin/commands/inject.ts): manual injection. Reads
// Kubernetes YAML (any number of documents, `kind: List` too), injects every Pod and every pod
// template (Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Job, CronJob)
// exactly as the webhook would, and writes all documents to stdout, the others unchanged. A bad
// annotation anywhere fails the whole run and writes nothing, so
// `weft inject -f x.yaml | kubectl apply -f -` never applies half.
import { Buffer } from "node:buffer";
import { readFile } from "node:fs/promises";
import process from "node:process";
import { Schema, YAML11_SCHEMA, dump, loadAll, timestampTag } from "js-yaml";
import { UsageError } from "../../shared/command.ts";
import { injectPod } from "./patch.ts";
import { parseInjectSettings, type InjectSettings } from "./settings.ts";

// Read scalars as kubectl does (YAML 1.1: 0644 is octal, yes/on are booleans), except that
// timestamps stay strings, as kubectl keeps them.
const KUBECTL_YAML = new Schema(YAML11_SCHEMA.tags.filter((tag) => tag !== timestampTag));

// Where each workload keeps its pod template; a Pod is its own.
const TEMPLATES: Record<string, string[]> = {
  "v1/Pod": [],
  "v1/ReplicationController": ["spec", "template"],
  "apps/v1/Deployment": ["spec", "template"],
  "apps/v1/StatefulSet": ["spec", "template"],
  "apps/v1/DaemonSet": ["spec", "template"],
  "apps/v1/ReplicaSet": ["spec", "template"],
  "batch/v1/Job": ["spec", "template"],
  "batch/v1/CronJob": ["spec", "jobTemplate", "spec", "template"],
};

type Doc = Record<string, unknown>;
const isObject = (x: unknown): x is Doc => typeof x === "object" && x !== null && !Array.isArray(x);

/** What `weft inject`'s flags give (bin/commands/inject.ts declares them, and checks at compile time that they fit this). */
export interface InjectValues {
  filename?: string;
  image?: string;
  "control-plane"?: string;
  "trust-domain"?: string;
  "service-cidr": string[];
}

/** Injects the file or stdin `values.filename` names and writes the result to stdout; 1 when any pod cannot be injected. */
export async function injectFile(values: InjectValues): Promise<number> {
  if (values.filename === undefined) throw new UsageError("-f FILE is required (- reads stdin)");
  const settings = parseInjectSettings({
    image: values.image,
    controlPlane: values["control-plane"],
    trustDomain: values["trust-domain"],
    serviceCidrs: values["service-cidr"],
  });
  if (!settings.ok) {
    // "trustDomain: must be ..." -> "--trust-domain: must be ..."
    const flag = (problem: string) =>
      problem.replace(/^[a-zA-Z]+/, (field) => `--${field.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`);
    throw new UsageError(...settings.problems.map(flag));
  }

  const name = values.filename === "-" ? "stdin" : values.filename;
  let text: string;
  try {
    text = values.filename === "-" ? await readStdin() : await readFile(values.filename, "utf8");
  } catch (e) {
    process.stderr.write(`weft inject: cannot read ${name}: ${(e as Error).message}\n`);
    return 1;
  }
  let docs: unknown[];
  try {
    docs = loadAll(text, { schema: KUBECTL_YAML, filename: name });
  } catch (e) {
    process.stderr.write(`weft inject: ${name} is not valid YAML: ${(e as Error).message}\n`);
    return 1;
  }

  const result = injectDocuments(docs, settings.value);
  for (const note of result.notes) process.stderr.write(`weft inject: ${name}: ${note}\n`);
  if (result.problems.length > 0) {
    for (const problem of result.problems) process.stderr.write(`weft inject: ${name}: ${problem}\n`);
    process.stderr.write("weft inject: nothing written\n");
    return 1;
  }
  process.stdout.write(result.docs.map((doc) => dump(doc, { lineWidth: -1, noRefs: true })).join("---\n"));
  return 0;
}

/** Injects the pods of parsed YAML documents; `notes` say which were left alone and why. */
export function injectDocuments(docs: unknown[], settings: InjectSettings): { docs: unknown[]; notes: string[]; problems: string[] } {
  const notes: string[] = [];
  const problems: string[] = [];
  const visit = (doc: unknown, where: string): unknown => {
    if (!isObject(doc)) return doc;
    if (doc.apiVersion === "v1" && doc.kind === "List" && Array.isArray(doc.items)) {
      return { ...doc, items: doc.items.map((item, i) => visit(item, `${where}, item ${i + 1}`)) };
    }
    const path = TEMPLATES[`${doc.apiVersion}/${doc.kind}`];
    if (!path) return doc;
    const meta = isObject(doc.metadata) ? doc.metadata : {};
    const what = `${where} (${doc.kind} ${meta.namespace ? `${meta.namespace}/` : ""}${meta.name ?? meta.generateName ?? "without a name"})`;
    const parent = path.slice(0, -1).reduce<unknown>((x, key) => (isObject(x) ? x[key] : undefined), doc);
    const key = path.at(-1);
    const template = key === undefined ? doc : isObject(parent) ? parent[key] : undefined;
    if (!isObject(template)) {
      problems.push(`${what}: ${path.join(".")} is missing: there is no pod template to inject`);
      return doc;
    }
    const injection = injectPod(template, settings);
    switch (injection.outcome) {
      case "injected":
        if (key === undefined) return injection.pod;
        (parent as Doc)[key] = injection.pod;
        return doc;
      case "skipped":
        notes.push(`${what}: not injected: ${injection.reason}`);
        return doc;
      case "refused":
        // the problems' field paths start at the pod template
        problems.push(...injection.problems.map((p) => `${what}${path.length > 0 ? `, pod template ${path.join(".")}` : ""}: ${p}`));
        return doc;
    }
  };
  // Empty documents (a stray ---) carry nothing; kubectl skips them too.
  const out = docs.flatMap((doc, i) => (doc === null || doc === undefined ? [] : [visit(structuredClone(doc), `document ${i + 1}`)]));
  return { docs: out, notes, problems };
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}
