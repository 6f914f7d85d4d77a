// A peer broke the protocol: the message is refused with `status` (400 for a downstream's
// request, 502 for an upstream's response), whichever protocol carried it.
export class ProtocolError extends Error {
  readonly status: number;
  constructor(message: string, status = 400) {
    super(message);
    this.name = "ProtocolError";
    this.status = status;
  }
}

export function bodyTooLarge(limit: number): ProtocolError {
  return new ProtocolError(`request body exceeds ${limit} bytes (limits.maxRequestBodyBytes)`, 413);
}
