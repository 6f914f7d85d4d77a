// Errors from @kubernetes/client-node carry the whole response; logs and status want the
// API server's own message.

/** The API server's own message rather than the client's dump of every response header. */
export function kubernetesError(e: unknown): string {
  const { code, body, message } = (e ?? {}) as { code?: number; body?: unknown; message?: string };
  if (code === undefined) return message ?? String(e);
  let text = typeof body === "string" ? body : JSON.stringify(body);
  try {
    text = (JSON.parse(text) as { message?: string }).message ?? text;
  } catch {
    // not JSON: the body as it is
  }
  return `HTTP ${code}: ${String(text).trim().slice(0, 300)}`;
}
