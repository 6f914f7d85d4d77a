// Test PKI: a mesh root CA (ECDSA P-256) and SPIFFE workload certificates (X.509-SVIDs),
// issued in the test with @peculiar/x509 on WebCrypto. Everything comes back as PEM (keys in
// PKCS#8) so node:tls accepts it on Node, Deno and Bun alike.
import type * as X509 from "@peculiar/x509";
import { x509 } from "../../proxy/identity/x509.ts";

const EC: EcKeyGenParams = { name: "ECDSA", namedCurve: "P-256" };
const SIGNING: EcdsaParams = { name: "ECDSA", hash: "SHA-256" };
const HOUR = 3600_000;

export interface TestCa {
  /** PEM of the CA certificate: use it as the trust bundle. */
  certificate: string;
  /** PKCS#8 PEM of the CA key. */
  privateKey: string;
  name: string;
  /** For signing; kept so issuing needs no key import. */
  keys: CryptoKeyPair;
  x509: X509.X509Certificate;
}

export interface CaOptions {
  /** Subject common name; default "weft test mesh CA". */
  commonName?: string;
  notBefore?: Date;
  notAfter?: Date;
  /** Sign this CA with another CA (an intermediate) instead of self-signing. */
  signer?: TestCa;
}

export interface WorkloadOptions {
  /** The SPIFFE ID for the URI SAN, e.g. spiffe://cluster.local/ns/default/sa/web. Omit with `uris` for odd certs. */
  spiffeId?: string;
  /** Extra URI SANs (tests of "more than one spiffe URI" and the like). */
  uris?: string[];
  dns?: string[];
  ips?: string[];
  /** Default: now - 1 h. */
  notBefore?: Date;
  /** Default: now + 24 h (PRODUCT.md's certificate lifetime). */
  notAfter?: Date;
  /** Subject common name; default: none but an O=weft (SPIFFE puts the identity in the SAN only). */
  commonName?: string;
}

export interface WorkloadCertificate {
  /** PEM of the leaf alone. */
  certificate: string;
  /** PEM leaf followed by the issuer when it is an intermediate: what a server/client presents. */
  certificateChain: string;
  /** PKCS#8 PEM. */
  privateKey: string;
  der: Uint8Array;
  spiffeId: string | undefined;
}

function pem(tag: string, der: ArrayBuffer): string {
  return x509.PemConverter.encode(der, tag) + "\n";
}

function serial(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[0] &= 0x7f; // positive
  bytes[0] |= 0x01; // no leading zero byte
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function exportKey(key: CryptoKey): Promise<string> {
  return pem("PRIVATE KEY", await crypto.subtle.exportKey("pkcs8", key));
}

export async function createCa(options: CaOptions = {}): Promise<TestCa> {
  const keys = (await crypto.subtle.generateKey(EC, true, ["sign", "verify"])) as CryptoKeyPair;
  const name = `CN=${options.commonName ?? "weft test mesh CA"}, O=weft`;
  const notBefore = options.notBefore ?? new Date(Date.now() - HOUR);
  const notAfter = options.notAfter ?? new Date(Date.now() + 365 * 24 * HOUR);
  const extensions: X509.Extension[] = [
    new x509.BasicConstraintsExtension(true, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
  ];
  let cert: X509.X509Certificate;
  if (options.signer) {
    extensions.push(await x509.AuthorityKeyIdentifierExtension.create(options.signer.keys.publicKey));
    cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: name,
      issuer: options.signer.name,
      notBefore,
      notAfter,
      publicKey: keys.publicKey,
      signingKey: options.signer.keys.privateKey,
      signingAlgorithm: SIGNING,
      extensions,
    });
  } else {
    cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: serial(),
      name,
      notBefore,
      notAfter,
      keys,
      signingAlgorithm: SIGNING,
      extensions,
    });
  }
  return { certificate: cert.toString("pem") + "\n", privateKey: await exportKey(keys.privateKey), name, keys, x509: cert };
}

/** Issues a workload certificate (leaf, usable as TLS client and server) signed by `signer`. */
/** A sidecar's identity (proxy configuration `identity`) for `spiffeId`, signed by `ca`. */
export async function workloadIdentity(ca: TestCa, spiffeId: string) {
  const cert = await issueWorkload(ca, { spiffeId });
  return { certificateChain: cert.certificateChain, privateKey: cert.privateKey, trustBundle: ca.certificate };
}

export async function issueWorkload(signer: TestCa, options: WorkloadOptions = {}): Promise<WorkloadCertificate> {
  const keys = (await crypto.subtle.generateKey(EC, true, ["sign", "verify"])) as CryptoKeyPair;
  const names: X509.JsonGeneralName[] = [];
  if (options.spiffeId !== undefined) names.push({ type: "url", value: options.spiffeId });
  for (const uri of options.uris ?? []) names.push({ type: "url", value: uri });
  for (const dns of options.dns ?? []) names.push({ type: "dns", value: dns });
  for (const ip of options.ips ?? []) names.push({ type: "ip", value: ip });
  const extensions: X509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    await x509.AuthorityKeyIdentifierExtension.create(signer.keys.publicKey),
  ];
  if (names.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(names, false));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: options.commonName ? `CN=${options.commonName}, O=weft` : "O=weft",
    issuer: signer.name,
    notBefore: options.notBefore ?? new Date(Date.now() - HOUR),
    notAfter: options.notAfter ?? new Date(Date.now() + 24 * HOUR),
    publicKey: keys.publicKey,
    signingKey: signer.keys.privateKey,
    signingAlgorithm: SIGNING,
    extensions,
  });
  const leaf = cert.toString("pem") + "\n";
  const selfSigned = signer.x509.subject === signer.x509.issuer;
  return {
    certificate: leaf,
    certificateChain: selfSigned ? leaf : leaf + signer.certificate,
    privateKey: await exportKey(keys.privateKey),
    der: new Uint8Array(cert.rawData),
    spiffeId: options.spiffeId,
  };
}

/** A CA plus server and client workloads, the usual cast of a TLS test. */
export async function meshPki(trustDomain = "cluster.local") {
  const ca = await createCa();
  // No DNS/IP SANs on purpose: peers are verified by SPIFFE ID, never by hostname.
  const server = await issueWorkload(ca, { spiffeId: `spiffe://${trustDomain}/ns/default/sa/server` });
  const client = await issueWorkload(ca, { spiffeId: `spiffe://${trustDomain}/ns/default/sa/client` });
  return { ca, server, client };
}
