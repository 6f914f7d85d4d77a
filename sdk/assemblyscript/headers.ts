// Header lists in the ABI's text form: one "name: value\n" line per value.

export class Header {
  constructor(public name: string, public value: string) {}
}

export function parseHeaderLines(text: string | null): Array<Header> {
  const headers = new Array<Header>();
  if (text === null) return headers;
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf("\n", start);
    if (end < 0) end = text.length;
    const colon = text.indexOf(":", start);
    if (colon > start && colon < end) headers.push(new Header(text.substring(start, colon), text.substring(colon + 1, end).trim()));
    start = end + 1;
  }
  return headers;
}

export function headerLines(headers: Array<Header>): string {
  let text = "";
  for (let i = 0; i < headers.length; i++) text += headers[i].name + ": " + headers[i].value + "\n";
  return text;
}
