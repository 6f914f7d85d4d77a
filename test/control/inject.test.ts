// runtimes: node
// needs: k8s
// Sidecar injection (control/inject/): the webhook on a real kube-apiserver (test/k8s/cluster.ts,
// binaries from test/k8s/build.sh) serving over real TLS, registered with the
// MutatingWebhookConfiguration weft renders; `weft inject -f` as a real child process whose
// output the API server accepts; and the pure patch function's refusals.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:https";
import { tmpdir } from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { loadAll } from "js-yaml";
import { ANNOTATIONS } from "../../control/inject/annotations.ts";
import { injectorWebhookConfiguration } from "../../control/inject/manifest.ts";
import { injectPod, type AddOperation } from "../../control/inject/patch.ts";
import { DEFAULT_SETTINGS, parseInjectSettings, WEFT_VERSION, type InjectSettings } from "../../control/inject/settings.ts";
import { injectionWebhook } from "../../control/inject/webhook.ts";
import { parseAppProbes } from "../../proxy/admin/app-health.ts";
import { createLogger } from "../../shared/log.ts";
import { startCluster, type Cluster } from "../k8s/cluster.ts";
import { createCa, issueWorkload } from "../support/pki.ts";

const ROOT = path.resolve(import.meta.dirname, "..", "..");
const NODE = path.join(ROOT, "node_modules", ".bin", "node");
const quiet = createLogger({}, "error", () => {});

type Json = Record<string, any>;
/** The variables of a container that configure its JavaScript runtime. */
const runtimeVariables = (container: Json): Record<string, string> =>
  Object.fromEntries(
    (container.env ?? []).filter((e: Json) => /^(NODE_|DENO_|BUN_)/.test(e.name)).map((e: Json) => [e.name, e.value] as const),
  );
const pod = (name: string, extra: { annotations?: Record<string, string>; labels?: Record<string, string>; spec?: Json } = {}) => ({
  apiVersion: "v1",
  kind: "Pod",
  metadata: { name, ...(extra.annotations ? { annotations: extra.annotations } : {}), ...(extra.labels ? { labels: extra.labels } : {}) },
  spec: {
    containers: [
      {
        name: "app",
        image: "registry.k8s.io/pause:3.10",
        ports: [{ containerPort: 8080 }, { containerPort: 9090, protocol: "TCP" }, { containerPort: 5353, protocol: "UDP" }],
      },
    ],
    ...extra.spec,
  },
});
const names = (list: { name: string }[] | undefined) => (list ?? []).map((x) => x.name);

describe("injectPod (the patch itself)", () => {
  it("adds weft-init and weft-proxy first, the two volumes and the status, and only that", () => {
    const input = pod("web", {
      annotations: { "weft.dev/exclude-inbound-ports": "9090", "weft.dev/exclude-outbound-ports": "6379, 5432" },
      spec: { initContainers: [{ name: "migrate", image: "x" }], volumes: [{ name: "data", emptyDir: {} }] },
    });
    const r = injectPod(input, DEFAULT_SETTINGS);
    assert.equal(r.outcome, "injected");
    const out = r.pod as Json;
    assert.deepEqual(out.spec.containers, input.spec.containers, "the app's containers are unchanged (they have no probes)");
    assert.deepEqual(names(out.spec.initContainers), ["weft-init", "weft-proxy", "migrate"]);
    assert.deepEqual(names(out.spec.volumes), ["data", "weft-token", "weft-tmp"]);
    const [init, proxy] = out.spec.initContainers;
    // every inbound port is captured but the admin port and the excluded ones
    assert.deepEqual(init.args, [
      "init",
      "--proxy-uid",
      "1337",
      "--inbound-port",
      "15006",
      "--outbound-port",
      "15001",
      "--include-inbound-ports",
      "*",
      "--exclude-inbound-ports",
      "9090,15000",
      "--exclude-outbound-ports",
      "5432,6379",
    ]);
    assert.equal(proxy.restartPolicy, "Always");
    assert.deepEqual(proxy.command, ["node", "/opt/weft/weft.mjs"]);
    assert.deepEqual(JSON.parse(out.metadata.annotations["weft.dev/status"]), {
      version: WEFT_VERSION,
      initContainers: ["weft-init", "weft-proxy"],
      volumes: ["weft-token", "weft-tmp"],
    });
    // a patch of adds only, the status key escaped as a JSON Pointer
    assert.deepEqual(
      r.patch.map((op: AddOperation) => `${op.op} ${op.path}`),
      [
        "add /spec/initContainers/0",
        "add /spec/initContainers/1",
        "add /spec/volumes/-",
        "add /spec/volumes/-",
        "add /metadata/annotations/weft.dev~1status",
        "add /metadata/annotations/prometheus.io~1scrape",
        "add /metadata/annotations/prometheus.io~1port",
        "add /metadata/annotations/prometheus.io~1path",
      ],
    );
    assert.equal(injectPod(out, DEFAULT_SETTINGS).outcome, "skipped", "an injected pod is left alone");
  });

  it("tells Prometheus where the sidecar's metrics are, unless the pod says where its app's are", () => {
    const scrape = (r: ReturnType<typeof injectPod>) =>
      Object.fromEntries(Object.entries((r as { pod: Json }).pod.metadata.annotations).filter(([k]) => k.startsWith("prometheus.io/")));
    // The admin port, where /metrics answers the pod's network (docs/observability.md scrapes it).
    assert.deepEqual(scrape(injectPod(pod("web"), DEFAULT_SETTINGS)), {
      "prometheus.io/scrape": "true",
      "prometheus.io/port": "15000",
      "prometheus.io/path": "/metrics",
    });
    const own = { "prometheus.io/scrape": "true", "prometheus.io/port": "9090" };
    assert.deepEqual(scrape(injectPod(pod("web", { annotations: own }), DEFAULT_SETTINGS)), own, "the app's own scrape settings stay");
  });

  it("gives the sidecars the OTLP endpoint the control plane has, and none without one", () => {
    const endpoint = (settings: InjectSettings) => {
      const r = injectPod(pod("web"), settings) as { pod: Json };
      const proxy = r.pod.spec.initContainers.find((c: Json) => c.name === "weft-proxy");
      return proxy.env.find((e: Json) => e.name === "OTEL_EXPORTER_OTLP_ENDPOINT")?.value;
    };
    assert.equal(endpoint(DEFAULT_SETTINGS), undefined);
    const traced = parseInjectSettings({ otlpEndpoint: "http://jaeger-collector.observability:4318" });
    assert.ok(traced.ok);
    assert.equal(endpoint(traced.value), "http://jaeger-collector.observability:4318");
    const bad = parseInjectSettings({ otlpEndpoint: "jaeger:4318" });
    assert.ok(!bad.ok && /otlpEndpoint.*must be an http:\/\/ or https:\/\/ URL/.test(bad.problems.join("\n")), JSON.stringify(bad));
  });

  it("points the app's HTTP and TCP probes at the sidecar and hands it the originals; other probes stay", () => {
    const containers = [
      {
        name: "web",
        image: "x",
        ports: [{ name: "http", containerPort: 8080 }],
        readinessProbe: {
          httpGet: { path: "/healthz", port: "http", httpHeaders: [{ name: "X-Check", value: "1" }] },
          periodSeconds: 3,
          timeoutSeconds: 2,
        },
        livenessProbe: { tcpSocket: { port: 8080 }, failureThreshold: 5 },
        startupProbe: { exec: { command: ["true"] } },
      },
      {
        name: "side",
        image: "x",
        readinessProbe: { httpGet: { path: "/", port: 9000, host: "10.0.0.9" } },
        livenessProbe: { httpGet: { port: 9443, scheme: "HTTPS" } },
      },
    ];
    const r = injectPod(pod("web", { spec: { containers } }), DEFAULT_SETTINGS);
    assert.equal(r.outcome, "injected");
    const out = r.pod as Json;
    const [web, side] = out.spec.containers;
    assert.deepEqual(web.readinessProbe, {
      httpGet: { path: "/app-health/web/readyz", port: 15000, scheme: "HTTP" },
      periodSeconds: 3,
      timeoutSeconds: 2,
    });
    assert.deepEqual(web.livenessProbe, { httpGet: { path: "/app-health/web/livez", port: 15000, scheme: "HTTP" }, failureThreshold: 5 });
    assert.deepEqual(web.startupProbe, containers[0].startupProbe, "an exec probe does not cross the network");
    assert.deepEqual(side.readinessProbe, containers[1].readinessProbe, "a probe of another host is not this pod's");
    assert.deepEqual(side.livenessProbe, { httpGet: { path: "/app-health/side/livez", port: 15000, scheme: "HTTP" } });
    const env = (out.spec.initContainers[1].env as { name: string; value?: string }[]).find((e) => e.name === "WEFT_APP_PROBES");
    assert.deepEqual(JSON.parse(env!.value!), {
      "web/readyz": {
        kind: "http",
        port: 8080,
        path: "/healthz",
        scheme: "HTTP",
        headers: [{ name: "X-Check", value: "1" }],
        timeoutSeconds: 2,
      },
      "web/livez": { kind: "tcp", port: 8080, timeoutSeconds: 1 },
      "side/livez": { kind: "http", port: 9443, path: "/", scheme: "HTTPS", headers: [], timeoutSeconds: 1 },
    });
    // What the sidecar reads back is what the injector wrote.
    assert.deepEqual(parseAppProbes(env!.value!), JSON.parse(env!.value!));
    assert.ok(
      !(injectPod(pod("plain"), DEFAULT_SETTINGS) as Json).pod.spec.initContainers[1].env.some(
        (e: { name: string }) => e.name === "WEFT_APP_PROBES",
      ),
      "no probes, no variable",
    );
  });

  it("follows the runtime and resource annotations", () => {
    const r = injectPod(
      pod("web", {
        annotations: {
          "weft.dev/runtime": "deno",
          "weft.dev/proxy-cpu": "200m",
          "weft.dev/proxy-memory": "300Mi",
          "weft.dev/proxy-memory-limit": "1Gi",
        },
      }),
      DEFAULT_SETTINGS,
    );
    assert.equal(r.outcome, "injected");
    const [init, proxy] = (r.pod as Json).spec.initContainers;
    assert.deepEqual(proxy.command, ["deno", "run", "--allow-all", "/opt/weft/weft.mjs"]);
    assert.equal(proxy.image, `ghcr.io/weft-dev/weft:${WEFT_VERSION}-deno`);
    // iptables is in the Node image only, so the init container stays on Node.
    assert.equal(init.image, `ghcr.io/weft-dev/weft:${WEFT_VERSION}`);
    assert.deepEqual(init.command, ["node", "/opt/weft/weft.mjs"]);
    assert.deepEqual(proxy.resources, { requests: { cpu: "200m", memory: "300Mi" }, limits: { memory: "1Gi" } });
    assert.deepEqual(runtimeVariables(proxy), {
      DENO_V8_FLAGS: "--max-semi-space-size=8,--max-old-space-size=512",
      DENO_UNSTABLE_LAZY_DYNAMIC_IMPORTS: "1",
    });
    assert.deepEqual(runtimeVariables(init), {}, "weft init runs with the Node image's own settings");
  });

  it("sets each runtime's memory settings from the proxy's memory limit (docs/design/sidecar-memory.md)", () => {
    const variables = (annotations: Record<string, string>) => {
      const r = injectPod(pod("web", { annotations }), DEFAULT_SETTINGS);
      assert.equal(r.outcome, "injected");
      return runtimeVariables((r.pod as Json).spec.initContainers[1]);
    };
    // Node keeps --disable-sigusr1, which the container's NODE_OPTIONS would otherwise drop from the image's.
    assert.deepEqual(variables({}), { NODE_OPTIONS: "--disable-sigusr1 --max-semi-space-size=8 --max-old-space-size=128" });
    assert.deepEqual(variables({ "weft.dev/proxy-memory-limit": "1Gi" }), {
      NODE_OPTIONS: "--disable-sigusr1 --max-semi-space-size=8 --max-old-space-size=512",
    });
    assert.deepEqual(variables({ "weft.dev/runtime": "deno" }), {
      DENO_V8_FLAGS: "--max-semi-space-size=8,--max-old-space-size=128",
      DENO_UNSTABLE_LAZY_DYNAMIC_IMPORTS: "1",
    });
    assert.deepEqual(variables({ "weft.dev/runtime": "bun", "weft.dev/proxy-memory-limit": "300M" }), {
      BUN_OPTIONS: "--smol",
      BUN_JSC_forceRAMSize: "300000000",
    });
  });

  it("gives each runtime's sidecar its own image, derived from the Node image's tag or named", () => {
    const image = (settings: unknown, runtime: string) => {
      const parsed = parseInjectSettings(settings);
      assert.ok(parsed.ok);
      const r = injectPod(pod("web", { annotations: { "weft.dev/runtime": runtime } }), parsed.value);
      if (r.outcome === "injected") return (r.pod as Json).spec.initContainers[1].image;
      assert.equal(r.outcome, "refused");
      return r.outcome === "refused" ? r.problems.join("; ") : "";
    };
    assert.equal(image({ image: "localhost:5000/weft:dev" }, "bun"), "localhost:5000/weft:dev-bun");
    assert.equal(image({ image: "localhost:5000/weft:dev" }, "node"), "localhost:5000/weft:dev");
    // A registry's port is not a tag.
    assert.equal(image({ image: "localhost:5000/weft" }, "deno"), `localhost:5000/weft:${WEFT_VERSION}-deno`);
    const pinned = `registry.example/weft@sha256:${"a".repeat(64)}`;
    assert.equal(
      image({ image: pinned, runtimeImages: { bun: "registry.example/weft-bun@sha256:b" } }, "bun"),
      "registry.example/weft-bun@sha256:b",
    );
    assert.match(
      image({ image: pinned }, "deno"),
      /the deno sidecar's image cannot be derived from registry\.example\/weft@sha256:a+, which is pinned by digest: name it in the injector's runtimeImages\.deno/,
    );
  });

  it("refuses bad annotations and conflicts, saying what, where and what to do", () => {
    const cases: [Json, RegExp][] = [
      [
        pod("a", { annotations: { "weft.dev/runtime": "python" } }),
        /^pod annotation weft\.dev\/runtime="python": must be one of "node", "deno", "bun"$/,
      ],
      [pod("a", { annotations: { "weft.dev/inject": "no" } }), /^pod annotation weft\.dev\/inject="no": must be "true", "false"$/],
      [
        pod("a", { annotations: { "weft.dev/exclude-outbound-ports": "80;443" } }),
        /^pod annotation weft\.dev\/exclude-outbound-ports="80;443": must be a comma-separated list of port numbers, like "8081,9090"$/,
      ],
      [pod("a", { annotations: { "weft.dev/exclude-inbound-ports": "70000" } }), /="70000": must list ports between 1 and 65535$/],
      [
        pod("a", { annotations: { "weft.dev/proxy-cpu": "lots" } }),
        /^pod annotation weft\.dev\/proxy-cpu="lots": must be a Kubernetes quantity, like "100m"$/,
      ],
      [
        pod("a", { annotations: { "weft.dev/proxy-memory": "1Gi" } }),
        /memory request 1Gi \(annotation weft\.dev\/proxy-memory\) is above its memory limit 256Mi \(the injector's setting\): raise weft\.dev\/proxy-memory-limit too/,
      ],
      [
        pod("a", { spec: { containers: [{ name: "app", image: "x", ports: [{ containerPort: 15001 }] }] } }),
        /container "app" declares port 15001, which the weft proxy uses/,
      ],
      [
        pod("a", { spec: { initContainers: [{ name: "weft-proxy", image: "x" }] } }),
        /already has a container named "weft-proxy" but no weft\.dev\/status annotation/,
      ],
      [
        { metadata: { annotations: { "weft.dev/inject": false } }, spec: { containers: [{ name: "a" }] } },
        /^metadata\.annotations\.weft\.dev\/inject: must be a string: quote the value/,
      ],
    ];
    for (const [input, message] of cases) {
      const r = injectPod(input, DEFAULT_SETTINGS);
      assert.ok(
        r.outcome === "refused" && r.problems.some((p) => message.test(p)),
        `${JSON.stringify(input.metadata)}: ${JSON.stringify(r)}`,
      );
    }
  });

  it("skips opted-out and hostNetwork pods, with a warning for hostNetwork", () => {
    assert.deepEqual(injectPod(pod("a", { annotations: { "weft.dev/inject": "false" } }), DEFAULT_SETTINGS), {
      outcome: "skipped",
      reason: 'weft.dev/inject is "false"',
      warn: false,
    });
    assert.equal(injectPod(pod("a", { labels: { "weft.dev/inject": "false" } }), DEFAULT_SETTINGS).outcome, "skipped");
    const host = injectPod(pod("a", { spec: { hostNetwork: true } }), DEFAULT_SETTINGS);
    assert.ok(host.outcome === "skipped" && host.warn && /hostNetwork/.test(host.reason));
  });

  it("documents every annotation in docs/injection.md", () => {
    const doc = readFileSync(path.join(ROOT, "docs", "injection.md"), "utf8");
    for (const annotation of ANNOTATIONS)
      assert.match(doc, new RegExp(`${annotation.replace(".", "\\.")}: `), `${annotation} has an example`);
  });
});

describe("the webhook handler (Fetch API)", () => {
  const handler = injectionWebhook({ log: quiet, maxBodyBytes: 64 << 10 });
  const post = (body: string, headers: Record<string, string> = {}) =>
    handler(
      new Request("https://weft-control/inject", { method: "POST", headers: { "content-type": "application/json", ...headers }, body }),
    );

  it("answers a malformed review with 400 naming the problem, and a huge one with 413", async () => {
    let r = await post("{not json");
    assert.equal(r.status, 400);
    assert.match((await r.json()).error, /^the body is not JSON/);
    r = await post(JSON.stringify({ apiVersion: "admission.k8s.io/v1beta1", kind: "AdmissionReview", request: { uid: "1" } }));
    assert.equal(r.status, 400);
    assert.match((await r.json()).error, /apiVersion: must be "admission\.k8s\.io\/v1".*request\.kind: is required/);
    // no content-length: the stream is cut at the bound
    const big = new ReadableStream({ pull: (c) => c.enqueue(new Uint8Array(16 << 10)) });
    r = await handler(new Request("https://weft-control/inject", { method: "POST", body: big, duplex: "half" } as RequestInit));
    assert.equal(r.status, 413);
    r = await handler(new Request("https://weft-control/inject"));
    assert.equal(r.status, 405);
  });

  it("lets anything but a Pod CREATE pass untouched", async () => {
    const review = {
      apiVersion: "admission.k8s.io/v1",
      kind: "AdmissionReview",
      request: { uid: "u-1", kind: { group: "apps", version: "v1", kind: "Deployment" }, operation: "CREATE", object: {} },
    };
    const r = await post(JSON.stringify(review));
    assert.deepEqual(await r.json(), {
      apiVersion: "admission.k8s.io/v1",
      kind: "AdmissionReview",
      response: { uid: "u-1", allowed: true },
    });
  });
});

describe("injection on a real kube-apiserver", () => {
  let k8s: Cluster;
  let server: Server;
  let work: string;
  /** Names of the pods the webhook was asked about. */
  const seen: string[] = [];
  const kubectl = (args: string[], input?: string) => k8s.kubectl(args, input);
  /** kubectl with stderr and the exit code (warnings and refusals are on stderr). */
  const kubectlAll = (args: string[], input?: string) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      const child = execFile(
        path.join(k8s.binDir, "kubectl"),
        [`--kubeconfig=${k8s.kubeconfig}`, ...args],
        { encoding: "utf8" },
        (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
      );
      child.stdin?.end(input ?? "");
    });
  const get = async (ns: string, name: string): Promise<Json> => JSON.parse(await kubectl(["get", "pod", name, "-n", ns, "-o", "json"]));
  const apply = async (ns: string, object: unknown): Promise<Json> =>
    JSON.parse(await kubectl(["apply", "-n", ns, "-o", "json", "-f", "-"], JSON.stringify(object)));
  const poll = async <T>(what: string, fn: () => Promise<T | undefined>, ms = 20_000): Promise<T> => {
    const end = Date.now() + ms;
    for (;;) {
      const value = await fn().catch(() => undefined);
      if (value !== undefined) return value;
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };

  before(async () => {
    work = mkdtempSync(path.join(tmpdir(), "weft-inject-"));
    const [cluster, ca] = await Promise.all([startCluster(), createCa({ commonName: "weft test injector CA" })]);
    k8s = cluster;
    const serving = await issueWorkload(ca, { ips: ["127.0.0.1"], commonName: "weft-sidecar-injector" });
    const handler = injectionWebhook({ log: quiet });
    // node:https in front of the Fetch-API handler, as the control plane will mount it
    server = createServer({ cert: serving.certificate, key: serving.privateKey }, async (req, res) => {
      const request = new Request(`https://127.0.0.1${req.url}`, {
        method: req.method,
        headers: req.headers as Record<string, string>,
        body: Readable.toWeb(req) as ReadableStream,
        duplex: "half",
      } as RequestInit);
      const review = await request
        .clone()
        .json()
        .catch(() => ({}));
      seen.push(review.request?.object?.metadata?.name ?? review.request?.object?.metadata?.generateName);
      const response = await handler(request);
      res.writeHead(response.status, Object.fromEntries(response.headers));
      res.end(Buffer.from(await response.arrayBuffer()));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as { port: number };
    await kubectl(
      ["apply", "-f", "-"],
      JSON.stringify(injectorWebhookConfiguration({ caBundle: ca.certificate, target: { url: `https://127.0.0.1:${port}/inject` } })),
    );
    await kubectl(["create", "namespace", "shop"]);
    await kubectl(["label", "namespace", "shop", "weft.dev/inject=enabled"]);
    await kubectl(["create", "namespace", "plain"]);
    // "true", as a pod's own weft.dev/inject says it, turns a namespace on as "enabled" does.
    await kubectl(["create", "namespace", "shop-true"]);
    await kubectl(["label", "namespace", "shop-true", "weft.dev/inject=true"]);
    // pods need the namespace's default ServiceAccount, and the API server a moment to load the webhook
    for (const ns of ["shop", "plain", "shop-true"])
      await poll(
        `serviceaccount ${ns}/default`,
        async () => (await kubectl(["get", "sa", "default", "-n", ns, "-o", "name"])) || undefined,
      );
    await poll("the webhook to be called", async () => {
      const dry = JSON.parse(
        await kubectl(["create", "--dry-run=server", "-n", "shop", "-o", "json", "-f", "-"], JSON.stringify(pod("probe"))),
      );
      return dry.spec.initContainers ? true : undefined;
    });
  });
  after(async () => {
    server?.close();
    await k8s?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it("injects a Pod in a labelled namespace as a native sidecar, the app's containers as in an unlabelled one", async () => {
    const stored = await apply("shop", pod("web"));
    const plain = await apply("plain", pod("web"));
    // the same but for the random suffix of the ServiceAccount token volume
    const app = (p: Json) => JSON.parse(JSON.stringify(p.spec.containers).replace(/kube-api-access-\w+/g, "kube-api-access"));
    assert.deepEqual(app(stored), app(plain), "the app's containers are stored unchanged");
    assert.deepEqual(names(stored.spec.initContainers), ["weft-init", "weft-proxy"]);
    assert.equal(plain.spec.initContainers, undefined, "no injection in an unlabelled namespace");
    assert.deepEqual(
      names((await apply("shop-true", pod("web"))).spec.initContainers),
      ["weft-init", "weft-proxy"],
      "weft.dev/inject=true injects too",
    );
    assert.equal(plain.metadata.annotations?.["weft.dev/status"], undefined);

    const [init, proxy] = stored.spec.initContainers;
    assert.equal(init.restartPolicy, undefined, "weft-init runs once, before the sidecar");
    assert.deepEqual(init.securityContext.capabilities, { add: ["NET_ADMIN", "NET_RAW"], drop: ["ALL"] });
    assert.equal(init.securityContext.runAsUser, 0);
    assert.equal(init.securityContext.runAsNonRoot, false);
    assert.ok(init.args.join(" ").includes("--include-inbound-ports * --exclude-inbound-ports 15000"), init.args.join(" "));
    assert.equal(proxy.restartPolicy, "Always");
    assert.equal(proxy.securityContext.runAsUser, 1337);
    assert.deepEqual(proxy.readinessProbe.httpGet, { path: "/ready", port: 15000, scheme: "HTTP" });
    assert.deepEqual(proxy.resources, { requests: { cpu: "50m", memory: "128Mi" }, limits: { memory: "256Mi" } });
    const env = Object.fromEntries(proxy.env.map((e: Json) => [e.name, e.value ?? e.valueFrom.fieldRef.fieldPath]));
    assert.deepEqual(env, {
      POD_NAME: "metadata.name",
      POD_NAMESPACE: "metadata.namespace",
      SERVICE_ACCOUNT: "spec.serviceAccountName",
      WEFT_CONTROL_PLANE: "https://weft-control.weft-system.svc:15012",
      WEFT_TRUST_DOMAIN: "cluster.local",
      WEFT_TOKEN_FILE: "/var/run/secrets/weft/token",
      WEFT_CA_FILE: "/var/run/secrets/weft/ca.crt",
      WEFT_ADMIN_PORT: "15000",
      WEFT_OUTBOUND_PORT: "15001",
      WEFT_INBOUND_PORT: "15006",
      NODE_OPTIONS: "--disable-sigusr1 --max-semi-space-size=8 --max-old-space-size=128",
    });
    const token = stored.spec.volumes.find((x: Json) => x.name === "weft-token");
    assert.deepEqual(token.projected.sources, [
      { serviceAccountToken: { audience: "weft", expirationSeconds: 3600, path: "token" } },
      { configMap: { name: "weft-ca-root", items: [{ key: "ca.crt", path: "ca.crt" }] } },
    ]);
    assert.deepEqual(
      proxy.volumeMounts.find((m: Json) => m.name === "weft-token"),
      { name: "weft-token", mountPath: "/var/run/secrets/weft", readOnly: true },
    );
    assert.deepEqual(JSON.parse(stored.metadata.annotations["weft.dev/status"]).initContainers, ["weft-init", "weft-proxy"]);
  });

  it('leaves a Pod annotated weft.dev/inject: "false" unchanged, and never calls the webhook for the label', async () => {
    const opted = await apply("shop", pod("opted-out", { annotations: { "weft.dev/inject": "false" } }));
    assert.equal(opted.spec.initContainers, undefined);
    assert.deepEqual(Object.keys(opted.metadata.annotations), ["kubectl.kubernetes.io/last-applied-configuration", "weft.dev/inject"]);
    const labelled = await apply("shop", pod("opted-out-label", { labels: { "weft.dev/inject": "false" } }));
    assert.equal(labelled.spec.initContainers, undefined);
    assert.ok(seen.includes("opted-out") && !seen.includes("opted-out-label"), `the webhook saw ${seen.join(", ")}`);
  });

  it("refuses a Pod with a bad annotation value through kubectl, with the injector's message", async () => {
    const r = await kubectlAll(
      ["apply", "-n", "shop", "-f", "-"],
      JSON.stringify(pod("bad", { annotations: { "weft.dev/runtime": "python" } })),
    );
    assert.notEqual(r.code, 0);
    assert.match(
      r.stderr,
      /admission webhook "sidecar-injector\.weft\.dev" denied the request: weft cannot inject the sidecar: pod annotation weft\.dev\/runtime="python": must be one of "node", "deno", "bun"/,
    );
    assert.equal((await kubectlAll(["get", "pod", "bad", "-n", "shop"])).code, 1, "nothing was stored");
  });

  it("creates a hostNetwork Pod without a sidecar and kubectl shows why", async () => {
    const r = await kubectlAll(["apply", "-n", "shop", "-f", "-"], JSON.stringify(pod("host", { spec: { hostNetwork: true } })));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /Warning: weft: sidecar not injected: hostNetwork is true/);
    assert.equal((await get("shop", "host")).spec.initContainers, undefined);
  });

  it("injects the Pods a Deployment's ReplicaSet creates", async () => {
    const deployment = {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "catalog" },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: "catalog" } },
        template: { metadata: { labels: { app: "catalog" } }, spec: pod("").spec },
      },
    };
    await apply("shop", deployment);
    const created = await poll("a Pod of deployment/catalog", async () => {
      const list = JSON.parse(await kubectl(["get", "pods", "-n", "shop", "-l", "app=catalog", "-o", "json"]));
      return list.items[0] as Json | undefined;
    });
    assert.deepEqual(names(created.spec.initContainers), ["weft-init", "weft-proxy"]);
    assert.ok(created.metadata.annotations["weft.dev/status"]);
  });

  it("is idempotent: an injected pod spec created again keeps one sidecar", async () => {
    const stored = await get("shop", "web");
    const again = {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "web-again", annotations: { "weft.dev/status": stored.metadata.annotations["weft.dev/status"] } },
      spec: stored.spec,
    };
    const created = await apply("shop", again);
    assert.deepEqual(names(created.spec.initContainers), ["weft-init", "weft-proxy"]);
    assert.deepEqual(names(created.spec.volumes), names(stored.spec.volumes));
  });

  it("weft inject -f: injects every pod spec of a multi-document file, leaves the rest, is idempotent, and the API server accepts it", async () => {
    const input = [
      "apiVersion: apps/v1",
      "kind: Deployment",
      "metadata: {name: orders}",
      "spec:",
      "  selector: {matchLabels: {app: orders}}",
      "  template:",
      "    metadata: {labels: {app: orders}}",
      "    spec:",
      "      containers: [{name: orders, image: registry.k8s.io/pause:3.10, ports: [{containerPort: 8080}]}]",
      "      volumes: [{name: config, configMap: {name: orders, defaultMode: 0644}}]",
      "---",
      "apiVersion: v1",
      "kind: Service",
      "metadata: {name: orders}",
      "spec: {selector: {app: orders}, ports: [{port: 80, targetPort: 8080}]}",
      "---",
      "apiVersion: v1",
      "kind: Pod",
      "metadata: {name: debug, annotations: {weft.dev/proxy-memory: 128Mi}}",
      "spec: {containers: [{name: debug, image: registry.k8s.io/pause:3.10}]}",
      "---",
      "apiVersion: batch/v1",
      "kind: CronJob",
      "metadata: {name: report}",
      "spec:",
      "  schedule: '0 * * * *'",
      "  jobTemplate:",
      "    spec:",
      "      template:",
      "        spec:",
      "          restartPolicy: OnFailure",
      "          containers: [{name: report, image: registry.k8s.io/pause:3.10}]",
      "",
    ].join("\n");
    const file = path.join(work, "app.yaml");
    writeFileSync(file, input);
    const weft = (args: string[], stdin?: string) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        const child = execFile(NODE, ["bin/weft.ts", ...args], { cwd: ROOT, encoding: "utf8" }, (err, stdout, stderr) =>
          resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
        );
        child.stdin?.end(stdin ?? "");
      });

    const first = await weft(["inject", "-f", file]);
    assert.equal(first.code, 0, first.stderr);
    const before = loadAll(input) as Json[];
    const after = loadAll(first.stdout) as Json[];
    assert.deepEqual(
      after.map((d) => d.kind),
      ["Deployment", "Service", "Pod", "CronJob"],
    );
    const templates = [after[0].spec.template, after[2], after[3].spec.jobTemplate.spec.template];
    for (const t of templates) assert.deepEqual(names(t.spec.initContainers).slice(0, 2), ["weft-init", "weft-proxy"]);
    assert.deepEqual(after[2].spec.initContainers[1].resources.requests.memory, "128Mi");
    // only the pod specs changed: put the originals back and the documents are the input
    const restored = structuredClone(after);
    restored[0].spec.template = before[0].spec.template;
    restored[2].metadata = before[2].metadata;
    restored[2].spec = before[2].spec;
    restored[3].spec.jobTemplate.spec.template = before[3].spec.jobTemplate.spec.template;
    before[0].spec.template.spec.volumes[0].configMap.defaultMode = 0o644; // read as kubectl reads YAML 1.1 octal
    assert.deepEqual(restored, before);
    assert.equal(after[0].spec.template.spec.volumes[0].configMap.defaultMode, 420);

    const second = await weft(["inject", "-f", "-"], first.stdout);
    assert.equal(second.code, 0, second.stderr);
    assert.equal(second.stdout, first.stdout, "injecting the output again changes nothing");
    assert.match(second.stderr, /document 1 \(Deployment orders\): not injected: already injected/);

    await kubectl(["create", "namespace", "manual"]);
    const dry = await kubectlAll(["apply", "--dry-run=server", "-n", "manual", "-f", "-"], first.stdout);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(
      dry.stdout,
      /deployment\.apps\/orders created \(server dry run\)[\s\S]*service\/orders created[\s\S]*pod\/debug created[\s\S]*cronjob\.batch\/report created/,
    );

    const bad = await weft(["inject", "-f", "-"], input.replace("weft.dev/proxy-memory: 128Mi", "weft.dev/runtime: python"));
    assert.equal(bad.code, 1);
    assert.equal(bad.stdout, "", "nothing is written when a document is refused");
    assert.match(
      bad.stderr,
      /stdin: document 3 \(Pod debug\): pod annotation weft\.dev\/runtime="python": must be one of "node", "deno", "bun"/,
    );
  });
});
