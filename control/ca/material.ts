// The CA's signing material, read from PEM and checked before anything is signed with it, so
// that a wrong Secret fails at start-up with the reason rather than as failed handshakes later.
// Shapes follow cert-manager's Secrets: tls.crt (the signing certificate first, then any
// intermediates above it), tls.key (its key: PKCS#8, SEC1 or PKCS#1 PEM), ca.crt (the root).
import { Buffer } from "node:buffer";
import { createPrivateKey, type KeyObject } from "node:crypto";
import type * as X509 from "@peculiar/x509";
import { x509 } from "../../proxy/identity/x509.ts";

/** What a CaStore holds: PEM text as in the Secret's tls.crt, tls.key and ca.crt. */
export interface CaMaterial {
  certPem: string;
  keyPem: string;
  caPem?: string;
}

export interface Signer {
  /** The certificate leaves are signed under (first of tls.crt). */
  certificate: X509.X509Certificate;
  key: CryptoKey;
  algorithm: EcdsaParams | Algorithm;
  /** PEM appended after each leaf: tls.crt minus what the trust bundle holds ("" for a root). */
  chainPem: string;
  trustBundlePem: string;
}

export class CaMaterialError extends Error {
  override name = "CaMaterialError";
}

// Deep enough for root -> intermediate -> issuing intermediate; a loop in bad input ends here.
const MAX_CHAIN_DEPTH = 8;

function certificates(pem: string, field: string, where: string): X509.X509Certificate[] {
  const blocks = x509.PemConverter.decodeWithHeaders(pem).filter((b) => b.type === "CERTIFICATE");
  if (blocks.length === 0) throw new CaMaterialError(`${where}: ${field} has no PEM CERTIFICATE block`);
  return blocks.map((b, i) => {
    try {
      return new x509.X509Certificate(b.rawData);
    } catch (e) {
      throw new CaMaterialError(`${where}: ${field} certificate #${i + 1} does not parse: ${(e as Error).message}`);
    }
  });
}

function pemOf(certs: X509.X509Certificate[]): string {
  return certs.map((c) => c.toString("pem") + "\n").join("");
}

interface KeyKind {
  importParams: EcKeyImportParams | RsaHashedImportParams;
  signing: EcdsaParams | Algorithm;
}

function keyKind(key: KeyObject, where: string): KeyKind {
  if (key.asymmetricKeyType === "ec") {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve === "prime256v1")
      return { importParams: { name: "ECDSA", namedCurve: "P-256" }, signing: { name: "ECDSA", hash: "SHA-256" } as EcdsaParams };
    if (curve === "secp384r1")
      return { importParams: { name: "ECDSA", namedCurve: "P-384" }, signing: { name: "ECDSA", hash: "SHA-384" } as EcdsaParams };
    throw new CaMaterialError(`${where}: tls.key is an EC key on curve ${curve}; use P-256 or P-384`);
  }
  if (key.asymmetricKeyType === "rsa") {
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < 2048) throw new CaMaterialError(`${where}: tls.key is a ${bits}-bit RSA key; use at least 2048 bits`);
    return { importParams: { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }, signing: { name: "RSASSA-PKCS1-v1_5" } };
  }
  throw new CaMaterialError(`${where}: tls.key is a ${key.asymmetricKeyType} key; use ECDSA (P-256, P-384) or RSA`);
}

async function importKey(keyPem: string, where: string): Promise<{ key: CryptoKey } & KeyKind> {
  let keyObject: KeyObject;
  try {
    keyObject = createPrivateKey(keyPem);
  } catch (e) {
    throw new CaMaterialError(`${where}: tls.key is not an unencrypted PEM private key: ${(e as Error).message}`);
  }
  const kind = keyKind(keyObject, where);
  // WebCrypto imports PKCS#8 only; node:crypto reads SEC1 and PKCS#1 too (cert-manager's defaults).
  const pkcs8 = keyObject.export({ format: "der", type: "pkcs8" });
  const key = await crypto.subtle.importKey("pkcs8", new Uint8Array(pkcs8), kind.importParams, false, ["sign"]);
  return { key, ...kind };
}

async function keyMatches(certificate: X509.X509Certificate, key: CryptoKey, kind: KeyKind): Promise<boolean> {
  const probe = crypto.getRandomValues(new Uint8Array(32));
  const signature = await crypto.subtle.sign(kind.signing, key, probe);
  const publicKey = await certificate.publicKey.export(kind.importParams, ["verify"]);
  return crypto.subtle.verify(kind.signing, publicKey, signature, probe);
}

// Not X509Certificate.equal: it is declared a type guard, which narrows the other side to never.
function sameCertificate(a: X509.X509Certificate, b: X509.X509Certificate): boolean {
  return Buffer.from(a.rawData).equals(Buffer.from(b.rawData));
}

async function isSelfSigned(c: X509.X509Certificate): Promise<boolean> {
  return c.subject === c.issuer && (await c.verify({ signatureOnly: true }));
}

/** Walks from `start` up through `pool` to one of `anchors`: null when it gets there, else why not. */
async function chainProblem(
  start: X509.X509Certificate,
  pool: X509.X509Certificate[],
  anchors: X509.X509Certificate[],
): Promise<string | null> {
  let current = start;
  for (let depth = 0; depth < MAX_CHAIN_DEPTH; depth++) {
    if (anchors.some((a) => sameCertificate(a, current))) return null;
    let next: X509.X509Certificate | undefined;
    for (const candidate of [...anchors, ...pool]) {
      if (
        candidate.subject === current.issuer &&
        !sameCertificate(candidate, current) &&
        (await current.verify({ publicKey: candidate.publicKey, signatureOnly: true }))
      ) {
        next = candidate;
        break;
      }
    }
    if (!next) return `no certificate in tls.crt or the trust bundle signed "${current.subject}" (issuer "${current.issuer}")`;
    if (anchors.some((a) => sameCertificate(a, next))) return null;
    current = next;
  }
  return `the chain is longer than ${MAX_CHAIN_DEPTH} certificates`;
}

/** Parses and checks CA material; `where` names its origin in errors (e.g. "Secret weft-system/weft-ca"). */
export async function loadSigner(material: CaMaterial, where: string): Promise<Signer> {
  const now = new Date();
  const chain = certificates(material.certPem, "tls.crt", where);
  const certificate = chain[0];
  const constraints = certificate.getExtension(x509.BasicConstraintsExtension);
  if (!constraints?.ca) {
    throw new CaMaterialError(
      `${where}: tls.crt's first certificate ("${certificate.subject}") is not a CA (basicConstraints CA:TRUE is missing); put the CA certificate first`,
    );
  }
  const usage = certificate.getExtension(x509.KeyUsagesExtension);
  if (usage && !(usage.usages & x509.KeyUsageFlags.keyCertSign)) {
    throw new CaMaterialError(
      `${where}: tls.crt's first certificate ("${certificate.subject}") may not sign certificates (keyUsage lacks keyCertSign)`,
    );
  }
  if (now < certificate.notBefore || now > certificate.notAfter) {
    throw new CaMaterialError(
      `${where}: tls.crt's first certificate ("${certificate.subject}") is valid from ${certificate.notBefore.toISOString()} to ${certificate.notAfter.toISOString()}, not now; replace it`,
    );
  }
  const { key, ...kind } = await importKey(material.keyPem, where);
  if (!(await keyMatches(certificate, key, kind))) {
    throw new CaMaterialError(`${where}: tls.key is not the key of tls.crt's first certificate ("${certificate.subject}")`);
  }

  // The trust bundle: ca.crt when given, else the self-signed root(s) in tls.crt.
  let anchors: X509.X509Certificate[];
  if (material.caPem?.trim()) {
    anchors = certificates(material.caPem, "ca.crt", where);
  } else {
    anchors = [];
    for (const c of chain) if (await isSelfSigned(c)) anchors.push(c);
    if (anchors.length === 0) {
      throw new CaMaterialError(
        `${where}: tls.crt's first certificate ("${certificate.subject}") is an intermediate (issuer "${certificate.issuer}") and there is no ca.crt; add the root certificate as ca.crt`,
      );
    }
  }
  const broken = await chainProblem(certificate, chain.slice(1), anchors);
  if (broken)
    throw new CaMaterialError(
      `${where}: tls.crt does not chain up to ${material.caPem?.trim() ? "ca.crt" : "a root in tls.crt"}: ${broken}`,
    );

  return {
    certificate,
    key,
    algorithm: kind.signing,
    chainPem: pemOf(chain.filter((c) => !anchors.some((a) => sameCertificate(a, c)))),
    trustBundlePem: pemOf(anchors),
  };
}
