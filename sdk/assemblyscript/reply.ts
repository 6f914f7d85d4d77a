// Answering locally: the proxy sends this reply instead of forwarding the request (or instead
// of the upstream's response, in a response phase) once the phase function returns Continue.
import { weft_respond } from "./abi";
import { textBlock } from "./blocks";
import { Header, headerLines } from "./headers";

export function respond(status: i32, body: string = "", headers: Array<Header> = []): void {
  weft_respond(status, headers.length > 0 ? textBlock(headerLines(headers)) : 0, body.length > 0 ? textBlock(body) : 0);
}
