// The injection webhook's AdmissionReview (control/inject/webhook.ts), which the API server
// sends with whatever pod a user created: any text is answered with a 400 or a review whose
// uid is the request's; a patch only adds, names paths that exist, leaves the app's
// containers alone and makes a pod the injector then leaves as it is.
import { Buffer } from "node:buffer";
import { reviewAdmission } from "../../../control/inject/webhook.ts";
import { injectPod } from "../../../control/inject/patch.ts";
import { DEFAULT_SETTINGS } from "../../../control/inject/settings.ts";
import { bytes, check, utf8, type FuzzTarget } from "../target.ts";

interface Review {
  request: { uid: string; object?: { spec?: { containers?: unknown } } };
}

const pod = {
  metadata: {
    name: "web",
    namespace: "shop",
    labels: { app: "web" },
    annotations: { "weft.dev/proxy-cpu": "200m", "weft.dev/exclude-inbound-ports": "9090", "weft.dev/runtime": "deno" },
  },
  spec: {
    containers: [{ name: "app", image: "web", ports: [{ containerPort: 8080 }, { containerPort: 9090, protocol: "UDP" }] }],
    initContainers: [{ name: "setup" }],
    volumes: null,
  },
};
const review = (object: unknown, operation = "CREATE") => ({
  apiVersion: "admission.k8s.io/v1",
  kind: "AdmissionReview",
  request: { uid: "u-1", kind: { group: "", version: "v1", kind: "Pod" }, operation, namespace: "shop", object },
});

export const admission: FuzzTarget = {
  name: "admission",
  about:
    "reviewAdmission on arbitrary text: a 400 or a review answering the request's uid; an injection patch applies, keeps the app's containers and is not injected again",
  sources: ["control/inject/webhook.ts", "control/inject/patch.ts", "control/inject/annotations.ts", "control/inject/quantity.ts"],
  maxLength: 8192,
  json: true,
  dictionary: [
    '"metadata"',
    '"annotations"',
    '"labels"',
    '"spec"',
    '"containers"',
    '"initContainers"',
    '"volumes"',
    '"hostNetwork"',
    '"ports"',
    '"containerPort"',
    '"protocol"',
    '"name"',
    '"generateName"',
    '"weft.dev/inject"',
    '"weft.dev/status"',
    '"weft.dev/proxy-memory"',
    '"weft.dev/proxy-memory-limit"',
    '"weft.dev/exclude-outbound-ports"',
    '"weft-proxy"',
    '"weft-init"',
    '"weft-token"',
    '"1e999"',
    '"0.5Gi"',
    '"1,2, 3"',
    '"UPDATE"',
    '"Pod"',
    '"v1"',
    "null",
    "true",
    "15001",
    "65536",
    '"__proto__"',
  ],
  seeds: () =>
    [
      review(pod),
      review({ metadata: null, spec: { containers: [{ name: "a" }], hostNetwork: true } }),
      review(pod, "UPDATE"),
      review({ spec: { containers: [{ name: "weft-proxy" }] } }),
    ].map((r) => bytes(JSON.stringify(r))),
  fuzz(data) {
    const answer = reviewAdmission(utf8(data), DEFAULT_SETTINGS);
    JSON.stringify(answer.json);
    if (answer.status !== 200) {
      check(
        answer.status === 400 && typeof answer.json.error === "string" && answer.json.error.length > 0,
        () => `answered ${answer.status} ${JSON.stringify(answer.json)}`,
      );
      return;
    }
    const request = (JSON.parse(utf8(data)) as Review).request;
    const response = answer.json.response as { uid: string; allowed: boolean; patch?: string; status?: { message?: string } };
    check(response.uid === request.uid, "the response answers another uid");
    check(response.allowed || (response.status?.message ?? "") !== "", "a denial without a message");
    if (response.patch === undefined) return;
    const patch = JSON.parse(Buffer.from(response.patch, "base64").toString("utf8")) as { op: string; path: string }[];
    check(
      patch.every((p) => p.op === "add" && p.path.startsWith("/")),
      "a patch operation other than add",
    );
    // injectPod applies its patch to a copy as the API server would: it throws on a path that does not exist.
    const injection = injectPod(request.object, DEFAULT_SETTINGS);
    check(
      injection.outcome === "injected" && JSON.stringify(injection.patch) === JSON.stringify(patch),
      "the webhook's patch is not the injector's",
    );
    check(
      JSON.stringify((injection.pod.spec as { containers: unknown }).containers) === JSON.stringify(request.object?.spec?.containers),
      "the patch changed the app's containers",
    );
    const again = injectPod(injection.pod, DEFAULT_SETTINGS);
    check(again.outcome === "skipped", () => `an injected pod is ${again.outcome} when injected again`);
  },
};
