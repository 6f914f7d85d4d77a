// POST /v1/certificates: a workload proves who it is with its ServiceAccount token and gets a
// certificate for that identity. Body {"csr": "<PEM PKCS#10>"}, header "Authorization: Bearer
// <token>". The identity comes from the token alone (TokenReview), never from the CSR:
// spiffe://<trust domain>/ns/<namespace>/sa/<service account>. A Fetch API handler, so it
// mounts in Hono or behind a node:http adapter. Tokens, keys and CSRs are never logged.
import { formatSpiffeId, DEFAULT_TRUST_DOMAIN } from "../../proxy/identity/spiffe.ts";
import { createLogger, type Logger } from "../../shared/log.ts";
import { CaMaterialError, CsrError, WORKLOAD_TTL_MS, type CertificateAuthority } from "./authority.ts";
import type { TokenReviewer } from "./token-review.ts";
import { readBoundedText } from "../api/body.ts";

// The path is part of the contract with the proxy, which defines it.
export { ENROLLMENT_PATH } from "../../proxy/identity/enroll.ts";
/** A P-256 CSR in JSON is well under 1 KiB. */
export const MAX_BODY_BYTES = 64 * 1024;

export interface EnrollmentOptions {
  authority: Pick<CertificateAuthority, "issueWorkload">;
  /** kubernetesTokenReviewer(...) in the control plane; tests of the proxy side inject their own. */
  reviewToken: TokenReviewer;
  trustDomain?: string;
  ttlMs?: number;
  maxBodyBytes?: number;
  log?: Logger;
}

/** The answer to a successful enrollment: the proxy's `identity` config, less the key it kept. */
export interface EnrollmentResponse {
  spiffeId: string;
  certificateChain: string;
  trustBundle: string;
  /** ISO 8601. */
  notAfter: string;
}

/** What every refusal carries: a message for people and a reason for programs. */
export interface EnrollmentRefusal {
  error: string;
  reason: string;
}

const SERVICE_ACCOUNT_USER = /^system:serviceaccount:([^:]+):([^:]+)$/;

/** A refused enrollment: the status and reason it is answered with. */
export class Refusal extends Error {
  readonly status: number;
  readonly reason: string;
  readonly headers: Record<string, string>;
  constructor(status: number, reason: string, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.status = status;
    this.reason = reason;
    this.headers = headers;
  }
}

function json(status: number, body: EnrollmentResponse | EnrollmentRefusal, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", "cache-control": "no-store", ...headers },
  });
}

function bearerToken(request: Request): string {
  const header = request.headers.get("authorization");
  if (!header)
    throw new Refusal(401, "NoToken", 'no token: send the ServiceAccount token as "Authorization: Bearer <token>"', {
      "www-authenticate": "Bearer",
    });
  const match = /^Bearer +(\S+) *$/i.exec(header);
  if (!match) {
    throw new Refusal(401, "InvalidToken", 'the Authorization header is not "Bearer <token>"', {
      "www-authenticate": 'Bearer error="invalid_request"',
    });
  }
  return match[1];
}

function tooLarge(limit: number): Refusal {
  return new Refusal(413, "BodyTooLarge", `the body is larger than ${limit} bytes; send {"csr": "<PEM>"} only`);
}

/** The CSR in a request body, or a 400 Refusal saying what the body should be. */
export function csrOf(body: string): string {
  const shape = 'send a JSON object {"csr": "<PEM certificate request>"}';
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch (e) {
    throw new Refusal(400, "MalformedBody", `the body is not JSON (${(e as Error).message}): ${shape}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
    throw new Refusal(400, "MalformedBody", `the body is not a JSON object: ${shape}`);
  const csr = (parsed as { csr?: unknown }).csr;
  if (typeof csr !== "string")
    throw new Refusal(
      400,
      "MalformedBody",
      `the body has no "csr" string${csr === undefined ? "" : ` (it is ${Array.isArray(csr) ? "an array" : typeof csr})`}: ${shape}`,
    );
  return csr;
}

export function enrollmentHandler(options: EnrollmentOptions): (request: Request) => Promise<Response> {
  const trustDomain = options.trustDomain ?? DEFAULT_TRUST_DOMAIN;
  const ttlMs = options.ttlMs ?? WORKLOAD_TTL_MS;
  const limit = options.maxBodyBytes ?? MAX_BODY_BYTES;
  const log = options.log ?? createLogger({ component: "ca" });

  const enroll = async (request: Request): Promise<EnrollmentResponse> => {
    if (request.method !== "POST")
      throw new Refusal(405, "MethodNotAllowed", `${request.method} is not allowed: POST a certificate request`, { allow: "POST" });
    const token = bearerToken(request);
    // An oversized body declared up front is refused before a TokenReview is spent on it.
    if (Number(request.headers.get("content-length") ?? "0") > limit) throw tooLarge(limit);
    let review;
    try {
      review = await options.reviewToken(token);
    } catch (e) {
      throw new Refusal(503, "TokenReviewUnavailable", `the token could not be checked, try again: ${(e as Error).message}`, {
        "retry-after": "5",
      });
    }
    if (!review.authenticated)
      throw new Refusal(401, review.reason, review.message, { "www-authenticate": 'Bearer error="invalid_token"' });
    const account = SERVICE_ACCOUNT_USER.exec(review.username);
    if (!account) {
      throw new Refusal(
        403,
        "NotServiceAccount",
        `the token belongs to ${JSON.stringify(review.username)}, which is not a ServiceAccount: only a workload's ServiceAccount token can enroll`,
      );
    }
    const spiffeId = formatSpiffeId({ trustDomain, namespace: account[1], serviceAccount: account[2] });
    const body = await readBoundedText(request, limit);
    if (body === null) throw tooLarge(limit);
    const csr = csrOf(body);
    try {
      const issued = await options.authority.issueWorkload(csr, spiffeId, ttlMs);
      log.info("issued workload certificate", { spiffeId, serialNumber: issued.serialNumber, notAfter: issued.notAfter.toISOString() });
      return {
        spiffeId,
        certificateChain: issued.certificateChain,
        trustBundle: issued.trustBundle,
        notAfter: issued.notAfter.toISOString(),
      };
    } catch (e) {
      if (e instanceof CsrError) throw new Refusal(400, "InvalidCsr", e.message);
      if (e instanceof CaMaterialError) throw new Refusal(503, "CaUnavailable", e.message);
      throw e;
    }
  };

  return async (request) => {
    try {
      return json(200, await enroll(request));
    } catch (e) {
      if (e instanceof Refusal) {
        log.warn("refused certificate request", { status: e.status, reason: e.reason, error: e.message });
        return json(e.status, { error: e.message, reason: e.reason }, e.headers);
      }
      log.error("certificate request failed", { error: (e as Error).message });
      return json(500, { error: `issuing the certificate failed: ${(e as Error).message}`, reason: "Internal" });
    }
  };
}
