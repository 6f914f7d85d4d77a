// What one phase call of a filter sees and may change: the request (and in response phases
// the response), the buffered body of a body phase, who is asking, and the local reply.

export type FilterPhaseName = "on_request_headers" | "on_request_body" | "on_response_headers" | "on_response_body";
export const PHASES: readonly FilterPhaseName[] = ["on_request_headers", "on_request_body", "on_response_headers", "on_response_body"];

export interface RequestMessage {
  method: string;
  /** Path with query. */
  path: string;
  authority: string;
  scheme: string;
  /** [name, value, ...]; a filter's copy, changed in place. */
  headers: string[];
}

export interface ResponseMessage {
  status: number;
  headers: string[];
}

export interface LocalReply {
  status: number;
  headers: string[];
  body: Uint8Array;
}

export interface RequestAttributes {
  readonly direction: "inbound" | "outbound";
  readonly sourceAddress: string;
  /** The peer's SPIFFE ID, or "" without mTLS. */
  readonly sourcePrincipal: string;
  readonly requestId: string;
}

export interface FilterMessage {
  phase: FilterPhaseName;
  readonly request: RequestMessage;
  response: ResponseMessage | null;
  /** The whole body in body phases, null otherwise. */
  body: Uint8Array | null;
  readonly attributes: RequestAttributes;
  reply: LocalReply | null;
}

export function isResponsePhase(phase: FilterPhaseName): boolean {
  return phase === "on_response_headers" || phase === "on_response_body";
}

/** A copy to go back to when a failed call's partial changes must not count (FailOpen, FailReload). */
export function snapshot(message: FilterMessage): () => void {
  const { method, path, authority, scheme } = message.request;
  const requestHeaders = message.request.headers.slice();
  const response = message.response ? { status: message.response.status, headers: message.response.headers.slice() } : null;
  const body = message.body;
  return () => {
    Object.assign(message.request, { method, path, authority, scheme });
    message.request.headers.splice(0, message.request.headers.length, ...requestHeaders);
    if (message.response && response) {
      message.response.status = response.status;
      message.response.headers.splice(0, message.response.headers.length, ...response.headers);
    }
    message.body = body;
    message.reply = null;
  };
}
