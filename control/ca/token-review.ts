// Who holds a bearer token, asked of the Kubernetes API server (TokenReview), for the audiences
// the control plane accepts. The injected sidecar presents a projected ServiceAccount token
// with audience "weft", so a token minted for another audience (the default API token
// included) is refused. Needs RBAC: create on tokenreviews.authentication.k8s.io.
import { AuthenticationV1Api, type KubeConfig } from "@kubernetes/client-node";
import { apiMessage } from "../kubernetes/errors.ts";

export const DEFAULT_AUDIENCES = ["weft"];

export type TokenReview =
  | { authenticated: true; username: string }
  | { authenticated: false; reason: "TokenExpired" | "WrongAudience" | "InvalidToken"; message: string };

/** Reviews a token; throws only when the review itself cannot be done (API server unreachable, RBAC). */
export type TokenReviewer = (token: string) => Promise<TokenReview>;

export interface KubernetesTokenReviewerOptions {
  kubeConfig: KubeConfig;
  audiences?: string[];
}

// The API server's wording (k8s.io/apiserver, go-jose), classified so that the caller learns
// which of the usual mistakes it made; the server's own text is passed on as well.
function classify(error: string, audiences: string[]): TokenReview & { authenticated: false } {
  if (/expired/i.test(error))
    return {
      authenticated: false,
      reason: "TokenExpired",
      message: `the token has expired (${error}); the kubelet refreshes projected tokens, re-read the file`,
    };
  if (/audience/i.test(error)) {
    return {
      authenticated: false,
      reason: "WrongAudience",
      message: `the token is not for audience ${audiences.map((a) => JSON.stringify(a)).join(" or ")} (${error}); mount a projected ServiceAccount token with that audience`,
    };
  }
  return {
    authenticated: false,
    reason: "InvalidToken",
    message: `the token is not valid (${error || "the API server did not authenticate it"})`,
  };
}

export function kubernetesTokenReviewer(options: KubernetesTokenReviewerOptions): TokenReviewer {
  const audiences = options.audiences ?? DEFAULT_AUDIENCES;
  const api = options.kubeConfig.makeApiClient(AuthenticationV1Api);
  return async (token) => {
    let status;
    try {
      ({ status } = await api.createTokenReview({ body: { spec: { token, audiences } } }));
    } catch (e) {
      throw new Error(`TokenReview failed: ${apiMessage(e)}`);
    }
    if (!status?.authenticated || !status.user?.username) return classify(status?.error ?? "", audiences);
    // The API server answers with the audiences the token is valid for among those asked.
    if (status.audiences && !status.audiences.some((a) => audiences.includes(a)))
      return classify("token audiences do not match", audiences);
    return { authenticated: true, username: status.user.username };
  };
}
