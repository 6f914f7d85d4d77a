// The sidecar injector as an AdmissionReview v1 endpoint, written against the Fetch API
// (Request in, Response out) so any HTTPS server can mount it: the control plane serves it at
// /inject. The API server sends each Pod CREATE in a namespace labelled weft.dev/inject=enabled
// (manifest.ts); the answer is allowed with a JSON Patch (patch.ts), allowed as it is (opted out,
// already injected, hostNetwork with a warning kubectl prints), or denied with the reason when an
// annotation is bad.
import { Buffer } from "node:buffer";
import * as v from "valibot";
import { createLogger, type Logger } from "../../shared/log.ts";
import { parseResource } from "../resources/parse.ts";
import { injectPod } from "./patch.ts";
import { DEFAULT_SETTINGS, type InjectSettings } from "./settings.ts";
import { readBoundedText } from "../api/body.ts";

export interface InjectionWebhookOptions {
  settings?: InjectSettings;
  /** Larger bodies get 413. Default 4 MiB: the API server's own request limit is 3 MiB. */
  maxBodyBytes?: number;
  log?: Logger;
}

const API_VERSION = "admission.k8s.io/v1";

const AdmissionReview = v.object({
  apiVersion: v.literal(API_VERSION, `must be "${API_VERSION}" (list only v1 in admissionReviewVersions)`),
  kind: v.literal("AdmissionReview", 'must be "AdmissionReview"'),
  request: v.looseObject({
    uid: v.pipe(v.string(), v.minLength(1)),
    kind: v.looseObject({ group: v.string(), version: v.string(), kind: v.string() }),
    operation: v.string(),
    namespace: v.optional(v.string()),
    name: v.optional(v.string()),
    object: v.optional(v.unknown()),
  }),
});

/** What the webhook answers to one request body, and what it logs about it. */
export interface AdmissionAnswer {
  status: number;
  /** An AdmissionReview with its response, or { error } for a body that is not one. */
  json: Record<string, unknown>;
  /** What to log; null for a request that is not a Pod CREATE, passed silently. */
  log: { level: "info" | "warn"; message: string; fields: Record<string, unknown> } | null;
}

/** The answer to an AdmissionReview body: a pure function of the text, so it can be checked on any input. */
const fail = (status: number, error: string): AdmissionAnswer => ({
  status,
  json: { error },
  log: { level: "warn", message: "refused an admission request", fields: { status, error } },
});

export function reviewAdmission(body: string, settings: InjectSettings): AdmissionAnswer {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch (e) {
    return fail(400, `the body is not JSON: ${(e as Error).message}`);
  }
  const parsed = parseResource(AdmissionReview, json);
  if (!parsed.ok) return fail(400, `not an AdmissionReview v1: ${parsed.problems.join("; ")}`);
  const review = parsed.value.request;
  const answer = (response: Record<string, unknown>, log: AdmissionAnswer["log"]): AdmissionAnswer => ({
    status: 200,
    json: { apiVersion: API_VERSION, kind: "AdmissionReview", response: { uid: review.uid, ...response } },
    log,
  });

  const { group, version, kind } = review.kind;
  // The webhook's rules send only Pod CREATEs; anything else passes untouched.
  if (group !== "" || version !== "v1" || kind !== "Pod" || review.operation !== "CREATE") return answer({ allowed: true }, null);
  if (review.object === undefined || review.object === null)
    return fail(400, "request.object is missing: a Pod CREATE review carries the Pod");

  const meta = (review.object as { metadata?: { name?: string; generateName?: string } }).metadata;
  const pod = `${review.namespace ?? ""}/${review.name || meta?.name || `${meta?.generateName ?? ""}*`}`;
  const injection = injectPod(review.object, settings);
  switch (injection.outcome) {
    case "injected":
      return answer(
        { allowed: true, patchType: "JSONPatch", patch: Buffer.from(JSON.stringify(injection.patch)).toString("base64") },
        { level: "info", message: "injected the sidecar", fields: { pod } },
      );
    case "skipped":
      return answer(
        { allowed: true, ...(injection.warn ? { warnings: [`weft: sidecar not injected: ${injection.reason}`] } : {}) },
        { level: "info", message: "not injected", fields: { pod, reason: injection.reason } },
      );
    case "refused": {
      const message = `weft cannot inject the sidecar: ${injection.problems.join("; ")}`;
      return answer(
        { allowed: false, status: { status: "Failure", code: 400, reason: "BadRequest", message } },
        { level: "warn", message: "denied a pod", fields: { pod, problems: injection.problems } },
      );
    }
  }
}

export function injectionWebhook(options: InjectionWebhookOptions = {}): (request: Request) => Promise<Response> {
  const settings = options.settings ?? DEFAULT_SETTINGS;
  const maxBodyBytes = options.maxBodyBytes ?? 4 << 20;
  const log = options.log ?? createLogger({ component: "injector" });

  const reply = (answer: AdmissionAnswer) => {
    if (answer.log) log[answer.log.level](answer.log.message, answer.log.fields);
    return Response.json(answer.json, { status: answer.status });
  };

  return async (request) => {
    if (request.method !== "POST") return reply(fail(405, `the injector takes POST with an AdmissionReview, not ${request.method}`));
    const body = await readBoundedText(request, maxBodyBytes);
    if (body === null) return reply(fail(413, `the AdmissionReview is larger than ${maxBodyBytes} bytes`));
    return reply(reviewAdmission(body, settings));
  };
}
