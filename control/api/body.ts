// Reading a Fetch API request's body with a ceiling, for the handlers mounted on the control
// plane's API (the certificate endpoint, the injection webhook): a body declared or streamed
// past the ceiling is not read further.
import { Buffer } from "node:buffer";

/** The body as UTF-8 text, or null once it passes `limit` bytes. */
export async function readBoundedText(request: Request, limit: number): Promise<string | null> {
  if (Number(request.headers.get("content-length") ?? 0) > limit) return null;
  if (!request.body) return "";
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = request.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel();
      return null;
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString("utf8");
}
