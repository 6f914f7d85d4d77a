// Signature checks for JWTs on behalf of filters (weft_verify). Filter calls are synchronous,
// so this uses node:crypto's synchronous verify, which all three runtimes provide; WebCrypto's
// subtle API is promise-based and cannot answer inside a call.
import { Buffer } from "node:buffer";
import { createHmac, createPublicKey, timingSafeEqual, verify, type KeyObject } from "node:crypto";

export type VerifyResult = 1 | 0 | -1;

const ALGORITHMS: Record<string, { hash: string | null; dsaEncoding?: "ieee-p1363" }> = {
  RS256: { hash: "sha256" },
  ES256: { hash: "sha256", dsaEncoding: "ieee-p1363" }, // JWS signatures are r||s, not DER
  EdDSA: { hash: null },
};

// Parsing a JWK or PEM costs more than the check itself; a filter verifies with few keys.
const publicKeys = new Map<string, KeyObject>();
const MAX_CACHED_KEYS = 256;

function publicKey(key: string): KeyObject {
  let found = publicKeys.get(key);
  if (!found) {
    const trimmed = key.trim();
    found = trimmed.startsWith("{")
      ? createPublicKey({ key: JSON.parse(trimmed) as Record<string, string>, format: "jwk" })
      : createPublicKey(trimmed);
    if (publicKeys.size >= MAX_CACHED_KEYS) publicKeys.delete(publicKeys.keys().next().value!);
    publicKeys.set(key, found);
  }
  return found;
}

/** HS256 keys are the raw secret, or a JWK of kty "oct" with the secret in "k" (base64url). */
function hmacSecret(key: string): Uint8Array {
  const trimmed = key.trim();
  if (!trimmed.startsWith("{")) return new TextEncoder().encode(key);
  const jwk = JSON.parse(trimmed) as { kty?: string; k?: string };
  if (jwk.kty !== "oct" || typeof jwk.k !== "string") throw new Error('an HS256 JWK must have kty "oct" and "k"');
  return Buffer.from(jwk.k, "base64url");
}

/**
 * 1 when `signature` is a valid signature of `data` by `key` with `alg`, 0 when it is not,
 * -1 (with the reason) when the key or algorithm cannot be used.
 */
export function verifySignature(
  alg: string,
  key: string,
  data: Uint8Array,
  signature: Uint8Array,
): { result: VerifyResult; problem?: string } {
  try {
    if (alg === "HS256") {
      const expected = createHmac("sha256", hmacSecret(key)).update(data).digest();
      return { result: expected.length === signature.length && timingSafeEqual(expected, signature) ? 1 : 0 };
    }
    const spec = ALGORITHMS[alg];
    if (!spec) return { result: -1, problem: `algorithm "${alg}" is not supported (use RS256, ES256, HS256 or EdDSA)` };
    const ok = verify(
      spec.hash,
      data,
      spec.dsaEncoding ? { key: publicKey(key), dsaEncoding: spec.dsaEncoding } : publicKey(key),
      signature,
    );
    return { result: ok ? 1 : 0 };
  } catch (e) {
    return { result: -1, problem: `cannot verify with this ${alg} key: ${(e as Error).message}` };
  }
}
