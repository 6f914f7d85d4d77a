// Turns a token review (the API server's TokenReview, or local mode's own tokens) into the
// ServiceAccount a proxy runs as, cached for a minute so acknowledgements do not each cost a review.
import { ApiError, type Caller } from "./server.ts";
import type { TokenReviewer } from "../ca/token-review.ts";

const SERVICE_ACCOUNT_USER = /^system:serviceaccount:([^:]+):([^:]+)$/;
const REVIEW_CACHE_MS = 60_000;

export function authenticator(review: TokenReviewer): (token: string) => Promise<Caller> {
  const cache = new Map<string, { at: number; caller: Promise<Caller> }>();
  return (token) => {
    const now = Date.now();
    const hit = cache.get(token);
    if (hit && now - hit.at < REVIEW_CACHE_MS) return hit.caller;
    const caller = review(token).then((r) => {
      if (!r.authenticated) throw new ApiError(401, r.message);
      const sa = SERVICE_ACCOUNT_USER.exec(r.username);
      if (!sa)
        throw new ApiError(
          403,
          `the token is for ${r.username}, not a ServiceAccount: proxies authenticate with their pod's ServiceAccount token`,
        );
      return { namespace: sa[1]!, serviceAccount: sa[2]! };
    });
    caller.catch(() => cache.delete(token));
    if (cache.size > 10_000) cache.clear();
    cache.set(token, { at: now, caller });
    return caller;
  };
}
