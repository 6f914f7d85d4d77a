// Reading a Fetch API body with a ceiling: requests to the handlers mounted on the control
// plane's API (the certificate endpoint, the injection webhook) and responses the control plane
// reads (the dashboard's scrapes). A body declared or streamed past the ceiling is not read further.
import { Buffer } from "node:buffer";

/** The body as UTF-8 text, or null once it passes `limit` bytes. */
export async function readBoundedText(message: Pick<Request | Response, "headers" | "body">, limit: number): Promise<string | null> {
  if (Number(message.headers.get("content-length") ?? 0) > limit) return null;
  if (!message.body) return "";
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = message.body.getReader();
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
