// JSON Web Token helpers: decode a compact JWS and check its signature with the host's
// weft_verify (RS256, ES256, HS256, EdDSA). Claims are left to the filter.
import { weft_verify } from "./abi";
import { bytesBlock, textBlock } from "./blocks";
import { Json } from "./json";

/** A compact JWS split into its parts; `header` and `payload` are JSON objects. */
export class Jws {
  constructor(
    public header: Json,
    public payload: Json,
    /** The signed text: "<header>.<payload>" as it appeared in the token. */
    public signingInput: string,
    public signature: Uint8Array,
  ) {}

  /** The header's "alg", or "" when it has none. */
  get alg(): string {
    const alg = this.header.getString("alg");
    return alg === null ? "" : alg;
  }

  /** The header's "kid", or null. */
  get kid(): string | null {
    return this.header.getString("kid");
  }
}

function sextet(c: i32): i32 {
  if (c >= 0x41 && c <= 0x5a) return c - 0x41; // A-Z
  if (c >= 0x61 && c <= 0x7a) return c - 0x61 + 26; // a-z
  if (c >= 0x30 && c <= 0x39) return c - 0x30 + 52; // 0-9
  if (c == 0x2d) return 62; // -
  if (c == 0x5f) return 63; // _
  return -1;
}

function objectOf(part: Uint8Array | null): Json | null {
  if (part === null) return null;
  const value = Json.parse(String.UTF8.decode(part.buffer));
  return value !== null && value.isObject() ? value : null;
}

export namespace jwt {
  /** weft_verify's answers. */
  export const VALID: i32 = 1;
  export const INVALID: i32 = 0;
  export const UNUSABLE_KEY: i32 = -1;

  /** Decodes unpadded base64url (RFC 7515); null if `text` is not base64url. */
  export function decodeBase64Url(text: string): Uint8Array | null {
    const n = text.length;
    if (n % 4 == 1) return null;
    const out = new Uint8Array((n * 3) >> 2);
    let bits: u32 = 0;
    let count = 0;
    let o = 0;
    for (let i = 0; i < n; i++) {
      const v = sextet(text.charCodeAt(i));
      if (v < 0) return null;
      bits = (bits << 6) | <u32>v;
      count += 6;
      if (count >= 8) {
        count -= 8;
        out[o++] = <u8>(bits >> count);
      }
    }
    return out;
  }

  /** Splits and decodes a compact JWS ("header.payload.signature"); null if malformed. */
  export function split(token: string): Jws | null {
    const first = token.indexOf(".");
    const second = first < 0 ? -1 : token.indexOf(".", first + 1);
    if (second < 0 || token.indexOf(".", second + 1) >= 0) return null;
    const header = objectOf(decodeBase64Url(token.substring(0, first)));
    const payload = objectOf(decodeBase64Url(token.substring(first + 1, second)));
    const signature = decodeBase64Url(token.substring(second + 1));
    if (header === null || payload === null || signature === null) return null;
    return new Jws(header, payload, token.substring(0, second), signature);
  }

  /**
   * Checks `signature` over `signingInput` with `key` (a JWK as JSON, or PEM): VALID, INVALID,
   * or UNUSABLE_KEY when the key or the algorithm cannot be used.
   */
  export function verify(alg: string, key: string, signingInput: string, signature: Uint8Array): i32 {
    return weft_verify(textBlock(alg), textBlock(key), textBlock(signingInput), bytesBlock(signature));
  }
}
