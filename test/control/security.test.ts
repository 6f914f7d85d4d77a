// runtimes: node
// needs: k8s
// The control plane's secrets and its unauthenticated surface, on a real kube-apiserver with a
// real registry behind htpasswd, `weft control` and a sidecar as processes (logging at debug):
//
// - the endpoints anyone on the network can reach (POST /v1/certificates, the configuration
//   stream, filter modules, the injection webhook) refuse callers without the right
//   ServiceAccount token, or anything that is not an AdmissionReview, without echoing what
//   they were sent and without reading more than their limit;
// - a pull secret the registry refuses, or that is not JSON, is reported by name only;
// - after all of that, the CA's private key, the pull secrets' passwords and every token used
//   appear in no log line, no /config_dump, no WasmFilter status, no weft-proxies report and
//   no `weft status` output.
//
// Every case is a row of docs/reliability.md (test/hostile/record.ts). Node only.
import { after, before, describe } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import https from "node:https";
import tls from "node:tls";
import { tmpdir } from "node:os";
import path from "node:path";
import { startCluster, freePorts, type Cluster } from "../k8s/cluster.ts";
import { startRegistry, type TestRegistry } from "../support/registry.ts";
import {
  applyCrds,
  hostAddress,
  startControl,
  startSidecar,
  until,
  weftStatus,
  writeMeshRoot,
  type ControlProcess,
  type SidecarProcess,
} from "../support/control-process.ts";
import { builtFilter } from "../../sdk/build/cache.ts";
import { RegistryClient } from "../../shared/oci-registry.ts";
import { ENROLLMENT_PATH } from "../../control/ca/enrollment.ts";
import { WEBHOOK_PATH } from "../../control/inject/manifest.ts";
import { namespaceYaml, podYaml, serviceAccountYaml } from "../support/service.ts";
import { Recorder } from "../hostile/record.ts";

const rec = new Recorder("control-security");

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A PEM's base64 body, without its armour and line breaks, and its lines: how a leak would show. */
const pemParts = (pem: string): string[] => {
  const lines = pem.split("\n").filter((l) => l && !l.startsWith("-----"));
  return [lines.join(""), ...lines.filter((l) => l.length >= 32)];
};

describe("control plane secrets and unauthenticated callers on a real API server", () => {
  let k8s: Cluster;
  let registry: TestRegistry;
  let control: ControlProcess;
  let web: SidecarProcess;
  let scratch: string;
  let dashboardPort: number;
  let meshRoot: string;
  let filter: { sha256: string; url: string };
  const puller = { username: "puller", password: `pw-${randomBytes(12).toString("hex")}` };
  const wrongPassword = `wrong-${randomBytes(12).toString("hex")}`;
  // Short enough for a JSON parser's error to quote all of it.
  const garbledPassword = `garbled-${randomBytes(4).toString("hex")}`;
  const tokens: Record<string, string> = {};
  /** The private key of the CSR sent to the certificate endpoint (which never sees it). */
  let csrKey = "";
  /** Every answer the control plane gave in these tests, to look for secrets in. */
  const answers: Answer[] = [];

  const kubectl = (args: string[], input?: string) => k8s.kubectl(args, input);
  const dockerConfig = (password: string) =>
    Buffer.from(
      JSON.stringify({
        auths: {
          [registry.host]: { username: puller.username, password, auth: Buffer.from(`${puller.username}:${password}`).toString("base64") },
        },
      }),
    ).toString("base64");

  /** One request to the control plane's HTTPS API, verified against the mesh root. */
  const call = (
    method: string,
    target: string,
    options: { token?: string; body?: string | Buffer; headers?: Record<string, string> } = {},
  ): Promise<Answer> =>
    new Promise((resolve, reject) => {
      const headers: Record<string, string> = {
        ...options.headers,
        ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
      };
      if (options.body !== undefined) headers["content-length"] = String(Buffer.byteLength(options.body));
      const req = https.request(`${control.url}${target}`, { method, headers, ca: meshRoot, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const answer = { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() };
          answers.push(answer);
          resolve(answer);
        });
      });
      req.on("error", reject);
      req.end(options.body);
    });

  /**
   * A POST on a raw TLS connection that declares `declared` bytes of body (default: the body's
   * size) and sends `body`: the server may answer and hang up before the body is all sent (and
   * a hang-up with unread bytes can reset the connection before its answer is read). The answer
   * is what came back before the connection closed, or nothing after 10 s.
   */
  const rawPost = (
    target: string,
    body: Buffer,
    options: { token?: string; declared?: number } = {},
  ): Promise<Answer & { hungUp: boolean }> =>
    new Promise((resolve) => {
      const socket = tls.connect(
        { host: "127.0.0.1", port: Number(new URL(control.url).port), ca: meshRoot, servername: "127.0.0.1" },
        () => {
          const auth = options.token ? `Authorization: Bearer ${options.token}\r\n` : "";
          socket.write(
            `POST ${target} HTTP/1.1\r\nHost: weft-control\r\nContent-Type: application/json\r\nConnection: close\r\n${auth}Content-Length: ${options.declared ?? body.length}\r\n\r\n`,
          );
          socket.write(body);
        },
      );
      let got = "";
      let hungUp = true;
      const done = () => {
        clearTimeout(timer);
        socket.destroy();
        const at = got.indexOf("\r\n\r\n");
        const head = at < 0 ? got : got.slice(0, at);
        let body = at < 0 ? "" : got.slice(at + 4);
        if (/^transfer-encoding: chunked\r?$/im.test(head)) {
          let decoded = "";
          for (let rest = body; ; ) {
            const line = rest.indexOf("\r\n");
            const size = parseInt(rest.slice(0, line), 16);
            if (!(size > 0)) break;
            decoded += rest.slice(line + 2, line + 2 + size);
            rest = rest.slice(line + 4 + size);
          }
          body = decoded;
        }
        const answer = { status: Number(/^HTTP\/1\.1 (\d{3}) /.exec(head)?.[1] ?? 0), headers: { head }, body };
        answers.push(answer);
        resolve({ ...answer, hungUp });
      };
      const timer = setTimeout(() => {
        hungUp = false;
        done();
      }, 10_000);
      socket.on("data", (d: Buffer) => (got += d.toString("latin1")));
      socket.on("close", done);
      // Writing into a connection the server closed after answering: the answer is what counts.
      socket.on("error", () => {});
    });

  before(async () => {
    scratch = await mkdtemp(path.join(tmpdir(), "weft-security-"));
    [k8s, registry] = await Promise.all([startCluster({ controllerManager: false }), startRegistry({ htpasswd: puller })]);
    const built = await builtFilter("header-rewrite");
    await new RegistryClient().pushWasm(`oci://${registry.host}/filters/private:v1`, built.wasm, {
      plainHttp: true,
      credentials: puller,
      annotations: {},
    });
    filter = { sha256: built.sha256, url: `oci://${registry.host}/filters/private:v1` };
    await applyCrds(k8s);
    await kubectl(
      ["apply", "-f", "-"],
      `
${namespaceYaml("weft-system")}---
${namespaceYaml("shop")}---
${serviceAccountYaml("shop", "web")}---
${serviceAccountYaml("shop", "other")}---
${podYaml({ namespace: "shop", name: "web-0", app: "web", serviceAccount: "web", port: 8080 })}---
apiVersion: v1
kind: Secret
metadata: { name: regcred, namespace: shop }
type: kubernetes.io/dockerconfigjson
data: { .dockerconfigjson: ${dockerConfig(puller.password)} }
---
apiVersion: v1
kind: Secret
metadata: { name: wrongcred, namespace: shop }
type: kubernetes.io/dockerconfigjson
data: { .dockerconfigjson: ${dockerConfig(wrongPassword)} }
---
# Not JSON at all, only a password: a parser's error would quote it.
apiVersion: v1
kind: Secret
metadata: { name: garbled, namespace: shop }
type: Opaque
data: { .dockerconfigjson: ${Buffer.from(garbledPassword).toString("base64")} }
---
apiVersion: weft.dev/v1alpha1
kind: WasmFilter
metadata: { name: private, namespace: shop }
spec:
  selector: { matchLabels: { app: web } }
  url: ${filter.url}
  sha256: "${filter.sha256}"
  pullSecret: regcred
  config: { response: { set: [{ name: x-private, value: "yes" }] } }
---
apiVersion: weft.dev/v1alpha1
kind: WasmFilter
metadata: { name: refused, namespace: shop }
spec: { selector: { matchLabels: { app: none } }, url: "${filter.url}", pullSecret: wrongcred }
---
apiVersion: weft.dev/v1alpha1
kind: WasmFilter
metadata: { name: garbled, namespace: shop }
spec: { selector: { matchLabels: { app: none } }, url: "${filter.url}", pullSecret: garbled }
`,
    );
    const token = async (sa: string, ...extra: string[]) =>
      (await kubectl(["create", "token", sa, "-n", "shop", "--duration", "1h", ...extra])).trim();
    tokens.web = await token("web", "--audience", "weft");
    tokens.other = await token("other", "--audience", "weft");
    tokens.otherAudience = await token("web", "--audience", "someone-else");
    tokens.apiServer = await token("web");
    await writeFile(path.join(scratch, "web.token"), tokens.web);
    const [port] = (await freePorts(1)) as [number];
    // At debug level: whatever the control plane and the sidecar can log, they log here.
    [dashboardPort] = (await freePorts(1)) as [number];
    control = await startControl(k8s, { port, dashboardPort, insecureRegistries: [registry.host], env: { WEFT_LOG_LEVEL: "debug" } });
    meshRoot = await writeMeshRoot(k8s, "weft-system", path.join(scratch, "ca.crt"));
    web = await startSidecar({
      controlPlane: control.url,
      caFile: path.join(scratch, "ca.crt"),
      namespace: "shop",
      pod: "web-0",
      tokenFile: path.join(scratch, "web.token"),
      tmp: path.join(scratch, "tmp-web-0"),
      env: { WEFT_LOG_LEVEL: "debug" },
    });
    await until("the sidecar to run the private filter", async () =>
      (await web.dump()).filterStatus.some((f) => f.filter === "shop/private" && f.ready),
    );
  });

  after(async () => {
    await web?.stop();
    await control?.stop();
    await registry?.stop();
    await k8s?.stop();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  rec.case(
    "security",
    "authentication",
    "the certificate endpoint issues only for a ServiceAccount token with audience weft, and refuses every other caller without echoing its token",
    async () => {
      const key = path.join(scratch, "csr.key");
      const csr = execFileSync(
        "openssl",
        ["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-subj", "/O=weft"],
        { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] },
      );
      csrKey = await readFile(key, "utf8");
      const body = JSON.stringify({ csr });
      const json = { "content-type": "application/json" };
      const refusals: [string, Awaited<ReturnType<typeof call>>, number, string][] = [
        ["no token", await call("POST", ENROLLMENT_PATH, { body, headers: json }), 401, "NoToken"],
        [
          "a token that is not a JWT",
          await call("POST", ENROLLMENT_PATH, { body, headers: json, token: "not-a-token" }),
          401,
          "InvalidToken",
        ],
        [
          "a token for another audience",
          await call("POST", ENROLLMENT_PATH, { body, headers: json, token: tokens.otherAudience }),
          401,
          "WrongAudience",
        ],
        [
          "the API server's own audience (a pod's default token)",
          await call("POST", ENROLLMENT_PATH, { body, headers: json, token: tokens.apiServer }),
          401,
          "WrongAudience",
        ],
        [
          "Basic credentials",
          await call("POST", ENROLLMENT_PATH, {
            body,
            headers: { ...json, authorization: `Basic ${Buffer.from(`${puller.username}:${puller.password}`).toString("base64")}` },
          }),
          401,
          "InvalidToken",
        ],
      ];
      for (const [what, answer, status, reason] of refusals) {
        assert.equal(answer.status, status, `${what}: ${answer.body}`);
        assert.equal((JSON.parse(answer.body) as { reason: string }).reason, reason, `${what}: ${answer.body}`);
      }
      // The control: the same request with the right token is answered.
      const issued = await call("POST", ENROLLMENT_PATH, { body, headers: json, token: tokens.web });
      assert.equal(issued.status, 200, issued.body);
      assert.equal((JSON.parse(issued.body) as { spiffeId: string }).spiffeId, "spiffe://cluster.local/ns/shop/sa/web");
      return { "requests refused": refusals.length };
    },
  );

  rec.case(
    "security",
    "authentication",
    "the dashboard is served on the control plane's loopback only, never on its API port",
    async () => {
      // What the dashboard shows (the mesh's topology) is for whoever may port-forward to the pod.
      const state = await until("the dashboard to list the sidecar", async () => {
        const s = (await (await fetch(`http://127.0.0.1:${dashboardPort}/dashboard/api/state`)).json()) as {
          proxies: { namespace: string; pod: string; acked: string | null }[];
        };
        return s.proxies.some((p) => p.pod === "web-0" && p.acked) ? s : null;
      });
      assert.deepEqual(
        state.proxies.map((p) => `${p.namespace}/${p.pod}`),
        ["shop/web-0"],
      );
      const elsewhere = await fetch(`http://${hostAddress()}:${dashboardPort}/dashboard/`).then(
        (r) => `HTTP ${r.status}`,
        (e: Error) => `refused: ${String((e.cause as { code?: string })?.code ?? e.message)}`,
      );
      assert.match(elsewhere, /^refused: ECONNREFUSED/, "not on the machine's other addresses");
      const api = await call("GET", "/dashboard/");
      assert.equal(api.status, 404, "not on the API port every pod reaches");
      return { "addresses tried": 2 };
    },
  );

  rec.case(
    "security",
    "authentication",
    "the configuration stream, acknowledgements and filter modules refuse callers without the pod's ServiceAccount token",
    async () => {
      const config = "/v1/proxies/config?namespace=shop&pod=web-0";
      const ack = JSON.stringify({ namespace: "shop", pod: "web-0", version: "x", accepted: true });
      const refusals: [string, Answer, number, RegExp][] = [
        ["a configuration stream without a token", await call("GET", config), 401, /no ServiceAccount token/],
        [
          "a configuration stream with a token for another audience",
          await call("GET", config, { token: tokens.otherAudience }),
          401,
          /not for audience "weft"/,
        ],
        [
          "another ServiceAccount's configuration",
          await call("GET", config, { token: tokens.other }),
          403,
          /the token is for ServiceAccount shop\/other, but pod shop\/web-0 runs as shop\/web/,
        ],
        ["an acknowledgement without a token", await call("POST", "/v1/proxies/ack", { body: ack }), 401, /no ServiceAccount token/],
        [
          "an acknowledgement for another ServiceAccount's pod",
          await call("POST", "/v1/proxies/ack", { body: ack, token: tokens.other }),
          403,
          /runs as shop\/web/,
        ],
        ["a filter module without a token", await call("GET", `/v1/filters/${filter.sha256}`), 401, /no ServiceAccount token/],
        // The module was pulled with shop's pull secret for web's pods: a valid token of any other ServiceAccount must not read it.
        [
          "a filter module no pod of the caller's ServiceAccount runs",
          await call("GET", `/v1/filters/${filter.sha256}`, { token: tokens.other }),
          404,
          /no filter module with sha256 [0-9a-f]{64} is in use by a pod of ServiceAccount shop\/other/,
        ],
      ];
      for (const [what, answer, status, message] of refusals) {
        assert.equal(answer.status, status, `${what}: ${answer.body}`);
        assert.match((JSON.parse(answer.body) as { error: string }).error, message, what);
      }
      // The control: the ServiceAccount whose pods run it gets the module.
      const own = await call("GET", `/v1/filters/${filter.sha256}`, { token: tokens.web });
      assert.equal(own.status, 200, own.body);
      return { "requests refused": refusals.length };
    },
  );

  rec.case(
    "security",
    "authentication",
    "the injection webhook refuses anything but an AdmissionReview, and answers a review with nothing secret",
    async () => {
      const json = { "content-type": "application/json" };
      const refusals: [string, Answer, number, RegExp][] = [
        ["GET", await call("GET", WEBHOOK_PATH), 405, /takes POST with an AdmissionReview/],
        ["a body that is not JSON", await call("POST", WEBHOOK_PATH, { body: "hello", headers: json }), 400, /the body is not JSON/],
        [
          "JSON that is not an AdmissionReview",
          await call("POST", WEBHOOK_PATH, { body: JSON.stringify({ kind: "Pod" }), headers: json }),
          400,
          /not an AdmissionReview v1/,
        ],
      ];
      for (const [what, answer, status, message] of refusals) {
        assert.equal(answer.status, status, `${what}: ${answer.body}`);
        assert.match((JSON.parse(answer.body) as { error: string }).error, message, what);
      }
      const big = await rawPost(WEBHOOK_PATH, Buffer.alloc(5 * 1024 * 1024, 0x20));
      if (big.status !== 0 || !big.hungUp) {
        assert.equal(big.status, 413, `an AdmissionReview over 4 MiB: ${big.headers.head}`);
        assert.match(big.body, /larger than 4194304 bytes/);
      }
      // Anyone who reaches the webhook gets what `weft inject` prints for their pod: the
      // injector's public settings, a projected token volume (the pod's own, minted by the
      // kubelet), and nothing of the control plane's.
      const review = {
        apiVersion: "admission.k8s.io/v1",
        kind: "AdmissionReview",
        request: {
          uid: "a1",
          kind: { group: "", version: "v1", kind: "Pod" },
          operation: "CREATE",
          namespace: "shop",
          object: {
            apiVersion: "v1",
            kind: "Pod",
            metadata: { name: "probe", namespace: "shop" },
            spec: { containers: [{ name: "app", image: "app:1", ports: [{ containerPort: 8080 }] }] },
          },
        },
      };
      const injected = await call("POST", WEBHOOK_PATH, { body: JSON.stringify(review), headers: json });
      assert.equal(injected.status, 200, injected.body);
      const patch = JSON.parse(
        Buffer.from((JSON.parse(injected.body) as { response: { patch: string } }).response.patch, "base64").toString(),
      ) as { path: string; value: unknown }[];
      const volumes = JSON.stringify(patch.filter((p) => p.path.startsWith("/spec/volumes")));
      assert.match(volumes, /"serviceAccountToken":\{"audience":"weft","expirationSeconds":3600,"path":"token"\}/);
      answers.push({ ...injected, body: `${injected.body}\n${JSON.stringify(patch)}` });
      return { "requests refused": refusals.length + 1 };
    },
  );

  rec.case(
    "security",
    "authentication",
    "the webhook and the certificate endpoint refuse a body declared over their limit before reading it",
    async () => {
      // Both take callers without credentials (a review's caller, a token not checked yet), so a
      // caller must not make the control plane buffer a gigabyte: the Content-Length decides.
      // The limits are 4 MiB (webhook) and 64 KiB (certificates); 1 MiB of body is sent, then
      // nothing more until the answer.
      const cases: [string, string | null, number][] = [
        [WEBHOOK_PATH, null, 413],
        [ENROLLMENT_PATH, null, 401],
        [ENROLLMENT_PATH, tokens.web!, 413],
      ];
      for (const [target, token, status] of cases) {
        const answer = await rawPost(target, Buffer.alloc(1024 * 1024, 0x20), { declared: 2 ** 30, ...(token ? { token } : {}) });
        const what = `${target} ${token ? "with" : "without"} a token and a declared 1 GiB body`;
        assert.ok(answer.hungUp, `${what}: no answer within 10 s while the body was still coming`);
        // An answer, unless the hang-up reset the connection before it could be read.
        if (answer.status !== 0) assert.equal(answer.status, status, `${what}: ${answer.headers.head}`);
      }
      return { "requests refused": cases.length };
    },
  );

  rec.case(
    "security",
    "secrets",
    "a pull secret the registry refuses, or that is not JSON, is reported by its name, never by its content",
    async () => {
      const refused = await until("Resolved=False for the refused credentials", async () => {
        const s = JSON.parse(await kubectl(["get", "wasmfilter", "refused", "-n", "shop", "-o", "json"])) as {
          status?: { conditions?: { type: string; reason: string; message: string }[] };
        };
        return s.status?.conditions?.find((c) => c.type === "Resolved" && c.reason === "PullFailed");
      });
      assert.match(refused.message, /HTTP 401.*the registry refused the credentials of "puller"/);
      const garbled = await until("Resolved=False for the garbled pull secret", async () => {
        const s = JSON.parse(await kubectl(["get", "wasmfilter", "garbled", "-n", "shop", "-o", "json"])) as {
          status?: { conditions?: { type: string; reason: string; message: string }[] };
        };
        return s.status?.conditions?.find((c) => c.type === "Resolved" && c.reason === "PullFailed");
      });
      assert.match(garbled.message, /pull secret shop\/garbled: its \.dockerconfigjson is not JSON/);
      for (const c of [refused, garbled]) {
        for (const secret of [wrongPassword, garbledPassword, puller.password])
          assert.ok(!c.message.includes(secret), `a password is in the status: ${c.message}`);
      }
      return { "pull secrets refused": 2 };
    },
  );

  rec.case(
    "security",
    "secrets",
    "the CA key, pull secret passwords and ServiceAccount tokens appear in no log, /config_dump, status, proxy report or weft status",
    async () => {
      const caKey = Buffer.from(
        await kubectl(["get", "secret", "weft-ca", "-n", "weft-system", "-o", "jsonpath={.data.tls\\.key}"]),
        "base64",
      ).toString();
      assert.match(caKey, /PRIVATE KEY-----/, "the CA key is where docs/certificates.md says");
      const secrets: Record<string, string[]> = {
        "the CA's private key": pemParts(caKey),
        "a CSR's private key": pemParts(csrKey),
        ...Object.fromEntries(
          [
            ["the pull password", puller.password],
            ["the refused pull password", wrongPassword],
            ["the garbled pull secret's password", garbledPassword],
          ].map(([what, password]) => [
            what!,
            [password!, Buffer.from(`${puller.username}:${password}`).toString("base64"), dockerConfig(password!)],
          ]),
        ),
        ...Object.fromEntries(
          Object.entries(tokens)
            // The whole token, and its signature alone (a log that cut the token short would still show it).
            .map(([name, token]) => [`the ${name} token`, [token, token.split(".")[2]!]]),
        ),
      };
      const dump = await web.dump();
      assert.equal((dump.identity as { privateKey?: string }).privateKey, "[redacted]");
      const statusJson = await weftStatus(k8s, ["--json"], true);
      const places: Record<string, string> = {
        "the control plane's log": control.output(),
        "the sidecar's log": web.output(),
        "the sidecar's /config_dump": JSON.stringify(dump),
        "WasmFilter status": await kubectl(["get", "wasmfilters", "-A", "-o", "json"]),
        "the weft-proxies report": await kubectl(["get", "configmap", "weft-proxies", "-n", "weft-system", "-o", "json"]),
        "weft status --json": statusJson,
        "the control plane's answers": answers.map((a) => `${JSON.stringify(a.headers)}\n${a.body}`).join("\n"),
      };
      for (const [place, text] of Object.entries(places)) assert.ok(text.length > 100, `${place} has something to look at: ${text}`);
      const leaks: string[] = [];
      for (const [place, text] of Object.entries(places)) {
        // JSON logs escape line breaks and slashes differently; compare without either.
        const flat = text.replace(/\\n|\\\//g, (m) => (m === "\\n" ? "\n" : "/"));
        if (/PRIVATE KEY-----/.test(flat)) leaks.push(`a PEM private key in ${place}`);
        for (const [what, forms] of Object.entries(secrets))
          if (forms.some((f) => f.length >= 16 && flat.includes(f))) leaks.push(`${what} in ${place}`);
      }
      assert.deepEqual(leaks, []);
      return { "secrets checked": Object.keys(secrets).length, "places checked": Object.keys(places).length };
    },
  );
});
