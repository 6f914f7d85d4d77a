// runtimes: node deno bun
// SPIFFE identity helpers: ID parsing/formatting, extraction from certificates issued in the
// test, and the verifyPeer callback for outbound mTLS. Runs on Node, Deno and Bun.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  clearSpiffeCache,
  spiffeCacheSize,
  formatSpiffeId,
  isSpiffeId,
  parseSpiffeId,
  parseWorkloadId,
  spiffeIdFromCertificate,
  SpiffeError,
  verifyPeerIdentity,
} from "../proxy/identity/spiffe.ts";
import { createCa, issueWorkload } from "./support/pki.ts";

const ID = "spiffe://cluster.local/ns/payments/sa/api";
const ca = await createCa();

test("parses a workload SPIFFE ID", () => {
  assert.deepEqual(parseSpiffeId(ID), {
    id: ID,
    trustDomain: "cluster.local",
    path: "/ns/payments/sa/api",
    namespace: "payments",
    serviceAccount: "api",
  });
  assert.deepEqual(parseWorkloadId("spiffe://example.org/ns/a-b/sa/c.d_e"), {
    id: "spiffe://example.org/ns/a-b/sa/c.d_e",
    trustDomain: "example.org",
    path: "/ns/a-b/sa/c.d_e",
    namespace: "a-b",
    serviceAccount: "c.d_e",
  });
  // Valid SPIFFE IDs that are not workload IDs.
  assert.equal(parseSpiffeId("spiffe://cluster.local").namespace, null);
  assert.equal(parseSpiffeId("spiffe://cluster.local/gateway/x").serviceAccount, null);
  assert.throws(
    () => parseWorkloadId("spiffe://cluster.local/gateway/x"),
    /path must be \/ns\/<namespace>\/sa\/<serviceaccount>, got "\/gateway\/x"/,
  );
});

test("rejects invalid SPIFFE IDs with the reason", () => {
  const cases: [string, RegExp][] = [
    ["", /it is empty/],
    ["https://cluster.local/ns/a/sa/b", /must start with 'spiffe:\/\/'/],
    ["SPIFFE://cluster.local/ns/a/sa/b", /scheme must be lower-case/],
    ["spiffe:///ns/a/sa/b", /trust domain is empty/],
    ["spiffe://Cluster.local/ns/a/sa/b", /trust domain must be lower case/],
    ["spiffe://cluster.local:8443/ns/a/sa/b", /port or user info/],
    ["spiffe://user@cluster.local/ns/a/sa/b", /user info/],
    ["spiffe://cluster.local/ns//sa/b", /empty segment/],
    ["spiffe://cluster.local/ns/a/sa/b/", /empty segment/],
    ["spiffe://cluster.local/ns/../sa/b", /'\.' or '\.\.' segments/],
    ["spiffe://cluster.local/ns/a/sa/b?x=1", /query or fragment/],
    ["spiffe://cluster.local/ns/a/sa/b#f", /query or fragment/],
    ["spiffe://cluster.local/ns/a b/sa/c", /may only contain/],
    ["spiffe://cluster.local/ns/%41/sa/c", /may only contain/],
    [`spiffe://cluster.local/${"a".repeat(2048)}`, /longer than 2048/],
  ];
  for (const [id, reason] of cases) {
    assert.throws(
      () => parseSpiffeId(id),
      (e: Error) => e instanceof SpiffeError && reason.test(e.message),
      `expected ${reason} for ${JSON.stringify(id.slice(0, 60))}`,
    );
    assert.equal(isSpiffeId(id), false);
  }
  assert.equal(isSpiffeId(ID), true);
});

test("formats a workload SPIFFE ID, default trust domain cluster.local", () => {
  assert.equal(formatSpiffeId({ namespace: "payments", serviceAccount: "api" }), ID);
  assert.equal(formatSpiffeId({ trustDomain: "example.org", namespace: "a", serviceAccount: "b" }), "spiffe://example.org/ns/a/sa/b");
  assert.throws(() => formatSpiffeId({ namespace: "a/sa/x", serviceAccount: "b" }), /single path segment/);
  assert.throws(() => formatSpiffeId({ namespace: "", serviceAccount: "b" }), /empty segment/);
  assert.throws(() => formatSpiffeId({ trustDomain: "Bad", namespace: "a", serviceAccount: "b" }), /lower case/);
});

test("extracts the SPIFFE ID from a certificate's URI SAN, from DER or PEM", async () => {
  const cert = await issueWorkload(ca, { spiffeId: ID, dns: ["api.payments.svc"], ips: ["10.0.0.1"] });
  assert.equal(spiffeIdFromCertificate(cert.der), ID);
  assert.equal(spiffeIdFromCertificate(cert.certificate), ID);
  // A PEM chain: the first certificate is the leaf.
  assert.equal(spiffeIdFromCertificate(cert.certificate + ca.certificate), ID);
  // Other URI schemes next to the spiffe one are ignored.
  const extra = await issueWorkload(ca, { spiffeId: ID, uris: ["https://example.org/x"] });
  assert.equal(spiffeIdFromCertificate(extra.der), ID);
});

test("extraction errors say what the certificate holds", async () => {
  const noSan = await issueWorkload(ca, { commonName: "legacy" });
  assert.throws(() => spiffeIdFromCertificate(noSan.der), /subject "CN=legacy, O=weft"\) has no subjectAltName extension/);
  const dnsOnly = await issueWorkload(ca, { dns: ["api.example.org"], uris: ["https://example.org/x"] });
  assert.throws(
    () => spiffeIdFromCertificate(dnsOnly.der),
    /no spiffe:\/\/ URI SAN \(subjectAltName: URI:https:\/\/example\.org\/x, DNS:api\.example\.org\)/,
  );
  const two = await issueWorkload(ca, { spiffeId: ID, uris: ["spiffe://cluster.local/ns/other/sa/x"] });
  assert.throws(() => spiffeIdFromCertificate(two.der), /has 2 spiffe:\/\/ URI SANs, exactly one is allowed/);
  const bad = await issueWorkload(ca, { spiffeId: "spiffe://Cluster.local/ns/a/sa/b" });
  assert.throws(() => spiffeIdFromCertificate(bad.der), /trust domain must be lower case/);
  assert.throws(() => spiffeIdFromCertificate(new Uint8Array([1, 2, 3])), /not valid DER X\.509/);
  assert.throws(() => spiffeIdFromCertificate(two.der.subarray(0, 200)), /not valid DER X\.509/);
  assert.throws(() => spiffeIdFromCertificate("not a pem"), /no PEM 'CERTIFICATE' block/);
  // Cached errors are thrown again, as SpiffeError.
  assert.throws(() => spiffeIdFromCertificate(two.der), SpiffeError);
});

test("verifyPeerIdentity accepts an expected identity and explains a mismatch", async () => {
  const cert = await issueWorkload(ca, { spiffeId: ID });
  const other = "spiffe://cluster.local/ns/payments/sa/worker";
  assert.equal(verifyPeerIdentity([ID])(cert.der), undefined);
  assert.equal(verifyPeerIdentity([other, ID])(cert.der), undefined);
  assert.equal(verifyPeerIdentity([other])(cert.der), `peer SPIFFE ID ${ID} is not the expected identity (${other})`);
  const noId = await issueWorkload(ca, { dns: ["x"] });
  assert.match(verifyPeerIdentity([ID])(noId.der) ?? "", /^peer certificate has no usable SPIFFE ID: .*no spiffe:\/\/ URI SAN/);
  assert.throws(() => verifyPeerIdentity([]), /at least one expected SPIFFE ID/);
  assert.throws(() => verifyPeerIdentity(["spiffe://cluster.local/ns/a/sa/b/"]), /invalid SPIFFE ID/);
});

test("extraction is cached by certificate bytes (cost printed for the report)", async () => {
  const certs = await Promise.all(
    Array.from({ length: 20 }, (_, i) => issueWorkload(ca, { spiffeId: `spiffe://cluster.local/ns/n${i}/sa/s${i}` })),
  );
  clearSpiffeCache();
  // Warm the JIT on other certificates, then time first sight vs. repeat.
  for (let i = 0; i < 10; i++) spiffeIdFromCertificate(certs[i].der);
  const rest = certs.slice(10);
  let t = performance.now();
  for (const c of rest) spiffeIdFromCertificate(c.der);
  const uncachedUs = ((performance.now() - t) * 1000) / rest.length;
  const rounds = 2000;
  // Fresh copies, as each TLS connection hands over a new buffer.
  const copies = rest.map((c) => Uint8Array.from(c.der));
  t = performance.now();
  for (let i = 0; i < rounds; i++) assert.ok(spiffeIdFromCertificate(copies[i % copies.length]).startsWith("spiffe://"));
  const cachedUs = ((performance.now() - t) * 1000) / rounds;
  console.log(`spiffeIdFromCertificate: first sight ${uncachedUs.toFixed(1)} us, cached ${cachedUs.toFixed(2)} us per certificate`);
  // Speed is reported, not asserted; what must hold is that copies of known certificates
  // were answered from the cache (keyed by bytes) rather than parsed and added again.
  assert.equal(spiffeCacheSize(), certs.length);
});
