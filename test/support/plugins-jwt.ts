// Real JSON Web Tokens for the jwt-auth plugin's tests: key pairs generated in the test with
// node:crypto, public keys exported as JWKs for the filter's inline JWKS, and tokens signed as
// JWS compact serializations (RFC 7515). ES256 signatures are r||s (IEEE P1363), as JWS
// requires, not DER.
import { Buffer } from "node:buffer";
import { generateKeyPairSync, sign, type KeyObject } from "node:crypto";

export type SigningAlgorithm = "RS256" | "ES256";

export interface Signer {
  alg: SigningAlgorithm;
  kid: string;
  /** The public key as a JWK, with `kid`, `alg` and `use`: an entry of the filter's `jwks.keys`. */
  jwk: Record<string, string>;
  /** A compact JWS of `claims`. `header` adds to (or overrides) `{ alg, typ, kid }`. */
  token(claims: Record<string, unknown>, header?: Record<string, unknown>): string;
  /** Like `token`, but an ES256 signature is left DER-encoded (what a JWS must not carry). */
  derToken(claims: Record<string, unknown>): string;
}

export const b64url = (data: string | Uint8Array): string => Buffer.from(data).toString("base64url");

export function signer(alg: SigningAlgorithm, kid: string): Signer {
  const { publicKey, privateKey } =
    alg === "RS256" ? generateKeyPairSync("rsa", { modulusLength: 2048 }) : generateKeyPairSync("ec", { namedCurve: "P-256" });
  const jwk = { ...(publicKey.export({ format: "jwk" }) as Record<string, string>), kid, alg, use: "sig" };
  const compact = (claims: Record<string, unknown>, header: Record<string, unknown>, der: boolean) => {
    const input = `${b64url(JSON.stringify({ alg, typ: "JWT", kid, ...header }))}.${b64url(JSON.stringify(claims))}`;
    return `${input}.${b64url(signWith(alg, privateKey, input, der))}`;
  };
  return { alg, kid, jwk, token: (claims, header = {}) => compact(claims, header, false), derToken: (claims) => compact(claims, {}, true) };
}

function signWith(alg: SigningAlgorithm, key: KeyObject, input: string, der: boolean): Uint8Array {
  const data = Buffer.from(input);
  if (alg === "RS256") return sign("sha256", data, key);
  return sign("sha256", data, der ? key : { key, dsaEncoding: "ieee-p1363" });
}

/** Seconds since the Unix epoch, as `exp`, `nbf` and `iat` count. */
export const nowSeconds = (): number => Math.floor(Date.now() / 1000);
