// The mesh CA. It signs workload certificates (X.509-SVIDs) for CSRs whose caller enrollment
// has authenticated, and serving certificates for the control plane's own HTTPS. Its signing
// certificate comes from a CaStore: a root generated on first start and stored, which every
// later start and every replica reuses, or one the user supplies (cert-manager style, possibly
// an intermediate). ECDSA P-256 on WebCrypto through @peculiar/x509.
import type * as X509 from "@peculiar/x509";
import { x509 } from "../../proxy/identity/x509.ts";
import { parseSpiffeId } from "../../proxy/identity/spiffe.ts";
import { createLogger, type Logger } from "../../shared/log.ts";
import { CaMaterialError, loadSigner, type CaMaterial, type Signer } from "./material.ts";

export { CaMaterialError, type CaMaterial } from "./material.ts";

/** Where the CA's material lives (a Kubernetes Secret, a directory). */
export interface CaStore {
  /** Names the store in messages, e.g. "Secret weft-system/weft-ca". */
  readonly location: string;
  /** The stored material, or null when there is none yet. */
  load(): Promise<CaMaterial | null>;
  /** Stores `material` unless the store holds some already; returns what it holds then (after a race, the winner's). */
  create(material: CaMaterial): Promise<CaMaterial>;
}

const HOUR_MS = 3600_000;
/** PRODUCT.md: workload certificates live 24 h. */
export const WORKLOAD_TTL_MS = 24 * HOUR_MS;
/** A generated root lives 10 years, as Istio's self-signed root does; see docs/certificates.md on rotation. */
export const ROOT_TTL_MS = 10 * 365 * 24 * HOUR_MS;
/** notBefore is set this far back, so that a peer whose clock is a little behind accepts a fresh certificate. */
export const CLOCK_SKEW_MS = 5 * 60_000;
// A P-256 CSR is about 500 bytes of PEM; anything near this limit is not one of ours.
const MAX_CSR_PEM_LENGTH = 16 * 1024;

const P256: EcKeyGenParams = { name: "ECDSA", namedCurve: "P-256" };
const SIGNING_P256: EcdsaParams = { name: "ECDSA", hash: "SHA-256" };
const CSR_CURVES = ["P-256", "P-384"];

/** The CSR is unusable; the message says why (enrollment answers 400 with it). */
export class CsrError extends Error {
  override name = "CsrError";
}

export interface WorkloadCertificate {
  /** PEM: the leaf, then any intermediates. */
  certificateChain: string;
  /** PEM: the roots peers verify against. */
  trustBundle: string;
  notAfter: Date;
  serialNumber: string;
}

export interface ServingCertificate {
  /** PEM: the leaf, then any intermediates. */
  certificateChain: string;
  /** PKCS#8 PEM. */
  privateKey: string;
  notAfter: Date;
}

export interface CertificateAuthority {
  /** "generated": this start made the root and stored it; "loaded": the store had it (a previous start, another replica, the user). */
  readonly origin: "generated" | "loaded";
  /** The signing certificate's subject and expiry. */
  readonly subject: string;
  readonly notAfter: Date;
  /** PEM of the roots workloads trust. */
  trustBundle(): string;
  /**
   * Signs a workload certificate for `spiffeId` with the CSR's public key. Only the key is taken
   * from the CSR (after its self-signature verifies); whatever names or extensions it asks for
   * are ignored. Throws CsrError for an unusable CSR.
   */
  issueWorkload(csrPem: string, spiffeId: string, ttlMs?: number): Promise<WorkloadCertificate>;
  /** A fresh key and a TLS server certificate for the control plane's own HTTPS (webhook, API). */
  issueServing(dnsNames: string[], ipAddresses: string[], ttlMs: number): Promise<ServingCertificate>;
}

export interface AuthorityOptions {
  store: CaStore;
  /**
   * When the store is empty: true (default) generates a root and stores it; false refuses to
   * start, for when the user is meant to supply the CA and a generated one would hide a mistake.
   */
  generate?: boolean;
  log?: Logger;
}

function pem(der: ArrayBuffer, tag: string): string {
  return x509.PemConverter.encode(der, tag) + "\n";
}

/** 128 random bits, positive and without a leading zero byte (RFC 5280: at most 20 octets). */
function randomSerial(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[0] = (bytes[0] & 0x7f) | 0x01;
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function generateRoot(): Promise<CaMaterial> {
  const keys = (await crypto.subtle.generateKey(P256, true, ["sign", "verify"])) as CryptoKeyPair;
  const now = Date.now();
  const root = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: "CN=weft root CA, O=weft",
    notBefore: new Date(now - CLOCK_SKEW_MS),
    notAfter: new Date(now + ROOT_TTL_MS),
    keys,
    signingAlgorithm: SIGNING_P256,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const certPem = root.toString("pem") + "\n";
  return { certPem, keyPem: pem(await crypto.subtle.exportKey("pkcs8", keys.privateKey), "PRIVATE KEY"), caPem: certPem };
}

function readCsr(csrPem: string): X509.Pkcs10CertificateRequest {
  if (typeof csrPem !== "string" || csrPem.length === 0) throw new CsrError("csr is empty: send a PEM PKCS#10 certificate request");
  if (csrPem.length > MAX_CSR_PEM_LENGTH)
    throw new CsrError(`csr is ${csrPem.length} characters, more than the ${MAX_CSR_PEM_LENGTH} a certificate request needs`);
  let blocks: ReturnType<typeof x509.PemConverter.decodeWithHeaders>;
  try {
    blocks = x509.PemConverter.decodeWithHeaders(csrPem);
  } catch (e) {
    throw new CsrError(`csr is not PEM: ${(e as Error).message}`);
  }
  const requests = blocks.filter((b) => b.type === "CERTIFICATE REQUEST");
  if (requests.length !== 1) {
    throw new CsrError(
      `csr must hold exactly one PEM "CERTIFICATE REQUEST" block, found ${requests.length}${blocks.length ? ` (blocks: ${blocks.map((b) => b.type).join(", ")})` : ""}`,
    );
  }
  try {
    return new x509.Pkcs10CertificateRequest(requests[0].rawData);
  } catch (e) {
    throw new CsrError(`csr is not a PKCS#10 certificate request: ${(e as Error).message}`);
  }
}

async function checkedPublicKey(csr: X509.Pkcs10CertificateRequest): Promise<X509.PublicKey> {
  let algorithm: Partial<EcKeyAlgorithm>;
  try {
    // The key is decoded on first use, not with the request: malformed key parameters throw here.
    algorithm = csr.publicKey.algorithm as Partial<EcKeyAlgorithm>;
  } catch (e) {
    throw new CsrError(`csr's public key cannot be read: ${(e as Error).message}`);
  }
  if (algorithm.name !== "ECDSA" || !CSR_CURVES.includes(algorithm.namedCurve ?? "")) {
    throw new CsrError(
      `csr has a ${algorithm.name}${algorithm.namedCurve ? ` ${algorithm.namedCurve}` : ""} key; use ECDSA ${CSR_CURVES.join(" or ")}`,
    );
  }
  let valid: boolean;
  try {
    valid = await csr.verify();
  } catch (e) {
    throw new CsrError(`csr's signature could not be checked: ${(e as Error).message}`);
  }
  // The self-signature proves the caller holds the private key of the key it wants certified.
  if (!valid) throw new CsrError("csr's signature does not verify with its own public key: it was altered, or signed with another key");
  return csr.publicKey;
}

/** The key a CSR asks to have certified, once its PEM, structure, key type and self-signature check out; CsrError otherwise. */
export async function csrPublicKey(csrPem: string): Promise<X509.PublicKey> {
  return checkedPublicKey(readCsr(csrPem));
}

interface Leaf {
  publicKey: X509.PublicKey | CryptoKey;
  subject?: string;
  names: X509.JsonGeneralName[];
  keyUsage: number;
  extendedKeyUsage: string[];
  ttlMs: number;
}

async function signLeaf(signer: Signer, leaf: Leaf): Promise<{ certificate: X509.X509Certificate; certificateChain: string }> {
  if (!(leaf.ttlMs > 0)) throw new RangeError(`certificate lifetime must be a positive number of milliseconds, got ${leaf.ttlMs}`);
  const now = Date.now();
  // A leaf never outlives the certificate that signs it.
  const notAfter = new Date(Math.min(now + leaf.ttlMs, signer.certificate.notAfter.getTime()));
  if (notAfter.getTime() <= now)
    throw new CaMaterialError(
      `the CA certificate "${signer.certificate.subject}" expired at ${signer.certificate.notAfter.toISOString()}; replace it`,
    );
  const issuerKeyId = signer.certificate.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    // SPIFFE puts the identity in the URI SAN; with no subject, RFC 5280 wants the SAN critical.
    ...(leaf.subject ? { subject: leaf.subject } : {}),
    issuer: signer.certificate.subjectName,
    notBefore: new Date(now - CLOCK_SKEW_MS),
    notAfter,
    publicKey: leaf.publicKey,
    signingKey: signer.key,
    signingAlgorithm: signer.algorithm,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(leaf.keyUsage, true),
      new x509.ExtendedKeyUsageExtension(leaf.extendedKeyUsage),
      new x509.SubjectAlternativeNameExtension(leaf.names, !leaf.subject),
      await x509.SubjectKeyIdentifierExtension.create(leaf.publicKey),
      issuerKeyId
        ? new x509.AuthorityKeyIdentifierExtension(issuerKeyId)
        : await x509.AuthorityKeyIdentifierExtension.create(signer.certificate.publicKey),
    ],
  });
  return { certificate, certificateChain: certificate.toString("pem") + "\n" + signer.chainPem };
}

export async function openAuthority(options: AuthorityOptions): Promise<CertificateAuthority> {
  const { store } = options;
  const log = options.log ?? createLogger({ component: "ca" });
  let origin: CertificateAuthority["origin"] = "loaded";
  let material = await store.load();
  if (!material) {
    if (options.generate === false) {
      throw new CaMaterialError(
        `${store.location} does not exist: create it with the CA to use (docs/certificates.md), or let weft generate a root`,
      );
    }
    const generated = await generateRoot();
    material = await store.create(generated);
    if (material.keyPem === generated.keyPem) origin = "generated";
  }
  const signer = await loadSigner(material, store.location);
  const thumbprint = new Uint8Array(await signer.certificate.getThumbprint("SHA-256"));
  log.info("mesh CA ready", {
    store: store.location,
    origin,
    subject: signer.certificate.subject,
    intermediate: signer.chainPem !== "",
    notAfter: signer.certificate.notAfter.toISOString(),
    sha256: Array.from(thumbprint, (b) => b.toString(16).padStart(2, "0")).join(""),
  });

  return {
    origin,
    subject: signer.certificate.subject,
    notAfter: signer.certificate.notAfter,
    trustBundle: () => signer.trustBundlePem,

    async issueWorkload(csrPem, spiffeId, ttlMs = WORKLOAD_TTL_MS) {
      parseSpiffeId(spiffeId);
      const publicKey = await csrPublicKey(csrPem);
      const { certificate, certificateChain } = await signLeaf(signer, {
        publicKey,
        names: [{ type: "url", value: spiffeId }],
        keyUsage: x509.KeyUsageFlags.digitalSignature,
        extendedKeyUsage: [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth],
        ttlMs,
      });
      return {
        certificateChain,
        trustBundle: signer.trustBundlePem,
        notAfter: certificate.notAfter,
        serialNumber: certificate.serialNumber,
      };
    },

    async issueServing(dnsNames, ipAddresses, ttlMs) {
      if (dnsNames.length + ipAddresses.length === 0)
        throw new RangeError("a serving certificate needs at least one DNS name or IP address");
      const keys = (await crypto.subtle.generateKey(P256, true, ["sign", "verify"])) as CryptoKeyPair;
      const { certificate, certificateChain } = await signLeaf(signer, {
        publicKey: keys.publicKey,
        subject: `CN=${dnsNames[0] ?? ipAddresses[0]}, O=weft`,
        names: [
          ...dnsNames.map((value) => ({ type: "dns" as const, value })),
          ...ipAddresses.map((value) => ({ type: "ip" as const, value })),
        ],
        keyUsage: x509.KeyUsageFlags.digitalSignature,
        extendedKeyUsage: [x509.ExtendedKeyUsage.serverAuth],
        ttlMs,
      });
      return {
        certificateChain,
        privateKey: pem(await crypto.subtle.exportKey("pkcs8", keys.privateKey), "PRIVATE KEY"),
        notAfter: certificate.notAfter,
      };
    },
  };
}
