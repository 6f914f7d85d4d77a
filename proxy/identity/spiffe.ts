// SPIFFE workload identity: parse, validate and format SPIFFE IDs, read one from a certificate's
// URI SAN, and build the ClientTlsOptions.verifyPeer callback that checks a server's identity.
// Rules follow the SPIFFE ID spec (https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE-ID.md);
// weft's workload IDs have the Istio/PRODUCT.md shape spiffe://<trust-domain>/ns/<ns>/sa/<sa>.
import { Buffer } from "node:buffer";
import { x509 } from "./x509.ts";

export const DEFAULT_TRUST_DOMAIN = "cluster.local";
const MAX_ID_LENGTH = 2048;
const MAX_TRUST_DOMAIN_LENGTH = 255;
const TRUST_DOMAIN = /^[a-z0-9._-]+$/;
const SEGMENT = /^[A-Za-z0-9._-]+$/;

export class SpiffeError extends Error {
  override name = "SpiffeError";
}

export interface SpiffeId {
  /** The ID as given (it is canonical once it validates: no normalisation is applied). */
  id: string;
  trustDomain: string;
  /** "" or "/seg/seg...". */
  path: string;
  /** Set when the path is /ns/<namespace>/sa/<serviceaccount>, otherwise null. */
  namespace: string | null;
  serviceAccount: string | null;
}

function invalid(id: string, reason: string): never {
  throw new SpiffeError(`invalid SPIFFE ID ${JSON.stringify(id.length > 120 ? id.slice(0, 120) + "..." : id)}: ${reason}`);
}

function checkTrustDomain(td: string, id: string): void {
  if (td.length === 0) invalid(id, "the trust domain is empty");
  if (td.length > MAX_TRUST_DOMAIN_LENGTH) invalid(id, `the trust domain is longer than ${MAX_TRUST_DOMAIN_LENGTH} characters`);
  if (!TRUST_DOMAIN.test(td)) {
    if (td.includes(":")) invalid(id, "the trust domain must not contain a port or user info");
    if (td.includes("@")) invalid(id, "the trust domain must not contain user info");
    if (/[A-Z]/.test(td)) invalid(id, "the trust domain must be lower case");
    invalid(id, "the trust domain may only contain a-z, 0-9, '.', '-' and '_'");
  }
}

function checkSegment(segment: string, id: string): void {
  if (segment.length === 0) invalid(id, "the path has an empty segment (double or trailing '/')");
  if (segment === "." || segment === "..") invalid(id, "the path must not contain '.' or '..' segments");
  if (!SEGMENT.test(segment)) invalid(id, `path segment ${JSON.stringify(segment)} may only contain A-Z, a-z, 0-9, '.', '-' and '_'`);
}

/** Parses and validates a SPIFFE ID; throws SpiffeError saying what is wrong. */
export function parseSpiffeId(id: string): SpiffeId {
  if (typeof id !== "string") throw new SpiffeError(`invalid SPIFFE ID: expected a string, got ${typeof id}`);
  if (id.length === 0) invalid(id, "it is empty");
  if (id.length > MAX_ID_LENGTH) invalid(id, `it is longer than ${MAX_ID_LENGTH} bytes`);
  if (!id.startsWith("spiffe://")) {
    if (/^spiffe:\/\//i.test(id)) invalid(id, "the scheme must be lower-case 'spiffe'");
    invalid(id, "it must start with 'spiffe://'");
  }
  if (/[?#]/.test(id)) invalid(id, "it must not contain a query or fragment");
  const rest = id.slice("spiffe://".length);
  const slash = rest.indexOf("/");
  const trustDomain = slash === -1 ? rest : rest.slice(0, slash);
  const path = slash === -1 ? "" : rest.slice(slash);
  checkTrustDomain(trustDomain, id);
  const segments = path === "" ? [] : path.slice(1).split("/");
  for (const segment of segments) checkSegment(segment, id);
  const workload = segments.length === 4 && segments[0] === "ns" && segments[2] === "sa";
  return {
    id,
    trustDomain,
    path,
    namespace: workload ? segments[1] : null,
    serviceAccount: workload ? segments[3] : null,
  };
}

/** Parses a weft workload ID and requires the /ns/<namespace>/sa/<serviceaccount> path. */
export function parseWorkloadId(id: string): SpiffeId & { namespace: string; serviceAccount: string } {
  const parsed = parseSpiffeId(id);
  if (parsed.namespace === null || parsed.serviceAccount === null) {
    invalid(id, `a workload ID's path must be /ns/<namespace>/sa/<serviceaccount>, got ${JSON.stringify(parsed.path || "(none)")}`);
  }
  return parsed as SpiffeId & { namespace: string; serviceAccount: string };
}

export function isSpiffeId(id: string): boolean {
  try {
    parseSpiffeId(id);
    return true;
  } catch {
    return false;
  }
}

/** spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount>, validated. */
export function formatSpiffeId(parts: { trustDomain?: string; namespace: string; serviceAccount: string }): string {
  const id = `spiffe://${parts.trustDomain ?? DEFAULT_TRUST_DOMAIN}/ns/${parts.namespace}/sa/${parts.serviceAccount}`;
  const parsed = parseSpiffeId(id);
  // A '/' inside a part would still parse, as a different path: refuse it.
  if (parsed.namespace !== parts.namespace || parsed.serviceAccount !== parts.serviceAccount) {
    invalid(id, "namespace and service account must each be a single path segment");
  }
  return id;
}

// ---- certificates -------------------------------------------------------------------------

const CACHE_LIMIT = 1024;
/** DER (as a latin1 string: a cheap exact key) -> SPIFFE ID or the error message. */
const cache = new Map<string, { id: string } | { error: string }>();

function leafDer(certificate: Uint8Array | string): Uint8Array {
  if (typeof certificate !== "string") return certificate;
  const pems = x509.PemConverter.decodeWithHeaders(certificate).filter((p) => p.type === "CERTIFICATE");
  if (pems.length === 0) throw new SpiffeError("no PEM 'CERTIFICATE' block found in the given text");
  return new Uint8Array(pems[0].rawData);
}

// ---- a minimal DER walk to the subjectAltName extension ----------------------------------
// Parsing a whole certificate with @peculiar/x509 costs about 0.5 ms and reading its SAN through
// it 1-2 ms on this machine (asn1js). The walk below finds the SAN extension's bytes in a few
// microseconds and only those go to @peculiar/x509 for decoding; the full parse remains for
// error messages.

interface Tlv {
  tag: number;
  /** Offset of the first content byte, and one past the last. */
  start: number;
  end: number;
  /** Offset of the tag byte. */
  at: number;
}

function tlv(der: Uint8Array, at: number, limit: number): Tlv {
  if (at + 2 > limit) throw new SpiffeError("the certificate is not valid DER X.509: truncated");
  const tag = der[at];
  if ((tag & 0x1f) === 0x1f) throw new SpiffeError("the certificate is not valid DER X.509: multi-byte tag");
  let length = der[at + 1];
  let start = at + 2;
  if (length & 0x80) {
    const bytes = length & 0x7f;
    if (bytes === 0 || bytes > 4 || start + bytes > limit) throw new SpiffeError("the certificate is not valid DER X.509: bad length");
    length = 0;
    for (let i = 0; i < bytes; i++) length = length * 256 + der[start + i];
    start += bytes;
  }
  const end = start + length;
  if (end > limit) throw new SpiffeError("the certificate is not valid DER X.509: length past the end");
  return { tag, start, end, at };
}

const SEQUENCE = 0x30;
const EXTENSIONS = 0xa3; // [3] EXPLICIT in TBSCertificate
const SAN_OID = [0x06, 0x03, 0x55, 0x1d, 0x11]; // 2.5.29.17

/** The DER of the SAN Extension (SEQUENCE { OID, [critical], OCTET STRING }), or null if absent. */
function findSanExtension(der: Uint8Array): Uint8Array | null {
  const cert = tlv(der, 0, der.length);
  if (cert.tag !== SEQUENCE) throw new SpiffeError("the certificate is not valid DER X.509: not a SEQUENCE");
  const tbs = tlv(der, cert.start, cert.end);
  if (tbs.tag !== SEQUENCE) throw new SpiffeError("the certificate is not valid DER X.509: no TBSCertificate");
  let found: Uint8Array | null = null;
  for (let at = tbs.start; at < tbs.end; ) {
    const field = tlv(der, at, tbs.end);
    at = field.end;
    if (field.tag !== EXTENSIONS) continue;
    const list = tlv(der, field.start, field.end);
    for (let e = list.start; e < list.end; ) {
      const ext = tlv(der, e, list.end);
      e = ext.end;
      if (ext.start + SAN_OID.length <= ext.end && SAN_OID.every((b, i) => der[ext.start + i] === b)) {
        if (found) throw new SpiffeError("the certificate has more than one subjectAltName extension");
        found = der.subarray(ext.at, ext.end);
      }
    }
  }
  return found;
}

function describeWithoutSan(der: Uint8Array): string {
  try {
    return `the certificate (subject "${new x509.X509Certificate(der as Uint8Array<ArrayBuffer>).subject}") has no subjectAltName extension, so no SPIFFE ID`;
  } catch (e) {
    return `the certificate is not valid DER X.509: ${(e as Error).message}`;
  }
}

function extract(der: Uint8Array): string {
  const sanDer = findSanExtension(der);
  if (!sanDer) throw new SpiffeError(describeWithoutSan(der));
  let names: readonly { type: string; value: string }[];
  try {
    names = new x509.SubjectAlternativeNameExtension(sanDer as Uint8Array<ArrayBuffer>).names.items;
  } catch (e) {
    throw new SpiffeError(`the certificate's subjectAltName could not be parsed: ${(e as Error).message}`);
  }
  const spiffe = names.filter((n) => n.type === "url" && /^spiffe:/i.test(n.value)).map((n) => n.value);
  if (spiffe.length !== 1) {
    const found = names.map((n) => `${n.type === "url" ? "URI" : n.type.toUpperCase()}:${n.value}`).join(", ") || "none";
    throw new SpiffeError(
      spiffe.length === 0
        ? `the certificate has no spiffe:// URI SAN (subjectAltName: ${found})`
        : `the certificate has ${spiffe.length} spiffe:// URI SANs, exactly one is allowed (subjectAltName: ${found})`,
    );
  }
  parseSpiffeId(spiffe[0]);
  return spiffe[0];
}

/**
 * The SPIFFE ID in a certificate's URI SAN (the first certificate when given a PEM chain).
 * Exactly one spiffe:// URI must be present and valid; otherwise throws SpiffeError saying what
 * was found. Results are cached by certificate bytes (the server side calls this once per TLS
 * connection, and peers reuse a certificate for its whole lifetime).
 */
export function spiffeIdFromCertificate(certificate: Uint8Array | string): string {
  const der = leafDer(certificate);
  const key = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString("latin1");
  let hit = cache.get(key);
  if (!hit) {
    try {
      hit = { id: extract(der) };
    } catch (e) {
      if (!(e instanceof SpiffeError)) throw e;
      hit = { error: e.message };
    }
    if (cache.size >= CACHE_LIMIT) cache.delete(cache.keys().next().value!);
    cache.set(key, hit);
  }
  if ("error" in hit) throw new SpiffeError(hit.error);
  return hit.id;
}

/** For tests and measurements. */
export function clearSpiffeCache(): void {
  cache.clear();
}

/** For tests: how many certificates the cache remembers. */
export function spiffeCacheSize(): number {
  return cache.size;
}

/** JSON of the expected list -> its verifier. */
const verifiers = new Map<string, (leafDer: Uint8Array) => string | undefined>();

/**
 * Builds ClientTlsOptions.verifyPeer: accepts the server when its certificate's SPIFFE ID is one
 * of `expected` (exact match), else returns a message naming the ID found and the ones expected.
 * The same list gives the same function (up to CACHE_LIMIT lists): the TLS client keeps resumable
 * sessions per verifyPeer function, and the sidecar asks again after every configuration push.
 */
export function verifyPeerIdentity(expected: string[]): (leafDer: Uint8Array) => string | undefined {
  const key = JSON.stringify(expected);
  let verifier = verifiers.get(key);
  if (!verifier) {
    verifier = buildVerifier(expected);
    if (verifiers.size >= CACHE_LIMIT) verifiers.delete(verifiers.keys().next().value!);
    verifiers.set(key, verifier);
  }
  return verifier;
}

function buildVerifier(expected: string[]): (leafDer: Uint8Array) => string | undefined {
  if (expected.length === 0) throw new SpiffeError("verifyPeerIdentity needs at least one expected SPIFFE ID");
  for (const id of expected) parseSpiffeId(id);
  const allowed = new Set(expected);
  const list = expected.join(", ");
  return (der) => {
    let id: string;
    try {
      id = spiffeIdFromCertificate(der);
    } catch (e) {
      return `peer certificate has no usable SPIFFE ID: ${(e as Error).message}`;
    }
    if (allowed.has(id)) return undefined;
    return `peer SPIFFE ID ${id} is not the expected ${expected.length === 1 ? "identity" : "identities"} (${list})`;
  };
}
