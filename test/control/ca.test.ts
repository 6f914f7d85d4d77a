// runtimes: node
// needs: k8s
// The mesh CA (control/ca/) against a real kube-apiserver (test/k8s/cluster.ts): the root kept
// in a Secret and shared by every instance (a create race included), a user-supplied
// intermediate (cert-manager's Secret shape, made here with openssl), and POST
// /v1/certificates with real ServiceAccount tokens checked by the real TokenReview API. The
// certificates are checked with openssl, independently of the code that made them. Node only.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createSign } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { startCluster, type Cluster } from "../k8s/cluster.ts";
import { openAuthority, type CaStore, type CertificateAuthority } from "../../control/ca/authority.ts";
import { directoryStore } from "../../control/ca/dir-store.ts";
import { enrollmentHandler, ENROLLMENT_PATH } from "../../control/ca/enrollment.ts";
import { kubernetesSecretStore } from "../../control/ca/secret-store.ts";
import { kubernetesTokenReviewer } from "../../control/ca/token-review.ts";
import { createLogger } from "../../shared/log.ts";

const NS = "weft-system";
const API_AUDIENCE = "https://kubernetes.default.svc.cluster.local"; // the cluster's --service-account-issuer
const DAY_S = 24 * 3600;
const SKEW_S = 5 * 60;

function openssl(args: string[], input?: string): string {
  return execFileSync("openssl", args, { encoding: "utf8", input, stdio: ["pipe", "pipe", "pipe"] });
}

function certificatesIn(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? [];
}

/** A P-256 key and a CSR made by openssl that asks for `subject` and `san` (which the CA must ignore). */
function opensslCsr(dir: string, name: string, subject = "/CN=admin", san = "URI:spiffe://cluster.local/ns/kube-system/sa/admin"): string {
  const key = path.join(dir, `${name}.key`);
  return openssl([
    "req",
    "-new",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    key,
    "-subj",
    subject,
    "-addext",
    `subjectAltName=${san}`,
  ]);
}

/** Makes every store's load() wait until all `n` have loaded, so that all find it empty and race to create. */
function raceOf(n: number): (store: CaStore) => CaStore {
  let arrived = 0;
  let release!: () => void;
  const allLoaded = new Promise<void>((resolve) => (release = resolve));
  return (store) => ({
    ...store,
    async load() {
      const found = await store.load();
      if (++arrived === n) release();
      await allLoaded;
      return found;
    },
  });
}

describe("mesh CA root in a directory (local mode)", () => {
  const quiet = createLogger({}, "error", () => {});
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), "weft-ca-dir-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("is written with the key readable by its owner only, and reused by the next start", async () => {
    const caDir = path.join(dir, "local", "ca");
    const first = await openAuthority({ store: directoryStore(caDir), log: quiet });
    assert.equal(first.origin, "generated");
    assert.equal(statSync(path.join(caDir, "tls.key")).mode & 0o777, 0o600);
    assert.equal(statSync(caDir).mode & 0o777, 0o700);
    assert.equal(readFileSync(path.join(caDir, "ca.crt"), "utf8"), first.trustBundle());
    const second = await openAuthority({ store: directoryStore(caDir), log: quiet });
    assert.equal(second.origin, "loaded");
    assert.equal(second.trustBundle(), first.trustBundle());
  });

  it("is created once when starts race, and the others use it", async () => {
    const race = raceOf(3);
    const instances = await Promise.all(
      [0, 1, 2].map(() => openAuthority({ store: race(directoryStore(path.join(dir, "race"))), log: quiet })),
    );
    assert.equal(instances.filter((i) => i.origin === "generated").length, 1);
    for (const i of instances) assert.equal(i.trustBundle(), instances[0].trustBundle());
    assert.deepEqual(readdirSync(dir).sort(), ["local", "race"], "a staging directory was left behind");
  });
});

describe("mesh CA on a real Kubernetes API server", () => {
  let k8s: Cluster;
  let kubeConfig: KubeConfig;
  let dir: string;
  const quiet = createLogger({}, "error", () => {});
  const secret = async (name: string) =>
    JSON.parse(await k8s.kubectl(["get", "secret", name, "-n", NS, "-o", "json"])) as { type: string; data: Record<string, string> };
  const decode = (b64: string) => Buffer.from(b64, "base64").toString("utf8");

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "weft-ca-test-"));
    // A static token for a user who is not a ServiceAccount (the 403 case).
    writeFileSync(path.join(dir, "tokens.csv"), 'alice-token,alice,1001,"developers"\n');
    k8s = await startCluster({ controllerManager: false, apiserverArgs: [`--token-auth-file=${path.join(dir, "tokens.csv")}`] });
    kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(k8s.kubeconfig);
    await k8s.kubectl(["create", "namespace", NS]);
    await k8s.kubectl(["create", "namespace", "shop"]);
    await k8s.kubectl(["create", "serviceaccount", "web", "-n", "shop"]);
  });

  after(async () => {
    await k8s?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  describe("the root in a Secret", () => {
    it("is generated on first start into Secret weft-ca (kubernetes.io/tls) and reused by a second instance", async () => {
      const first = await openAuthority({ store: kubernetesSecretStore({ kubeConfig, namespace: NS }), log: quiet });
      assert.equal(first.origin, "generated");
      const stored = await secret("weft-ca");
      assert.equal(stored.type, "kubernetes.io/tls");
      assert.deepEqual(Object.keys(stored.data).sort(), ["ca.crt", "tls.crt", "tls.key"]);
      assert.equal(decode(stored.data["ca.crt"]), decode(stored.data["tls.crt"]));
      assert.match(decode(stored.data["tls.key"]), /^-----BEGIN PRIVATE KEY-----/);
      assert.equal(first.trustBundle(), decode(stored.data["ca.crt"]));
      const text = openssl(["x509", "-noout", "-text"], first.trustBundle());
      assert.match(text, /Issuer: CN ?= ?weft root CA, O ?= ?weft/);
      assert.match(text, /ASN1 OID: prime256v1/);
      assert.match(text, /CA:TRUE/);

      const second = await openAuthority({ store: kubernetesSecretStore({ kubeConfig, namespace: NS }), log: quiet });
      assert.equal(second.origin, "loaded");
      assert.equal(second.trustBundle(), first.trustBundle());
    });

    it("is created once when instances race: the losers get 409 AlreadyExists and use the winner's", async () => {
      // Every instance finds the Secret missing before any creates it, so all but one get the 409.
      const race = raceOf(3);
      const instances = await Promise.all(
        [0, 1, 2].map(() =>
          openAuthority({ store: race(kubernetesSecretStore({ kubeConfig, namespace: NS, name: "race-ca" })), log: quiet }),
        ),
      );
      assert.equal(instances.filter((i) => i.origin === "generated").length, 1);
      for (const i of instances) assert.equal(i.trustBundle(), instances[0].trustBundle());
      assert.equal(decode((await secret("race-ca")).data["ca.crt"]), instances[0].trustBundle());
    });
  });

  describe("a CA the user supplies (cert-manager style)", () => {
    let rootPem: string;
    let intermediatePem: string;

    before(() => {
      // An offline root and an intermediate for the mesh, by openssl; the key in SEC1 ("EC PRIVATE KEY"), as cert-manager writes it.
      const f = (name: string) => path.join(dir, name);
      openssl([
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        f("root.key"),
        "-out",
        f("root.crt"),
        "-days",
        "30",
        "-subj",
        "/O=Example Corp/CN=Example Root CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
      ]);
      openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f("intermediate.key")]);
      openssl([
        "req",
        "-new",
        "-key",
        f("intermediate.key"),
        "-subj",
        "/O=Example Corp/CN=weft mesh intermediate",
        "-out",
        f("intermediate.csr"),
      ]);
      writeFileSync(
        f("intermediate.ext"),
        "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
      );
      openssl([
        "x509",
        "-req",
        "-in",
        f("intermediate.csr"),
        "-CA",
        f("root.crt"),
        "-CAkey",
        f("root.key"),
        "-CAcreateserial",
        "-days",
        "10",
        "-extfile",
        f("intermediate.ext"),
        "-out",
        f("intermediate.crt"),
      ]);
      rootPem = readFileSync(f("root.crt"), "utf8");
      intermediatePem = readFileSync(f("intermediate.crt"), "utf8");
      assert.match(readFileSync(f("intermediate.key"), "utf8"), /BEGIN EC PRIVATE KEY/);
    });

    it("signs with the intermediate, hands out leaf + intermediate, and the chain verifies up to the root", async () => {
      // The command docs/certificates.md gives.
      await k8s.kubectl([
        "create",
        "secret",
        "generic",
        "mesh-ca",
        "-n",
        NS,
        "--type=kubernetes.io/tls",
        `--from-file=tls.crt=${path.join(dir, "intermediate.crt")}`,
        `--from-file=tls.key=${path.join(dir, "intermediate.key")}`,
        `--from-file=ca.crt=${path.join(dir, "root.crt")}`,
      ]);
      const ca = await openAuthority({
        store: kubernetesSecretStore({ kubeConfig, namespace: NS, name: "mesh-ca" }),
        generate: false,
        log: quiet,
      });
      assert.equal(ca.origin, "loaded");
      assert.equal(ca.subject, "O=Example Corp, CN=weft mesh intermediate");
      assert.equal(openssl(["x509", "-noout", "-fingerprint"], ca.trustBundle()), openssl(["x509", "-noout", "-fingerprint"], rootPem));

      const issued = await ca.issueWorkload(opensslCsr(dir, "via-intermediate"), "spiffe://cluster.local/ns/shop/sa/web");
      const chain = certificatesIn(issued.certificateChain);
      assert.equal(chain.length, 2);
      assert.equal(openssl(["x509", "-noout", "-fingerprint"], chain[1]), openssl(["x509", "-noout", "-fingerprint"], intermediatePem));
      writeFileSync(path.join(dir, "leaf.pem"), chain[0]);
      writeFileSync(path.join(dir, "untrusted.pem"), chain[1]);
      writeFileSync(path.join(dir, "bundle.pem"), issued.trustBundle);
      assert.match(
        openssl([
          "verify",
          "-CAfile",
          path.join(dir, "bundle.pem"),
          "-untrusted",
          path.join(dir, "untrusted.pem"),
          path.join(dir, "leaf.pem"),
        ]),
        /leaf\.pem: OK/,
      );
      // Without the intermediate, the root alone does not verify the leaf: the chain is needed.
      assert.throws(
        () => openssl(["verify", "-CAfile", path.join(dir, "bundle.pem"), path.join(dir, "leaf.pem")]),
        /unable to get local issuer certificate/,
      );
    });

    it("hands out every root in ca.crt (old and new root during a root change)", async () => {
      const next = path.join(dir, "next-root.crt");
      openssl([
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        path.join(dir, "next-root.key"),
        "-out",
        next,
        "-days",
        "30",
        "-subj",
        "/CN=Next Root CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
      ]);
      writeFileSync(path.join(dir, "roots.crt"), readFileSync(next, "utf8") + rootPem);
      await k8s.kubectl([
        "create",
        "secret",
        "generic",
        "two-roots",
        "-n",
        NS,
        "--type=kubernetes.io/tls",
        `--from-file=tls.crt=${path.join(dir, "intermediate.crt")}`,
        `--from-file=tls.key=${path.join(dir, "intermediate.key")}`,
        `--from-file=ca.crt=${path.join(dir, "roots.crt")}`,
      ]);
      const ca = await openAuthority({ store: kubernetesSecretStore({ kubeConfig, namespace: NS, name: "two-roots" }), log: quiet });
      const roots = certificatesIn(ca.trustBundle()).map((c) => openssl(["x509", "-noout", "-subject"], c));
      assert.equal(roots.length, 2);
      assert.match(roots[0], /CN ?= ?Next Root CA/);
      assert.match(roots[1], /CN ?= ?Example Root CA/);
      const issued = await ca.issueWorkload(opensslCsr(dir, "two-roots"), "spiffe://cluster.local/ns/shop/sa/web");
      assert.equal(certificatesIn(issued.certificateChain).length, 2);
    });

    it("signs with an RSA CA key in PKCS#1, cert-manager's default", async () => {
      const f = (name: string) => path.join(dir, name);
      openssl(["genrsa", "-traditional", "-out", f("rsa-ca.key"), "2048"]);
      assert.match(readFileSync(f("rsa-ca.key"), "utf8"), /BEGIN RSA PRIVATE KEY/);
      openssl([
        "req",
        "-x509",
        "-new",
        "-key",
        f("rsa-ca.key"),
        "-out",
        f("rsa-ca.crt"),
        "-days",
        "30",
        "-subj",
        "/CN=RSA Root CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
      ]);
      await k8s.kubectl(["create", "secret", "tls", "rsa-ca", "-n", NS, `--cert=${f("rsa-ca.crt")}`, `--key=${f("rsa-ca.key")}`]);
      const ca = await openAuthority({ store: kubernetesSecretStore({ kubeConfig, namespace: NS, name: "rsa-ca" }), log: quiet });
      const issued = await ca.issueWorkload(opensslCsr(dir, "rsa-signed"), "spiffe://cluster.local/ns/shop/sa/web");
      writeFileSync(f("rsa-leaf.pem"), issued.certificateChain);
      writeFileSync(f("rsa-bundle.pem"), issued.trustBundle);
      assert.match(openssl(["verify", "-CAfile", f("rsa-bundle.pem"), f("rsa-leaf.pem")]), /OK/);
      assert.match(openssl(["x509", "-noout", "-text", "-in", f("rsa-leaf.pem")]), /Signature Algorithm: sha256WithRSAEncryption/);
    });

    it("refuses to start with a missing, mismatched or incomplete Secret, saying what to fix", async () => {
      await assert.rejects(
        openAuthority({ store: kubernetesSecretStore({ kubeConfig, namespace: NS, name: "absent-ca" }), generate: false, log: quiet }),
        /Secret weft-system\/absent-ca does not exist: create it/,
      );
      await k8s.kubectl([
        "create",
        "secret",
        "generic",
        "wrong-key",
        "-n",
        NS,
        "--type=kubernetes.io/tls",
        `--from-file=tls.crt=${path.join(dir, "intermediate.crt")}`,
        `--from-file=tls.key=${path.join(dir, "root.key")}`,
        `--from-file=ca.crt=${path.join(dir, "root.crt")}`,
      ]);
      await assert.rejects(
        openAuthority({ store: kubernetesSecretStore({ kubeConfig, namespace: NS, name: "wrong-key" }), log: quiet }),
        /Secret weft-system\/wrong-key: tls\.key is not the key of tls\.crt's first certificate/,
      );
      await k8s.kubectl([
        "create",
        "secret",
        "tls",
        "no-root",
        "-n",
        NS,
        `--cert=${path.join(dir, "intermediate.crt")}`,
        `--key=${path.join(dir, "intermediate.key")}`,
      ]);
      await assert.rejects(
        openAuthority({ store: kubernetesSecretStore({ kubeConfig, namespace: NS, name: "no-root" }), log: quiet }),
        /is an intermediate .* and there is no ca\.crt; add the root certificate as ca\.crt/,
      );
    });
  });

  describe(`POST ${ENROLLMENT_PATH} with ServiceAccount tokens and TokenReview`, () => {
    let ca: CertificateAuthority;
    const logs: string[] = [];
    const tokens: string[] = [];
    let handler: (request: Request) => Promise<Response>;

    const post = (body: unknown, token?: string, h = handler) =>
      h(
        new Request(`https://weft-control.weft-system.svc${ENROLLMENT_PATH}`, {
          method: "POST",
          headers: { "content-type": "application/json", ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) },
          body: typeof body === "string" ? body : JSON.stringify(body),
        }),
      );
    const refusal = async (response: Response) => ({
      status: response.status,
      ...((await response.json()) as { error: string; reason: string }),
    });
    const token = async (args: string[]) => {
      const t = (await k8s.kubectl(["create", "token", ...args])).trim();
      tokens.push(t);
      return t;
    };

    before(async () => {
      ca = await openAuthority({ store: kubernetesSecretStore({ kubeConfig, namespace: NS }), log: quiet });
      handler = enrollmentHandler({
        authority: ca,
        reviewToken: kubernetesTokenReviewer({ kubeConfig }),
        log: createLogger({}, "debug", (line) => void logs.push(line)),
      });
    });

    it("issues a 24 h certificate for the token's ServiceAccount, whatever the CSR asks for, that openssl verifies against the trust bundle", async () => {
      const csr = opensslCsr(dir, "web");
      const response = await post({ csr }, await token(["web", "-n", "shop", "--audience", "weft"]));
      assert.equal(response.status, 200, await response.clone().text());
      const body = (await response.json()) as { spiffeId: string; certificateChain: string; trustBundle: string; notAfter: string };
      assert.equal(body.spiffeId, "spiffe://cluster.local/ns/shop/sa/web");
      assert.equal(body.trustBundle, ca.trustBundle());
      writeFileSync(path.join(dir, "web.pem"), body.certificateChain);
      writeFileSync(path.join(dir, "web-bundle.pem"), body.trustBundle);
      assert.match(
        openssl(["verify", "-CAfile", path.join(dir, "web-bundle.pem"), "-purpose", "sslclient", path.join(dir, "web.pem")]),
        /web\.pem: OK/,
      );
      assert.match(
        openssl(["verify", "-CAfile", path.join(dir, "web-bundle.pem"), "-purpose", "sslserver", path.join(dir, "web.pem")]),
        /web\.pem: OK/,
      );

      const text = openssl(["x509", "-noout", "-text", "-in", path.join(dir, "web.pem")]);
      const san = /X509v3 Subject Alternative Name: critical\n\s*(.+)\n/.exec(text);
      assert.equal(san?.[1].trim(), "URI:spiffe://cluster.local/ns/shop/sa/web", text); // only the token's identity
      assert.match(text, /Subject: *\n/); // no CN=admin from the CSR
      assert.match(text, /Key Usage: critical\n\s*Digital Signature\n/);
      assert.match(text, /Extended Key Usage: *\n\s*TLS Web Server Authentication, TLS Web Client Authentication/);
      assert.match(text, /CA:FALSE/);
      const notBefore = Date.parse(/Not Before: (.+)/.exec(text)![1]);
      const notAfter = Date.parse(/Not After : (.+)/.exec(text)![1]);
      assert.equal((notAfter - notBefore) / 1000, DAY_S + SKEW_S, "24 h, plus the 5 min notBefore is set back for clock skew");
      assert.ok(Math.abs(notAfter - Date.parse(body.notAfter)) < 1000);
      // The certificate is for the CSR's key.
      assert.equal(
        openssl(["x509", "-noout", "-pubkey", "-in", path.join(dir, "web.pem")]),
        openssl(["pkey", "-pubout", "-in", path.join(dir, "web.key")]),
      );
    });

    it("refuses a token for another audience, naming the audience it needs (401)", async () => {
      const r = await refusal(await post({ csr: opensslCsr(dir, "x") }, await token(["web", "-n", "shop", "--audience", "other"])));
      assert.equal(r.status, 401);
      assert.equal(r.reason, "WrongAudience");
      assert.match(
        r.error,
        /the token is not for audience "weft" .*token audiences \["other"\] is invalid.*mount a projected ServiceAccount token with that audience/,
      );
      // The default token (the API server's audience) is refused the same way.
      assert.equal((await refusal(await post({ csr: opensslCsr(dir, "x") }, await token(["web", "-n", "shop"])))).reason, "WrongAudience");
    });

    it("refuses an expired token (401 TokenExpired)", async () => {
      // TokenRequest will not mint a token shorter than 10 minutes, so a real token's claims are
      // moved into the past and signed again with the cluster's service-account key: to the API
      // server an authentic token that has expired.
      const real = await token(["web", "-n", "shop", "--audience", "weft"]);
      const [header, payload] = real.split(".");
      const claims = JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as Record<string, unknown>;
      const now = Math.floor(Date.now() / 1000);
      Object.assign(claims, { iat: now - 7200, nbf: now - 7200, exp: now - 3600 });
      const signed = `${header}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}`;
      const expired = `${signed}.${createSign("RSA-SHA256")
        .update(signed)
        .sign(readFileSync(path.join(k8s.dir, "sa.key")))
        .toString("base64url")}`;
      tokens.push(expired);
      const r = await refusal(await post({ csr: opensslCsr(dir, "x") }, expired));
      assert.deepEqual([r.status, r.reason], [401, "TokenExpired"]);
      assert.match(r.error, /the token has expired \(.*service account token has expired.*\)/);
    });

    it("refuses no token, a malformed Authorization header and a garbage token (401, saying which)", async () => {
      const csr = opensslCsr(dir, "x");
      const none = await post({ csr });
      assert.equal(none.headers.get("www-authenticate"), "Bearer");
      assert.deepEqual(await refusal(none), {
        status: 401,
        reason: "NoToken",
        error: 'no token: send the ServiceAccount token as "Authorization: Bearer <token>"',
      });
      const basic = await handler(
        new Request(`https://x${ENROLLMENT_PATH}`, {
          method: "POST",
          headers: { authorization: "Basic d2ViOnB3" },
          body: JSON.stringify({ csr }),
        }),
      );
      assert.deepEqual(await refusal(basic), {
        status: 401,
        reason: "InvalidToken",
        error: 'the Authorization header is not "Bearer <token>"',
      });
      const garbage = await post({ csr }, "abc.def.ghi");
      assert.equal(garbage.headers.get("www-authenticate"), 'Bearer error="invalid_token"');
      assert.deepEqual(await refusal(garbage), {
        status: 401,
        reason: "InvalidToken",
        error: "the token is not valid (invalid bearer token)",
      });
    });

    it("refuses a user that is not a ServiceAccount (403), when the audiences let a user token through at all", async () => {
      // User tokens (here the static token file) are not audience-bound, so the API server
      // authenticates them only for its own audience: with the default ["weft"] they are invalid (401)...
      tokens.push("alice-token");
      assert.deepEqual(await refusal(await post({ csr: opensslCsr(dir, "x") }, "alice-token")), {
        status: 401,
        reason: "InvalidToken",
        error: "the token is not valid (invalid bearer token)",
      });
      // ...and a control plane that also accepts the API server's audience meets them as users.
      const lenient = enrollmentHandler({
        authority: ca,
        reviewToken: kubernetesTokenReviewer({ kubeConfig, audiences: ["weft", API_AUDIENCE] }),
        log: quiet,
      });
      const r = await refusal(await post({ csr: opensslCsr(dir, "x") }, "alice-token", lenient));
      assert.deepEqual(r, {
        status: 403,
        reason: "NotServiceAccount",
        error: 'the token belongs to "alice", which is not a ServiceAccount: only a workload\'s ServiceAccount token can enroll',
      });
    });

    it("refuses malformed bodies and CSRs (400, saying what), and oversized bodies (413)", async () => {
      const good = await token(["web", "-n", "shop", "--audience", "weft"]);
      const csr = opensslCsr(dir, "x");
      // The signature no longer matches: the last byte of the DER (inside the signature) changed.
      const der = Buffer.from(csr.replace(/-----[A-Z ]+-----|\s/g, ""), "base64");
      der[der.length - 1] ^= 0x01;
      const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString("base64").replace(/.{64}/g, "$&\n")}\n-----END CERTIFICATE REQUEST-----\n`;
      const rsa = openssl(["req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", path.join(dir, "rsa.key"), "-subj", "/CN=x"]);
      const cases: [unknown, string, RegExp][] = [
        ["{not json", "MalformedBody", /^the body is not JSON \(.*\): send a JSON object \{"csr": "<PEM certificate request>"\}$/],
        [[csr], "MalformedBody", /^the body is not a JSON object/],
        [{ csr: 5 }, "MalformedBody", /^the body has no "csr" string \(it is number\)/],
        [{ certificate: csr }, "MalformedBody", /^the body has no "csr" string: send/],
        [{ csr: "hello" }, "InvalidCsr", /^csr must hold exactly one PEM "CERTIFICATE REQUEST" block, found 0/],
        [{ csr: ca.trustBundle() }, "InvalidCsr", /found 0 \(blocks: CERTIFICATE\)/],
        [{ csr: tampered }, "InvalidCsr", /^csr's signature does not verify with its own public key/],
        [{ csr: rsa }, "InvalidCsr", /^csr has a RSASSA-PKCS1-v1_5 key; use ECDSA P-256 or P-384$/],
      ];
      for (const [body, reason, message] of cases) {
        const r = await refusal(await post(body, good));
        assert.equal(r.status, 400, JSON.stringify(r));
        assert.equal(r.reason, reason);
        assert.match(r.error, message);
      }
      const huge = await refusal(await post({ csr: csr + " ".repeat(70 * 1024) }, good));
      assert.deepEqual([huge.status, huge.reason], [413, "BodyTooLarge"]);
      // A body without Content-Length is counted as it streams.
      const streamed = new ReadableStream<Uint8Array>({
        start(controller) {
          for (let i = 0; i < 80; i++) controller.enqueue(new Uint8Array(1024).fill(0x20));
          controller.close();
        },
      });
      const r = await handler(
        new Request(`https://x${ENROLLMENT_PATH}`, {
          method: "POST",
          headers: { authorization: `Bearer ${good}` },
          body: streamed,
          duplex: "half",
        } as RequestInit),
      );
      assert.equal(r.status, 413);
      assert.equal(
        (await handler(new Request(`https://x${ENROLLMENT_PATH}`, { headers: { authorization: `Bearer ${good}` } }))).status,
        405,
      );
    });

    it("answers 503 when it may not review tokens (missing RBAC), with the API server's reason", async () => {
      // The control plane's own credentials: the web ServiceAccount, which may not create TokenReviews.
      const weak = new KubeConfig();
      weak.loadFromOptions({
        clusters: [{ name: "test", server: k8s.server, caData: Buffer.from(k8s.ca).toString("base64") }],
        users: [{ name: "web", token: await token(["web", "-n", "shop"]) }],
        contexts: [{ name: "test", cluster: "test", user: "web" }],
        currentContext: "test",
      });
      const h = enrollmentHandler({ authority: ca, reviewToken: kubernetesTokenReviewer({ kubeConfig: weak }), log: quiet });
      const response = await post({ csr: opensslCsr(dir, "x") }, await token(["web", "-n", "shop", "--audience", "weft"]), h);
      assert.equal(response.headers.get("retry-after"), "5");
      const r = await refusal(response);
      assert.equal(r.status, 503);
      assert.equal(r.reason, "TokenReviewUnavailable");
      assert.match(
        r.error,
        /^the token could not be checked, try again: TokenReview failed: HTTP 403: tokenreviews\.authentication\.k8s\.io is forbidden: User "system:serviceaccount:shop:web" cannot create resource "tokenreviews"/,
      );
    });

    it("never logs a token, a key or a CSR", () => {
      assert.ok(logs.some((l) => l.includes('"issued workload certificate"')));
      assert.ok(logs.some((l) => l.includes('"refused certificate request"')));
      assert.ok(tokens.length >= 5);
      for (const line of logs) {
        for (const t of tokens) assert.ok(!line.includes(t), `a token is in the log: ${line}`);
        assert.doesNotMatch(line, /-----BEGIN|-----END/); // no PEM: key, CSR or certificate
      }
    });
  });
});
