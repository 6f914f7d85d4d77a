// The certificate endpoint's body (control/ca/enrollment.ts, control/ca/authority.ts): JSON
// with a PEM PKCS#10 request that anyone who can reach the control plane may send. An input
// that starts with "{" is the body as sent; any other is DER, put in a PEM block in a body,
// so that mutations reach the ASN.1 decoder. A CSR is refused with a 400 Refusal or a
// CsrError, or yields an ECDSA P-256 or P-384 key.
import { Buffer } from "node:buffer";
import { CsrError, csrPublicKey } from "../../../control/ca/authority.ts";
import { Refusal, csrOf } from "../../../control/ca/enrollment.ts";
import { x509 } from "../../../proxy/identity/x509.ts";
import { bytes, check, refusedOr, refusedOrAsync, utf8, type FuzzTarget } from "../target.ts";

const pem = (der: Uint8Array) =>
  `-----BEGIN CERTIFICATE REQUEST-----\n${Buffer.from(der).toString("base64").replace(/.{64}/g, "$&\n")}\n-----END CERTIFICATE REQUEST-----\n`;

async function request(namedCurve: string): Promise<Uint8Array> {
  const algorithm = { name: "ECDSA", namedCurve, hash: namedCurve === "P-256" ? "SHA-256" : "SHA-384" };
  const keys = (await crypto.subtle.generateKey(algorithm, false, ["sign", "verify"])) as CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: "CN=fuzz", keys, signingAlgorithm: algorithm });
  return new Uint8Array(csr.rawData);
}

export const csr: FuzzTarget = {
  name: "csr",
  about:
    "csrOf and csrPublicKey on a JSON body or on DER put in one: a 400 Refusal, a CsrError, or an ECDSA P-256/P-384 key whose self-signature verified",
  sources: ["control/ca/enrollment.ts", "control/ca/authority.ts"],
  maxLength: 4096,
  dictionary: [
    "\x30\x82",
    "\x30\x81",
    "\x30\x00",
    "\x02\x01\x00",
    "\x06\x07\x2a\x86\x48\xce\x3d\x02\x01",
    "\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07",
    "\x06\x05\x2b\x81\x04\x00\x22",
    "\x03\x42\x00\x04",
    "\xa0\x00",
    "\x05\x00",
    "\x80",
    "\xff",
    '{"csr":',
    "-----BEGIN CERTIFICATE REQUEST-----\n",
    "-----END CERTIFICATE REQUEST-----\n",
    "-----BEGIN CERTIFICATE-----\n",
  ],
  seeds: async () => {
    const [p256, p384] = await Promise.all([request("P-256"), request("P-384")]);
    return [p256, p384, bytes(JSON.stringify({ csr: pem(p256) })), bytes(JSON.stringify({ csr: `${pem(p256)}${pem(p384)}` }))];
  },
  async fuzz(data) {
    const body = data[0] === 0x7b /* { */ ? utf8(data) : JSON.stringify({ csr: pem(data) });
    const text = refusedOr(
      () => csrOf(body),
      (e) => e instanceof Refusal && e.status === 400,
    );
    if (text === undefined) return;
    const key = await refusedOrAsync(
      () => csrPublicKey(text),
      (e) => e instanceof CsrError,
    );
    if (!key) return;
    const algorithm = key.algorithm as EcKeyAlgorithm;
    check(
      algorithm.name === "ECDSA" && ["P-256", "P-384"].includes(algorithm.namedCurve),
      () => `a CSR with a ${algorithm.name} ${algorithm.namedCurve} key was accepted`,
    );
  },
};
