// The API server's own message from a @kubernetes/client-node error. ApiException's message
// carries the whole response (escaped JSON body and headers); the Status message inside it is
// what a person needs ("... is forbidden: User ... cannot create resource ...").
import { ApiException } from "@kubernetes/client-node";

/** The HTTP status of a failed API call, or undefined when it never got an answer. */
export function apiStatus(e: unknown): number | undefined {
  return e instanceof ApiException ? e.code : undefined;
}

export function apiMessage(e: unknown): string {
  if (!(e instanceof ApiException)) return (e as Error).message;
  let message: unknown;
  try {
    message = (JSON.parse(String(e.body)) as { message?: unknown }).message;
  } catch {
    // not a Status object
  }
  return `HTTP ${e.code}: ${typeof message === "string" ? message : String(e.body).slice(0, 300)}`;
}
